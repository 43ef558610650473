"""The policy decision point: answers ``(principal, action, resource, min_seq)`` and records
every answer. Every decision is kept in the service's database before it is answered; a
decision that cannot be recorded is a denial (fail closed). Denials and auditors' permits
are also published as ``access.decision_recorded`` events: an auditor's permit before the
answer, a denial through an outbox written in the same transaction as its record, by a relay
that publishes it moments later and again after a restart until the stream has it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from opentelemetry import metrics
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url

from stafett_consent.policy import (
    INDEXED_ACTIONS,
    POLICY_VERSION,
    Action,
    Decision,
    PolicySettings,
    decide,
)
from stafett_consent.projections import (
    filter_cases,
    indexed_permit,
    load_case_facts,
    load_entry_facts,
    load_principal_facts,
)
from stafett_shared.contracts.access import AccessDecision, DecisionRecorded
from stafett_shared.db import UtcDateTime, as_utc
from stafett_shared.envelope import CloudEvent, registry
from stafett_shared.eventstore import DuplicateAppend, EventStore, StoreUnavailable
from stafett_shared.ids import new_id
from stafett_shared.logging import get_logger
from stafett_shared.loopdb import LoopCheckpoints, is_busy, loop_engine, loop_first
from stafett_shared.projector import ProjectionStale, Projector
from stafett_shared.service import stop_tasks

audit_metadata = MetaData()
decision_records = Table(
    "decision_records",
    audit_metadata,
    Column("decision_id", String(26), primary_key=True),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("principal_kind", String(8), nullable=False),
    Column("action", String(32), nullable=False),
    Column("case_id", String(64), nullable=True),
    Column("entry_id", String(64), nullable=True),
    Column("decision", String(8), nullable=False),
    Column("basis", String(32), nullable=True),
    Column("consent_id", String(26), nullable=True),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("policy_version", String(32), nullable=False),
    Column("asked_by", String(32), nullable=True),  # the asking service (None: over HTTP)
    Index("ix_decisions_case", "case_id", "decided_at"),
    Index("ix_decisions_principal", "principal_id", "decided_at"),
)
"""Not a projection: decisions are recorded as they are made, and a rebuild keeps them."""

decision_outbox = Table(
    "decision_outbox",
    audit_metadata,
    Column("decision_id", String(26), primary_key=True),
    Column("tenant", String(32), nullable=False),
)
"""Denials recorded but not yet published as events (the relay empties it)."""

_RECORD = decision_records.insert()
_QUEUE = decision_outbox.insert()
_PENDING = (
    select(decision_records, decision_outbox.c.tenant)
    .join(decision_outbox, decision_outbox.c.decision_id == decision_records.c.decision_id)
    .order_by(decision_outbox.c.decision_id)
    .limit(bindparam("limit"))
)
_SENT = decision_outbox.delete().where(
    decision_outbox.c.decision_id.in_(bindparam("ids", expanding=True))
)
RELAY_BATCH = 100
DENIAL_EVENT_WINDOW_S = 60.0
"""A denial becomes an event unless the same principal was denied the same action on the
same case, as an event, less than this long before: repeats are in the decision records
only, so asking again and again cannot grow the append-only stream without end."""
DENIALS_REMEMBERED = 10_000
RELAY_POLL_S = 5.0
RELAY_GATHER_S = 0.05
MAX_LAG_S = 5.0
"""Decisions fail closed (``ProjectionStale``: 503, or an ``unavailable`` reply over NATS)
while the consent projection has been behind the stream for longer than this. A withdrawn
consent or an ended role then stops permitting within this bound plus a caller's one-second
permit cache. Ordinary catch-up stays well inside it: a writer's own commit is applied
before it answers, a burst of a few hundred commits takes the projector tens of
milliseconds, and a ``Stafett-Min-Seq`` wait gives up after two seconds; five seconds leaves
room for a slow disk, a lock held by an operator's tool or a pause of the process without
refusing decisions, and is short enough that a projector that has stopped (a database that
hangs, a defect) is noticed before a stale permit matters."""
LAG_WATCH_S = 1.0
"""How often the decision point looks at the stream's end, so that a projector that no
longer reads is seen to fall behind even when nothing else looks."""
_log = get_logger("stafett.consent.decisions")
_unavailable = metrics.get_meter("stafett.consent").create_counter(
    "stafett.consent.decisions_unavailable",
    unit="{decision}",
    description="Access decisions refused because the consent read model lagged too long",
)
_T = TypeVar("_T")


def records_url(read_models_url: str) -> str:
    """Where decision records are kept: on PostgreSQL in the read models' database; on
    SQLite in a file of their own beside it (``consent.db`` → ``consent-decisions.db``), so a
    decision's INSERT never waits for the projector's write lock."""
    url = make_url(read_models_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return read_models_url
    path = Path(str(url.database))
    separate = path.with_name(f"{path.stem}-decisions{path.suffix or '.db'}")
    return url.set(database=str(separate)).render_as_string(hide_password=False)


def loop_engines(read_models_url: str) -> tuple[Engine, Engine] | None:
    """On SQLite files: engines for a decision point to use on the event loop (read models,
    records; see :mod:`stafett_shared.loopdb`). None on PostgreSQL, where decisions are
    made in the thread."""
    reads = loop_engine(read_models_url, writes=False)
    records = loop_engine(records_url(read_models_url), writes=True)
    if reads is None or records is None:
        return None
    return reads, records


def create_records_schema(engine: Engine) -> None:
    """The records' tables in a database of their own (on SQLite). In the read models'
    database the Alembic history creates them. A column added since a file was made is
    added to it (nullable, so the rows before stay as they were)."""
    audit_metadata.create_all(engine, checkfirst=True)
    with engine.connect() as conn:
        have = {column["name"] for column in inspect(conn).get_columns("decision_records")}
        if "asked_by" not in have:
            conn.execute(text("ALTER TABLE decision_records ADD COLUMN asked_by VARCHAR(32)"))
            conn.commit()


_EVENT_FIELDS = tuple(DecisionRecorded.model_fields)


@dataclass(frozen=True, slots=True)
class _Question:
    decision_id: str
    now: datetime
    principal_id: str
    principal_kind: Literal["person", "client"]
    action: Action
    case_id: str
    entry_id: str | None
    asked_by: str | None = None
    scopes: frozenset[str] = frozenset()
    """A client's token's scopes (only those its registration lists count)."""


def _record_row(q: _Question, decision: Decision) -> dict[str, Any]:
    """One row of ``decision_records``; its columns but ``decided_at`` are the event's data."""
    return {
        "decision_id": q.decision_id,
        "decided_at": q.now,
        "principal_id": q.principal_id,
        "principal_kind": q.principal_kind,
        "action": q.action.value,
        "case_id": q.case_id,
        "entry_id": q.entry_id,
        "decision": "permit" if decision.permit else "deny",
        "basis": decision.basis,
        "consent_id": decision.consent_id,
        "reason": decision.reason,
        "detail": decision.detail,
        "policy_version": decision.policy_version,
        "asked_by": q.asked_by,
    }


class DecisionPoint:
    """Decides and records. Callers may cache a permit for at most one second.

    A decision's database work (reading the facts, the policy, the INSERT of its record and
    the commit) runs whole on blocking connections, never one awaited statement at a time
    (docs/decisions/0014-decisions-in-one-hop.md):

    - On PostgreSQL, in a worker thread of the decision point's own (four of them): one
      thread hop per decision, where an async driver would hop once per statement.
    - On SQLite, on the event loop itself (docs/decisions/0015-sqlite-decisions-on-the-loop.md):
      a handful of indexed statements on local files, which cost less than the hop. The
      records have a database file of their own, written by no one else, so a decision never
      waits for a lock there: if one is held all the same (an operator's tool, say), the
      decision fails fast on the loop and is made again in the thread, which may wait.
      Checkpoints of the records' write-ahead log run in the thread, never on the loop.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        records: Engine | None = None,
        loop: tuple[Engine, Engine] | None = None,
        projector: Projector,
        store: EventStore,
        settings: PolicySettings | None = None,
        min_seq_wait_s: float = 2.0,
        max_lag_s: float = MAX_LAG_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._records = records or engine
        self._projector = projector
        self._store = store
        self._settings = settings or PolicySettings()
        self._wait = min_seq_wait_s
        self.max_lag_s = max_lag_s
        self._clock = clock
        workers = 1 if engine.dialect.name == "sqlite" else 4
        self._thread = ThreadPoolExecutor(workers, thread_name_prefix="stafett-decisions")
        self._queued = asyncio.Event()
        self._relaying = asyncio.Lock()
        self._relay: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        # When each (principal, kind, action, case) was last denied as an event; read and
        # written by the worker threads and the loop alike.
        self._denial_events: OrderedDict[tuple[str, str, str, str], float] = OrderedDict()
        self._denial_lock = threading.Lock()
        # On SQLite: engines for the event loop's own use (see ``loop_engines``).
        self._loop_engine: Engine | None = loop[0] if loop else None
        self._loop_records: Engine | None = loop[1] if loop else None
        self._checkpoints = (
            LoopCheckpoints(self._records, self.in_thread, name="decision-records")
            if loop
            else None
        )

    def start(self) -> None:
        """Start the relay that publishes recorded denials (and any left from before), and
        the watch on the projection's lag."""
        if self._relay is None:
            self._relay = asyncio.create_task(self._relay_loop(), name="decision-relay")
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_lag(), name="decision-lag-watch")

    async def _watch_lag(self) -> None:
        while True:
            await asyncio.sleep(LAG_WATCH_S)
            # Unreachable stream: nothing new can be written either; the next look tells.
            with contextlib.suppress(StoreUnavailable):
                await self._projector.refresh_stream_position()

    def _ensure_current(self) -> None:
        """Fail closed while the read model lags the stream beyond ``max_lag_s``."""
        behind = self._projector.behind_for()
        if behind > self.max_lag_s:
            _unavailable.add(1)
            raise ProjectionStale(
                self._projector.known_position + self._projector.lag,
                self._projector.known_position,
                behind,
            )

    async def aclose(self) -> None:
        """Stop the relay and the worker threads; close the decision point's connections.
        Denials not yet published stay in the outbox for the next start."""
        if self._relay is not None:
            await stop_tasks([self._relay])
            self._relay = None
        if self._watch is not None:
            await stop_tasks([self._watch])
            self._watch = None
        if self._checkpoints is not None:
            await self._checkpoints.aclose()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
        for engine in (self._loop_engine, self._loop_records):
            if engine is not None:
                engine.dispose()
        self._engine.dispose()
        self._records.dispose()

    @property
    def engine(self) -> Engine:
        """The blocking engine on the read models (used in the worker thread)."""
        return self._engine

    @property
    def records_engine(self) -> Engine:
        """The blocking engine on the decision records (used in the worker thread)."""
        return self._records

    @property
    def on_loop(self) -> bool:
        """Whether decisions are made on the event loop (SQLite) or in the thread."""
        return self._loop_engine is not None

    async def in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn(*args)`` in the decision point's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn(*args, on_loop=...)``, a unit of blocking database work: on the event
        loop where decisions are made there (``on_loop=True``: it must use the loop's
        engines, which fail at once on a held lock), else, or when a lock was held, in the
        worker thread (``on_loop=False``)."""
        return await loop_first(
            functools.partial(fn, *args, on_loop=True) if self._loop_engine is not None else None,
            functools.partial(self.in_thread, functools.partial(fn, *args, on_loop=False)),
        )

    def engines(self, on_loop: bool) -> tuple[Engine, Engine]:
        """The blocking engines (read models, records) for work on the loop or in the
        thread (see :meth:`run`)."""
        if on_loop:
            if self._loop_engine is None or self._loop_records is None:
                raise RuntimeError("decisions are not made on the loop here")
            return self._loop_engine, self._loop_records
        return self._engine, self._records

    def _wrote(self, on_loop: bool) -> None:
        """After a commit to the records: on the loop, count towards the next checkpoint."""
        if on_loop and self._checkpoints is not None:
            self._checkpoints.wrote()

    async def check(
        self,
        principal_id: str,
        action: Action,
        case_id: str,
        *,
        principal_kind: Literal["person", "client"] = "person",
        entry_id: str | None = None,
        min_seq: int | None = None,
        asked_by: str | None = None,
        scopes: frozenset[str] = frozenset(),
    ) -> AccessDecision:
        """Decide and record; ``asked_by`` is the service that asked over NATS (None: the
        principal itself, over HTTP), named in the record and in its event. ``scopes`` are
        a client's token's scopes (decision 0039)."""
        if min_seq:
            await self._projector.wait_for(min_seq, self._wait)
        self._ensure_current()
        now = self._clock()
        decision_id = new_id()
        question = _Question(
            decision_id,
            now,
            principal_id,
            principal_kind,
            action,
            case_id,
            entry_id,
            asked_by,
            frozenset(scopes) if principal_kind == "client" else frozenset(),
        )
        decision, case_org, recorded = await self.run(self._decide_and_record, question)
        if recorded and case_org is not None and decision.permit and decision.basis == "auditor":
            # An auditor's read is in the audited history before the auditor sees anything.
            try:
                await self._publish(_record_row(question, decision), case_org)
            except Exception as exc:  # noqa: BLE001 - an unrecorded decision is a denial
                _log.error("decision_not_recorded", error_type=type(exc).__name__)
                recorded = False
        if not recorded:
            return AccessDecision(
                decision="deny",
                reason="not_recorded",
                decision_id=decision_id,
                policy_version=POLICY_VERSION,
            )
        if case_org is not None and not decision.permit:
            self._queued.set()
        return AccessDecision(
            decision="permit" if decision.permit else "deny",
            basis=decision.basis,
            consent_id=decision.consent_id,
            reason=decision.reason,
            decision_id=decision_id,
            policy_version=decision.policy_version,
        )

    def _decide_and_record(
        self, q: _Question, *, on_loop: bool = False
    ) -> tuple[Decision, str | None, bool]:
        """The decision from the read models, then its record (see :meth:`run`)."""
        engine, records = self.engines(on_loop)
        with engine.connect() as conn:
            decision, case_org = self._decide(conn, q)
        event = False
        with records.connect() as conn:
            try:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                conn.execute(_RECORD, _record_row(q, decision))
                event = case_org is not None and not decision.permit and self._claim_denial(q)
                if event:
                    # Denials on a case become events; the relay publishes them.
                    conn.execute(_QUEUE, {"decision_id": q.decision_id, "tenant": case_org})
                conn.commit()
            except Exception as exc:  # an unrecorded decision is a denial
                if event:
                    self._release_denial(q)  # nothing was queued
                if on_loop and is_busy(exc):
                    # Nothing was committed: the thread makes the decision again and waits.
                    raise
                _log.error("decision_not_recorded", error_type=type(exc).__name__)
                return decision, case_org, False
        self._wrote(on_loop)
        return decision, case_org, True

    @staticmethod
    def _denial_key(q: _Question) -> tuple[str, str, str, str]:
        return (q.principal_id, q.principal_kind, q.action.value, q.case_id)

    def _claim_denial(self, q: _Question) -> bool:
        """Whether this denial is to be an event (see :data:`DENIAL_EVENT_WINDOW_S`); if so,
        it is noted at once, so that a concurrent identical denial is not one too."""
        key, now = self._denial_key(q), q.now.timestamp()
        with self._denial_lock:
            last = self._denial_events.get(key)
            if last is not None and now - last < DENIAL_EVENT_WINDOW_S:
                return False
            self._denial_events[key] = now
            self._denial_events.move_to_end(key)
            while len(self._denial_events) > DENIALS_REMEMBERED:
                self._denial_events.popitem(last=False)
        return True

    def _release_denial(self, q: _Question) -> None:
        """The transaction that was to queue this denial's event failed: forget the claim."""
        key = self._denial_key(q)
        with self._denial_lock:
            if self._denial_events.get(key) == q.now.timestamp():
                del self._denial_events[key]

    def _decide(self, conn: Connection, q: _Question) -> tuple[Decision, str | None]:
        if q.entry_id is None and q.action in INDEXED_ACTIONS and q.principal_kind == "person":
            # Fast path: the access index holds exactly the grants the rules give (the
            # property test keeps the two equal), so a permit is one indexed query.
            decision, case_org = indexed_permit(conn, q.principal_id, q.action, q.case_id, q.now)
            if decision is not None:
                return decision, case_org
        case = load_case_facts(conn, q.case_id)
        principal = load_principal_facts(conn, q.principal_id, q.principal_kind, q.scopes)
        case_org = case.org_id if case else None
        if q.entry_id is None:
            return decide(principal, q.action, case, q.now, settings=self._settings), case_org
        entry = load_entry_facts(conn, q.entry_id)
        if entry is None:
            return Decision(False, None, "no_basis", "unknown entry"), case_org
        return (
            decide(principal, q.action, case, q.now, entry=entry, settings=self._settings),
            case_org,
        )

    async def filter(
        self,
        principal_id: str,
        action: Action,
        case_ids: Sequence[str],
        *,
        principal_kind: Literal["person", "client"] = "person",
        min_seq: int | None = None,
    ) -> list[str]:
        """Which of ``case_ids`` the principal may ``action``: one query on the access index."""
        if min_seq:
            await self._projector.wait_for(min_seq, self._wait)
        self._ensure_current()
        if principal_kind == "client":
            return []
        args = (principal_id, action, list(case_ids), self._clock())
        if action in INDEXED_ACTIONS:
            # One indexed query, on the loop where decisions are made there.
            return await self.run(self._filter, *args)
        # A check for each case: too much for the loop.
        return await self.in_thread(self._filter, *args)

    def _filter(
        self,
        principal_id: str,
        action: Action,
        case_ids: list[str],
        now: datetime,
        *,
        on_loop: bool = False,
    ) -> list[str]:
        with self.engines(on_loop)[0].connect() as conn:
            if action in INDEXED_ACTIONS:
                return filter_cases(conn, principal_id, action.value, case_ids, now)
            principal = load_principal_facts(conn, principal_id)
            return [
                case_id
                for case_id in dict.fromkeys(case_ids)
                if decide(
                    principal, action, load_case_facts(conn, case_id), now, settings=self._settings
                ).permit
            ]

    async def _publish(self, record: Mapping[str, Any], tenant: str) -> None:
        """Publish one recorded decision (a row of ``decision_records``) as an event."""
        payload = DecisionRecorded.model_validate({k: record[k] for k in _EVENT_FIELDS})
        event: CloudEvent = registry.envelope(
            payload,
            subject=payload.case_id,
            source="stafett/consent",
            tenant=tenant,
            actor=payload.principal_id,
            time=as_utc(record["decided_at"]),
            event_id=payload.decision_id,
        )
        await self._store.append(
            self._store.subject("access", payload.case_id),
            [event],
            expected_version=None,
            idempotency_key=f"decision-{payload.decision_id}",
        )

    # --- the relay ------------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RELAY_POLL_S):
                    await self._queued.wait()
            self._queued.clear()
            # Gather the denials of a burst into one batch: fewer writes beside the checks.
            await asyncio.sleep(RELAY_GATHER_S)
            try:
                await self.publish_pending()
            except Exception as exc:  # noqa: BLE001 - NATS or the database is away: retry later
                _log.warning("decision_relay_failed", error_type=type(exc).__name__)

    async def publish_pending(self) -> int:
        """Publish every recorded denial not yet in the stream; returns how many. The relay
        calls this; tests call it to see the stream as it will be a moment later."""
        published = 0
        async with self._relaying:
            while rows := await self.run(self._pending, RELAY_BATCH):
                for row in rows:
                    # Published before a crash, not yet marked as sent: already in the stream.
                    with contextlib.suppress(DuplicateAppend):
                        await self._publish(row, row["tenant"])
                await self.run(self._sent, [row["decision_id"] for row in rows])
                published += len(rows)
        return published

    def _pending(self, limit: int, *, on_loop: bool = False) -> list[dict[str, Any]]:
        with self.engines(on_loop)[1].connect() as conn:
            return [dict(row) for row in conn.execute(_PENDING, {"limit": limit}).mappings()]

    def _sent(self, ids: list[str], *, on_loop: bool = False) -> None:
        with self.engines(on_loop)[1].connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            conn.execute(_SENT, {"ids": ids})
            conn.commit()
        self._wrote(on_loop)

    async def records(
        self,
        *,
        case_id: str | None = None,
        principal_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[dict[str, object]]:
        """Recorded decisions, newest first (for auditors)."""
        stmt = select(decision_records).order_by(decision_records.c.decision_id.desc())
        if case_id:
            stmt = stmt.where(decision_records.c.case_id == case_id)
        if principal_id:
            stmt = stmt.where(decision_records.c.principal_id == principal_id)
        if since:
            stmt = stmt.where(decision_records.c.decided_at >= since)
        if before_id:
            stmt = stmt.where(decision_records.c.decision_id < before_id)
        return await self.in_thread(self._select_records, stmt.limit(limit))

    def _select_records(self, stmt: Select[Any]) -> list[dict[str, object]]:
        with self._records.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]
