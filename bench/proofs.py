"""Inclusion and consistency proofs as the log service serves them, beside the old way.

The log service's read model holds one leaf hash per stream message and, since log revision
0003, the root of every 256 leaves (``merkle_tiles``). A proof reads those roots and the
leaves of at most three tiles. The baseline, in the same run on the same database, is the
same proof with the tiles removed: every leaf up to the tree size is read and hashed, as
before the tiles.

    .venv/bin/python bench/proofs.py [--quick]

The trees are synthetic (leaf hashes of numbered messages) in a temporary SQLite file; the
proofs are ``Checkpointer.inclusion`` and ``.consistency``, the code behind
``GET /api/v1/proofs/…``. No NATS is needed: a proof does not touch the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from benchlib import percentile
from stafett_log import merkle
from stafett_log.checkpoints import Checkpointer
from stafett_log.projections import TILE_LEAVES, leaves, metadata, tiles
from stafett_shared.db import create_engine, sessionmaker
from stafett_shared.projector import Projector

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


async def _fill(engine: AsyncEngine, size: int) -> None:
    hashes = [merkle.leaf_hash(f"melding {i}".encode()) for i in range(size)]
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for start in range(0, size, 50_000):
            chunk = hashes[start : start + 50_000]
            await conn.execute(
                leaves.insert(),
                [{"seq": start + i + 1, "leaf_hash": h} for i, h in enumerate(chunk)],
            )
        await conn.execute(
            tiles.insert(),
            [
                {
                    "tile": t,
                    "root_hash": merkle.root(hashes[t * TILE_LEAVES : (t + 1) * TILE_LEAVES]),
                }
                for t in range(size // TILE_LEAVES)
            ],
        )


async def _timed(proof: Callable[[], Awaitable[object]], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await proof()
        times.append(time.perf_counter() - started)
    return times


async def measure(size: int, repeats: int, folder: Path) -> list[tuple[str, list[float]]]:
    engine = create_engine(f"sqlite:///{folder / f'proofs-{size}.db'}")
    try:
        await _fill(engine, size)
        checkpointer = Checkpointer(
            nc=NATS(),  # never connected: proofs do not use the stream
            sessions=sessionmaker(engine),
            writer=sessionmaker(engine),
            projector=cast("Projector", None),  # not used by proofs
            key=Ed25519PrivateKey.generate(),
            origin="stafett.bench/log",
        )
        rng = random.Random(size)
        rows = []
        for way in ("tiles", "every leaf"):
            if way == "every leaf":
                async with engine.begin() as conn:
                    await conn.execute(tiles.delete())
            n = repeats if way == "tiles" else 3
            inclusion = await _timed(lambda: checkpointer.inclusion(rng.randint(1, size), size), n)
            consistency = await _timed(
                lambda: checkpointer.consistency(rng.randint(1, size), size), n
            )
            rows.append((f"inclusion, {size:,} leaves, {way}", inclusion))
            rows.append((f"consistency, {size:,} leaves, {way}", consistency))
        return rows
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller trees, a few seconds")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    repeats = 20 if args.quick else 50
    began = time.perf_counter()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="stafett-bench-proofs-") as tmp:
        for size in sizes:
            rows += asyncio.run(measure(size, repeats, Path(tmp)))
    print(
        f"Stafett proof benchmark ({'quick' if args.quick else 'full'}): SQLite, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"tiles of {TILE_LEAVES} leaves."
    )
    header = f"{'proof':<42} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'vs every leaf':>14}"
    print(header)
    print("-" * len(header))
    medians = {name: percentile(times, 50) for name, times in rows}
    for name, times in rows:
        p50 = medians[name]
        versus = "baseline"
        if name.endswith(", tiles"):
            versus = f"{medians[name.replace(', tiles', ', every leaf')] / p50:.0f}x faster"
        print(
            f"{name:<42} {len(times):>4} {p50 * 1000:>8.1f} {percentile(times, 99) * 1000:>8.1f} "
            f"{versus:>14}"
        )
    print(f"\n{time.perf_counter() - began:.1f} s in all.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
