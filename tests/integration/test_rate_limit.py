"""A service refuses one principal's requests beyond its limit, as configured."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from stafett_consent.testing import running_consent
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import reset_jetstream


async def test_a_service_answers_429_once_a_principal_has_used_its_burst(
    nats_server: NatsHandle, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_RATE_LIMIT_PER_S", "0.1")
    monkeypatch.setenv("STAFETT_RATE_LIMIT_BURST", "3")
    nc = await nats.connect(nats_server.url)
    await reset_jetstream(nc)
    await nc.close()
    async with running_consent(nats_server.url, database_url, tmp_path) as consent:
        url = "/api/v1/consents?case_id=01JCASE0000000000000000001"
        ola = consent.auth("ann-kristin-allum")
        answers = [(await consent.client.get(url, headers=ola)).status_code for _ in range(4)]
        assert answers[:3] == [404, 404, 404]  # no such case: the limit counts every call
        assert answers[3] == 429
        refused = await consent.client.get(url, headers=ola)
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        # Someone else is not held back.
        other = await consent.client.get(url, headers=consent.auth("vgs-vidar"))
        assert other.status_code == 404
