"""Composition root of the log service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from stafett_log.api import router
from stafett_log.handlers import LogService
from stafett_log.projections import LogProjection
from stafett_log.settings import LogSettings
from stafett_shared.access import AccessClient
from stafett_shared.crypto import FieldCipher
from stafett_shared.db import sessionmaker, writer
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.service import Runtime, ServiceSpec, run_service
from stafett_shared.settings import ServiceSettings


def _projection(_cipher: FieldCipher, _settings: ServiceSettings) -> LogProjection:
    return LogProjection()


async def _start(runtime: Runtime) -> None:
    settings = runtime.service
    assert isinstance(settings, LogSettings)
    service = LogService(
        store=runtime.store,
        cipher=runtime.cipher,
        sessions=runtime.sessions,
        projector=runtime.projector,
        access=AccessClient(
            runtime.nc,
            timeout_s=runtime.settings.consent_timeout_s,
            permit_cache_s=settings.permit_cache_s,
        ),
    )
    runtime.extras.update(
        log=service, idempotency=IdempotencyStore(sessionmaker(writer(runtime.engine)))
    )
    runtime.extras.setdefault("tasks", [])


async def _stop(runtime: Runtime) -> None:
    for task in runtime.extras.get("tasks", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SPEC = ServiceSpec(
    name="log",
    title="Stafett – stafettlogg",
    description=(
        "Den uforanderlige stafettloggen: innføringer, rettelser, hashkjeder, "
        "signerte sjekkpunkter og hvem som har lest."
    ),
    contexts=("log", "access"),
    projection=_projection,
    migrations=Path(__file__).parent / "alembic",
    routers=(router,),
    settings_type=LogSettings,
    on_start=_start,
    on_stop=_stop,
)


def main() -> int:
    return run_service(SPEC)
