"""A reference projection for tests of the projector: it counts commits and events per
aggregate with non-idempotent increments, so applying a commit twice shows in the rows.

Run as a worker process (``python -m stafett_shared.testing.counting NATS_URL DB_URL``) so a
test can kill it at any moment and check that nothing was applied twice or skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import nats
from pydantic import ConfigDict
from sqlalchemy import (
    BigInteger,
    Column,
    Executable,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from stafett_shared.db import create_engine, create_sync_engine, position_table
from stafett_shared.envelope import EventData, EventRegistry
from stafett_shared.eventstore import EventStore, StoredCommit
from stafett_shared.loopdb import loop_engine
from stafett_shared.projector import BlockingProjection, Projection, Projector

counted_events = EventRegistry()
"""The counting projection's own payload models: the test events, not the services'."""


@counted_events.register
class Counted(EventData):
    """What the tests append: ``make_event``'s default payload, or a number and an index."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str] = "no.stafett.case.opened.v1"
    level: int | None = None
    n: int | None = None
    k: int | None = None


metadata = MetaData()
counts = Table(
    "aggregate_counts",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("commits", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
)


def _current(commit: StoredCommit) -> Select[Any]:
    return select(counts.c.commits).where(counts.c.subject == commit.subject)


def _count(commit: StoredCommit, current: int | None) -> Executable:
    """The statement that counts ``commit``: non-idempotent, so twice shows."""
    if current is None:
        return counts.insert().values(
            subject=commit.subject, commits=1, events=len(commit.events), last_seq=commit.seq
        )
    return (
        update(counts)
        .where(counts.c.subject == commit.subject)
        .values(
            commits=counts.c.commits + 1,
            events=counts.c.events + len(commit.events),
            last_seq=commit.seq,
        )
    )


class CountingProjection(Projection):
    name = "counting"
    tables = (counts,)
    event_registry = counted_events

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    async def apply(self, session: AsyncSession, commit: StoredCommit) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        await session.execute(_count(commit, await session.scalar(_current(commit))))


class BlockingCountingProjection(BlockingProjection):
    """The same counts, written against a blocking connection. It refuses a commit that
    was not prepared first (``prepare``, as a projection that decrypts before its
    transaction needs), so every projector test also checks that batches are prepared."""

    name = "counting"
    tables = (counts,)
    event_registry = counted_events

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.prepared: frozenset[int] = frozenset()

    async def prepare(self, commits: Sequence[StoredCommit]) -> None:
        self.prepared = frozenset(commit.seq for commit in commits)

    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        if commit.seq not in self.prepared:
            raise RuntimeError(f"commit {commit.seq} was applied without being prepared")
        if self.delay_s:
            time.sleep(self.delay_s)
        conn.execute(_count(commit, conn.scalar(_current(commit))))


def counting_projector(
    kind: str, store: EventStore, engine: AsyncEngine, *, delay_s: float = 0.0, **options: Any
) -> Projector:
    """A projector of the counts: ``kind`` "async" (awaiting every statement), "blocking"
    (a batch in one call, on a blocking engine of its own, in the projector's thread) or
    "loop" (the same, small batches on the event loop where the database is a SQLite file)."""
    if kind in ("blocking", "loop"):
        url = engine.url.render_as_string(hide_password=False)
        return Projector(
            BlockingCountingProjection(delay_s),
            store,
            engine,
            blocking_engine=create_sync_engine(url),
            loop_engine=loop_engine(url, writes=True) if kind == "loop" else None,
            **options,
        )
    return Projector(CountingProjection(delay_s), store, engine, **options)


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(position_table.metadata.create_all)


async def rows(engine: AsyncEngine) -> list[tuple[str, int, int, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(counts).order_by(counts.c.subject))
        return [(r.subject, r.commits, r.events, r.last_seq) for r in result]


async def _work(nats_url: str, db_url: str, delay_s: float, batch: int, kind: str) -> None:
    nc = await nats.connect(nats_url)
    engine = create_engine(db_url)
    await create_tables(engine)
    projector = counting_projector(kind, EventStore(nc), engine, delay_s=delay_s, batch=batch)
    await projector.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("nats_url")
    parser.add_argument("db_url")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--kind", choices=("async", "blocking", "loop"), default="async")
    args = parser.parse_args()
    asyncio.run(_work(args.nats_url, args.db_url, args.delay, args.batch, args.kind))


if __name__ == "__main__":
    main()
