"""HTTP API of the notify service (CONTRACT.md "notify service")."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from stafett_notify.egress import is_public
from stafett_notify.projections import deliveries, inbox, preferences, webhooks
from stafett_shared.auth import PersonDep, Principal
from stafett_shared.crypto import CryptoError
from stafett_shared.db import upsert
from stafett_shared.idempotency import ClientKeyDep, IdempotencyStore, StoredAnswer, run_once_in
from stafett_shared.ids import new_id
from stafett_shared.msgid import ClientKey
from stafett_shared.openapi import NOT_EVENT_SOURCED
from stafett_shared.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_key_cursor,
    encode_key_cursor,
)
from stafett_shared.problems import Problem
from stafett_shared.service import Runtime

router = APIRouter(tags=["varsler"])
ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Channels(_In):
    inbox: Literal[True] = True  # the inbox is always on: it is the primary channel
    email: bool = False
    webhook: bool = False


class PreferencesIn(_In):
    channels: Channels = Field(default_factory=Channels)
    email_address: str | None = Field(default=None, pattern=EMAIL, max_length=320)
    daily_digest: bool = False


class WebhookIn(_In):
    url: str = Field(min_length=8, max_length=500)
    event_types: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]] = Field(
        default_factory=list, max_length=50
    )
    secret: str = Field(min_length=16, max_length=200)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("Adressen må begynne med http:// eller https:// og ha et vertsnavn.")
        return value


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _allowed_webhook_host(runtime: Runtime, url: str) -> bool:
    """In production a webhook must be HTTPS to a public address (no requests into the
    deployment's own network)."""
    if not runtime.settings.production:
        return True
    parts = urlsplit(url)
    if parts.scheme != "https":
        return False
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return parts.hostname not in ("localhost",)  # a name: checked at every connection
    return is_public(parts.hostname or "")


@router.get("/notifications", summary="Innboksen din")
async def list_notifications(
    *,
    principal: PersonDep,
    runtime: RuntimeDep,
    unread: bool = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    stmt = inbox.select().where(inbox.c.recipient == principal.id)
    if unread:
        stmt = stmt.where(inbox.c.read_at.is_(None))
    if cursor:
        # Bound to its person: a cursor of another person's inbox is 422.
        before = decode_key_cursor(cursor, "notifications", principal.id)
        stmt = stmt.where(inbox.c.notice_id < before)
    stmt = stmt.order_by(inbox.c.notice_id.desc()).limit(limit)
    async with runtime.sessions() as session:
        rows = (await session.execute(stmt)).all()
    items = [
        {
            "id": r.notice_id,
            "kind": r.kind,
            "case_id": r.case_id,
            "title": r.title,
            "link": r.link,
            "created_at": r.created_at,
            "read_at": r.read_at,
        }
        for r in rows
    ]
    next_cursor = (
        encode_key_cursor("notifications", principal.id, rows[-1].notice_id)
        if len(rows) == limit
        else None
    )
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))


async def _once(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    key: ClientKey | None,
    write: Callable[[AsyncSession], Awaitable[StoredAnswer]],
) -> JSONResponse:
    """A write with its Idempotency-Key: a repeat gets the first answer, writes nothing."""
    store: IdempotencyStore = runtime.extras["idempotency"]
    return await run_once_in(request, principal.id, key, store, runtime.extras["writer"], write)


@router.post(
    "/notifications/{notice_id}/read", summary="Merk som lest", openapi_extra=NOT_EVENT_SOURCED
)
async def mark_read(
    *,
    request: Request,
    notice_id: Annotated[str, Path(pattern=r"^n-[0-9a-f]{40}$")],
    principal: PersonDep,
    runtime: RuntimeDep,
    idempotency_key: ClientKeyDep = None,
) -> JSONResponse:
    async def write(session: AsyncSession) -> StoredAnswer:
        result = await session.execute(
            inbox.update()
            .where(inbox.c.notice_id == notice_id, inbox.c.recipient == principal.id)
            .values(read_at=datetime.now(UTC))
            .returning(inbox.c.notice_id)
        )
        if result.first() is None:
            raise Problem(404, "not_found", "Varselet finnes ikke.")
        return StoredAnswer(200, {"id": notice_id, "status": "read"}, {})

    return await _once(request, runtime, principal, idempotency_key, write)


@router.get("/preferences", summary="Dine varslingsvalg")
async def get_preferences(*, principal: PersonDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                preferences.select().where(preferences.c.person_id == principal.id)
            )
        ).first()
    address = None
    if row is not None and row.email_address:
        try:
            address = await runtime.cipher.decrypt(
                principal.id, row.email_address, aggregate=principal.id, context="email"
            )
        except CryptoError:
            address = None
    return {
        "channels": {
            "inbox": True,
            "email": bool(row and row.email),
            "webhook": bool(row and row.webhook),
        },
        "email_address": address,
        "daily_digest": bool(row and row.daily_digest),
    }


@router.put("/preferences", summary="Endre varslingsvalg")
async def put_preferences(
    *, body: PreferencesIn, principal: PersonDep, runtime: RuntimeDep
) -> dict[str, Any]:
    if body.channels.email and not body.email_address:
        raise Problem(422, "email_address_required", "Oppgi en e-postadresse for e-postvarsler.")
    token = (
        await runtime.cipher.encrypt(
            principal.id, body.email_address, aggregate=principal.id, context="email"
        )
        if body.email_address
        else None
    )
    async with runtime.extras["writer"]() as session, session.begin():
        await upsert(
            session,
            preferences,
            {
                "person_id": principal.id,
                "email": body.channels.email,
                "webhook": body.channels.webhook,
                "daily_digest": body.daily_digest,
                "email_address": token,
            },
        )
    return {
        "channels": body.channels.model_dump(),
        "email_address": body.email_address,
        "daily_digest": body.daily_digest,
    }


@router.post(
    "/webhooks",
    status_code=201,
    summary="Abonner på varsler med webhook",
    openapi_extra=NOT_EVENT_SOURCED,
)
async def post_webhook(
    *,
    request: Request,
    body: WebhookIn,
    principal: PersonDep,
    runtime: RuntimeDep,
    idempotency_key: ClientKeyDep = None,
) -> JSONResponse:
    if not _allowed_webhook_host(runtime, body.url):
        raise Problem(422, "webhook_url_refused", "Webhook må være HTTPS til en offentlig adresse.")
    webhook_id = new_id()
    secret = await runtime.cipher.encrypt(
        principal.id, body.secret, aggregate=webhook_id, context="webhook"
    )

    async def write(session: AsyncSession) -> StoredAnswer:
        await session.execute(
            webhooks.insert().values(
                webhook_id=webhook_id,
                owner_id=principal.id,
                url=body.url,
                secret=secret,
                event_types=body.event_types,
                created_at=datetime.now(UTC),
            )
        )
        return StoredAnswer(
            201, {"id": webhook_id, "url": body.url, "event_types": body.event_types}, {}
        )

    return await _once(request, runtime, principal, idempotency_key, write)


@router.get("/webhooks/{webhook_id}/deliveries", summary="Leveranser til en webhook")
async def webhook_deliveries(
    *,
    webhook_id: Annotated[str, Path(pattern=ULID)],
    principal: PersonDep,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    async with runtime.sessions() as session:
        owner = await session.scalar(
            webhooks.select()
            .with_only_columns(webhooks.c.owner_id)
            .where(webhooks.c.webhook_id == webhook_id)
        )
        if owner != principal.id:
            raise Problem(404, "not_found", "Webhooken finnes ikke.")
        # Paged in the order of the deliveries' ids, which never change: ordered by when a
        # delivery last changed, a retried one would move between pages.
        stmt = deliveries.select().where(deliveries.c.webhook_id == webhook_id)
        if cursor:
            after = decode_key_cursor(cursor, "deliveries", webhook_id)
            stmt = stmt.where(deliveries.c.delivery_id > after)
        rows = (await session.execute(stmt.order_by(deliveries.c.delivery_id).limit(limit))).all()
    items = [
        {
            "delivery_id": r.delivery_id,
            "status": r.status,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "updated_at": r.updated_at,
        }
        for r in rows
    ]
    next_cursor = (
        encode_key_cursor("deliveries", webhook_id, rows[-1].delivery_id)
        if len(rows) == limit
        else None
    )
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))
