"""Blocking database work on the event loop itself, for SQLite files.

A few indexed statements on a local SQLite file cost less than handing them to a worker
thread: the thread has to get the interpreter back from the event loop's thread, which on a
busy two-core machine sometimes takes milliseconds (docs/decisions/0015). So small units of
work run as plain calls on the loop, on engines made for it:

* they never wait for a lock (busy timeout 0): a held lock raises at once, nothing is
  committed, and the caller does the unit again in its worker thread, which may wait;
* if they write, a commit never checkpoints the write-ahead log (which fsyncs): every
  :data:`CHECKPOINT_EVERY` commits a PASSIVE checkpoint runs in the worker thread instead
  (:class:`LoopCheckpoints`).

On PostgreSQL every statement is a network round trip, which must not block the loop: there
is no loop engine and all work goes to the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from stafett_shared.db import create_sync_engine
from stafett_shared.logging import get_logger

__all__ = [
    "CHECKPOINT_EVERY",
    "LoopCheckpoints",
    "is_busy",
    "is_file_sqlite",
    "loop_engine",
    "loop_first",
    "read_on_loop",
]

CHECKPOINT_EVERY = 256
"""Commits on the loop between two checkpoints of the write-ahead log."""

_log = get_logger("stafett.loopdb")

_T = TypeVar("_T")


def is_file_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def loop_engine(url: str, *, writes: bool) -> Engine | None:
    """An engine for the event loop's own use on a SQLite file (None elsewhere): it never
    waits for a lock and, if it ``writes``, never checkpoints on a commit."""
    if not is_file_sqlite(url):
        return None
    return create_sync_engine(url, busy_timeout_s=0, wal_autocheckpoint=0 if writes else None)


def is_busy(exc: BaseException) -> bool:
    """Whether SQLite refused because another connection holds a lock (SQLITE_BUSY or
    SQLITE_LOCKED, extended codes included), as raised directly or through SQLAlchemy."""
    orig = exc.orig if isinstance(exc, OperationalError) else exc
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def loop_first(
    on_loop: Callable[[], _T] | None, in_thread: Callable[[], Awaitable[_T]]
) -> _T:
    """``on_loop()`` as a plain call on the event loop, when there is one; else, or when
    SQLite refused it because another connection holds a lock (:func:`is_busy`; it must
    then have committed nothing), ``await in_thread()``, which may wait for the lock."""
    if on_loop is not None:
        try:
            return on_loop()
        except Exception as exc:
            if not is_busy(exc):
                raise
    return await in_thread()


async def read_on_loop(
    read: Callable[[Engine], _T], *, loop: Engine | None, blocking: Engine
) -> _T:
    """``read(loop)`` as a plain call on the event loop when there is a loop engine (SQLite:
    a reader in WAL mode does not wait for the writer); ``read(blocking)`` in a worker thread
    when there is none (PostgreSQL) or when a lock held elsewhere refuses the loop's read.
    ``read`` must only read: it may run twice."""
    return await loop_first(
        None if loop is None else functools.partial(read, loop),
        functools.partial(asyncio.to_thread, read, blocking),
    )


class LoopCheckpoints:
    """Counts commits made on the loop to a SQLite file; every ``every`` of them, copies the
    write-ahead log into the database file with a PASSIVE checkpoint (it waits for no reader
    and no writer) on ``engine``, in the caller's worker thread."""

    def __init__(
        self,
        engine: Engine,
        in_thread: Callable[[Callable[[], None]], Awaitable[None]],
        *,
        name: str,
        every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.engine = engine
        self.every = every
        self._in_thread = in_thread
        self._name = name
        self._count = 0
        self._task: asyncio.Task[None] | None = None

    def wrote(self) -> None:
        """On the loop, after a commit there."""
        self._count += 1
        if self._count >= self.every and (self._task is None or self._task.done()):
            self._count = 0
            self._task = asyncio.get_running_loop().create_task(
                self._checkpoint_in_thread(), name=f"{self._name}-checkpoint"
            )

    async def _checkpoint_in_thread(self) -> None:
        try:
            await self._in_thread(self.checkpoint)
        except Exception as exc:  # noqa: BLE001 - the next one will try again
            _log.warning("checkpoint_failed", name=self._name, error_type=type(exc).__name__)

    def checkpoint(self) -> None:
        """Blocking: copy the write-ahead log into the database file."""
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
        finally:
            raw.close()

    async def aclose(self) -> None:
        """Wait for a checkpoint under way, then make a last one (blocking callers may call
        :meth:`checkpoint` themselves instead)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(Exception):
            await self._in_thread(self.checkpoint)
