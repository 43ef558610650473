"""A service's health and readiness over its real collaborators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from stafett_case.app import SPEC
from stafett_case.settings import CaseSettings
from stafett_shared.service import create_app
from stafett_shared.settings import CommonSettings
from stafett_shared.testing import NatsHandle


async def test_readiness_follows_nats_and_health_does_not(
    private_nats_server: NatsHandle, tmp_path: Path
) -> None:
    settings = CommonSettings(nats_url=private_nats_server.url, data_dir=tmp_path)
    app = create_app(SPEC, settings, CaseSettings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://case") as client,
    ):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"

        await asyncio.to_thread(private_nats_server.process.stop)  # type: ignore[union-attr]
        await asyncio.sleep(0.3)
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"] == "application/problem+json"
        assert not_ready.headers["retry-after"] == "1"
        assert not_ready.json()["checks"]["nats"] != "ok"
        assert (await client.get("/healthz")).status_code == 200

        await asyncio.to_thread(private_nats_server.process.start)  # type: ignore[union-attr]
        for _ in range(100):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the service did not become ready again after NATS came back")


async def test_a_service_refuses_to_start_against_an_unsafe_stream(
    private_nats_server: NatsHandle, tmp_path: Path
) -> None:
    import nats
    from nats.js.api import StreamConfig

    from stafett_shared.eventstore import StreamMisconfigured

    nc = await nats.connect(private_nats_server.url)
    await nc.jetstream().add_stream(StreamConfig(name="EVENTS", subjects=["stafett.ev.>"]))
    await nc.close()
    settings = CommonSettings(nats_url=private_nats_server.url, data_dir=tmp_path)
    app = create_app(SPEC, settings, CaseSettings())
    with pytest.raises(StreamMisconfigured):
        async with app.router.lifespan_context(app):
            pass
