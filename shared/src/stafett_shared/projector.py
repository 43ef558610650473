"""Projectors: apply stored commits to SQL read models, exactly once in effect.

A projection's rows and its position (the last stream sequence it applied) are written in one
transaction, so a crash at any point either applied a commit with its position or neither:
after a restart the projector reads from position + 1 and never applies a commit twice. No
consumer state lives on the server. ``rebuild`` empties the projection's tables and replays
from sequence 1, giving the rows an incremental run gives.

Every commit passes one guard before it reaches a projection, on every path (the loop,
catch-up, a gap read, a writer's own commit, a rebuild): it is decoded here, not by the
store, and judged by ``stafett_shared.contracts.check_commit``. A commit refused, or one
that does not decode, is quarantined: a row in ``projection_quarantine`` (sequence, subject,
reason; never its content) in the transaction that moves the position past it, a metric and
a log line. It is never applied and never tried again, so one message cannot stop a
projection or the start of a service.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import functools
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from opentelemetry import metrics
from sqlalchemy import Select, Table, bindparam, delete, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from stafett_shared.contracts import Reason, Rejection, check_commit, subject_context
from stafett_shared.db import (
    as_utc,
    position_table,
    quarantine_table,
    sessionmaker,
    upsert,
    upsert_sync,
    writer,
)
from stafett_shared.envelope import (
    CloudEvent,
    EnvelopeError,
    EventRegistry,
    decode_commit,
    encode_commit,
)
from stafett_shared.envelope import registry as default_registry
from stafett_shared.eventstore import EventStore, StoredCommit, StoreUnavailable
from stafett_shared.logging import get_logger
from stafett_shared.loopdb import LoopCheckpoints, loop_first
from stafett_shared.telemetry import start_consumer_span

__all__ = [
    "BlockingProjection",
    "Projection",
    "ProjectionAhead",
    "ProjectionBehind",
    "ProjectionStale",
    "Projector",
    "Quarantined",
]

_log = get_logger("stafett.projector")
_quarantined = metrics.get_meter("stafett.projector").create_counter(
    "stafett.projector.quarantined",
    unit="{message}",
    description="Stream messages a projection refused and skipped",
)


class ProjectionBehind(Exception):
    """The read model did not reach the asked-for sequence in time (answer 503)."""

    def __init__(self, wanted: int, position: int) -> None:
        super().__init__(f"projection at {position}, wanted {wanted}")
        self.wanted = wanted
        self.position = position


class ProjectionAhead(Exception):
    """The read model has applied stream sequences the stream does not hold: the stream was
    restored from an older backup (or made anew). Serving from it would skip the events
    that take those sequences again, so the service refuses to start until the read model is
    rebuilt or restored from a dump taken before the backup."""

    def __init__(self, position: int, last_seq: int) -> None:
        super().__init__(
            f"read model at sequence {position}, the stream ends at {last_seq}: rebuild it "
            "(stafett projections rebuild SERVICE) or restore an older database dump"
        )
        self.position = position
        self.last_seq = last_seq


class ProjectionStale(ProjectionBehind):
    """The read model has lagged the stream for longer than its reader accepts: an answer
    from it would rest on stale facts (answer 503)."""

    def __init__(self, wanted: int, position: int, behind_s: float) -> None:
        super().__init__(wanted, position)
        self.behind_s = behind_s


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A stream message a projection refused: where it is and why, never what it holds."""

    seq: int
    subject: str
    reason: str
    event_index: int | None
    quarantined_at: datetime


def _context(event_type: str) -> str:
    parts = event_type.split(".", 3)
    return parts[2] if len(parts) > 2 else ""


class Projection(abc.ABC):
    """Read-model logic: what one commit does to the rows. Subclasses stay free of I/O
    besides the session they are given."""

    name: str
    tables: Sequence[Table] = ()
    contexts: frozenset[str] | None = None
    """The contexts of the event types it reads (``no.stafett.<context>.<name>.v1``), or None
    for all. A batch of commits with none of them costs the read model no transaction."""
    event_registry: EventRegistry = default_registry
    """The payload models the events of a commit must validate against to be applied."""

    def wants(self, commit: StoredCommit) -> bool:
        if self.contexts is None:
            return True
        return any(_context(event.type) in self.contexts for event in commit.events)

    @abc.abstractmethod
    async def apply(self, session: AsyncSession, commit: StoredCommit) -> None:
        """Apply one commit. Runs inside the projector's transaction; must not commit."""

    async def quarantined(  # noqa: B027 - a hook; most projections need nothing here
        self, session: AsyncSession, commit: StoredCommit
    ) -> None:
        """A commit the guard refused, in the transaction that moves past it. Its events are
        not given (nothing in the message is trusted); only its sequence, subject and stored
        bytes are. Nothing by default."""

    async def committed(self) -> None:  # noqa: B027 - a hook; most projections need nothing here
        """After a transaction that applied commits has committed, on the event loop, and
        before the new position is known (so before anyone waiting for it goes on): tell
        the world what only a committed read model may tell (the consent projection's
        "who may read has changed"). Nothing by default."""


class BlockingProjection(Projection):
    """A projection written against a blocking connection. Given a blocking engine, the
    projector applies a whole batch of commits in one call in a thread of its own, instead
    of awaiting every statement (docs/decisions/0016-blocking-projections.md); without one,
    ``apply`` runs the same code through the async session."""

    @abc.abstractmethod
    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        """Apply one commit. Runs inside the projector's transaction; must not commit."""

    async def prepare(self, commits: Sequence[StoredCommit]) -> None:
        """Before ``apply_sync`` of these commits, on the event loop and outside the
        transaction: fetch what applying them needs from beyond the database (a decryption
        through NATS, say), from the commits alone. The projector calls it for every batch
        it applies, before the transaction, and again if a gap is read in front of the
        batch. Nothing by default."""

    async def apply(self, session: AsyncSession, commit: StoredCommit) -> None:
        await self.prepare([commit])
        await session.run_sync(lambda sync: self.apply_sync(sync.connection(), commit))

    def quarantined_sync(self, conn: Connection, commit: StoredCommit) -> None:
        """``quarantined`` on a blocking connection. Nothing by default."""

    async def quarantined(self, session: AsyncSession, commit: StoredCommit) -> None:
        await session.run_sync(lambda sync: self.quarantined_sync(sync.connection(), commit))


LOOP_BATCH = 8
"""Batches of at most this many commits are applied on the event loop (with a loop engine):
enough for a writer's own commit and a burst; a catch-up goes to the thread."""

# Built once: every transaction of every projector ends with it.
_MOVE_POSITION = (
    update(position_table)
    .where(position_table.c.name == bindparam("p_name"))
    .values(last_seq=bindparam("p_last_seq"), updated_at=bindparam("p_updated_at"))
)


@dataclass(frozen=True, slots=True)
class _Screened:
    """A stored commit after the guard: its events decoded and accepted (``rejection`` None),
    or refused, with no events. A refused commit of contexts the projection does not read
    passes as one without events, skipped like any such commit."""

    commit: StoredCommit
    rejection: Rejection | None = None

    @property
    def seq(self) -> int:
        return self.commit.seq


def _contiguous(commits: Sequence[_Screened], after: int) -> list[_Screened]:
    """The commits that follow ``after`` one by one, up to the first that does not."""
    run: list[_Screened] = []
    for commit in commits:
        if commit.seq != after + len(run) + 1:
            break
        run.append(commit)
    return run


@dataclass(frozen=True, slots=True)
class _Gap:
    """The batch does not follow the position: read ``after + 1 … before - 1`` first."""

    after: int
    before: int


class Projector:
    """Runs one projection against the stream and keeps its position."""

    def __init__(
        self,
        projection: Projection,
        store: EventStore,
        engine: AsyncEngine,
        *,
        batch: int = 256,
        idle_poll_s: float = 1.0,
        blocking_engine: Engine | None = None,
        loop_engine: Engine | None = None,
    ) -> None:
        self.projection = projection
        self.store = store
        self.engine = engine
        # A blocking projection with a blocking engine: batches in a thread of their own;
        # with a loop engine too (SQLite), small batches on the event loop itself.
        self._blocking: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._loop: Engine | None = None
        self._checkpoints: LoopCheckpoints | None = None
        self._position_stmt = self._position_query()
        if blocking_engine is not None and isinstance(projection, BlockingProjection):
            self._blocking = writer(blocking_engine)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"projector-{projection.name}")
            if loop_engine is not None:
                self._loop = writer(loop_engine)
                self._checkpoints = LoopCheckpoints(
                    blocking_engine, self._in_thread, name=f"projector-{projection.name}"
                )
        self._sessions: async_sessionmaker[AsyncSession] = sessionmaker(writer(engine))
        self._readers: async_sessionmaker[AsyncSession] = sessionmaker(engine)
        self._batch = batch
        self._idle_poll = idle_poll_s
        self._lock = asyncio.Lock()
        self._position = -1
        self._advanced = asyncio.Event()
        self._stream_last_seq = 0
        self._caught_up_at: float | None = None
        self._behind_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        return self.projection.name

    # --- position -------------------------------------------------------------------------

    async def position(self) -> int:
        async with self._readers() as session:
            value = await session.scalar(
                select(position_table.c.last_seq).where(position_table.c.name == self.name)
            )
        # Never behind what this process knows: it may have skipped irrelevant commits
        # without writing the position.
        self._position = max(self._position, int(value or 0))
        return self._position

    @property
    def known_position(self) -> int:
        return max(self._position, 0)

    @property
    def lag(self) -> int:
        """Commits in the stream that the read model has not applied, as last observed."""
        return max(self._stream_last_seq - self.known_position, 0)

    @property
    def running(self) -> bool:
        """Whether the background loop follows the stream (see ``start``)."""
        return self._task is not None and not self._task.done()

    def caught_up_within(self, seconds: float) -> bool:
        if self._task is not None and self._task.done():
            return False
        if self._caught_up_at is None:
            return False
        return self.lag == 0 or time.monotonic() - self._caught_up_at <= seconds

    def behind_for(self) -> float:
        """For how long (seconds) the read model has been behind the stream's end as last
        observed: 0.0 when it has applied all it saw; infinite when its loop has died."""
        if self._task is not None and self._task.done():
            return math.inf
        if self._behind_since is None:
            return 0.0
        return time.monotonic() - self._behind_since

    def _observe(self, last_seq: int) -> None:
        """The stream reaches at least ``last_seq``: note when the read model fell behind."""
        self._stream_last_seq = max(self._stream_last_seq, last_seq)
        if self._behind_since is None and self._stream_last_seq > self.known_position:
            self._behind_since = time.monotonic()

    def _position_query(self) -> Select[Any]:
        stmt = select(position_table.c.last_seq).where(position_table.c.name == self.name)
        if self.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return stmt

    def _moved(self, applied: int) -> dict[str, Any]:
        return {"p_name": self.name, "p_last_seq": applied, "p_updated_at": datetime.now(UTC)}

    def _first_position(self) -> dict[str, Any]:
        return {"name": self.name, "last_seq": 0, "updated_at": datetime.now(UTC)}

    async def _locked_position(self, session: AsyncSession) -> int:
        stmt = self._position_stmt
        value = await session.scalar(stmt)
        if value is None:
            await upsert(session, position_table, self._first_position(), update=False)
            value = await session.scalar(stmt)
        return int(value or 0)

    def _locked_position_sync(self, conn: Connection) -> int:
        stmt = self._position_stmt
        value = conn.scalar(stmt)
        if value is None:
            upsert_sync(conn, position_table, self._first_position(), update=False)
            value = conn.scalar(stmt)
        return int(value or 0)

    # --- applying -------------------------------------------------------------------------

    async def apply_commits(self, commits: Sequence[StoredCommit]) -> int:
        """Apply commits in one transaction, skipping what is already applied.

        Commits must be contiguous after the position; a gap is closed by reading the stream.
        Returns the new position.
        """
        async with self._lock:
            return await self._apply_locked(commits)

    async def _apply_locked(self, commits: Sequence[StoredCommit]) -> int:
        if not commits:
            return self.known_position
        if self._position >= 0 and commits[-1].seq <= self._position:
            # Applied meanwhile (a writer's own commit, while this batch waited for the lock).
            return self._position
        screened = self._screen(commits)
        if self._position >= 0 and self._skippable(screened):
            # Nothing here for this read model: move on without a transaction. The position
            # on disk follows with the next commit that matters; after a restart these few
            # commits are read again and skipped again.
            await self._set_position(commits[-1].seq)
            return commits[-1].seq
        if self._blocking is not None:
            applied = await self._apply_blocking(screened)
            # Committed; told before anyone waiting for the position is let go.
            await self.projection.committed()
            await self._set_position(applied)
            return applied
        async with self._sessions() as session, session.begin():
            stored = await self._locked_position(session)
            # Ahead of the stored position in memory only by commits skipped as irrelevant.
            position = max(stored, self._position)
            pending = [c for c in screened if c.seq > position]
            if pending and pending[0].seq != position + 1:
                gap = await self._read(position + 1, limit=pending[0].seq - position - 1)
                pending = [*gap, *pending]
            run = _contiguous(pending, position)
            for screened_commit in run:
                commit, rejection = screened_commit.commit, screened_commit.rejection
                if rejection is not None:
                    await upsert(
                        session,
                        quarantine_table,
                        self._quarantine_row(commit, rejection),
                        update=False,
                    )
                    await self.projection.quarantined(session, commit)
                    self._report(commit, rejection)
                elif self.projection.wants(commit):
                    with self._span(commit):
                        await self.projection.apply(session, commit)
            applied = run[-1].seq if run else position
            if applied != stored:
                await session.execute(_MOVE_POSITION, self._moved(applied))
        await self.projection.committed()
        await self._set_position(applied)
        return applied

    async def _in_thread(self, fn: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def _apply_blocking(self, commits: Sequence[_Screened]) -> int:
        """The batch in one call: a small one on the event loop where there is a loop engine
        (unless a lock is held), else in the projector's thread. A gap before it is read
        here."""
        batch, gap_read = list(commits), False
        assert isinstance(self.projection, BlockingProjection)
        while True:
            await self.projection.prepare([c.commit for c in batch if c.rejection is None])
            on_loop = None
            if self._loop is not None and len(batch) <= LOOP_BATCH:
                on_loop = functools.partial(self._apply_on_loop, batch, gap_read)
            outcome = await loop_first(
                on_loop, functools.partial(self._apply_in_thread, batch, gap_read)
            )
            if not isinstance(outcome, _Gap):
                return outcome
            gap = await self._read(outcome.after + 1, limit=outcome.before - outcome.after - 1)
            batch, gap_read = [*gap, *batch], True

    def _apply_on_loop(self, batch: Sequence[_Screened], gap_read: bool) -> int | _Gap:
        outcome = self._apply_batch(batch, self._position, gap_read, self._loop)
        if self._checkpoints is not None:
            self._checkpoints.wrote()
        return outcome

    async def _apply_in_thread(self, batch: Sequence[_Screened], gap_read: bool) -> int | _Gap:
        context = contextvars.copy_context()  # the caller's trace, into the thread
        return await asyncio.get_running_loop().run_in_executor(
            self._thread,
            context.run,
            self._apply_batch,
            batch,
            self._position,
            gap_read,
            self._blocking,
        )

    def _apply_batch(
        self, commits: Sequence[_Screened], known: int, gap_read: bool, engine: Engine | None
    ) -> int | _Gap:
        """What ``_apply_locked`` does, on a blocking connection of ``engine``."""
        if engine is None or not isinstance(self.projection, BlockingProjection):
            raise RuntimeError("not a blocking projector")
        projection = self.projection
        with engine.connect() as conn, conn.begin():
            stored = self._locked_position_sync(conn)
            position = max(stored, known)
            pending = [c for c in commits if c.seq > position]
            if pending and pending[0].seq != position + 1 and not gap_read:
                return _Gap(position, pending[0].seq)
            run = _contiguous(pending, position)
            for screened in run:
                commit, rejection = screened.commit, screened.rejection
                if rejection is not None:
                    upsert_sync(
                        conn,
                        quarantine_table,
                        self._quarantine_row(commit, rejection),
                        update=False,
                    )
                    projection.quarantined_sync(conn, commit)
                    self._report(commit, rejection)
                elif projection.wants(commit):
                    with self._span(commit):
                        projection.apply_sync(conn, commit)
            applied = run[-1].seq if run else position
            if applied != stored:
                conn.execute(_MOVE_POSITION, self._moved(applied))
        return applied

    def _span(self, commit: StoredCommit) -> AbstractContextManager[object]:
        return start_consumer_span(
            f"project {self.name}",
            commit.headers,
            {"stafett.seq": commit.seq, "stafett.projection": self.name},
        )

    def _skippable(self, commits: Sequence[_Screened]) -> bool:
        expected = self._position + 1
        for screened in commits:
            if (
                screened.seq != expected
                or screened.rejection is not None
                or self.projection.wants(screened.commit)
            ):
                return False
            expected += 1
        return True

    # --- the guard ------------------------------------------------------------------------

    async def _read(self, from_seq: int, *, limit: int) -> list[_Screened]:
        """Commits of the stream, screened; a message that does not decode is one too."""
        return self._screen(await self.store.read(from_seq, limit=limit, decode=False))

    def _screen(self, commits: Sequence[StoredCommit]) -> list[_Screened]:
        return [self._screen_one(commit) for commit in commits]

    def _screen_one(self, commit: StoredCommit) -> _Screened:
        """Decode a commit (unless it was) and let ``check_commit`` judge it. Every path to
        the read model passes here: the loop, catch-up, gap reads and a writer's own
        commit alike."""
        events = commit.events
        if events:
            rejection = self._check(commit.subject, events)
        else:
            try:
                events = decode_commit(commit.data)
            except EnvelopeError:
                rejection = Rejection(Reason.UNDECODABLE)
            else:
                rejection = self._check(commit.subject, events)
                commit = replace(commit, events=events)
        if rejection is None:
            return _Screened(commit)
        bare = replace(commit, events=())
        if not self._concerns(commit.subject, events):
            return _Screened(bare)  # the readers of its contexts quarantine it
        return _Screened(bare, rejection)

    def _check(self, subject: str, events: Sequence[CloudEvent]) -> Rejection | None:
        return check_commit(
            subject,
            events,
            prefix=self.store.prefix,
            events_registry=self.projection.event_registry,
        )

    def _concerns(self, subject: str, events: Sequence[CloudEvent]) -> bool:
        """Whether a refused commit is this projection's to quarantine: it reads the
        subject's context or that of one of the events the message claims to hold."""
        contexts = self.projection.contexts
        if contexts is None:
            return True
        parts = subject_context(subject, self.store.prefix)
        if parts is not None and parts[0] in contexts:
            return True
        return any(event.context in contexts for event in events)

    def _quarantine_row(self, commit: StoredCommit, rejection: Rejection) -> dict[str, Any]:
        return {
            "projection": self.name,
            "seq": commit.seq,
            "subject": commit.subject[:200],
            "reason": rejection.reason.value,
            "event_index": rejection.event,
            "quarantined_at": datetime.now(UTC),
        }

    def _report(self, commit: StoredCommit, rejection: Rejection) -> None:
        """The metric and the log line of a quarantined commit: ids and the reason only."""
        _quarantined.add(1, {"stafett.projection": self.name, "stafett.reason": rejection.reason})
        _log.warning(
            "projection_quarantined",
            projection=self.name,
            seq=commit.seq,
            subject=commit.subject[:200],
            reason=rejection.reason.value,
            event_index=rejection.event,
        )

    async def quarantine(self) -> list[Quarantined]:
        """The messages this projection refused, in stream order."""
        q = quarantine_table.c
        async with self._readers() as session:
            rows = await session.execute(
                select(q.seq, q.subject, q.reason, q.event_index, q.quarantined_at)
                .where(q.projection == self.name)
                .order_by(q.seq)
            )
            return [
                Quarantined(
                    seq=int(row.seq),
                    subject=row.subject,
                    reason=row.reason,
                    event_index=row.event_index,
                    quarantined_at=as_utc(row.quarantined_at),
                )
                for row in rows
            ]

    # --- position, in memory --------------------------------------------------------------

    async def _set_position(self, applied: int) -> None:
        self._position = applied
        self._stream_last_seq = max(self._stream_last_seq, applied)
        if applied >= self._stream_last_seq:
            self._caught_up_at = time.monotonic()
            self._behind_since = None
        # Wake every waiter, then give later waiters a fresh event.
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def apply_own(self, subject: str, seq: int, events: Sequence[CloudEvent]) -> int:
        """Read-your-writes: apply a commit this process just appended, from what it sent
        (the stored bytes are the canonical encoding of the same events)."""
        commit = StoredCommit(
            seq=seq,
            subject=subject,
            data=encode_commit(events),
            headers={},
            time=None,
            events=tuple(events),
        )
        return await self.apply_commits([commit])

    async def catch_up(self) -> int:
        """Apply everything the stream holds now; returns the position reached."""
        self._observe(await self.store.last_seq())
        position = await self.position()
        while True:
            commits = await self.store.read(position + 1, limit=self._batch, decode=False)
            if not commits:
                break
            position = await self.apply_commits(commits)
        self._caught_up_at = time.monotonic()
        if position >= self._stream_last_seq:
            self._behind_since = None
        return position

    async def rebuild(self) -> int:
        """Empty the projection's tables and replay the stream from sequence 1."""
        async with self._lock:
            async with self._sessions() as session, session.begin():
                await self._locked_position(session)
                for table in reversed(list(self.projection.tables)):
                    await session.execute(delete(table))
                await session.execute(
                    delete(quarantine_table).where(quarantine_table.c.projection == self.name)
                )
                await session.execute(_MOVE_POSITION, self._moved(0))
            self._position = 0
        _log.info("projection_rebuild_started", projection=self.name)
        position = await self.catch_up()
        _log.info("projection_rebuilt", projection=self.name, position=position)
        return position

    async def wait_for(self, min_seq: int, timeout_s: float) -> int:
        """Wait until the read model has applied ``min_seq``; else ``ProjectionBehind``."""
        deadline = time.monotonic() + timeout_s
        while self.known_position < min_seq:
            if time.monotonic() >= deadline:
                raise ProjectionBehind(min_seq, self.known_position)
            waiter = self._advanced
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the awaited event fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(deadline - time.monotonic(), 0.05)):
                    await waiter.wait()
            if self._task is None:
                # No background loop: read the position the database holds.
                await self.position()
        return self.known_position

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the stream for ever (until stopped)."""
        self._stopping = False
        while not self.stopping():
            try:
                position = await self.catch_up()
                async for commits in self.store.subscribe_batches(
                    position + 1, idle_poll=self._idle_poll, decode=False
                ):
                    if self.stopping():
                        return
                    self._observe(commits[-1].seq)
                    if commits[-1].seq <= self.known_position:
                        continue  # a writer applied these already (read-your-writes)
                    await self.apply_commits(commits)
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:
                _log.warning("projector_store_unavailable", projection=self.name)
                await asyncio.sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - a defect or the database is down: retry, do not die
                _log.error("projector_failed", projection=self.name, error_type=type(exc).__name__)
                await asyncio.sleep(2.0)

    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"projector-{self.name}")
        return self._task

    async def aclose(self) -> None:
        """Stop, end the projector's thread (if it has one) and close the blocking engine's
        pooled connections."""
        await self.stop()
        if self._checkpoints is not None:
            checkpoints, self._checkpoints = self._checkpoints, None
            await checkpoints.aclose()
        if self._loop is not None:
            loop_engine, self._loop = self._loop, None
            await asyncio.to_thread(loop_engine.dispose)
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.shutdown, wait=True)
        if self._blocking is not None:
            blocking, self._blocking = self._blocking, None  # later batches: the async path
            await asyncio.to_thread(blocking.dispose)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Cancel until it ends: a cancellation can be swallowed by a library's wait_for
        # (Python 3.11) when it lands as the awaited message arrives.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()

    async def check_not_ahead(self) -> None:
        """Refuse a read model that is ahead of the stream (``ProjectionAhead``)."""
        position = await self.position()
        last_seq = await self.store.last_seq()
        if position > last_seq:
            _log.error(
                "projection_ahead_of_stream",
                projection=self.name,
                position=position,
                stream_last_seq=last_seq,
            )
            raise ProjectionAhead(position, last_seq)

    async def refresh_stream_position(self) -> None:
        """Observe the stream's end, so ``lag`` and ``behind_for`` are current (readiness
        checks and the consent service's decisions call this)."""
        self._observe(await self.store.last_seq())
