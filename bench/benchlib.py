"""What the benchmark scripts in this folder share: how a latency percentile is taken, how
the nats-server under test names itself, the raw ``js.publish`` baseline, a process's CPU
time and how concurrent clients share out a list of jobs. Imported by the scripts as a plain
module (``python bench/<script>.py`` puts this folder on the path)."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from nats.js import JetStreamContext

from stafett_shared.embedded import find_nats_server

__all__ = [
    "NO_RATE_LIMIT",
    "RAW_PREFIX",
    "RAW_STREAM",
    "drive",
    "percentile",
    "process_cpu",
    "raw_publisher",
    "round_share",
    "server_version",
]

NO_RATE_LIMIT = {
    "STAFETT_RATE_LIMIT_PER_S": "0",
    "STAFETT_LOOKUP_LIMIT_PER_HOUR": "100000",
    "STAFETT_LOOKUP_LIMIT_BURST": "10000",
}
"""The services' settings for a benchmark: one principal writes as fast as it can, which the
per-principal limit (docs/operators.md) would otherwise refuse; and registers children by
national id far beyond a person's look-up limit (decision 0029)."""

RAW_STREAM = "RAW"
"""The baseline's stream: the settings of ``EVENTS`` (``required_stream_config``)."""
RAW_PREFIX = "raw.ev"
"""Its subjects' prefix."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_J = TypeVar("_J")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def server_version() -> str:
    """What the nats-server binary the benchmarks start says of its version."""
    try:
        out = subprocess.run(
            [str(find_nats_server()), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used, from /proc (NaN if it
    cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Latencies(Protocol):
    latencies: list[float]


def raw_publisher(js: JetStreamContext, body: bytes) -> Callable[[str, Latencies], Awaitable[None]]:
    """The baseline operation: ``js.publish`` of ``body`` to a subject, its latency noted."""

    async def publish(subject: str, into: Latencies) -> None:
        started = time.perf_counter()
        await js.publish(subject, body)
        into.latencies.append(time.perf_counter() - started)

    return publish


async def drive(clients: int, jobs: Iterable[_J], op: Callable[[_J], Awaitable[None]]) -> None:
    """``clients`` coroutines take ``jobs`` from one queue until it is empty."""
    queue = iter(jobs)

    async def client() -> None:
        for job in queue:
            await op(job)

    await asyncio.gather(*(client() for _ in range(clients)))


def round_share(total: int, rounds: int, r: int) -> int:
    """Round ``r``'s share of ``total`` operations spread over ``rounds`` rounds."""
    return total // rounds + (1 if r < total % rounds else 0)
