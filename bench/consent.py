"""Benchmark of the consent service's access decisions, with baselines measured in the same run.

Run from the project folder::

    .venv/bin/python bench/consent.py                         # SQLite, about a minute
    .venv/bin/python bench/consent.py --quick                 # a few seconds, a smoke check
    .venv/bin/python bench/consent.py --database postgresql   # on a throwaway PostgreSQL
    .venv/bin/python bench/consent.py --json                  # also write bench/results/*.json
    .venv/bin/python bench/consent.py --profile               # cProfile of in-process checks

The script starts its own nats-server (``sync_interval: always``, the single-node production
setting) in a temporary folder and runs the consent service in-process on a fresh database
(a temporary SQLite file, or a new database on PostgreSQL). It builds a region's worth of
cases, children, teams and active consents through the service's own events and HTTP API,
then measures ``DecisionPoint.check`` and ``.filter`` in-process and over NATS with
``AccessClient`` (no permit cache), next to the floors they stand on: a NATS request/reply
echo and a single-row SELECT and INSERT on the same database. The issue's targets are
printed beside the numbers as information; the script exits 0 whatever they show. See
bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import platform
import pstats
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from benchlib import NO_RATE_LIMIT, percentile
from stafett_consent.decisions import DecisionPoint, _Question, decision_records
from stafett_consent.policy import POLICY_VERSION, Action, decide
from stafett_consent.projections import access_index, cases
from stafett_consent.testing import REGION, ConsentHarness, running_consent, synthetic_national_id
from stafett_shared.access import AccessClient
from stafett_shared.auth import Principal
from stafett_shared.embedded import NatsServerProcess, free_port
from stafett_shared.ids import new_id
from stafett_shared.logging import configure_logging
from stafett_shared.rpc import request, serve
from stafett_shared.telemetry import configure_tracing

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FILTER_IDS = 500  # the most ids the filter accepts in one request
PROJECTOR_WAIT_S = 180.0
HTTP_CONCURRENCY = 8
PUBLISH_CONCURRENCY = 32

# The targets, as p99 in milliseconds.
TARGET_CHECK_LOCAL_MS = 2.0
TARGET_CHECK_NATS_MS = 5.0
TARGET_FILTER_MS = 20.0


@dataclass(frozen=True)
class Plan:
    """How big the world is and how much work each measurement does."""

    cases: int
    children_every: int  # every n-th case gets an identified child
    team_every: int  # every n-th case gets a team member from another unit
    consents: int  # cases whose team member is covered by an active consent
    checks: int  # single decisions per measured method
    concurrent_checks: int  # decisions spread over `concurrency` callers over NATS
    concurrency: int
    filters: int  # filter calls of FILTER_IDS ids per method
    baselines: int  # echoes, selects and inserts per baseline
    warmup: int
    rounds: int  # the measurements alternate this many times
    deny_share: float  # share of denials in the decision mix


FULL = Plan(
    cases=500,
    children_every=2,
    team_every=3,
    consents=20,
    checks=2500,
    concurrent_checks=960,
    concurrency=8,
    filters=300,
    baselines=3000,
    warmup=150,
    rounds=3,
    deny_share=0.05,
)
QUICK = Plan(
    cases=100,
    children_every=2,
    team_every=3,
    consents=5,
    checks=450,
    concurrent_checks=240,
    concurrency=8,
    filters=45,
    baselines=450,
    warmup=30,
    rounds=3,
    deny_share=0.05,
)


# --- numbers --------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured operation, with the issue's target (p99 in ms) when it has one."""

    name: str
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float
    sql_per_op: float | None = None
    target_p99_ms: float | None = None
    note: str = ""

    @property
    def ops_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else math.nan

    @property
    def verdict(self) -> str:
        if self.target_p99_ms is None or math.isnan(self.p99_ms):
            return ""
        return "PASS" if self.p99_ms <= self.target_p99_ms else "MISS"

    def as_json(self) -> dict[str, Any]:
        data = {**asdict(self), "ops_per_s": self.ops_per_s, "verdict": self.verdict or None}
        # JSON has no NaN: a number that was not measured is null.
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in data.items()}


@dataclass
class Sample:
    """Operations counted, wall-clock seconds, each operation's latency and SQL statements."""

    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statements: int = 0
    tags: list[str] = field(default_factory=list)  # per operation, e.g. permit / deny

    def row(
        self, name: str, *, target: float | None = None, sql: bool = True, note: str = ""
    ) -> Row:
        return make_row(
            name,
            self.count,
            self.seconds,
            self.latencies,
            sql_per_op=self.statements / self.count if sql and self.count else None,
            target=target,
            note=note,
        )

    def split(self, tag: str, name: str, *, target: float | None = None, note: str = "") -> Row:
        """A row of the operations tagged ``tag`` only; their time is their own latencies."""
        chosen = [lat for lat, t in zip(self.latencies, self.tags, strict=True) if t == tag]
        return make_row(name, len(chosen), sum(chosen), chosen, target=target, note=note)


def make_row(
    name: str,
    count: int,
    seconds: float,
    latencies_s: Sequence[float],
    *,
    sql_per_op: float | None = None,
    target: float | None = None,
    note: str = "",
) -> Row:
    ms = [value * 1000 for value in latencies_s]
    return Row(
        name=name,
        count=count,
        seconds=seconds,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        sql_per_op=sql_per_op,
        target_p99_ms=target,
        note=note,
    )


class StatementCounter:
    """Counts the SQL statements the service sends: its async engine (projector, reads) and
    the decision point's blocking engine."""

    def __init__(self, engine: AsyncEngine, *more: Engine) -> None:
        self.count = 0
        self.texts: Counter[str] = Counter()
        self.keep_texts = False
        # Round trips that are not statements: pool checkouts (each one pings the server on
        # PostgreSQL, where the engine has pool_pre_ping), commits and rollbacks.
        self.other: Counter[str] = Counter()
        self.pre_ping = bool(engine.sync_engine.pool._pre_ping)
        for sync in (engine.sync_engine, *more):
            event.listen(sync, "before_cursor_execute", self._seen)
            event.listen(sync, "checkout", lambda *_: self._other("pool checkout"))
            event.listen(sync, "commit", lambda *_: self._other("COMMIT"))
            event.listen(sync, "rollback", lambda *_: self._other("ROLLBACK"))

    def _other(self, what: str) -> None:
        if self.keep_texts:
            self.other[what] += 1

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        if self.keep_texts:
            self.texts[" ".join(statement.split())[:110]] += 1


# --- the world ------------------------------------------------------------------------------

# (unit, organisation, holder): who opens cases where. The school sees most cases.
HOLDERS: tuple[tuple[str, str, str], ...] = (
    ("siljan-ungdomsskole", "4010", "ann-kristin-allum"),
    ("siljan-ungdomsskole", "4010", "ann-kristin-allum"),
    ("siljan-ungdomsskole", "4010", "rektor-siljan"),
    ("siljan-helsestasjon", "4010", "helse-hanne"),
    ("siljan-barnevern", "4010", "bv-berit"),
    ("porsgrunn-vgs", "40", "vgs-vidar"),
)
# A team member from another unit, by the case's unit: crossing a unit needs a consent.
OTHER_UNIT_MEMBER: dict[str, tuple[str, str]] = {
    "siljan-ungdomsskole": ("helse-hanne", "siljan-helsestasjon"),
    "siljan-helsestasjon": ("ann-kristin-allum", "siljan-ungdomsskole"),
    "siljan-barnevern": ("ann-kristin-allum", "siljan-ungdomsskole"),
    "porsgrunn-vgs": ("helse-hanne", "siljan-helsestasjon"),
}
STAFF = tuple(sorted({p["id"] for p in REGION["staff"]}))


@dataclass
class Case:
    case_id: str
    unit_id: str
    org_id: str
    holder: str
    team: dict[str, str] = field(default_factory=dict)  # person -> unit
    child_id: str | None = None
    child_age: int | None = None
    guardians: list[str] = field(default_factory=list)
    consent_id: str | None = None


@dataclass
class World:
    cases: list[Case]
    seconds: float
    last_seq: int
    access_rows: int


class NationalIds:
    """Synthetic national ids, each used once."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.individual = 0

    def new(self, born: datetime) -> str:
        while True:
            self.individual = (self.individual + 1) % 500
            value = synthetic_national_id(born, self.individual)
            if value not in self.used:
                self.used.add(value)
                return value


async def bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run ``jobs`` with at most ``limit`` at once."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def register_child(
    harness: ConsentHarness, ids: NationalIds, age: int, n: int
) -> tuple[str, list[str]]:
    """A child of ``age`` with two guardians with parental responsibility."""
    today = datetime.now(UTC)
    born = datetime(today.year - age - 1, 1, 1, tzinfo=UTC) + timedelta(days=n % 360)
    body = {
        "national_id": ids.new(born),
        "name": "Ola Nordmann",
        "guardians": [
            {
                "national_id": ids.new(born - timedelta(days=30 * 365 + 400 * i)),
                "name": name,
                "parental_responsibility": True,
            }
            for i, name in enumerate(("Mor", "Far"))
        ],
    }
    response = await harness.client.post(
        "/api/v1/children", json=body, headers=harness.auth("ann-kristin-allum")
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"registering a child failed: {response.text}")
    data = response.json()
    return str(data["id"]), [str(g["id"]) for g in data.get("guardians", [])]


async def activate_consent(harness: ConsentHarness, case: Case) -> int:
    """A consent covering health in Siljan, requested by the holder, signed by both guardians."""
    body = {
        "case_id": case.case_id,
        "scope": {
            "org_ids": ["4010"],
            "sectors": ["health"],
            "purpose": "Samarbeid med helsestasjonen om oppfølging på skolen.",
        },
        "evidence": {"method": "digital_signature"},
    }
    requested = await harness.client.post(
        "/api/v1/consents", json=body, headers=harness.auth(case.holder)
    )
    if requested.status_code != 201:
        raise RuntimeError(f"requesting a consent failed: {requested.text}")
    consent_id = str(requested.json()["id"])
    seq = 0
    for guardian in case.guardians:
        signed = await harness.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": guardian},
            headers=harness.auth(guardian),
        )
        if signed.status_code != 201:
            raise RuntimeError(f"signing a consent failed: {signed.text}")
        seq = int(signed.headers["Stafett-Seq"])
    if signed.json()["status"] != "active":
        raise RuntimeError(f"the consent is {signed.json()['status']}, not active")
    case.consent_id = consent_id
    return seq


async def build_world(harness: ConsentHarness, plan: Plan) -> World:
    """Cases over every unit, teams, identified children and active consents, all through
    the events and HTTP calls the other services and the users would make."""
    started = time.perf_counter()
    loaded = await harness.load_region()
    if loaded.status_code != 200:
        raise RuntimeError(f"loading the region failed: {loaded.text}")
    projector = harness.runtime.projector
    await projector.wait_for(int(loaded.json()["seq"]), PROJECTOR_WAIT_S)

    world: list[Case] = []
    for i in range(plan.cases):
        unit_id, org_id, holder = HOLDERS[i % len(HOLDERS)]
        world.append(Case(new_id(), unit_id, org_id, holder))
    last = 0

    def publish(case: Case, name: str, data: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            nonlocal last
            seq = await harness.publish_case_event(case.case_id, name, data)
            last = max(last, seq)

        return job

    # 1. Open every case (as the case service would publish it).
    await bounded(
        PUBLISH_CONCURRENCY,
        [
            publish(
                c,
                "opened",
                {
                    "case_id": c.case_id,
                    "org_id": c.org_id,
                    "unit_id": c.unit_id,
                    "level": 1 + i % 3,
                    "holder": {"person_id": c.holder, "unit_id": c.unit_id},
                    "child_id": None,
                },
            )
            for i, c in enumerate(world)
        ],
    )

    # 2. Children: registered in the directory, then identified on their case. Ages 6 to 17,
    # so some youths are past the self-access age.
    ids = NationalIds()
    with_child = [c for i, c in enumerate(world) if i % plan.children_every == 0]

    def child_job(n: int, case: Case) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            case.child_age = 6 + n % 12
            case.child_id, case.guardians = await register_child(harness, ids, case.child_age, n)

        return job

    await bounded(HTTP_CONCURRENCY, [child_job(n, c) for n, c in enumerate(with_child)])

    # 3. Team members: another unit's staff on every team_every-th case; on the leader's cases
    # the teacher of the same unit, with write access.
    jobs: list[Callable[[], Awaitable[None]]] = []
    for i, c in enumerate(world):
        if c.child_id is not None:
            jobs.append(
                publish(c, "child_identified", {"child_id": c.child_id, "org_id": c.org_id})
            )
        if i % plan.team_every == 0:
            person, unit = OTHER_UNIT_MEMBER[c.unit_id]
            c.team[person] = unit
            jobs.append(
                publish(
                    c,
                    "team_member_added",
                    {"person_id": person, "unit_id": unit, "access": "read", "org_id": c.org_id},
                )
            )
        if c.holder == "rektor-siljan":
            c.team["ann-kristin-allum"] = c.unit_id
            jobs.append(
                publish(
                    c,
                    "team_member_added",
                    {
                        "person_id": "ann-kristin-allum",
                        "unit_id": c.unit_id,
                        "access": "write",
                        "org_id": c.org_id,
                    },
                )
            )
    await bounded(PUBLISH_CONCURRENCY, jobs)
    await projector.wait_for(last, PROJECTOR_WAIT_S)

    # 4. Active consents where the health nurse is on a school case of a child under 15.
    eligible = [
        c
        for c in world
        if c.unit_id == "siljan-ungdomsskole"
        and "helse-hanne" in c.team
        and c.child_age is not None
        and c.child_age < 15
    ]
    for case in eligible[: plan.consents]:
        last = max(last, await activate_consent(harness, case))
    await projector.wait_for(last, PROJECTOR_WAIT_S)

    async with harness.runtime.sessions() as session:
        access_rows = len((await session.execute(select(access_index.c.case_id))).all())
    return World(world, time.perf_counter() - started, last, access_rows)


# --- what is asked --------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    principal: str
    action: Action
    case_id: str
    expect: str  # "permit" or "deny": how the world was built, not checked


def queries(world: World, plan: Plan, n: int, seed: int) -> list[Query]:
    """A mix of decisions as the other services ask them: mostly staff reading and writing
    their own cases, some guardians, youths, team members under consent, and a few denials
    (a list screen filters first, so a denial is the exception)."""
    permits: list[Query] = []
    denials: list[Query] = []
    for c in world.cases:
        permits.append(Query(c.holder, Action.CASE_READ, c.case_id, "permit"))
        permits.append(Query(c.holder, Action.LOG_APPEND, c.case_id, "permit"))
        permits.append(Query(c.holder, Action.LOG_READ, c.case_id, "permit"))
        if c.unit_id == "siljan-ungdomsskole":
            permits.append(Query("rektor-siljan", Action.CASE_READ, c.case_id, "permit"))
        if c.team.get("ann-kristin-allum") == c.unit_id:
            permits.append(Query("ann-kristin-allum", Action.LOG_APPEND, c.case_id, "permit"))
        for guardian in c.guardians:
            permits.append(Query(guardian, Action.LOG_READ, c.case_id, "permit"))
        if c.child_id is not None and (c.child_age or 0) >= 16:
            permits.append(Query(c.child_id, Action.LOG_READ, c.case_id, "permit"))
        for person, unit in c.team.items():
            if unit == c.unit_id:
                continue
            if c.consent_id is not None:
                # Weighted: consents are what this benchmark is about.
                for action in (Action.CASE_READ, Action.LOG_READ) * 3:
                    permits.append(Query(person, action, c.case_id, "permit"))
            else:
                denials.append(Query(person, Action.CASE_READ, c.case_id, "deny"))
        if c.org_id == "4010":
            denials.append(Query("vgs-vidar", Action.CASE_READ, c.case_id, "deny"))
        if c.holder != "bv-berit":
            denials.append(Query("bv-berit", Action.LOG_READ, c.case_id, "deny"))
    rng = random.Random(seed)
    return [
        rng.choice(denials) if rng.random() < plan.deny_share else rng.choice(permits)
        for _ in range(n)
    ]


class Surprises:
    """Answers that differ from what the world was built to give: a sanity check on the
    world (a benchmark of denials that should have been permits measures the wrong thing)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def tally(self, q: Query, decision: str) -> str:
        if decision != q.expect:
            self.counts[f"{q.action.value} expected {q.expect}, got {decision}"] += 1
        return decision


def filter_calls(world: World, n: int, seed: int) -> list[tuple[str, list[str]]]:
    """Filters of FILTER_IDS case ids by the people with the most cases."""
    known = [c.case_id for c in world.cases]
    rng = random.Random(seed)
    people = ("rektor-siljan", "ann-kristin-allum", "helse-hanne")
    calls = []
    for i in range(n):
        ids = rng.sample(known, min(FILTER_IDS, len(known)))
        # With fewer cases than FILTER_IDS (--quick) the rest are ids of no case.
        ids += [new_id() for _ in range(FILTER_IDS - len(ids))]
        calls.append((people[i % len(people)], ids))
    return calls


# --- the measurements -----------------------------------------------------------------------

Op = Callable[[int], Awaitable[str | None]]


@dataclass
class Measurement:
    name: str
    op: Op
    count: int
    sample: Sample = field(default_factory=Sample)


async def run_sequential(m: Measurement, start: int, stop: int, counter: StatementCounter) -> None:
    before = counter.count
    began = time.perf_counter()
    for i in range(start, stop):
        t0 = time.perf_counter()
        tag = await m.op(i)
        m.sample.latencies.append(time.perf_counter() - t0)
        m.sample.tags.append(tag or "")
    m.sample.seconds += time.perf_counter() - began
    m.sample.count += stop - start
    m.sample.statements += counter.count - before


async def run_concurrent(
    m: Measurement, start: int, stop: int, workers: int, counter: StatementCounter
) -> None:
    before = counter.count
    per = (stop - start) // workers

    async def worker(w: int) -> None:
        for i in range(start + w * per, start + (w + 1) * per):
            t0 = time.perf_counter()
            tag = await m.op(i)
            m.sample.latencies.append(time.perf_counter() - t0)
            m.sample.tags.append(tag or "")

    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    m.sample.seconds += time.perf_counter() - began
    m.sample.count += per * workers
    m.sample.statements += counter.count - before


async def measure_rounds(
    measurements: list[Measurement],
    plan: Plan,
    counter: StatementCounter,
    *,
    concurrency: dict[str, int] | None = None,
) -> None:
    """Warm each operation up, then run them in ``plan.rounds`` alternating rounds, rotating
    which goes first, so that drift in the machine's load falls on all of them alike."""
    workers = concurrency or {}
    for m in measurements:
        for i in range(min(plan.warmup, m.count)):
            await m.op(m.count + i)  # past the measured range: its own inputs
    for r in range(plan.rounds):
        order = measurements[r % len(measurements) :] + measurements[: r % len(measurements)]
        for m in order:
            start, stop = m.count * r // plan.rounds, m.count * (r + 1) // plan.rounds
            if m.name in workers:
                await run_concurrent(m, start, stop, workers[m.name], counter)
            else:
                await run_sequential(m, start, stop, counter)


ECHO_REPLY = {
    "decision": "permit",
    "basis": "holder",
    "consent_id": None,
    "reason": "permitted",
    "decision_id": new_id(),
    "policy_version": POLICY_VERSION,
}


async def start_echo_responders(nc: NATS) -> list[Any]:
    """Responders on the consent service's own connection: a plain nats-py echo, and
    ``stafett_shared.rpc.serve`` handlers that answer like check and filter do."""

    async def raw(msg: Msg) -> None:
        await msg.respond(msg.data)

    async def check_like(payload: dict[str, Any]) -> dict[str, Any]:
        return {**ECHO_REPLY, "case": payload["resource"]["case_id"]}

    async def filter_like(payload: dict[str, Any]) -> dict[str, Any]:
        ids = payload["case_ids"]
        return {"permitted": ids[: len(ids) // 2]}

    return [
        await nc.subscribe("bench.echo.raw", cb=raw),
        await serve(nc, "bench.echo.check", check_like),
        await serve(nc, "bench.echo.filter", filter_like),
    ]


async def measure(
    harness: ConsentHarness,
    nc: NATS,
    world: World,
    plan: Plan,
    counter: StatementCounter,
    surprise: Surprises,
) -> list[Row]:
    decisions: DecisionPoint = harness.runtime.extras["decisions"]
    access = AccessClient(nc, service="case", permit_cache_s=0)
    total = plan.checks + plan.warmup
    local_q = queries(world, plan, total, seed=1)
    nats_q = queries(world, plan, total, seed=2)
    conc_q = queries(world, plan, plan.concurrent_checks + plan.warmup, seed=3)
    principals = {p: Principal(kind="person", id=p, issuer="bench") for p in _people(world)}
    case_ids = [c.case_id for c in world.cases]
    subscriptions = await start_echo_responders(harness.runtime.nc)
    sessions = harness.runtime.sessions
    check_payload_bytes = len(
        json.dumps(
            {
                "principal": {"id": "ann-kristin-allum", "kind": "person"},
                "action": "case:read",
                "resource": {"case_id": new_id(), "entry_id": None},
            }
        )
    )
    raw_body = b"x" * check_payload_bytes

    async def check_local(i: int) -> str:
        q = local_q[i % len(local_q)]
        out = await decisions.check(q.principal, q.action, q.case_id)
        return surprise.tally(q, out.decision)

    async def check_nats(i: int) -> str:
        q = nats_q[i % len(nats_q)]
        out = await access.check(principals[q.principal], q.action.value, q.case_id)
        return surprise.tally(q, out.decision)

    async def check_nats_concurrent(i: int) -> str:
        q = conc_q[i % len(conc_q)]
        out = await access.check(principals[q.principal], q.action.value, q.case_id)
        return surprise.tally(q, out.decision)

    async def echo_raw(_i: int) -> None:
        await nc.request("bench.echo.raw", raw_body, timeout=2)

    async def echo_rpc(i: int) -> None:
        q = nats_q[i % len(nats_q)]
        await request(
            nc,
            "bench.echo.check",
            {
                "principal": {"id": q.principal, "kind": "person"},
                "action": q.action.value,
                "resource": {"case_id": q.case_id, "entry_id": None},
            },
            timeout=2,
        )

    async def select_pk(i: int) -> None:
        async with sessions() as session:
            row = (
                await session.execute(
                    select(cases).where(cases.c.case_id == case_ids[i % len(case_ids)])
                )
            ).first()
        if row is None:
            raise RuntimeError("the case is missing")

    def insert_blocking(*, on_loop: bool) -> None:
        # The same INSERT a decision makes, into the same table, on the decision point's own
        # blocking connection, in its own transaction, where a decision makes it.
        with decisions.engines(on_loop)[1].connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            conn.execute(
                decision_records.insert().values(
                    decision_id=new_id(),
                    decided_at=datetime.now(UTC),
                    principal_id="bench-baseline",
                    principal_kind="person",
                    action="case:read",
                    case_id=case_ids[0],
                    entry_id=None,
                    decision="permit",
                    basis="holder",
                    consent_id=None,
                    reason="permitted",
                    detail="holder: the stafettholder is responsible for the case",
                    policy_version="bench",
                )
            )
            conn.commit()

    async def insert_row(_i: int) -> None:
        await decisions.run(insert_blocking)

    async def hop(_i: int) -> None:
        await decisions.in_thread(int)

    single = [
        Measurement("check_local", check_local, plan.checks),
        Measurement("check_nats", check_nats, plan.checks),
        Measurement("echo_raw", echo_raw, plan.baselines),
        Measurement("echo_rpc", echo_rpc, plan.baselines),
        Measurement("select_pk", select_pk, plan.baselines),
        Measurement("insert_row", insert_row, plan.baselines),
        Measurement("hop", hop, plan.baselines),
    ]
    concurrent = Measurement("check_nats_concurrent", check_nats_concurrent, plan.concurrent_checks)
    try:
        await measure_rounds(single, plan, counter)
        await measure_rounds(
            [concurrent], plan, counter, concurrency={concurrent.name: plan.concurrency}
        )
        filter_rows = await measure_filters(decisions, access, nc, world, plan, counter, principals)
    finally:
        for sub in subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    by = {m.name: m.sample for m in [*single, concurrent]}
    deny_pct = f"{plan.deny_share:.0%} denials"
    nats_note = "client and service in this one process"
    return [
        by["check_local"].row(
            f"DecisionPoint.check, mix ({deny_pct})", target=TARGET_CHECK_LOCAL_MS
        ),
        by["check_local"].split("permit", "  of which permits", target=TARGET_CHECK_LOCAL_MS),
        by["check_local"].split(
            "deny", "  of which denials (+ event append)", target=TARGET_CHECK_LOCAL_MS
        ),
        by["check_nats"].row(
            f"AccessClient.check over NATS, mix ({deny_pct})",
            target=TARGET_CHECK_NATS_MS,
            note=nats_note,
        ),
        by["check_nats"].split("permit", "  of which permits", target=TARGET_CHECK_NATS_MS),
        by["check_nats"].split(
            "deny", "  of which denials (+ event append)", target=TARGET_CHECK_NATS_MS
        ),
        by["check_nats_concurrent"].row(
            f"AccessClient.check, {plan.concurrency} concurrent callers",
            note="throughput under load",
        ),
        *filter_rows,
        by["echo_raw"].row(f"baseline: raw nats-py request/reply, {len(raw_body)} B", sql=False),
        by["echo_rpc"].row("baseline: rpc.request/serve echo, check-sized", sql=False),
        by["select_pk"].row("baseline: SELECT one case by primary key"),
        by["hop"].row("baseline: one hop to the decision thread"),
        by["insert_row"].row("baseline: INSERT one decision record + commit"),
    ]


async def measure_filters(
    decisions: DecisionPoint,
    access: AccessClient,
    nc: NATS,
    world: World,
    plan: Plan,
    counter: StatementCounter,
    principals: dict[str, Principal],
) -> list[Row]:
    total = plan.filters + min(plan.warmup, plan.filters)
    local_calls = filter_calls(world, total, seed=4)
    nats_calls = filter_calls(world, total, seed=5)
    permitted: list[int] = []

    async def filter_local(i: int) -> None:
        who, ids = local_calls[i % len(local_calls)]
        permitted.append(len(await decisions.filter(who, Action.CASE_READ, ids)))

    async def filter_nats(i: int) -> None:
        who, ids = nats_calls[i % len(nats_calls)]
        await access.filter(principals[who], "case:read", ids)

    async def echo_filter(i: int) -> None:
        who, ids = nats_calls[i % len(nats_calls)]
        await request(
            nc,
            "bench.echo.filter",
            {"principal": {"id": who, "kind": "person"}, "action": "case:read", "case_ids": ids},
            timeout=5,
        )

    ms = [
        Measurement("filter_local", filter_local, plan.filters),
        Measurement("filter_nats", filter_nats, plan.filters),
        Measurement("echo_filter", echo_filter, plan.filters),
    ]
    await measure_rounds(ms, replace_warmup(plan, min(plan.warmup, plan.filters)), counter)
    by = {m.name: m.sample for m in ms}
    kept = sum(permitted) / len(permitted) if permitted else 0
    known = min(FILTER_IDS, len(world.cases))
    ids_note = f"{known} cases + {FILTER_IDS - known} unknown ids" if known < FILTER_IDS else ""
    return [
        by["filter_local"].row(
            f"DecisionPoint.filter, {FILTER_IDS} ids",
            target=TARGET_FILTER_MS,
            note=ids_note or f"{kept:.0f} permitted on average",
        ),
        by["filter_nats"].row(
            f"AccessClient.filter over NATS, {FILTER_IDS} ids", target=TARGET_FILTER_MS
        ),
        by["echo_filter"].row(f"baseline: rpc echo of {FILTER_IDS} ids", sql=False),
    ]


def replace_warmup(plan: Plan, warmup: int) -> Plan:
    return Plan(**{**asdict(plan), "warmup": warmup})


def _people(world: World) -> set[str]:
    people = set(STAFF)
    for c in world.cases:
        people.update(c.guardians)
        if c.child_id:
            people.add(c.child_id)
    return people


# --- profiling ------------------------------------------------------------------------------


PHASES = (
    "the database work, all of it",
    "  indexed_permit (access index)",
    "  load_case_facts",
    "  load_principal_facts",
    "  decide (policy)",
    "  INSERT + COMMIT of the record",
    "_publish (the denial's event)",
)


class PhaseClock:
    """Wall time and SQL statements per phase of a check, by wrapping the functions the
    decision point calls (in this process only; the service's code is not changed)."""

    def __init__(self, counter: StatementCounter) -> None:
        self.counter = counter
        self.seconds: dict[str, float] = {}
        self.statements: dict[str, int] = {}

    def wrap_async(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0, s0 = time.perf_counter(), self.counter.count
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.statements[name] = self.statements.get(name, 0) + self.counter.count - s0

        return timed

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, s0 = time.perf_counter(), self.counter.count
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.statements[name] = self.statements.get(name, 0) + self.counter.count - s0

        return timed


async def profile_checks(
    harness: ConsentHarness, world: World, plan: Plan, counter: StatementCounter
) -> str:
    """Where an in-process check spends its time: wall time and SQL per phase, the SQL
    statements themselves, and a cProfile of the Python (text for the reader, not a row)."""
    import stafett_consent.decisions as decisions_module

    decisions: DecisionPoint = harness.runtime.extras["decisions"]
    mix = queries(world, replace_warmup(plan, 0), 4 * plan.checks, seed=6)
    out = io.StringIO()
    for label, chosen in (
        ("permits", [q for q in mix if q.expect == "permit"][:1000]),
        ("denials", [q for q in mix if q.expect == "deny"][:200]),
    ):
        if not chosen:
            continue
        n = len(chosen)
        # 1. Phases, without the profiler's overhead.
        clock = PhaseClock(counter)
        counter.texts.clear()
        counter.other.clear()
        counter.keep_texts = True
        with contextlib.ExitStack() as patches:
            for name in ("indexed_permit", "load_case_facts", "load_principal_facts"):
                original = getattr(decisions_module, name)
                patches.enter_context(
                    mock.patch.object(decisions_module, name, clock.wrap("  " + name, original))
                )
            patches.enter_context(
                mock.patch.object(
                    decisions_module, "decide", clock.wrap("  decide (policy)", decide)
                )
            )
            patches.enter_context(
                mock.patch.object(
                    decisions,
                    "_decide_and_record",
                    clock.wrap("the database work, all of it", decisions._decide_and_record),
                )
            )
            patches.enter_context(
                mock.patch.object(
                    decisions,
                    "_publish",
                    clock.wrap_async("_publish (the denial's event)", decisions._publish),
                )
            )
            before = counter.count
            began = time.perf_counter()
            for q in chosen:
                await decisions.check(q.principal, q.action, q.case_id)
            elapsed = time.perf_counter() - began
        counter.keep_texts = False
        statements = counter.count - before
        out.write(
            f"\n--- {n} in-process checks ({label}): {elapsed / n * 1000:.2f} ms and "
            f"{statements / n:.1f} SQL statements each\n"
        )
        out.write(f"  {'phase':<36} {'ms/check':>8} {'SQL/check':>9}\n")
        work = clock.seconds.get("the database work, all of it", 0.0)
        inner = sum(v for k, v in clock.seconds.items() if k.startswith(" "))
        clock.seconds["  INSERT + COMMIT of the record"] = work - inner
        accounted = sum(v for k, v in clock.seconds.items() if not k.startswith(" "))
        for name in PHASES:
            if name not in clock.seconds:
                continue
            sql = f"{clock.statements[name] / n:9.1f}" if name in clock.statements else ""
            out.write(f"  {name:<36} {clock.seconds[name] / n * 1000:8.2f} {sql:>9}\n")
        out.write(
            f"  {'rest (outside the database work)':<36} {(elapsed - accounted) / n * 1000:8.2f}\n"
        )
        out.write("  statements sent (per check; includes the projector's, if it ran meanwhile):\n")
        for text, times in counter.texts.most_common(14):
            out.write(f"  {times / n:5.2f}  {text}\n")
        for what, times in sorted(counter.other.items()):
            ping = (
                " (each pings the server: pool_pre_ping)"
                if (what == "pool checkout" and counter.pre_ping)
                else ""
            )
            out.write(f"  {times / n:5.2f}  {what}{ping}\n")
        # 2. The database work's Python, under cProfile: called directly, where the decision
        # point makes it (cProfile sees one thread only).
        if label == "permits":
            questions = [
                _Question(
                    new_id(), datetime.now(UTC), q.principal, "person", q.action, q.case_id, None
                )
                for q in chosen
            ]
            profiler = cProfile.Profile()
            profiler.enable()
            for question in questions:
                decisions._decide_and_record(question, on_loop=decisions.on_loop)
            profiler.disable()
            out.write(f"\n--- cProfile of the same {n} checks' database work, by self time\n")
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


# --- databases and servers ------------------------------------------------------------------


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str]:
    configured = os.environ.get("STAFETT_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from stafett_shared.testing.servers import start_postgres

    with start_postgres() as url:
        if url is None:
            raise SystemExit(
                "no PostgreSQL: set STAFETT_TEST_DATABASE_URL, or install the server binaries "
                "(initdb, pg_ctl) or Docker"
            )
        yield url


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL; a PostgreSQL database is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'consent.db'}"
        return
    with postgres_admin_url() as admin_url:
        name = "bench_" + new_id().lower()
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        base, _, _ = admin_url.rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@dataclass
class Result:
    rows: list[Row]
    world: World
    database_version: str
    surprises: Counter[str]
    profile: str = ""


async def run(plan: Plan, kind: str, *, profile: bool) -> Result:
    with tempfile.TemporaryDirectory(prefix="stafett-bench-consent-") as tmp:
        folder = Path(tmp)
        server = NatsServerProcess(folder / "js", free_port(), sync_always=True)
        server.start()
        try:
            async with (
                database(kind, folder) as url,
                running_consent(server.url, url, folder / "data") as harness,
            ):
                decision_point = harness.runtime.extras["decisions"]
                blocking = {
                    id(e): e
                    for on_loop in {False, decision_point.on_loop}
                    for e in decision_point.engines(on_loop)
                }
                counter = StatementCounter(harness.runtime.engine, *blocking.values())
                world = await build_world(harness, plan)
                version = await database_version(harness.runtime.engine)
                surprise = Surprises()
                nc = await nats.connect(server.url, connect_timeout=5, name="bench-caller")
                try:
                    rows = await measure(harness, nc, world, plan, counter, surprise)
                finally:
                    await nc.close()
                text = await profile_checks(harness, world, plan, counter) if profile else ""
                return Result(rows, world, version, surprise.counts, text)
        finally:
            server.stop()


async def database_version(engine: AsyncEngine) -> str:
    from sqlalchemy import text

    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            value = await conn.scalar(text("select sqlite_version()"))
            return f"SQLite {value}"
        value = await conn.scalar(text("show server_version"))
        return f"PostgreSQL {value}"


# --- output ---------------------------------------------------------------------------------


def render(result: Result) -> str:
    world = result.world
    children = sum(1 for c in world.cases if c.child_id)
    teams = sum(len(c.team) for c in world.cases)
    consents = sum(1 for c in world.cases if c.consent_id)
    header = (
        f"{'operation':<52} {'n':>6} {'ops/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'SQL/op':>6}  "
        f"{'target p99':>10} {'':>4}"
    )
    lines = [
        f"world: {len(world.cases)} cases, {children} identified children, {teams} team "
        f"members, {consents} active consents, {world.access_rows} access-index rows; "
        f"built in {world.seconds:.1f} s ({world.last_seq} events)",
        "",
        header,
        "-" * len(header),
    ]
    for r in result.rows:
        p50 = "" if math.isnan(r.p50_ms) else f"{r.p50_ms:.2f}"
        p99 = "" if math.isnan(r.p99_ms) else f"{r.p99_ms:.2f}"
        sql = "" if r.sql_per_op is None else f"{r.sql_per_op:.1f}"
        target = "" if r.target_p99_ms is None else f"<= {r.target_p99_ms:g} ms"
        lines.append(
            f"{r.name:<52} {r.count:>6} {r.ops_per_s:>7.0f} {p50:>7} {p99:>7} {sql:>6}  "
            f"{target:>10} {r.verdict:>4}" + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.update(NO_RATE_LIMIT)  # read by the services' settings
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="less work, a few seconds")
    parser.add_argument("--json", action="store_true", help="also write bench/results/*.json")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the read-model database (default: a temporary SQLite file)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of in-process checks and the SQL each one sends",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    # As a service process does, but errors only: request logs would drown the table.
    configure_logging("bench", os.environ.get("STAFETT_LOG_LEVEL", "ERROR"), json=False)
    # Services run with an SDK tracer provider installed; so does the benchmark.
    configure_tracing("bench", "none")

    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    result = asyncio.run(run(plan, args.database, profile=args.profile))
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()[0]
    print(
        f"Stafett consent decision benchmark ({mode}), {result.database_version}, "
        f"nats-server with sync_interval: always, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load_before:.1f} before "
        f"and {load_after:.1f} after (this run adds about 1)"
    )
    print(render(result))
    print(
        f"\n{elapsed:.1f} s in all. Targets are the issue's, shown as information only. "
        "SQL/op counts statements the service sent per operation."
    )
    for what, times in result.surprises.most_common():
        print(f"note: {times} answers differed from the world's design: {what}")
    if result.profile:
        print(result.profile)
    if args.json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = {
            "benchmark": "consent",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "database": result.database_version,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [load_before, load_after],
            "plan": asdict(plan),
            "world": {
                "cases": len(result.world.cases),
                "children": sum(1 for c in result.world.cases if c.child_id),
                "team_members": sum(len(c.team) for c in result.world.cases),
                "active_consents": sum(1 for c in result.world.cases if c.consent_id),
                "access_index_rows": result.world.access_rows,
                "events": result.world.last_seq,
                "build_seconds": result.world.seconds,
            },
            "rows": [r.as_json() for r in result.rows],
            "surprises": dict(result.surprises),
            "seconds": elapsed,
        }
        path = RESULTS_DIR / f"consent-{args.database}-{mode}-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
