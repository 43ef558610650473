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
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_shared.auth import PrincipalDep
from stafett_shared.db import UtcDateTime, upsert
from stafett_shared.msgid import ClientKey
from stafett_shared.problems import Problem, unavailable

__all__ = [
    "IF_MATCH_PATTERN",
    "ClientKeyDep",
    "IdempotencyStore",
    "StoredAnswer",
    "client_key",
    "create_idempotency_table_op",
    "idempotency_table",
    "parse_if_match",
    "run_once",
    "run_once_in",
    "valid_key",
    "written_answer",
]

metadata = MetaData()


def _columns() -> list[Column[Any]]:
    return [
        Column("principal_id", String(64), primary_key=True),
        Column("key", String(128), primary_key=True),
        Column("route", String(200), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("status", Integer, nullable=False),
        Column("body", JSON, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
    ]


idempotency_table = Table("idempotency_keys", metadata, *_columns())


def create_idempotency_table_op() -> None:
    """For a service's Alembic history: the table of kept answers."""
    from alembic import op

    op.create_table("idempotency_keys", *_columns())


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
                _row(principal_id, key, route, request_hash, answer),
                update=False,
            )

    @staticmethod
    async def claim(  # noqa: PLR0917 - the parts of one kept answer
        session: AsyncSession,
        principal_id: str,
        key: str,
        route: str,
        request_hash: str,
        answer: StoredAnswer,
    ) -> bool:
        """Keep ``answer`` under the key in the caller's transaction: False when the key
        is kept already (another request with it got there first)."""
        dialect = session.get_bind().dialect.name
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(idempotency_table)
        kept = await session.execute(
            insert.values(_row(principal_id, key, route, request_hash, answer))
            .on_conflict_do_nothing(index_elements=["principal_id", "key"])
            .returning(idempotency_table.c.key)
        )
        return kept.first() is not None


def _row(
    principal_id: str, key: str, route: str, request_hash: str, answer: StoredAnswer
) -> dict[str, Any]:
    return {
        "principal_id": principal_id,
        "key": key,
        "route": route,
        "request_hash": request_hash,
        "status": answer.status,
        "body": answer.body,
        "headers": answer.headers,
        "created_at": datetime.now(UTC),
    }


class _Repeat(Exception):
    """Another request with the same key kept its answer first: undo this one's write."""


async def _kept(
    request: Request, principal_id: str, key: ClientKey | None, store: IdempotencyStore
) -> tuple[str, str, StoredAnswer | None]:
    """The request's route and digest, and the answer kept under its key if there is one."""
    route = f"{request.method} {request.url.path}"
    digest = store.request_hash(route, await request.body())
    earlier = None if key is None else await store.find(principal_id, key.key, route, digest)
    return route, digest, earlier


def _response(answer: StoredAnswer) -> JSONResponse:
    return JSONResponse(answer.body, answer.status, headers=answer.headers)


async def run_once(
    request: Request,
    principal_id: str,
    key: ClientKey | None,
    store: IdempotencyStore,
    write: Callable[[], Awaitable[StoredAnswer]],
) -> JSONResponse:
    """Run ``write`` once per idempotency key and caller; a repeat gets the first answer."""
    route, digest, earlier = await _kept(request, principal_id, key, store)
    if earlier is not None:
        return _response(earlier)
    answer = await write()
    if key is not None:
        await store.save(principal_id, key.key, route, digest, answer)
    return _response(answer)


async def run_once_in(  # noqa: PLR0917 - run_once's parts and the transaction's
    request: Request,
    principal_id: str,
    key: ClientKey | None,
    store: IdempotencyStore,
    writer: async_sessionmaker[AsyncSession],
    write: Callable[[AsyncSession], Awaitable[StoredAnswer]],
) -> JSONResponse:
    """:func:`run_once` for a write to the service's own database, not to the stream:
    ``write`` and the answer kept under the key are one transaction. No ``Nats-Msg-Id``
    catches two requests with one key that race; here one of them writes and the other
    is undone and gets the first one's answer."""
    route, digest, earlier = await _kept(request, principal_id, key, store)
    if earlier is not None:
        return _response(earlier)
    try:
        async with writer() as session, session.begin():
            answer = await write(session)
            if key is not None and not await store.claim(
                session, principal_id, key.key, route, digest, answer
            ):
                raise _Repeat
    except _Repeat:
        _route, _digest, earlier = await _kept(request, principal_id, key, store)
        if earlier is None:  # kept by a transaction that has not committed: cannot be
            raise unavailable(
                "Forespørselen med samme nøkkel er ikke ferdig; prøv igjen."
            ) from None
        return _response(earlier)
    return _response(answer)


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
