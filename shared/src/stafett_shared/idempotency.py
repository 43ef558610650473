"""HTTP idempotency: a ``POST`` repeated with the same ``Idempotency-Key`` gets the first
answer and writes nothing new (CONTRACT.md). The answer is kept in the service's database;
the key also travels to JetStream in ``Nats-Msg-Id``, which catches a repeat that races the
first request or follows a crash before the answer was kept. It travels as a digest scoped to
the principal, the route and the subject (``stafett_shared.msgid``), never as sent."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_shared.auth import PrincipalDep
from stafett_shared.db import UtcDateTime, upsert
from stafett_shared.msgid import ClientKey
from stafett_shared.problems import Problem

__all__ = [
    "IF_MATCH_PATTERN",
    "ClientKeyDep",
    "IdempotencyStore",
    "StoredAnswer",
    "client_key",
    "idempotency_table",
    "parse_if_match",
    "run_once",
    "valid_key",
    "written_answer",
]

metadata = MetaData()
idempotency_table = Table(
    "idempotency_keys",
    metadata,
    Column("principal_id", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("route", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def valid_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise Problem(
            400, "bad_request", "Idempotency-Key må være 8–128 tegn: bokstaver, tall, . _ : -"
        )
    return key


def _route(request: Request) -> str:
    """Method and route template (``POST /api/v1/logs/{case_id}/entries``)."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or request.url.path
    return f"{request.method} {template}"


async def client_key(
    request: Request,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> ClientKey | None:
    """The request's ``Idempotency-Key`` scoped to its caller and route (400 when malformed)."""
    key = valid_key(idempotency_key)
    if key is None:
        return None
    return ClientKey(f"{principal.kind}:{principal.id}", _route(request), key)


ClientKeyDep = Annotated[ClientKey | None, Depends(client_key)]


class StoredAnswer:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @staticmethod
    def request_hash(route: str, body: bytes) -> str:
        return hashlib.sha256(route.encode() + b"\x00" + body).hexdigest()

    async def find(
        self, principal_id: str, key: str, route: str, request_hash: str
    ) -> StoredAnswer | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(idempotency_table).where(
                        idempotency_table.c.principal_id == principal_id,
                        idempotency_table.c.key == key,
                    )
                )
            ).first()
        if row is None:
            return None
        if row.route != route or row.request_hash != request_hash:
            raise Problem(
                422,
                "idempotency_key_reused",
                "Idempotency-Key er brukt før på en annen forespørsel.",
            )
        return StoredAnswer(row.status, row.body, dict(row.headers))

    async def save(
        self,
        principal_id: str,
        key: str,
        route: str,
        request_hash: str,
        answer: StoredAnswer,
    ) -> None:
        async with self._sessions() as session, session.begin():
            await upsert(
                session,
                idempotency_table,
                {
                    "principal_id": principal_id,
                    "key": key,
                    "route": route,
                    "request_hash": request_hash,
                    "status": answer.status,
                    "body": answer.body,
                    "headers": answer.headers,
                    "created_at": datetime.now(UTC),
                },
                update=False,
            )


async def run_once(
    request: Request,
    principal_id: str,
    key: ClientKey | None,
    store: IdempotencyStore,
    write: Callable[[], Awaitable[StoredAnswer]],
) -> JSONResponse:
    """Run ``write`` once per idempotency key and caller; a repeat gets the first answer."""
    route = f"{request.method} {request.url.path}"
    digest = store.request_hash(route, await request.body())
    if key is not None:
        earlier = await store.find(principal_id, key.key, route, digest)
        if earlier is not None:
            return JSONResponse(earlier.body, earlier.status, headers=earlier.headers)
    answer = await write()
    if key is not None:
        await store.save(principal_id, key.key, route, digest, answer)
    return JSONResponse(answer.body, answer.status, headers=answer.headers)


def written_answer(status: int, body: Any, version: int, seq: int) -> StoredAnswer:
    """The answer of a write: the body, ``Stafett-Seq`` and the aggregate version as ETag."""
    return StoredAnswer(
        status, jsonable_encoder(body), {"Stafett-Seq": str(seq), "ETag": f'"{version}"'}
    )


# An aggregate version as an ETag gives it, strong or weak, quoted or not (the OpenAPI
# documents describe If-Match with this pattern).
IF_MATCH_PATTERN = r'^(W/)?("[0-9]{1,18}"|[0-9]{1,18})$'
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


def parse_if_match(value: str | None) -> int | None:
    """The version in an ``If-Match`` header (``"12"`` or ``W/"12"``); anything else, as
    ``1_0``, ``+12`` or other scripts' digits that ``int`` would take, is 400."""
    if value is None:
        return None
    if not _IF_MATCH.fullmatch(value.strip()):
        raise Problem(400, "bad_request", "If-Match må være en versjon fra ETag.")
    return int(value.strip().removeprefix("W/").strip('"'))
