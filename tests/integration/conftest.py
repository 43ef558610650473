from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from stafett_consent.testing import ConsentHarness, running_consent
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import reset_jetstream


@pytest.fixture
async def consent(
    nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> AsyncIterator[ConsentHarness]:
    """The consent service in-process, on a fresh stream, once per database."""
    nc = await nats.connect(nats_server.url)
    await reset_jetstream(nc)
    await nc.close()
    async with running_consent(nats_server.url, database_url, tmp_path) as harness:
        response = await harness.load_region()
        assert response.status_code == 200, response.text
        yield harness
