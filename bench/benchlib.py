"""What the benchmark scripts in this folder share: how a latency percentile is taken and
how the nats-server under test names itself. Imported by the scripts as a plain module
(``python bench/<script>.py`` puts this folder on the path)."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence

from stafett_shared.embedded import find_nats_server

__all__ = ["percentile", "server_version"]


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
