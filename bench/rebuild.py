"""Replay: how fast each service rebuilds its read models from the stream.

Rebuilding is one of the costs that bind at region scale (DESIGN.md "Scale plan"): after a
migration or a bad deploy a service replays ``EVENTS`` from sequence 1. The script fills a
stream through the services' own APIs (cases opened, entries appended, the log read, so
access events are there too), then times ``Projector.rebuild`` for the consent, case and log
services, in-process on SQLite, on the same server and data:

* **guarded**: as the services run, every commit judged by ``contracts.check_commit``
  (context, subject, source, payload validated against its model) before it is applied;
* **unguarded**: the same rebuild with the judgement skipped, a baseline in the same run
  showing what the guard costs (where the running code has no guard this row is absent);
* **read floor**: reading every message of the stream with batched direct get and nothing
  else, the least any replay costs.

    .venv/bin/python bench/rebuild.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from log import open_cases, services, settle  # bench/log.py: the in-process services

from benchlib import NO_RATE_LIMIT, drive
from stafett_shared.logging import configure_logging
from stafett_shared.projector import Projector


@dataclass(frozen=True)
class Plan:
    cases: int
    entries_per_case: int
    reads_per_case: int
    clients: int = 8


FULL = Plan(cases=40, entries_per_case=50, reads_per_case=5)
QUICK = Plan(cases=10, entries_per_case=20, reads_per_case=2)


async def fill(svc: Any, plan: Plan) -> int:
    """Cases, entries and reads through the APIs; the stream's last sequence."""
    cases = await open_cases(svc, plan.cases)
    headers = svc.log.auth("ann-kristin-allum")
    jobs = [c for c in cases for _ in range(plan.entries_per_case)]

    async def append(case_id: str) -> None:
        response = await svc.log.client.post(
            f"/api/v1/logs/{case_id}/entries",
            json={
                "kind": "observation",
                "text": "Eleven var stille i friminuttet og spiste ikke lunsj.",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            headers=headers,
        )
        if response.status_code != 201:
            raise RuntimeError(f"append failed: {response.status_code}")

    async def read(case_id: str) -> None:
        response = await svc.log.client.get(f"/api/v1/logs/{case_id}/entries", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"read failed: {response.status_code}")

    await drive(plan.clients, jobs, append)
    await drive(plan.clients, [c for c in cases for _ in range(plan.reads_per_case)], read)
    return await settle(svc)


async def read_floor(projector: Projector, last: int) -> float:
    started = time.perf_counter()
    seq = 1
    while seq <= last:
        commits = await projector.store.read(seq, limit=1000, decode=False)
        if not commits:
            break
        seq = commits[-1].seq + 1
    return time.perf_counter() - started


async def timed_rebuild(projector: Projector, *, guarded: bool) -> float | None:
    check = getattr(projector, "_check", None)
    if not guarded:
        if check is None:
            return None  # this code has no guard to skip
        projector._check = lambda _subject, _events: None  # type: ignore[method-assign,assignment]
    try:
        started = time.perf_counter()
        await projector.rebuild()
        return time.perf_counter() - started
    finally:
        if not guarded:
            del projector._check


async def run(plan: Plan) -> None:
    with tempfile.TemporaryDirectory(prefix="stafett-bench-rebuild-") as tmp:
        async with services(Path(tmp)) as svc:
            started = time.perf_counter()
            last = await fill(svc, plan)
            print(f"stream: {last} messages, filled in {time.perf_counter() - started:.1f} s")
            print(f"{'service':<8} {'guarded':>14} {'unguarded':>14} {'read floor':>14}")
            for name, harness in (("consent", svc.consent), ("case", svc.case), ("log", svc.log)):
                projector = harness.runtime.projector
                floor = await read_floor(projector, last)
                guarded = await timed_rebuild(projector, guarded=True)
                unguarded = await timed_rebuild(projector, guarded=False)
                cells = [
                    f"{last / s:>10,.0f} m/s" if s else f"{'–':>14}"
                    for s in (guarded, unguarded, floor)
                ]
                print(f"{name:<8} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller stream, under a minute")
    args = parser.parse_args()
    os.environ.update(NO_RATE_LIMIT)  # one writer makes every append; read by the settings
    configure_logging("bench", os.environ.get("STAFETT_LOG_LEVEL", "ERROR"), json=False)
    asyncio.run(run(QUICK if args.quick else FULL))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
