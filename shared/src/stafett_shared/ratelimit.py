"""A limit on how fast one principal may call a service: a token bucket per principal.

Each authenticated request takes a token from its principal's bucket; the bucket refills at
``per_s`` tokens a second up to ``burst``. An empty bucket answers 429 with ``Retry-After``.
The buckets live in the service process (each instance limits on its own) and the least
recently seen principals are forgotten beyond ``kept`` of them, which only ever lets a
forgotten principal start again with a full bucket.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        per_s: float,
        burst: int,
        *,
        kept: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.per_s = per_s
        self.burst = burst
        self._kept = kept
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Take a token for ``key``: None when there was one, else the seconds until there
        will be."""
        now = self._clock()
        with self._lock:
            tokens, seen = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - seen) * self.per_s)
            wait = None if tokens >= 1 else (1 - tokens) / self.per_s
            self._buckets[key] = (tokens - 1 if wait is None else tokens, now)
            while len(self._buckets) > self._kept:
                self._buckets.popitem(last=False)
        return wait
