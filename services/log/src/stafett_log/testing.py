"""Test support for the log service: run it in-process beside the consent and case services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from stafett_log.app import SPEC
from stafett_log.settings import LogSettings
from stafett_shared.auth import DevIssuer
from stafett_shared.service import Runtime, create_app
from stafett_shared.settings import CommonSettings

if TYPE_CHECKING:
    from stafett_case.testing import CaseHarness
    from stafett_consent.testing import ConsentHarness


@dataclass
class LogHarness:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: DevIssuer

    def auth(self, person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(person)}"}

    async def open_case(self, consent: ConsentHarness, case: CaseHarness) -> tuple[str, list[str]]:
        """A child of 13 with two guardians, a case opened for it and known to this service:
        the case's id and the guardians' ids."""
        _child_id, guardians, body = await consent.register_child(
            13, [("Mor", True), ("Far", True)]
        )
        await case.settle(await consent.store.last_seq())
        opened = await case.open_case(national_id=body["national_id"])
        await consent.runtime.projector.wait_for(opened["seq"], 10)
        await self.runtime.projector.wait_for(opened["seq"], 10)
        return opened["id"], guardians

    async def append(
        self,
        case_id: str,
        person: str = "ann-kristin-allum",
        text: str = "Samtale med eleven.",
        **fields: Any,
    ) -> httpx.Response:
        body = {
            "kind": "note",
            "text": text,
            "occurred_at": datetime.now(UTC).isoformat(),
            **fields,
        }
        return await self.client.post(
            f"/api/v1/logs/{case_id}/entries", json=body, headers=self.auth(person)
        )

    async def restrict(self, case_id: str, entry_id: str, person: str) -> httpx.Response:
        """Restrict an entry from guardians for 90 days (the leader's decision)."""
        return await self.client.post(
            f"/api/v1/logs/{case_id}/entries/{entry_id}/restrictions",
            json={
                "ground": "fvl_19_harmful_to_child",
                "reason": "Kan skade eleven.",
                "until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
            },
            headers=self.auth(person),
        )


@contextlib.asynccontextmanager
async def running_log(
    nats_url: str, database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[LogHarness]:
    settings = CommonSettings(nats_url=nats_url, data_dir=data_dir, admins=["admin"])
    service = LogSettings(database_url=database_url, checkpoint_interval_s=86400, **overrides)
    app = create_app(SPEC, settings, service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://log") as client,
    ):
        yield LogHarness(client, app.state.runtime, DevIssuer.load_or_create(data_dir))
