"""HTTP appends to the stafettlogg of the system as ``stafett up`` runs it.

``bench/log.py`` measures the log service's code with the three services and the client in
one process. This script measures the deployed shape instead: ``EmbeddedSystem`` starts
nats-server (``sync_interval: always``) and the four services as processes of their own on
SQLite, each behind uvicorn, and the benchmark posts entries over real HTTP connections
(keep-alive, as a browser or an agency's system would) from this process, with aiohttp.
Everything shares the machine's cores: the client's CPU is counted and shown too.

Baselines in the same run, with the same concurrency and on the same nats-server:

* plain ``js.publish`` of a stored log event's bytes to a stream with the settings of
  ``EVENTS``;
* the floor: the same POSTs to ``bench/floor_service.py``, FastAPI behind uvicorn doing
  nothing but reading the entry and publishing it. No service on this stack appends faster.

    .venv/bin/python bench/system.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats

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
from stafett_shared.auth import DevIssuer
from stafett_shared.embedded import SERVICES, EmbeddedSystem, free_port, port_in_use
from stafett_shared.eventstore import EventStore, required_stream_config
from stafett_shared.settings import CommonSettings

HOLDER = "ann-kristin-allum"
UNIT = "siljan-ungdomsskole"
REGION = Path(__file__).resolve().parent.parent / "data" / "grenland.yaml"
FLOOR_SERVICE = Path(__file__).resolve().with_name("floor_service.py")
NOTE = (
    "Samtale med eleven om fravær og søvn. Eleven forteller at det er tungt å komme seg "
    "opp om morgenen, og ønsker en fast voksen å snakke med. Avtalt ny samtale om en uke."
)


@dataclass(frozen=True)
class Plan:
    cases: int
    concurrency: int
    appends: int
    single_client_appends: int
    raw_publishes: int
    rounds: int


QUICK = Plan(
    cases=20, concurrency=16, appends=300, single_client_appends=40, raw_publishes=600, rounds=2
)
FULL = Plan(
    cases=20,
    concurrency=16,
    appends=2000,
    single_client_appends=200,
    raw_publishes=4000,
    rounds=3,
)


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else math.nan

    def add(self, other: Sample) -> None:
        self.latencies += other.latencies
        self.failures.update(other.failures)
        self.seconds += other.seconds
        for name, seconds in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds


class Meter:
    """CPU of every process of the system, of the floor service and of this one (the
    client), over a run."""

    def __init__(self, system: EmbeddedSystem, floor: Floor) -> None:
        assert system.nats.process is not None
        self.pids = {s.name: s.process.pid for s in system.running}
        self.pids["nats-server"] = system.nats.process.pid
        self.pids["floor"] = floor.process.pid

    def read(self) -> dict[str, float]:
        now = {name: process_cpu(pid) for name, pid in self.pids.items()}
        now["client"] = time.process_time()
        return now

    async def measure(self, run: Callable[[], Awaitable[Sample]]) -> Sample:
        before = self.read()
        started = time.perf_counter()
        sample = await run()
        sample.seconds = time.perf_counter() - started
        after = self.read()
        sample.cpu = {name: after[name] - before[name] for name in after}
        return sample


async def post(
    client: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str]
) -> tuple[int, bytes]:
    """POST ``body`` as JSON: the status and the whole answer."""
    async with client.post(url, json=body, headers=headers) as response:
        return response.status, await response.read()


async def retrying(
    client: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str]
) -> Any:
    """POST, retrying while another service's read model catches up with the last write;
    the answer's JSON."""
    status, answer = await post(client, url, body, headers)
    for _ in range(80):
        if status not in (404, 409, 422, 503):
            break
        await asyncio.sleep(0.25)
        status, answer = await post(client, url, body, headers)
    if status >= 300:
        raise RuntimeError(f"{url}: {status} {answer[:300]!r}")
    return json.loads(answer)


def entry(number: int) -> dict[str, str]:
    return {
        "kind": "note",
        "text": f"{number:07d}. {NOTE}",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


Operation = Callable[[str, Sample], Awaitable[None]]


async def run_clients(clients: int, jobs: Sequence[str], op: Operation) -> Sample:
    sample = Sample()
    await drive(clients, jobs, lambda job: op(job, sample))
    return sample


@dataclass
class Row:
    name: str
    sample: Sample
    vs_raw: float | None = None
    targets: bool = False


class Floor:
    """``bench/floor_service.py`` in a process of its own, on the system's nats-server."""

    def __init__(self, nats_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(FLOOR_SERVICE), str(self.port), nats_url],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not port_in_use(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the floor service did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def measure(
    system: EmbeddedSystem, floor: Floor, folder: Path, plan: Plan
) -> tuple[list[Row], int]:
    urls = {s.name: s.url for s in system.running}
    issuer = DevIssuer.load_or_create(folder)
    settings = CommonSettings()
    holder = {"Authorization": f"Bearer {issuer.issue(HOLDER)}"}
    admin = {"Authorization": f"Bearer {issuer.issue(settings.dev_admin or 'admin')}"}
    # Keep-alive connections, at most one per concurrent client.
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        async with client.put(
            f"{urls['consent']}/api/v1/directory",
            data=REGION.read_bytes(),
            headers={**admin, "Content-Type": "application/yaml"},
        ) as loaded:
            if loaded.status >= 300:
                raise RuntimeError(f"the region was refused: {loaded.status} {await loaded.text()}")
        cases = []
        for i in range(plan.cases):
            opened = await retrying(
                client,
                f"{urls['case']}/api/v1/cases",
                {
                    "unit_id": UNIT,
                    "level": 0,
                    "child": {"pseudonym": f"Elev {i + 1}"},
                    "concern": "Ytelsesmåling: en bekymring til refleksjon.",
                },
                holder,
            )
            cases.append(str(opened["id"]))
        numbers = iter(range(1, 10**9))
        for case_id in cases:  # warm up: every case has a chain head and the log knows it
            await retrying(client, f"{urls['log']}/api/v1/logs/{case_id}/entries", entry(0), holder)

        async def append(case_id: str, into: Sample) -> None:
            started = time.perf_counter()
            status, _answer = await post(
                client,
                f"{urls['log']}/api/v1/logs/{case_id}/entries",
                entry(next(numbers)),
                holder,
            )
            into.latencies.append(time.perf_counter() - started)
            if status != 201:
                into.failures[str(status)] += 1

        async def floor_append(case_id: str, into: Sample) -> None:
            started = time.perf_counter()
            status, _answer = await post(
                client, f"{floor.url}/entries/{case_id}", entry(next(numbers)), holder
            )
            into.latencies.append(time.perf_counter() - started)
            if status != 201:
                into.failures[str(status)] += 1

        await floor_append(cases[0], Sample())  # warm up

        nc = await nats.connect(system.nats.url, name="bench-raw")
        try:
            store = EventStore(nc, stream=settings.stream, subject_prefix=settings.subject_prefix)
            last = await store.get(await store.last_seq())
            if last is None:
                raise RuntimeError("the stream is empty")
            body = bytes(last.data)
            js = nc.jetstream(timeout=10)
            await js.add_stream(required_stream_config(RAW_STREAM, RAW_PREFIX, 1))

            publish = raw_publisher(js, body)
            raw_subjects = [f"{RAW_PREFIX}.log.{case_id}" for case_id in cases]

            meter = Meter(system, floor)
            raw, spread, single, bare = Sample(), Sample(), Sample(), Sample()
            c = plan.concurrency
            steps: list[tuple[Sample, int, int, list[str], Operation]] = [
                (raw, c, plan.raw_publishes, raw_subjects, publish),
                (spread, c, plan.appends, cases, append),
                (single, 1, plan.single_client_appends, cases, append),
                (bare, c, plan.appends, cases, floor_append),
            ]
            for r in range(plan.rounds):
                turn = r % len(steps)  # rotate the order: no row always runs first
                for into, clients, total, targets, op in steps[turn:] + steps[:turn]:
                    share = round_share(total, plan.rounds, r)
                    jobs = [targets[i % len(targets)] for i in range(share)]
                    into.add(await meter.measure(functools.partial(run_clients, clients, jobs, op)))
                    await asyncio.sleep(1.0)  # let the projectors catch up between rows
        finally:
            await nc.close()
    rows = [
        Row(f"raw js.publish, {c} publishers", raw),
        Row(f"floor: FastAPI POST + publish, {c} cl.", bare),
        Row("POST entries over HTTP, 1 client", single),
        Row(f"POST entries over HTTP, {c} clients", spread, targets=True),
    ]
    for row in rows[1:]:
        row.vs_raw = row.sample.rate / raw.rate
    return rows, len(body)


def render(rows: list[Row], event_bytes: int) -> str:
    names = ["log", "consent", "case", "notify", "floor", "nats-server", "client"]
    header = (
        f"{'operation':<36} {'n':>5} {'ops/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'vs raw':>7}  "
        + " ".join(f"{n[:7]:>7}" for n in names)
        + f" {'all':>6}  {'>=1000/s':>8} {'p99<=50':>7}"
    )
    lines = [
        f"A stored log event is {event_bytes} bytes. CPU: milliseconds of each process per "
        "operation (client: this process).",
        "",
        header,
        "-" * len(header),
    ]
    for row in rows:
        s = row.sample
        p50 = percentile(s.latencies, 50) * 1000
        p99 = percentile(s.latencies, 99) * 1000
        cpu = [s.cpu.get(n, math.nan) / max(s.count, 1) * 1000 for n in names]
        total = sum(v for v in cpu if not math.isnan(v))
        versus = "" if row.vs_raw is None else f"{row.vs_raw:.3f}"
        rate_ok = "" if not row.targets else ("PASS" if s.rate >= 1000 else "MISS")
        p99_ok = "" if not row.targets else ("PASS" if p99 <= 50 else "MISS")
        lines.append(
            f"{row.name:<36} {s.count:>5} {s.rate:>6.0f} {p50:>7.1f} {p99:>7.1f} {versus:>7}  "
            + " ".join(f"{v:>7.2f}" for v in cpu)
            + f" {total:>6.2f}  {rate_ok:>8} {p99_ok:>7}"
        )
        for what, times in s.failures.items():
            lines.append(f"  note: {times} operations failed with {what}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="less work, about a minute")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stafett-bench-system-") as tmp:
        folder = Path(tmp) / "data"
        system = EmbeddedSystem(
            folder,
            nats_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            env=NO_RATE_LIMIT,
        )
        system.start(ready_timeout_s=120)
        try:
            floor = Floor(system.nats.url, folder / "logs" / "floor.log")
            try:
                rows, event_bytes = asyncio.run(measure(system, floor, folder, plan))
            finally:
                floor.stop()
        finally:
            system.stop()
    print(
        f"Stafett system benchmark ({'quick' if args.quick else 'full'}): {server_version()} "
        "with sync_interval: always, four services on SQLite as `stafett up` starts them,\n"
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after; "
        f"{plan.rounds} rounds, rows alternating."
    )
    print(render(rows, event_bytes))
    print(f"\n{time.perf_counter() - began:.1f} s in all. Targets are the issue's (information).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
