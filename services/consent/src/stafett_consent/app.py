"""Composition root of the consent service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from stafett_consent import domain
from stafett_consent.api import authzen, router
from stafett_consent.decisions import (
    DecisionPoint,
    create_records_schema,
    loop_engines,
    records_url,
)
from stafett_consent.feed import Feed
from stafett_consent.handlers import ConsentService
from stafett_consent.policy import Action, PolicySettings
from stafett_consent.projections import ConsentProjection
from stafett_consent.settings import ConsentSettings
from stafett_shared.access import CHECK_SUBJECT, FILTER_SUBJECT, SERVICES, announce_access_changed
from stafett_shared.crypto import (
    KEY_SUBJECT,
    FieldCipher,
    KeyShredded,
    KeyStore,
    KeyUnavailable,
)
from stafett_shared.db import create_sync_engine, sessionmaker, writer
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.ids import AGGREGATE_ID_PATTERN
from stafett_shared.logging import get_logger
from stafett_shared.logins import LOGIN_SUBJECT, answer_login
from stafett_shared.lookups import LookupLimit
from stafett_shared.projector import ProjectionBehind, ProjectionStale
from stafett_shared.rpc import Handler, RpcRemoteError, serve
from stafett_shared.service import Runtime, ServiceSpec, blind_index, run_service, stop_tasks
from stafett_shared.settings import RegionReminderTimes, ServiceSettings

_log = get_logger("stafett.consent")
_settings = ConsentSettings()


def _policy_settings(settings: ConsentSettings) -> PolicySettings:
    return PolicySettings(
        self_access_age=settings.self_access_age, youth_age=settings.youth_consent_age
    )


def _projection(cipher: FieldCipher, settings: ServiceSettings) -> ConsentProjection:
    assert isinstance(settings, ConsentSettings)
    return ConsentProjection(cipher, _policy_settings(settings))


def _principal(payload: dict[str, Any]) -> tuple[str, Literal["person", "client"]]:
    raw = payload.get("principal")
    if isinstance(raw, str):
        return raw, "person"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return raw["id"], "client" if raw.get("kind") == "client" else "person"
    raise RpcRemoteError("bad_request", "principal is missing")


def _scopes(payload: dict[str, Any]) -> frozenset[str]:
    """A client's token's scopes as the asking service read them (decision 0039); anything
    that is not a short list of strings counts as none (fail closed)."""
    raw = payload.get("principal")
    scopes = raw.get("scopes") if isinstance(raw, dict) else None
    if not isinstance(scopes, list) or len(scopes) > MAX_SCOPES:
        return frozenset()
    return frozenset(s for s in scopes if isinstance(s, str) and len(s) <= MAX_SCOPE_CHARS)


MAX_SCOPES = 50
MAX_SCOPE_CHARS = 200


def _action(payload: dict[str, Any]) -> Action:
    try:
        return Action(str(payload.get("action")))
    except ValueError:
        raise RpcRemoteError("bad_request", "unknown action") from None


def _asked_by(payload: dict[str, Any]) -> str:
    """The asking service. A request that names no known service is refused: the caller
    fails closed. The name is a claim; in production each service's NATS user (and so
    the subject it may publish on) is what binds a request to a service."""
    asked_by = payload.get("asked_by")
    if not isinstance(asked_by, str) or asked_by not in SERVICES:
        raise RpcRemoteError("unknown_service", "asked_by names no known service")
    return asked_by


def _min_seq(payload: dict[str, Any]) -> int | None:
    value = payload.get("min_seq")
    if value is None:
        return None
    if not isinstance(value, int) or value < 0:
        raise RpcRemoteError("bad_request", "min_seq must be a non-negative integer")
    return value


async def _make_key(keys: KeyStore, payload: dict[str, Any]) -> dict[str, Any]:
    """Make a data key another service needs (``stafett.rpc.consent.key``).

    Only this service writes the key bucket: another service that needs a key that does
    not exist yet (a case's own, before the child is known; a person's, for their
    notification settings) asks for it here. Making a key never replaces one: the bucket's
    create fails on an existing key and on a shredded key's tombstone. The key itself is
    never sent; the caller reads the wrapped key from the bucket."""
    _asked_by(payload)
    owner = payload.get("owner")
    if not isinstance(owner, str) or not AGGREGATE_ID_PATTERN.fullmatch(owner):
        raise RpcRemoteError("bad_request", "owner must be an id")
    try:
        await keys.data_key(owner, create=True)
    except KeyShredded:
        raise RpcRemoteError("shredded", "the owner's key was shredded") from None
    except KeyUnavailable:
        raise RpcRemoteError("unavailable", "the key store did not answer") from None
    return {"owner": owner}


async def serve_asked(nc: NATS, subject: str, handler: Handler) -> list[Subscription]:
    """Answer ``subject`` as each service asks it (``<subject>.<service>``, the name taken
    from the subject) and as CONTRACT.md names it (``<subject>``, for an operator's tools:
    ``asked_by`` is then the body's claim, and no service's NATS user may publish there)."""
    return [
        await serve(nc, f"{subject}.*", handler, askers=SERVICES),
        await serve(nc, subject, handler),
    ]


async def _serve_logins(runtime: Runtime, service: ConsentService) -> list[Subscription]:
    """The directory's logins: this service's own verifier looks them up in its read model,
    and every other service asks ``stafett.rpc.consent.login``: a staff login, a citizen's
    national id (its blind index) or a client → the person or client the directory makes of
    it, or null (``stafett_shared.logins``)."""
    runtime.verifier.logins = service.login_of
    runtime.verifier.citizens = service.citizen_of
    runtime.verifier.clients = service.client_of

    async def login(payload: dict[str, Any]) -> dict[str, Any]:
        return await answer_login(payload, service)

    return await serve_asked(runtime.nc, LOGIN_SUBJECT, login)


def _announce_access_changes(runtime: Runtime) -> None:
    """The projection tells the other services' access clients when who may read has
    changed, so none answers from a permit it cached before."""
    projection = runtime.projector.projection
    assert isinstance(projection, ConsentProjection)
    projection.announce = functools.partial(announce_access_changed, runtime.nc)


async def _decision_point(runtime: Runtime, settings: ConsentSettings) -> DecisionPoint:
    read_models = runtime.engine.url.render_as_string(hide_password=False)
    records_at = records_url(read_models)
    records = create_sync_engine(records_at)
    if records_at != read_models:
        await asyncio.to_thread(create_records_schema, records)
    decisions = DecisionPoint(
        engine=create_sync_engine(read_models),
        records=records,
        loop=loop_engines(read_models),
        projector=runtime.projector,
        store=runtime.store,
        settings=_policy_settings(settings),
        min_seq_wait_s=runtime.settings.min_seq_wait_s,
        max_lag_s=settings.decision_max_lag_s,
    )
    decisions.start()
    return decisions


async def _start(runtime: Runtime) -> None:
    settings = runtime.service
    assert isinstance(settings, ConsentSettings)
    _announce_access_changes(runtime)
    decisions = await _decision_point(runtime, settings)
    service = ConsentService(
        store=runtime.store,
        cipher=runtime.cipher,
        index=blind_index(runtime.settings),
        sessions=runtime.sessions,
        projector=runtime.projector,
        decisions=decisions,
        admins=runtime.settings.admins,
        org_admins=runtime.settings.org_admins,
        guardian_changes=settings.guardian_changes,
        grantor_policy=domain.GrantorPolicy(
            youth_age=settings.youth_consent_age,
            health_youth_age=settings.health_youth_consent_age,
            one_guardian_enough=settings.one_guardian_enough,
            reminder=timedelta(days=settings.consent_reminder_days),
        ),
        reminders=RegionReminderTimes(),
        lookups=LookupLimit.from_settings(runtime.settings),
    )
    runtime.extras.update(
        decisions=decisions,
        consent=service,
        feed=Feed(service, prefix=service.store.prefix),
        idempotency=IdempotencyStore(sessionmaker(writer(runtime.engine))),
    )

    async def check(payload: dict[str, Any]) -> dict[str, Any]:
        principal_id, kind = _principal(payload)
        resource = payload.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("case_id"), str):
            raise RpcRemoteError("bad_request", "resource.case_id is missing")
        entry_id = resource.get("entry_id")
        try:
            out = await decisions.check(
                principal_id,
                _action(payload),
                resource["case_id"],
                principal_kind=kind,
                entry_id=entry_id if isinstance(entry_id, str) else None,
                min_seq=_min_seq(payload),
                asked_by=_asked_by(payload),
                scopes=_scopes(payload),
            )
        except ProjectionStale:
            raise RpcRemoteError("unavailable", "the read model lags the stream") from None
        except ProjectionBehind:
            raise RpcRemoteError("behind", "the read model has not reached min_seq") from None
        return out.model_dump()  # the AccessDecision the client reads back

    async def filter_(payload: dict[str, Any]) -> dict[str, Any]:
        _asked_by(payload)
        principal_id, kind = _principal(payload)
        case_ids = payload.get("case_ids")
        if (
            not isinstance(case_ids, list)
            or len(case_ids) > 500
            or not all(isinstance(c, str) for c in case_ids)
        ):
            raise RpcRemoteError("bad_request", "case_ids must be a list of at most 500 ids")
        try:
            permitted = await decisions.filter(
                principal_id,
                _action(payload),
                case_ids,
                principal_kind=kind,
                min_seq=_min_seq(payload),
            )
        except ProjectionStale:
            raise RpcRemoteError("unavailable", "the read model lags the stream") from None
        except ProjectionBehind:
            raise RpcRemoteError("behind", "the read model has not reached min_seq") from None
        return {"permitted": permitted}

    subscriptions = [
        *await serve_asked(runtime.nc, CHECK_SUBJECT, check),
        *await serve_asked(runtime.nc, FILTER_SUBJECT, filter_),
        *await _serve_logins(runtime, service),
        *await serve_asked(runtime.nc, KEY_SUBJECT, functools.partial(_make_key, runtime.keys)),
    ]

    async def expire_loop() -> None:
        while True:
            await asyncio.sleep(settings.expiry_check_interval_s)
            try:
                expired = await service.expire_due()
                if expired:
                    _log.info("consents_expired", count=expired)
                reminded = await service.remind_due()
                if reminded:
                    _log.info("consent_reminders_due", count=reminded)
            except Exception as exc:  # noqa: BLE001 - the next run tries again
                _log.warning("expiry_check_failed", error_type=type(exc).__name__)

    runtime.extras["tasks"] = [asyncio.create_task(expire_loop(), name="consent-expiry")]
    runtime.extras["subscriptions"] = subscriptions


async def _stop(runtime: Runtime) -> None:
    await stop_tasks(runtime.extras.get("tasks", []))
    for subscription in runtime.extras.get("subscriptions", []):
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    decisions = runtime.extras.get("decisions")
    if isinstance(decisions, DecisionPoint):
        await decisions.aclose()


SPEC = ServiceSpec(
    name="consent",
    title="Stafett – samtykke og tilgang",
    description=(
        "Katalog over virksomheter, enheter og ansatte, samtykker og "
        "tilgangsbeslutninger (taushetsplikt)."
    ),
    contexts=("consent", "directory"),
    projection=_projection,
    migrations=Path(__file__).parent / "alembic",
    routers=(router,),
    extra_routers=(authzen,),
    settings_type=ConsentSettings,
    on_start=_start,
    on_stop=_stop,
    writes_keys=True,
    body_limits={"/api/v1/directory": _settings.region_document_max_bytes},
)


def main() -> int:
    return run_service(SPEC)
