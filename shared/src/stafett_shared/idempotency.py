"""HTTP idempotency: a ``POST`` repeated with the same ``Idempotency-Key`` gets the first
answer and writes nothing new (CONTRACT.md). The answer is kept in the service's database;
the key also travels to JetStream as ``Nats-Msg-Id``, which catches a repeat that races the
first request."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_shared.db import upsert
from stafett_shared.problems import Problem

__all__ = ["IdempotencyStore", "StoredAnswer", "idempotency_table", "valid_key"]

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
    Column("created_at", DateTime(timezone=True), nullable=False),
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
                422, "idempotency_key_reused",
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
