"""Composition root of the notify service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from stafett_notify import domain
from stafett_notify.api import router
from stafett_notify.delivery import Deliverer, RetryPolicy, SmtpSettings
from stafett_notify.egress import webhook_client
from stafett_notify.projections import NotifyProjection, cases, consents
from stafett_notify.settings import NotifySettings
from stafett_shared.crypto import FieldCipher
from stafett_shared.db import sessionmaker, writer
from stafett_shared.envelope import CloudEvent
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.logging import get_logger
from stafett_shared.service import Runtime, ServiceSpec, run_service, stop_tasks
from stafett_shared.settings import ServiceSettings

_log = get_logger("stafett.notify")


def _projection(_cipher: FieldCipher, _settings: ServiceSettings) -> NotifyProjection:
    # The access client is attached at start, once NATS is connected.
    return NotifyProjection()


def deliverer(runtime: Runtime) -> Deliverer:
    settings = runtime.service
    assert isinstance(settings, NotifySettings)
    return Deliverer(
        nc=runtime.nc,
        sessions=runtime.sessions,
        writer=sessionmaker(writer(runtime.engine)),
        cipher=runtime.cipher,
        smtp=SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        ),
        retry=RetryPolicy(settings.max_attempts, settings.retry_base_s, settings.retry_cap_s),
        link_base=settings.link_base,
        http=webhook_client(production=runtime.settings.production),
        replicas=runtime.settings.stream_replicas,
        ack_wait_s=settings.ack_wait_s,
    )


async def warn_expiring(runtime: Runtime, projection: NotifyProjection, days: int) -> int:
    """Notices to the holder for consents that end within ``days`` (once per consent)."""
    soon = datetime.now(UTC) + timedelta(days=days)
    async with runtime.sessions() as session:
        due = (
            await session.execute(
                select(consents.c.consent_id, consents.c.case_id, cases.c.holder_id)
                .join(cases, cases.c.case_id == consents.c.case_id)
                .where(consents.c.status == "active", consents.c.valid_until <= soon)
            )
        ).all()
    position = runtime.projector.known_position
    queued = 0
    for row in due:
        event = CloudEvent(
            id=f"expiring-{row.consent_id}",
            source="stafett/notify",
            type="no.stafett.notify.consent_expiring.v1",
            subject=row.case_id,
            time=datetime.now(UTC),
            tenant="region",
            actor="stafett-notify",
            data={},
        )
        draft = domain.Draft(
            "consent_expiring", row.case_id, frozenset({row.holder_id}), row.consent_id
        )
        async with sessionmaker(writer(runtime.engine))() as session, session.begin():
            await projection._queue(session, draft, row.case_id, row.holder_id, event, position)
            await session.execute(
                update(consents)
                .where(consents.c.consent_id == row.consent_id)
                .values(status="warned")
            )
        queued += 1
    return queued


async def _start(runtime: Runtime) -> None:
    settings = runtime.service
    assert isinstance(settings, NotifySettings)
    projection = runtime.projector.projection
    assert isinstance(projection, NotifyProjection)
    projection.access = await runtime.access_client(permit_cache_s=settings.permit_cache_s)
    projection.link_base = settings.link_base.rstrip("/")
    delivery = deliverer(runtime)
    await delivery.ensure_streams()
    writes = sessionmaker(writer(runtime.engine))
    runtime.extras.update(
        delivery=delivery,
        writer=writes,
        projection=projection,
        idempotency=IdempotencyStore(writes),
    )

    async def periodic(interval: float, job: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if job == "digest":
                    await delivery.send_digests()
                else:
                    await warn_expiring(runtime, projection, settings.expiry_warning_days)
                    delivery.wake()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                _log.warning("notify_job_failed", job=job, error_type=type(exc).__name__)

    async def wake_on_progress() -> None:
        last = -1
        while True:
            await asyncio.sleep(0.2)
            if runtime.projector.known_position != last:
                last = runtime.projector.known_position
                delivery.wake()

    runtime.extras["tasks"] = [
        asyncio.create_task(delivery.relay_forever(), name="notify-relay"),
        asyncio.create_task(delivery.work_forever(), name="notify-worker"),
        asyncio.create_task(wake_on_progress(), name="notify-wake"),
        asyncio.create_task(periodic(settings.digest_interval_s, "digest"), name="digest"),
        asyncio.create_task(periodic(settings.expiry_check_interval_s, "expiry"), name="expiry"),
    ]


async def _stop(runtime: Runtime) -> None:
    await stop_tasks(runtime.extras.get("tasks", []))


async def _redrive(runtime: Runtime) -> int:
    delivery = deliverer(runtime)
    await delivery.ensure_streams()
    moved = await delivery.redrive()
    print(f"{moved} leveranser lagt tilbake i arbeidskøen.")  # noqa: T201
    return 0


SPEC = ServiceSpec(
    name="notify",
    title="Stafett – varsler",
    description=(
        "Innboks, e-post og webhooks som aldri bærer fortrolig innhold, påminnelser og nye forsøk."
    ),
    contexts=(),
    projection=_projection,
    migrations=Path(__file__).parent / "alembic",
    routers=(router,),
    settings_type=NotifySettings,
    on_start=_start,
    on_stop=_stop,
    commands={"redrive": _redrive},
)


def main() -> int:
    return run_service(SPEC)
