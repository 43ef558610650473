"""Benchmark of the stafettlogg: appends over HTTP and chain verification, with baselines.

Run from the project folder::

    .venv/bin/python bench/log.py              # about a hundred seconds on 2 cores
    .venv/bin/python bench/log.py --quick      # a smoke check, under thirty seconds
    .venv/bin/python bench/log.py --json       # also write bench/results/log-*.json
    .venv/bin/python bench/log.py --profile    # where an append and a verification go

The script starts its own nats-server (``sync_interval: always``, the single-node production
setting) in a temporary folder and runs the consent, case and log services in-process on that
server, each on its own temporary SQLite file, the way the integration tests run them. Appends
are ``POST /api/v1/logs/{case}/entries`` through ``httpx.ASGITransport``: the request goes
through the whole FastAPI app (authentication, validation, idempotency, the access decision
over NATS, encryption, the hash chain, the append, the read model) but no socket and no HTTP
server, and all three services share this process's one event loop and its CPU. Beside the
appends stands the raw nats-py ``js.publish`` rate of a stored log event's bytes, measured in
the same run on the same server.

Then verification: ``verify_chain`` over every log event of the stream, ``verify_export`` of
the stream exported the way ``stafett audit export`` does against a checkpoint signed by the
service, and both over a larger synthetic history built in memory with ``chain_hash``, next to
the rate of ``hashlib.sha256`` over the same bytes. The issue's targets are printed beside
the numbers as information; the script exits 0 whatever they show. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import cProfile
import gc
import hashlib
import io
import json
import math
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import nats
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import event
from sqlalchemy.engine import Engine

from benchlib import (
    NO_RATE_LIMIT,
    RAW_PREFIX,
    RAW_STREAM,
    drive,
    percentile,
    process_cpu,
    raw_publisher,
    round_share,
    server_version,
)
from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import ConsentHarness, running_consent
from stafett_log import fastjson
from stafett_log import verifier as verifier_module
from stafett_log.chain import GENESIS, ChainReport, chain_hash, verify_chain, verify_stored
from stafett_log.checkpoint import Checkpoint, parse_vkey, sign_checkpoint, vkey
from stafett_log.handlers import LogService
from stafett_log.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from stafett_log.testing import LogHarness, running_log
from stafett_log.verifier import verify_export
from stafett_shared import canonical as canonical_module
from stafett_shared.canonical import canonical_json
from stafett_shared.cli import _export
from stafett_shared.embedded import NatsServerProcess, free_port
from stafett_shared.eventstore import (
    EventStore,
    StoredCommit,
    commit_payloads,
    required_stream_config,
)
from stafett_shared.ids import new_id
from stafett_shared.logging import configure_logging
from stafett_shared.projector import Projector
from stafett_shared.settings import CommonSettings
from stafett_shared.telemetry import configure_tracing

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOG_SUBJECTS = "stafett.ev.log."
WRITER = "ann-kristin-allum"  # the holder of every case, a teacher at the school
TIMEOUT_S = 10.0
SETTLE_S = 120.0
ORIGIN = "stafett.bench/log"
# A note of a realistic length; each append makes it unique with a number in front.
NOTE = (
    "Samtale med eleven om trivsel i klassen og fraværet de siste ukene. Eleven forteller at "
    "det har vært vanskelig hjemme og ønsker at helsesykepleier blir med i neste samtale."
)

# The targets.
TARGET_APPENDS_PER_S = 1000.0
TARGET_APPEND_P99_MS = 50.0
TARGET_VERIFY_EVENTS_PER_S = 100_000.0


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    appends: int  # appends spread over `cases` cases by `concurrency` clients
    cases: int
    concurrency: int
    single_client_appends: int  # one client, one append after another, over the same cases
    one_case_appends: int  # `concurrency` clients all writing in one case
    raw_publishes: int  # js.publish baseline, `concurrency` publishers
    rounds: int  # the write rows alternate this many times
    warmup: int  # appends per case before measuring
    repeats: int  # passes of each verification of this run's stream (the median is shown)
    synthetic_events: int  # log events in the in-memory history
    synthetic_cases: int
    profile_appends: int  # appends per measurement under --profile
    profile_events: int  # synthetic events in the verifier's breakdown under --profile


FULL = Plan(
    appends=2000,
    cases=20,
    concurrency=16,
    single_client_appends=60,
    one_case_appends=150,
    raw_publishes=2000,
    rounds=3,
    warmup=1,
    repeats=5,
    synthetic_events=200_000,
    synthetic_cases=200,
    profile_appends=300,
    profile_events=50_000,
)
QUICK = Plan(
    appends=300,
    cases=20,
    concurrency=16,
    single_client_appends=30,
    one_case_appends=90,
    raw_publishes=600,
    rounds=3,
    warmup=1,
    repeats=3,
    synthetic_events=40_000,
    synthetic_cases=40,
    profile_appends=90,
    profile_events=20_000,
)


# --- numbers --------------------------------------------------------------------------------


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: a number that was not measured is null.
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in data.items()}


@dataclass
class Sample:
    """Operations, wall-clock seconds, each one's latency, and what they cost besides."""

    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # this process, all threads
    loop_cpu_s: float = 0.0  # the event loop's thread only
    server_cpu_s: float = 0.0  # the nats-server process
    statements: int = 0  # SQL statements of all three services
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, other: Sample) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.cpu_s += other.cpu_s
        self.loop_cpu_s += other.loop_cpu_s
        self.server_cpu_s += other.server_cpu_s
        self.statements += other.statements
        self.failures.update(other.failures)


@dataclass
class WriteRow:
    name: str
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # per operation, this process (all threads)
    loop_cpu_ms: float  # per operation, the event loop's thread
    server_cpu_ms: float  # per operation, nats-server
    sql_per_op: float | None
    failures: int
    vs_raw: float | None = None
    targets: bool = False

    @property
    def ops_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else math.nan

    @property
    def rate_verdict(self) -> str:
        if not self.targets:
            return ""
        return "PASS" if self.ops_per_s >= TARGET_APPENDS_PER_S else "MISS"

    @property
    def p99_verdict(self) -> str:
        if not self.targets or math.isnan(self.p99_ms):
            return ""
        return "PASS" if self.p99_ms <= TARGET_APPEND_P99_MS else "MISS"

    def as_json(self) -> dict[str, Any]:
        return _json_safe(
            {
                **asdict(self),
                "ops_per_s": self.ops_per_s,
                "rate_verdict": self.rate_verdict or None,
                "p99_verdict": self.p99_verdict or None,
            }
        )


def write_row(name: str, sample: Sample, *, sql: bool = True, targets: bool = False) -> WriteRow:
    n = max(sample.count, 1)
    ms = [value * 1000 for value in sample.latencies]
    return WriteRow(
        name=name,
        count=sample.count,
        seconds=sample.seconds,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        cpu_ms=sample.cpu_s / n * 1000,
        loop_cpu_ms=sample.loop_cpu_s / n * 1000,
        server_cpu_ms=sample.server_cpu_s / n * 1000,
        sql_per_op=sample.statements / n if sql else None,
        failures=sum(sample.failures.values()),
        targets=targets,
    )


@dataclass
class VerifyRow:
    name: str
    events: int
    messages: int
    seconds: float
    floor: str | None = None  # the name of the sha256 row it is compared with
    vs_floor: float | None = None
    targets: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 and self.messages else math.nan

    @property
    def verdict(self) -> str:
        if not self.targets:
            return ""
        return "PASS" if self.events_per_s >= TARGET_VERIFY_EVENTS_PER_S else "MISS"

    def as_json(self) -> dict[str, Any]:
        return _json_safe(
            {
                **asdict(self),
                "events_per_s": self.events_per_s,
                "messages_per_s": self.messages_per_s,
                "verdict": self.verdict or None,
            }
        )


SERVICE_NAMES = ("consent", "case", "log")


def service_engines(harness: ConsentHarness | CaseHarness | LogHarness) -> list[Engine]:
    """A service's engines: its async one's and its blocking ones, which the projector and
    the service's own blocking reads use (through engines derived from them, which their
    listeners hear too)."""
    runtime = harness.runtime
    blocking = [e for e in (runtime.blocking_engine, runtime.loop_engine) if e is not None]
    return [runtime.engine.sync_engine, *blocking]


class StatementCounter:
    """Counts the SQL statements the services send, per service, and on request their text."""

    def __init__(self, engines: Sequence[Sequence[Engine]]) -> None:
        """``engines``: each service's engines (its async engine's ``sync_engine`` and any
        blocking ones), in the order of ``SERVICE_NAMES``."""
        self.count = 0
        self.by_service: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()
        self.keep_texts_of: str | None = None
        for name, own in zip(SERVICE_NAMES, engines, strict=True):
            for engine in {id(e): e for e in own}.values():
                event.listen(engine, "before_cursor_execute", self._seen(name))

    def _seen(self, name: str) -> Callable[..., None]:
        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.count += 1
            self.by_service[name] += 1
            if self.keep_texts_of == name:
                self.texts[" ".join(statement.split())[:100]] += 1

        return seen


class Meters:
    """Process, event-loop thread and nats-server CPU, and SQL statements, between two points."""

    def __init__(self, server: NatsServerProcess, counter: StatementCounter) -> None:
        self.server = server
        self.counter = counter

    def server_cpu(self) -> float:
        process = getattr(self.server, "process", None)
        return 0.0 if process is None else process_cpu(process.pid)

    @contextlib.contextmanager
    def measure(self, into: Sample) -> Iterator[None]:
        cpu, loop_cpu = time.process_time(), time.thread_time()
        server_cpu, statements = self.server_cpu(), self.counter.count
        try:
            yield
        finally:
            into.cpu_s += time.process_time() - cpu
            into.loop_cpu_s += time.thread_time() - loop_cpu
            into.server_cpu_s += self.server_cpu() - server_cpu
            into.statements += self.counter.count - statements


# --- the services ---------------------------------------------------------------------------


@dataclass
class Services:
    server: NatsServerProcess
    data_dir: Path
    consent: ConsentHarness
    case: CaseHarness
    log: LogHarness
    counter: StatementCounter
    meters: Meters


@contextlib.asynccontextmanager
async def services(folder: Path) -> AsyncIterator[Services]:
    """nats-server with sync_interval: always, and the consent, case and log services
    in-process on it, each with its own SQLite file (as tests/integration/conftest.py)."""
    server = NatsServerProcess(folder / "js", free_port(), sync_always=True)
    server.start()
    data = folder / "data"
    try:
        async with running_consent(
            server.url, f"sqlite:///{folder / 'consent.db'}", data
        ) as consent:
            loaded = await consent.load_region()
            if loaded.status_code != 200:
                raise RuntimeError(f"loading the region failed: {loaded.text}")
            async with running_case(server.url, f"sqlite:///{folder / 'case.db'}", data) as case:
                await case.runtime.projector.catch_up()
                async with running_log(server.url, f"sqlite:///{folder / 'log.db'}", data) as log:
                    await log.runtime.projector.catch_up()
                    decisions = consent.runtime.extras["decisions"]
                    counter = StatementCounter(
                        [
                            [
                                *service_engines(consent),
                                *decisions.engines(False),
                                *(decisions.engines(True) if decisions.on_loop else ()),
                            ],
                            service_engines(case),
                            service_engines(log),
                        ]
                    )
                    yield Services(
                        server, data, consent, case, log, counter, Meters(server, counter)
                    )
    finally:
        server.stop()


def projectors(svc: Services) -> list[Projector]:
    return [svc.consent.runtime.projector, svc.case.runtime.projector, svc.log.runtime.projector]


async def settle(svc: Services) -> int:
    """Wait until every service's read model holds the whole stream."""
    last = await svc.log.runtime.store.last_seq()
    for projector in projectors(svc):
        await projector.wait_for(last, SETTLE_S)
    return last


async def open_cases(svc: Services, count: int) -> list[str]:
    """Cases opened through the case service's API, known to consent and log afterwards."""
    ids: list[str] = []
    for _ in range(count):
        opened = await svc.case.open_case(WRITER)
        ids.append(str(opened["id"]))
    await settle(svc)
    return ids


# --- appends --------------------------------------------------------------------------------


class Writer:
    """Appends notes over HTTP as the cases' holder, with one token made in advance (a browser
    keeps its token, so the benchmark does not pay for signing one per request)."""

    def __init__(self, log: LogHarness) -> None:
        self.client = log.client
        self.headers = log.auth(WRITER)
        self.number = 0

    async def append(self, case_id: str, into: Sample) -> None:
        self.number += 1
        body = {
            "kind": "note",
            "text": f"{self.number:07d}. {NOTE}",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        started = time.perf_counter()
        response = await self.client.post(
            f"/api/v1/logs/{case_id}/entries", json=body, headers=self.headers
        )
        into.latencies.append(time.perf_counter() - started)
        if response.status_code != 201:
            try:
                code = str(response.json().get("code", "?"))
            except ValueError:
                code = "?"
            into.failures[f"{response.status_code} {code}"] += 1


async def run_clients(
    clients: int,
    jobs: Sequence[str],
    op: Callable[[str, Sample], Awaitable[None]],
    meters: Meters,
) -> Sample:
    """``clients`` coroutines take ``jobs`` from one queue until it is empty, measured."""
    sample = Sample(count=len(jobs))
    with meters.measure(sample):
        started = time.perf_counter()
        await drive(clients, jobs, lambda job: op(job, sample))
        sample.seconds = time.perf_counter() - started
    return sample


@dataclass
class WriteResult:
    rows: list[WriteRow]
    event_bytes: int
    by_service: dict[str, float]


Step = tuple[Sample, int, int, list[str], Callable[[str, Sample], Awaitable[None]]]


async def measure_writes(svc: Services, plan: Plan, cases: list[str], one_case: str) -> WriteResult:
    writer = Writer(svc.log)
    # Warm up: every case has an entry (its chain head exists), every path has run once.
    warm = Sample()
    for case_id in [*cases, one_case] * plan.warmup:
        await writer.append(case_id, warm)
    if warm.failures:
        raise RuntimeError(f"warm-up appends failed: {dict(warm.failures)}")
    store = svc.log.runtime.store
    last = await store.get(await store.last_seq())
    if last is None or not last.subject.startswith(LOG_SUBJECTS):
        raise RuntimeError("the last message of the stream is not a log event")
    body = bytes(last.data)  # a stored log event, byte for byte
    await settle(svc)

    nc = await nats.connect(svc.server.url, connect_timeout=5, name="bench-raw")
    try:
        js = nc.jetstream(timeout=TIMEOUT_S)
        # The baseline stream has exactly the settings of EVENTS; only the client path differs.
        await js.add_stream(required_stream_config(RAW_STREAM, RAW_PREFIX, 1))
        publish = raw_publisher(js, body)
        raw_subjects = [f"{RAW_PREFIX}.log.{c}" for c in cases]
        for subject in raw_subjects:
            await publish(subject, Sample())

        raw, spread, single, one = Sample(), Sample(), Sample(), Sample()
        before = Counter(svc.counter.by_service)

        def jobs(total: int, targets: list[str], r: int) -> list[str]:
            """Round ``r``'s share of ``total`` operations, round robin over ``targets``."""
            share = round_share(total, plan.rounds, r)
            return [targets[i % len(targets)] for i in range(share)]

        c = plan.concurrency
        steps: list[Step] = [
            (raw, c, plan.raw_publishes, raw_subjects, publish),
            (spread, c, plan.appends, cases, writer.append),
            (single, 1, plan.single_client_appends, cases, writer.append),
            (one, c, plan.one_case_appends, [one_case], writer.append),
        ]
        for r in range(plan.rounds):
            # Rotate the order each round so that no row always runs first (rounds < steps).
            for into, clients, total, targets, op in steps[r:] + steps[:r]:
                into.add(await run_clients(clients, jobs(total, targets, r), op, svc.meters))
                await settle(svc)  # the next row starts with every read model caught up
    finally:
        await nc.close()

    appends = spread.count + single.count + one.count
    by_service = {
        name: (svc.counter.by_service[name] - before[name]) / max(appends, 1)
        for name in ("log", "case", "consent")
    }
    base = write_row(f"raw js.publish, {c} publishers", raw, sql=False)
    rows = [
        base,
        write_row(f"POST entries, 1 client, {len(cases)} cases", single),
        write_row(f"POST entries, {c} clients, {len(cases)} cases", spread, targets=True),
        write_row(f"POST entries, {c} clients, one case", one, targets=True),
    ]
    for row, sample in zip(rows[1:], (single, spread, one), strict=True):
        row.vs_raw = row.ops_per_s / base.ops_per_s
        for what, times in sample.failures.items():
            print(f"note: {times} appends in '{row.name}' failed: {what}")
    return WriteResult(rows, len(body), by_service)


# --- verification of this run's stream ------------------------------------------------------


@contextlib.contextmanager
def small_heap() -> Iterator[None]:
    """Keep the benchmark's own data out of the garbage collector's way while timing.

    The benchmark holds up to hundreds of thousands of parsed events that the offline
    verifier never would; frozen, they are not scanned by collections that the verifier's
    allocations trigger, so the time is what a verifier process with a small heap spends.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls, and the last call's result."""
    times: list[float] = []
    result: Any = None
    with small_heap():
        for _ in range(repeats):
            started = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2], result


async def read_stream(store: EventStore) -> list[StoredCommit]:
    commits: list[StoredCommit] = []
    seq = 1
    while True:
        batch = await store.read(seq, limit=1000, decode=False)
        if not batch:
            return commits
        commits.extend(batch)
        seq = batch[-1].seq + 1


Chains = dict[str, list[tuple[int, dict[str, Any]]]]
Stored = dict[str, list[tuple[int, bytes]]]
_Chain = TypeVar("_Chain")


def stored_of(commits: Sequence[StoredCommit]) -> Stored:
    """Each log subject's ``(seq, stored bytes)`` in stream order."""
    stored: Stored = {}
    for commit in commits:
        if commit.subject.startswith(LOG_SUBJECTS):
            stored.setdefault(commit.subject, []).append((commit.seq, commit.data))
    return stored


def parsed_of(stored: Stored) -> Chains:
    """The ``(seq, event)`` pairs of each chain, read as ``verify_stored`` reads them (with
    orjson where ``stafett_log.fastjson`` may)."""
    chains: Chains = {}
    for subject, messages in stored.items():
        links = chains.setdefault(subject, [])
        for seq, data in messages:
            fast, value = fastjson.parse_canonical(data)
            if not fast:
                raise RuntimeError("a stored message is not in canonical form")
            links.extend((seq, event) for event in value)
    return chains


def verify_each(chains: Mapping[str, _Chain], verify: Callable[[_Chain], ChainReport]) -> int:
    """``verify`` each subject's chain; the events checked, or an error at the first that
    does not verify."""
    events = 0
    for subject, chain in chains.items():
        report = verify(chain)
        if not report.ok:
            raise RuntimeError(f"the chain of {subject} does not verify: {report.reason}")
        events += report.entries
    return events


def verify_all(chains: Chains) -> int:
    """``verify_chain`` over events already parsed, re-serialised as ``verify_stored`` does."""
    return verify_each(chains, lambda links: verify_chain(links, encode=fastjson.dumps_parsed))


def verify_all_stored(stored: Stored) -> int:
    """What ``GET /logs/{case}/verify`` does for each case: ``verify_stored``."""
    return verify_each(stored, verify_stored)


@dataclass
class StreamVerification:
    rows: list[VerifyRow]
    messages: int
    log_events: int
    export_seconds: float
    tree_size: int
    template: dict[str, Any]


async def verify_stream(svc: Services, plan: Plan, folder: Path) -> StreamVerification:
    await settle(svc)
    commits = await read_stream(svc.log.runtime.store)
    stored = stored_of(commits)
    chains = parsed_of(stored)
    events = sum(len(links) for links in chains.values())
    pure_s, counted = timed(lambda: verify_all(chains), plan.repeats)
    stored_s, counted_stored = timed(lambda: verify_all_stored(stored), plan.repeats)
    if counted != events or counted_stored != events:
        raise RuntimeError(f"verify_chain checked {counted} of {events} events")

    # The export, the way `stafett audit export` makes it, and a checkpoint the service signs.
    export = folder / "events.jsonl"
    settings = CommonSettings(nats_url=svc.server.url, data_dir=svc.data_dir)
    started = time.perf_counter()
    written = await _export(export, settings)
    export_s = time.perf_counter() - started
    await svc.log.runtime.projector.catch_up()
    checkpoint = await svc.log.runtime.extras["checkpoints"].make()
    note = str(checkpoint["note"])
    key_name, public_key = parse_vkey(str(checkpoint["vkey"]))

    def run_verifier() -> verifier_module.Report:
        with export.open(encoding="utf-8") as lines:
            return verify_export(lines, note, key_name, public_key)

    verify_s, report = timed(run_verifier, plan.repeats)
    if not report.ok:
        raise RuntimeError(f"the export does not verify: {report.reason}")
    rows = [
        VerifyRow(f"verify_chain, this run's {len(chains)} chains (parsed)", events, 0, pure_s),
        VerifyRow("verify_stored (parse + verify_chain), this run's", events, 0, stored_s),
        VerifyRow(
            f"verify_export, this run's export ({report.messages} msgs)",
            report.events,
            report.messages,
            verify_s,
            targets=True,
        ),
    ]
    first_log = next(c for c in commits if c.subject.startswith(LOG_SUBJECTS))
    return StreamVerification(
        rows=rows,
        messages=written,
        log_events=events,
        export_seconds=export_s,
        tree_size=int(checkpoint["tree_size"]),
        template=commit_payloads(first_log)[0],
    )


# --- verification of a synthetic history ----------------------------------------------------


@dataclass
class Synthetic:
    """A history of log events only, one event per message as the service writes them."""

    chains: Chains
    stored: Stored
    lines: list[str]  # the export, as `stafett audit export` writes it
    messages: list[bytes]  # the stored bytes of each message
    hashed: list[bytes]  # what each event's hash is taken over: prevhash bytes ‖ canonical
    note: str  # a checkpoint over all of it
    public_key: bytes
    build_seconds: float

    @property
    def events(self) -> int:
        return len(self.messages)


def build_synthetic(template: Mapping[str, Any], events: int, cases: int) -> Synthetic:
    """``events`` log events over ``cases`` chains, interleaved, shaped like ``template`` (a
    real stored log event) with fresh ids and random encrypted text of the same length; each
    event's ``hash`` is made by ``chain_hash``."""
    started = time.perf_counter()
    gc.collect()
    gc.disable()  # hundreds of thousands of new dicts and no cycles: no collections needed
    try:
        synthetic = _build(template, events, cases)
    finally:
        gc.enable()
    synthetic.build_seconds = time.perf_counter() - started
    return synthetic


def _build(template: Mapping[str, Any], events: int, cases: int) -> Synthetic:
    case_ids = [new_id() for _ in range(cases)]
    heads = dict.fromkeys(case_ids, GENESIS)
    chains: Chains = {c: [] for c in case_ids}
    stored: Stored = {c: [] for c in case_ids}
    lines: list[str] = []
    messages: list[bytes] = []
    hashed: list[bytes] = []
    tree = CompactRange()
    data = dict(template["data"])
    text_bytes = max(16, (len(str(data.get("text") or "")) - len("enc:v1:")) * 3 // 4)
    base = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    for i in range(events):
        seq = i + 1
        case_id = case_ids[i % cases]
        when = (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        body = {
            **template,
            "id": new_id(),
            "subject": case_id,
            "time": when,
            "data": {
                **data,
                "case_id": case_id,
                "entry_id": new_id(),
                "occurred_at": when,
                "text": "enc:v1:" + base64.urlsafe_b64encode(os.urandom(text_bytes)).decode(),
            },
            "prevhash": heads[case_id],
        }
        body.pop("hash", None)
        hashed.append(bytes.fromhex(heads[case_id]) + fastjson.dumps_standard(body))
        body["hash"] = heads[case_id] = chain_hash(heads[case_id], body)
        chains[case_id].append((seq, body))
        message = fastjson.dumps_standard([body])
        messages.append(message)
        stored[case_id].append((seq, message))
        tree.append(leaf_hash(message))
        lines.append(
            json.dumps(
                {
                    "seq": seq,
                    "subject": f"{LOG_SUBJECTS}{case_id}",
                    "time": when,
                    "data": base64.b64encode(message).decode(),
                },
                sort_keys=True,
                separators=(",", ":"),
            )
            + "\n"
        )
    if messages and messages[0] != canonical_json([chains[case_ids[0]][0][1]]):
        raise RuntimeError("the synthetic messages are not in canonical form")
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), ORIGIN, key)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # The parsed events as verify_stored reads them (with orjson where it may).
    return Synthetic(parsed_of(stored), stored, lines, messages, hashed, note, public, math.nan)


def sha256_chain_floor(synthetic: Synthetic) -> float:
    started = time.perf_counter()
    for data in synthetic.hashed:
        hashlib.sha256(data).hexdigest()
    return time.perf_counter() - started


def sha256_export_floor(synthetic: Synthetic) -> float:
    """The hashing an export's verification cannot avoid: each event's chain hash, each
    message's leaf hash, and one interior node of the Merkle tree per leaf."""
    node = b"\x01" + bytes(64)
    started = time.perf_counter()
    for data, message in zip(synthetic.hashed, synthetic.messages, strict=True):
        hashlib.sha256(data).hexdigest()
        hashlib.sha256(b"\x00" + message).digest()
        hashlib.sha256(node).digest()
    return time.perf_counter() - started


def verify_with_command(synthetic: Synthetic, workers: int) -> float:
    """Seconds for the auditor's command over the synthetic export in a file, start-up
    included: a process of its own, as an auditor runs it."""
    with tempfile.TemporaryDirectory(prefix="stafett-bench-verify-") as tmp:
        export = Path(tmp) / "events.jsonl"
        export.write_text("".join(synthetic.lines), encoding="utf-8")
        note = Path(tmp) / "checkpoint.txt"
        note.write_text(synthetic.note, encoding="utf-8")
        key = vkey(ORIGIN, synthetic.public_key)
        started = time.perf_counter()
        command = [sys.executable, "-m", "stafett_log.verifier", str(export), str(note), key]
        result = subprocess.run(
            [*command, "--workers", str(workers)],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
    if result.returncode != 0 or not result.stdout.startswith("OK: "):
        raise RuntimeError(f"the verifier command failed: {result.stdout}{result.stderr}")
    return seconds


def verify_synthetic(synthetic: Synthetic) -> list[VerifyRow]:
    n = synthetic.events
    with small_heap():
        chain_floor = sha256_chain_floor(synthetic)
        export_floor = sha256_export_floor(synthetic)
    chain_s, counted = timed(lambda: verify_all(synthetic.chains), 1)
    stored_s, counted_stored = timed(lambda: verify_all_stored(synthetic.stored), 1)
    if counted != n or counted_stored != n:
        raise RuntimeError(f"verify_chain checked {counted} of {n} synthetic events")
    export_s, report = timed(
        lambda: verify_export(synthetic.lines, synthetic.note, ORIGIN, synthetic.public_key), 1
    )
    if not report.ok or report.events != n:
        raise RuntimeError(f"the synthetic export does not verify: {report.reason}")
    workers = max(2, verifier_module.default_workers())
    command_s = {count: verify_with_command(synthetic, count) for count in (1, workers)}
    chain_floor_name = "floor: sha256 of each event's chained bytes"
    export_floor_name = "floor: sha256 of chained bytes + leaf + a node"
    rows = [
        VerifyRow(
            f"verify_chain, synthetic, {len(synthetic.chains)} chains (parsed)",
            n,
            0,
            chain_s,
            floor=chain_floor_name,
        ),
        VerifyRow(
            "verify_stored (parse + verify_chain), synthetic",
            n,
            0,
            stored_s,
            floor=chain_floor_name,
            targets=True,
        ),
        VerifyRow(
            "verify_export, synthetic, lines in memory",
            n,
            report.messages,
            export_s,
            floor=export_floor_name,
            targets=True,
        ),
        *(
            VerifyRow(
                f"python -m stafett_log.verifier --workers {count}",
                n,
                report.messages,
                seconds,
                floor=export_floor_name,
                targets=True,
            )
            for count, seconds in command_s.items()
        ),
        VerifyRow(chain_floor_name, n, 0, chain_floor),
        VerifyRow(export_floor_name, n, n, export_floor),
    ]
    by_name = {row.name: row for row in rows}
    for row in rows:
        if row.floor is not None:
            row.vs_floor = row.events_per_s / by_name[row.floor].events_per_s
    return rows


# --- --profile: appends ---------------------------------------------------------------------


class PhaseClock:
    """Wall time spent in named async calls. The service's code is not changed: its
    instance's methods are wrapped for the duration of a measurement."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def wrap(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def clocked(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return clocked

    @contextlib.contextmanager
    def around(self, service: LogService) -> Iterator[None]:
        with contextlib.ExitStack() as patches:
            for attr in ("write", "_decision", "_case_and_author", "_state", "_applied"):
                patches.enter_context(
                    mock.patch.object(service, attr, self.wrap(attr, getattr(service, attr)))
                )
            for owner, attr, name in (
                (service.cipher, "encrypt", "encrypt"),
                (service.store, "append", "append"),
                (service.projector, "catch_up", "catch_up"),
            ):
                patches.enter_context(
                    mock.patch.object(owner, attr, self.wrap(name, getattr(owner, attr)))
                )
            yield


PHASES: tuple[tuple[str, str], ...] = (
    ("write", "LogService.write, all of it"),
    ("_decision", "  access decision (AccessClient, NATS)"),
    ("_case_and_author", "  read the case and the author's roles (SQL)"),
    ("encrypt", "  encrypt the text (FieldCipher)"),
    ("_state", "  read chain head + case's entries (SQL)"),
    ("append", "  EventStore.append (JetStream, fsync)"),
    ("_applied", "  wait for the own read model (read-your-writes)"),
    ("catch_up", "  projector.catch_up (after a conflict)"),
)


def render_phases(title: str, sample: Sample, clock: PhaseClock, n: int) -> str:
    http_ms = sum(sample.latencies) / n * 1000
    lines = [
        f"\n--- {title}: {n / sample.seconds:.0f} appends/s, {http_ms:.2f} ms each;",
        f"    CPU per append: {sample.cpu_s / n * 1000:.2f} ms in this process "
        f"({sample.loop_cpu_s / n * 1000:.2f} ms on the event loop's thread), "
        f"{sample.server_cpu_s / n * 1000:.2f} ms in nats-server",
        f"  {'phase (wall time)':<44} {'ms/append':>9} {'calls':>6}",
    ]
    for key, label in PHASES:
        if key in clock.seconds:
            lines.append(
                f"  {label:<44} {clock.seconds[key] / n * 1000:9.2f} {clock.calls[key] / n:6.1f}"
            )
    rest = http_ms - clock.seconds["write"] / n * 1000
    lines.append(f"  {'HTTP, auth, validation, idempotency (rest)':<44} {rest:9.2f}")
    return "\n".join(lines) + "\n"


AREAS: tuple[tuple[str, str], ...] = (
    ("select.epoll", "waiting in epoll (idle, or for I/O and threads)"),
    ("stafett_log", "stafett_log"),
    ("stafett_consent", "stafett_consent"),
    ("stafett_case", "stafett_case"),
    ("stafett_shared", "stafett_shared"),
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite (handing work to its thread)"),
    ("_queue", "aiosqlite (handing work to its thread)"),
    ("sqlite3", "sqlite3"),
    ("greenlet", "greenlet (SQLAlchemy's async bridge)"),
    ("nats", "nats-py"),
    ("_socket", "socket send/recv (NATS)"),
    ("starlette", "Starlette"),
    ("fastapi", "FastAPI"),
    ("httpx", "httpx (the benchmark's client side)"),
    ("httpcore", "httpx (the benchmark's client side)"),
    ("anyio", "anyio"),
    ("pydantic", "pydantic"),
    ("opentelemetry", "OpenTelemetry"),
    ("structlog", "structlog"),
    ("cryptography", "cryptography"),
    ("jwt", "JWT"),
    ("asyncio", "asyncio"),
    ("contextvars", "asyncio"),
    ("json", "json"),
)


def area_of(filename: str, name: str) -> str:
    where = f"{filename} {name}"
    for needle, area in AREAS:
        if needle in where:
            return area
    return "other (builtins, typing, uuid, …)"


def by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: defaultdict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        totals[area_of(filename, name)] += tottime
    return sorted(totals.items(), key=lambda item: -item[1])


async def profile_appends(svc: Services, plan: Plan, cases: list[str]) -> str:
    out = io.StringIO()
    service: LogService = svc.log.runtime.extras["log"]
    writer = Writer(svc.log)
    n = plan.profile_appends
    jobs = [cases[i % len(cases)] for i in range(n)]

    # 1. One append after another, all three services running: the phases, and the SQL.
    clock = PhaseClock()
    before = Counter(svc.counter.by_service)
    svc.counter.texts.clear()
    svc.counter.keep_texts_of = "log"
    with clock.around(service):
        sequential = await run_clients(1, jobs, writer.append, svc.meters)
    svc.counter.keep_texts_of = None
    await settle(svc)
    out.write(render_phases("one client, all three services", sequential, clock, n))
    per_service = {k: (svc.counter.by_service[k] - before[k]) / n for k in SERVICE_NAMES}
    out.write(
        "  SQL statements per append: "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_service.items())
        + " (every service's projector applies every log event)\n"
        "  the log service's statements, per append:\n"
    )
    for text, times in svc.counter.texts.most_common(14):
        out.write(f"  {times / n:5.2f}  {text}\n")

    # 2. The same with the case and consent projectors paused: the log service's own share
    # (consent still answers the access decisions).
    others = [svc.consent.runtime.projector, svc.case.runtime.projector]
    for projector in others:
        await projector.stop()
    try:
        clock = PhaseClock()
        with clock.around(service):
            alone = await run_clients(1, jobs, writer.append, svc.meters)
        out.write(render_phases("one client, case and consent projectors paused", alone, clock, n))
        concurrent_alone = await run_clients(plan.concurrency, jobs, writer.append, svc.meters)
        out.write(
            f"  and with {plan.concurrency} clients: "
            f"{n / concurrent_alone.seconds:.0f} appends/s, p99 "
            f"{percentile(concurrent_alone.latencies, 99) * 1000:.0f} ms, "
            f"{concurrent_alone.cpu_s / n * 1000:.2f} ms CPU per append\n"
        )
    finally:
        for projector in others:
            projector.start()
    await settle(svc)

    # 3. The concurrent row's CPU under cProfile (the event loop's thread only).
    profiler = cProfile.Profile()
    profiler.enable()
    concurrent = await run_clients(plan.concurrency, jobs, writer.append, svc.meters)
    profiler.disable()
    await settle(svc)
    stats = pstats.Stats(profiler, stream=out)
    areas = by_area(stats)
    total = sum(seconds for _area, seconds in areas)
    out.write(
        f"\n--- cProfile of {n} appends by {plan.concurrency} clients over {len(cases)} cases, "
        f"all three services: {n / concurrent.seconds:.0f} appends/s under the profiler;\n"
        f"    CPU per append: {concurrent.loop_cpu_s / n * 1000:.2f} ms on the event loop's "
        f"thread, {(concurrent.cpu_s - concurrent.loop_cpu_s) / n * 1000:.2f} ms on other "
        "threads (aiosqlite runs SQLite there, unseen by cProfile)\n"
        "  self time on the event loop's thread, by area:\n"
    )
    for area, seconds in areas[:16]:
        out.write(f"  {seconds / n * 1000:7.2f} ms/append {seconds / total:6.1%}  {area}\n")
    out.write(
        "\n  functions by self time (ncalls counts every resumption of a coroutine, and the\n"
        "  cumulative times of coroutines overlap):\n"
    )
    stats.sort_stats("tottime").print_stats(20)
    return out.getvalue()


# --- --profile: the verifier ----------------------------------------------------------------


def profile_verifier(synthetic: Synthetic, plan: Plan) -> str:
    out = io.StringIO()
    n = min(plan.profile_events, synthetic.events)
    lines = synthetic.lines[:n]
    # A checkpoint at tree size 0 covers none of the prefix; everything but the root is checked.
    key = Ed25519PrivateKey.generate()
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), ORIGIN, key)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    profiler = cProfile.Profile()
    with small_heap():
        profiler.enable()
        verify_export(lines, empty, ORIGIN, public)
        profiler.disable()
    out.write(f"\n--- cProfile of verify_export over {n} synthetic messages, by self time\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)

    # The same work in pieces, without the profiler: what each step costs per event.
    records = [json.loads(line) for line in lines]
    datas = [base64.b64decode(r["data"]) for r in records]
    events = [json.loads(d)[0] for d in datas]
    prevs = [str(e["prevhash"]) for e in events]
    hashed = synthetic.hashed[:n]
    hex64 = verifier_module._HEX64

    def each(label: str, step: Callable[[], None]) -> None:
        with small_heap():
            started = time.perf_counter()
            step()
            out.write(f"  {(time.perf_counter() - started) / n * 1e6:7.2f}  {label}\n")

    def loads_lines() -> None:
        for line in lines:
            json.loads(line)

    def parse_lines() -> None:
        for line in lines:
            fastjson.loads_plain(line)

    def b64() -> None:
        for r in records:
            base64.b64decode(r["data"], validate=True)

    def b64_strict() -> None:
        for r in records:
            binascii.a2b_base64(r["data"], strict_mode=True)

    def tree() -> None:
        CompactRange().extend(leaf_hash(d) for d in datas)

    def loads_messages() -> None:
        for d in datas:
            json.loads(d.decode("utf-8"))

    def parse_messages() -> None:
        for d in datas:
            fastjson.parse_canonical(d)

    def regexes() -> None:
        for p in prevs:
            hex64.fullmatch(p)
            hex64.fullmatch(p)

    def dumps() -> None:
        for e in events:
            fastjson.dumps_standard({k: v for k, v in e.items() if k != "hash"})

    def dumps_fast() -> None:
        for e in events:
            fastjson.dumps_parsed({k: v for k, v in e.items() if k != "hash"})

    def event_hashes() -> None:
        for p, e in zip(prevs, events, strict=True):
            verifier_module.event_hash(p, e, fastjson.dumps_parsed)

    def chain_hashes() -> None:
        for p, e in zip(prevs, events, strict=True):
            chain_hash(p, e)

    def checks() -> None:
        for e in events:
            canonical_module._check(e, 0)

    def sha() -> None:
        for h in hashed:
            hashlib.sha256(h).hexdigest()

    out.write(f"--- the steps one at a time over the same {n} messages, µs per event\n")
    fast = "orjson" if fastjson.ACCELERATED else "no orjson: the standard library"
    out.write(f"  verify_export, per message (fastjson: {fast}):\n")
    each("fastjson.loads_plain of the export line", parse_lines)
    each("  (json.loads of the line instead)", loads_lines)
    each("binascii.a2b_base64(strict_mode=True) of data", b64_strict)
    each("  (base64.b64decode(validate=True) instead)", b64)
    each("leaf_hash + CompactRange.append", tree)
    each("fastjson.parse_canonical of the message bytes", parse_messages)
    each("  (json.loads of the message instead)", loads_messages)
    each("two 64-hex regex fullmatches", regexes)
    each("dict copy without hash + fastjson.dumps_parsed", dumps_fast)
    each("  (canonical json.dumps instead)", dumps)
    each("verifier.event_hash (dumps_parsed + fromhex + sha256)", event_hashes)
    out.write("  verify_chain, per event:\n")
    each("chain.chain_hash (canonical_json + sha256)", chain_hashes)
    each("  of which canonical_json's type check (_check)", checks)
    each("hashlib.sha256 of the chained bytes alone", sha)
    return out.getvalue()


# --- the run --------------------------------------------------------------------------------


@dataclass
class Result:
    writes: WriteResult
    stream: StreamVerification
    verify_rows: list[VerifyRow]
    synthetic_build_s: float
    setup_s: float
    profile: str = ""


async def run(plan: Plan, *, profile: bool) -> Result:
    with tempfile.TemporaryDirectory(prefix="stafett-bench-log-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        async with services(folder) as svc:
            cases = await open_cases(svc, plan.cases + 1)
            one_case = cases.pop()
            setup_s = time.perf_counter() - started
            writes = await measure_writes(svc, plan, cases, one_case)
            stream = await verify_stream(svc, plan, folder)
            text = await profile_appends(svc, plan, cases) if profile else ""
        synthetic = build_synthetic(stream.template, plan.synthetic_events, plan.synthetic_cases)
        rows = [*stream.rows, *verify_synthetic(synthetic)]
        if profile:
            text += profile_verifier(synthetic, plan)
        return Result(writes, stream, rows, synthetic.build_seconds, setup_s, text)


# --- output ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def render(result: Result, plan: Plan) -> str:
    w = result.writes
    header = (
        f"{'operation':<38} {'n':>5} {'ops/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'vs raw':>7} "
        f"{'CPU ms':>6} {'loop':>5} {'nats':>5} {'SQL':>5}  {'>=1000/s':>8} {'p99<=50':>7}"
    )
    lines = [
        f"Setup: the region and {plan.cases + 1} cases opened through the case service in "
        f"{result.setup_s:.1f} s.",
        f"A stored log event is {w.event_bytes} bytes; the raw publishes send those bytes to a "
        "stream with the settings of EVENTS.",
        "",
        header,
        "-" * len(header),
    ]
    for r in w.rows:
        versus = "" if r.vs_raw is None else f"{r.vs_raw:.3f}"
        sql = "" if r.sql_per_op is None else f"{r.sql_per_op:.1f}"
        lines.append(
            f"{r.name:<38} {r.count:>5} {r.ops_per_s:>6.0f} {_ms(r.p50_ms):>7} "
            f"{_ms(r.p99_ms):>7} {versus:>7} {r.cpu_ms:>6.1f} {r.loop_cpu_ms:>5.1f} "
            f"{r.server_cpu_ms:>5.1f} {sql:>5}  {r.rate_verdict:>8} {r.p99_verdict:>7}"
        )
    lines.append(
        "SQL statements per append, by service: "
        + ", ".join(f"{k} {v:.1f}" for k, v in w.by_service.items())
    )
    s = result.stream
    export_rate = s.messages / s.export_seconds if s.export_seconds > 0 else math.nan
    vheader = (
        f"{'verification':<52} {'events':>7} {'events/s':>9} {'msgs/s':>8} {'vs floor':>8}  "
        f"{'>=100k/s':>8}"
    )
    lines += [
        "",
        f"This run's stream: {s.messages} messages, {s.log_events} of them log events, "
        "exported with stafett audit export's code",
        f"at {export_rate:.0f} messages/s; checkpoint signed by the service at tree size "
        f"{s.tree_size}; median of {plan.repeats} passes.",
        f"Synthetic: {plan.synthetic_events} log events over {plan.synthetic_cases} chains, "
        f"built with chain_hash in {result.synthetic_build_s:.1f} s; one pass.",
        "Parsing and re-serialising for verification: "
        + (
            f"orjson {fastjson.orjson.__version__} where stafett_log.fastjson may."
            if fastjson.ACCELERATED
            else "the standard library (orjson is not installed)."
        ),
        "",
        vheader,
        "-" * len(vheader),
    ]
    for v in result.verify_rows:
        msgs = "" if math.isnan(v.messages_per_s) else f"{v.messages_per_s:.0f}"
        versus = "" if v.vs_floor is None else f"{v.vs_floor:.3f}"
        lines.append(
            f"{v.name:<52} {v.events:>7} {v.events_per_s:>9.0f} {msgs:>8} {versus:>8}  "
            f"{v.verdict:>8}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.update(NO_RATE_LIMIT)  # read by the services' settings
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="less work, under thirty seconds")
    parser.add_argument("--json", action="store_true", help="also write bench/results/*.json")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time an append's phases and cProfile the appends and the verifier",
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
    version = server_version()
    result = asyncio.run(run(plan, profile=args.profile))
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()[0]
    print(
        f"Stafett log benchmark ({mode}), {version} with sync_interval: always, SQLite,\n"
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before and {load_after:.1f} after."
    )
    print(
        "Appends are POSTs through httpx.ASGITransport in-process, as the tests make them: no\n"
        "socket and no HTTP server; the log, case and consent services share this process,\n"
        "its event loop and its CPU."
    )
    print(render(result, plan))
    print(
        f"\n{elapsed:.1f} s in all. Targets are the issue's, shown as information only.\n"
        "CPU ms: this process per operation (all threads); loop: its event loop's thread;\n"
        "nats: nats-server; SQL: statements of all three services per append."
    )
    if result.profile:
        print(result.profile)
    if args.json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = {
            "benchmark": "log",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "nats_server": version,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [load_before, load_after],
            "plan": asdict(plan),
            "event_bytes": result.writes.event_bytes,
            "sql_per_append_by_service": result.writes.by_service,
            "writes": [r.as_json() for r in result.writes.rows],
            "stream": _json_safe(
                {
                    "messages": result.stream.messages,
                    "log_events": result.stream.log_events,
                    "export_seconds": result.stream.export_seconds,
                    "checkpoint_tree_size": result.stream.tree_size,
                }
            ),
            "synthetic_build_seconds": result.synthetic_build_s,
            "verification": [v.as_json() for v in result.verify_rows],
            "seconds": elapsed,
        }
        path = RESULTS_DIR / f"log-{mode}-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
