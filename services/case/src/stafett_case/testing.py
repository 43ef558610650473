"""Test support for the case service: run it in-process beside the consent service, on the
same NATS server, with development tokens."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stafett_case.app import SPEC
from stafett_case.settings import CaseSettings
from stafett_shared.auth import DevIssuer
from stafett_shared.service import Runtime, create_app
from stafett_shared.settings import CommonSettings


@dataclass
class CaseHarness:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: DevIssuer

    def auth(self, person: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(person)}", **headers}

    async def open_case(
        self,
        person: str = "ann-kristin-allum",
        *,
        unit_id: str = "siljan-ungdomsskole",
        national_id: str | None = None,
        level: int = 1,
    ) -> dict[str, Any]:
        child: dict[str, str] = (
            {"national_id": national_id} if national_id else {"pseudonym": "Elev A"}
        )
        response = await self.client.post(
            "/api/v1/cases",
            json={
                "unit_id": unit_id,
                "level": level if national_id else 0,
                "child": child,
                "concern": "Eleven virker sliten og har mye fravær.",
            },
            headers=self.auth(person),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        body["seq"] = int(response.headers["Stafett-Seq"])
        return body

    async def settle(self, seq: int) -> None:
        await self.runtime.projector.wait_for(seq, 10)


@contextlib.asynccontextmanager
async def running_case(
    nats_url: str, database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[CaseHarness]:
    settings = CommonSettings(nats_url=nats_url, data_dir=data_dir, admins=["admin"])
    service = CaseSettings(database_url=database_url, deadline_check_interval_s=86400, **overrides)
    app = create_app(SPEC, settings, service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://case") as client,
    ):
        yield CaseHarness(client, app.state.runtime, DevIssuer.load_or_create(data_dir))
