"""Reads on the event loop (stafett_shared.loopdb.read_on_loop) on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from stafett_shared.db import create_sync_engine
from stafett_shared.loopdb import loop_engine, read_on_loop


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "reads.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (n INTEGER)")
    setup.execute("INSERT INTO t VALUES (1), (2), (3)")
    setup.commit()
    setup.close()
    return f"sqlite+aiosqlite:///{path}"


def _engines(url: str) -> tuple[Engine, Engine]:
    on_loop = loop_engine(url, writes=False)
    assert on_loop is not None
    return on_loop, create_sync_engine(url)


class _Reads:
    """A read that notes the engine and the thread it ran on."""

    def __init__(self) -> None:
        self.seen: list[tuple[Engine, int]] = []

    def __call__(self, engine: Engine) -> int:
        self.seen.append((engine, threading.get_ident()))
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT sum(n) FROM t")).scalar_one())


async def test_a_read_runs_on_the_loop_while_another_connection_writes(database: str) -> None:
    on_loop, blocking = _engines(database)
    path = database.removeprefix("sqlite+aiosqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a writer does not stop a reader in WAL mode
        writer.execute("INSERT INTO t VALUES (100)")
        read = _Reads()
        assert await read_on_loop(read, loop=on_loop, blocking=blocking) == 6
        assert read.seen == [(on_loop, threading.get_ident())]
        writer.execute("COMMIT")
        assert await read_on_loop(read, loop=on_loop, blocking=blocking) == 106
    finally:
        writer.close()
        on_loop.dispose()
        blocking.dispose()


async def test_a_lock_that_stops_readers_sends_the_read_to_the_thread_which_waits(
    database: str,
) -> None:
    on_loop, blocking = _engines(database)
    path = database.removeprefix("sqlite+aiosqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        # An exclusive locking mode (as an operator's tool might set) keeps every reader out.
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO t VALUES (10)")
        read = _Reads()
        reading = asyncio.create_task(read_on_loop(read, loop=on_loop, blocking=blocking))
        await asyncio.sleep(0.3)
        assert not reading.done()  # waiting in the thread, not failed on the loop
        assert (await asyncio.wait_for(asyncio.sleep(0, result="free"), 1)) == "free"
        holder.execute("COMMIT")
        holder.close()  # an exclusive locking mode keeps the lock until the connection ends
        assert await asyncio.wait_for(reading, 10) == 16
        assert [engine for engine, _ in read.seen] == [on_loop, blocking]
        assert read.seen[1][1] != threading.get_ident()
    finally:
        holder.close()
        on_loop.dispose()
        blocking.dispose()


async def test_an_error_that_is_not_a_lock_is_raised_not_retried(database: str) -> None:
    on_loop, blocking = _engines(database)
    calls: list[Engine] = []

    def broken(engine: Engine) -> int:
        calls.append(engine)
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT n FROM no_such_table")).scalar_one())

    try:
        with pytest.raises(OperationalError):
            await read_on_loop(broken, loop=on_loop, blocking=blocking)
        assert calls == [on_loop]
    finally:
        on_loop.dispose()
        blocking.dispose()


async def test_without_a_loop_engine_the_read_runs_in_a_thread(database: str) -> None:
    _on_loop, blocking = _engines(database)
    _on_loop.dispose()
    read = _Reads()
    try:
        assert await read_on_loop(read, loop=None, blocking=blocking) == 6
        assert read.seen[0][0] is blocking
        assert read.seen[0][1] != threading.get_ident()
    finally:
        blocking.dispose()
