"""An organisation's administrators (``STAFETT_ORG_ADMINS``) grant audit scopes in their
own organisation only; loading the region document stays with the region's
administrators (issue 16, item 1), over HTTP on real NATS and both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stafett_consent.testing import REGION, ConsentHarness, fresh_consent
from stafett_shared.testing import NatsHandle

SILJAN_ADMIN = "siljan-admin"  # administers Siljan kommune (4010)


@pytest.fixture
async def consent(
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ConsentHarness]:
    monkeypatch.setenv("STAFETT_ORG_ADMINS", json.dumps({"4010": [SILJAN_ADMIN]}))
    async with fresh_consent(nats_server.url, database_url, tmp_path) as harness:
        yield harness


def _scope(**fields: object) -> dict[str, object]:
    return {
        "auditor_person_id": "tilsyn-tone",
        "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "reason": "Tilsyn med kommunens oppfølging.",
        **fields,
    }


async def test_an_organisations_administrator_grants_audit_scopes_there_only(
    consent: ConsentHarness,
) -> None:
    own_case, seq = await consent.open_case()  # a case of Siljan ungdomsskole (4010)
    await consent.runtime.projector.wait_for(seq, 5)
    admin = consent.auth(SILJAN_ADMIN)

    for body in (_scope(org_id="4010"), _scope(case_ids=[own_case])):
        granted = await consent.client.post("/api/v1/audit-scopes", json=body, headers=admin)
        assert granted.status_code == 201, granted.text

    before = await consent.store.last_seq()
    for body in (
        _scope(org_id="40"),
        _scope(org_id="4010", case_ids=["01JZZZZZZZZZZZZZZZZZZZZZZZ"]),
    ):
        refused = await consent.client.post("/api/v1/audit-scopes", json=body, headers=admin)
        assert refused.status_code == 403, refused.text
    reloaded = await consent.client.put("/api/v1/directory", json=REGION, headers=admin)
    assert reloaded.status_code == 403, reloaded.text
    assert await consent.store.last_seq() == before

    directory = await consent.client.get("/api/v1/directory", headers=admin)
    assert directory.status_code == 200, directory.text
