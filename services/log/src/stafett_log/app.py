"""Composition root of the log service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stafett_log.api import router
from stafett_log.checkpoints import Checkpointer
from stafett_log.handlers import LogService
from stafett_log.projections import LogProjection
from stafett_log.settings import LogSettings
from stafett_shared.crypto import FieldCipher, load_or_create_signing_key, load_signing_key
from stafett_shared.db import sessionmaker, writer
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.logging import get_logger
from stafett_shared.metrics import unwatch
from stafett_shared.service import Runtime, ServiceSpec, run_service, stop_tasks
from stafett_shared.settings import ServiceSettings, SettingsError

_log = get_logger("stafett.log")


def _projection(_cipher: FieldCipher, _settings: ServiceSettings) -> LogProjection:
    return LogProjection()


async def _start(runtime: Runtime) -> None:
    settings = runtime.service
    assert isinstance(settings, LogSettings)
    access = await runtime.access_client(permit_cache_s=settings.permit_cache_s)
    service = LogService(
        store=runtime.store,
        cipher=runtime.cipher,
        sessions=runtime.sessions,
        projector=runtime.projector,
        blocking=runtime.blocking_engine,
        on_loop=runtime.loop_engine,
        access=access,
    )
    if settings.signing_key_file is not None:
        key = load_signing_key(settings.signing_key_file)
    elif runtime.settings.production:
        raise SettingsError("production needs STAFETT_LOG_SIGNING_KEY_FILE")
    else:
        key = load_or_create_signing_key(runtime.settings.data_dir / "keys" / "checkpoint.pem")
    checkpointer = Checkpointer(
        nc=runtime.nc,
        sessions=runtime.sessions,
        writer=sessionmaker(writer(runtime.engine)),
        projector=runtime.projector,
        key=key,
        origin=settings.origin,
        replicas=runtime.settings.stream_replicas,
    )
    await checkpointer.ensure_stream()
    await checkpointer.latest()  # the newest checkpoint's age is watched from the start
    runtime.extras.update(
        log=service,
        checkpoints=checkpointer,
        idempotency=IdempotencyStore(sessionmaker(writer(runtime.engine))),
    )

    async def checkpoint_loop() -> None:
        while True:
            await asyncio.sleep(settings.checkpoint_interval_s)
            try:
                await runtime.projector.catch_up()
                await checkpointer.make()
            except Exception as exc:  # noqa: BLE001 - the next interval tries again
                _log.warning("checkpoint_failed", error_type=type(exc).__name__)

    runtime.extras["tasks"] = [asyncio.create_task(checkpoint_loop(), name="log-checkpoints")]


async def _stop(runtime: Runtime) -> None:
    await stop_tasks(runtime.extras.get("tasks", []))
    if "checkpoints" in runtime.extras:
        unwatch(runtime.extras["checkpoints"])


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
