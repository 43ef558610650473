"""Composition root of the case service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stafett_case.api import router
from stafett_case.deadlines import DeadlinePolicy, publish_due
from stafett_case.handlers import CaseService
from stafett_case.projections import CaseProjection
from stafett_case.settings import CaseSettings
from stafett_shared.crypto import FieldCipher
from stafett_shared.db import sessionmaker, writer
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.logging import get_logger
from stafett_shared.lookups import LookupLimit
from stafett_shared.service import Runtime, ServiceSpec, blind_index, run_service, stop_tasks
from stafett_shared.settings import ServiceSettings

_log = get_logger("stafett.case")


def _projection(_cipher: FieldCipher, _settings: ServiceSettings) -> CaseProjection:
    return CaseProjection()


def deadline_policy(settings: CaseSettings) -> DeadlinePolicy:
    return DeadlinePolicy(
        level0_days=settings.level0_days,
        evaluation_warning_days=settings.evaluation_warning_days,
        handover_days=settings.handover_days,
        inactive_days=settings.inactive_days,
    )


async def _start(runtime: Runtime) -> None:
    settings = runtime.service
    assert isinstance(settings, CaseSettings)
    access = await runtime.access_client(permit_cache_s=settings.permit_cache_s)
    service = CaseService(
        store=runtime.store,
        cipher=runtime.cipher,
        index=blind_index(runtime.settings),
        sessions=runtime.sessions,
        projector=runtime.projector,
        access=access,
        lookups=LookupLimit.from_settings(runtime.settings),
    )
    runtime.extras.update(
        case=service, idempotency=IdempotencyStore(sessionmaker(writer(runtime.engine)))
    )
    policy = deadline_policy(settings)

    async def deadline_loop() -> None:
        while True:
            await asyncio.sleep(settings.deadline_check_interval_s)
            try:
                published = await publish_due(service, policy)
                if published:
                    _log.info("deadlines_published", count=published)
            except Exception as exc:  # noqa: BLE001 - the next run tries again
                _log.warning("deadline_check_failed", error_type=type(exc).__name__)

    runtime.extras["tasks"] = [asyncio.create_task(deadline_loop(), name="case-deadlines")]


async def _stop(runtime: Runtime) -> None:
    await stop_tasks(runtime.extras.get("tasks", []))


SPEC = ServiceSpec(
    name="case",
    title="Stafett – sak",
    description="Saker, BTI-nivå, stafettholder, overføringer, team og tiltak.",
    contexts=("case",),
    projection=_projection,
    migrations=Path(__file__).parent / "alembic",
    routers=(router,),
    settings_type=CaseSettings,
    on_start=_start,
    on_stop=_stop,
)


def main() -> int:
    return run_service(SPEC)
