"""The log service's schema history, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

import stafett_log
from stafett_log import merkle
from stafett_log.projections import TILE_LEAVES, leaves, tiles
from stafett_shared.db import create_engine, run_migrations

MIGRATIONS = Path(stafett_log.__file__).parent / "alembic"


async def test_revision_0003_stores_the_tiles_of_the_leaves_already_there(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    stored = [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(600)]
    try:
        await run_migrations(engine, MIGRATIONS, revision="0002")
        async with engine.begin() as conn:
            await conn.execute(
                leaves.insert(),
                [{"seq": i + 1, "leaf_hash": leaf} for i, leaf in enumerate(stored)],
            )

        await run_migrations(engine, MIGRATIONS)

        async with engine.connect() as conn:
            rows = (await conn.execute(select(tiles).order_by(tiles.c.tile))).all()
    finally:
        await engine.dispose()
    # 600 leaves: two complete tiles; the third is stored when its last leaf is.
    assert [row.tile for row in rows] == [0, 1]
    for row in rows:
        start = row.tile * TILE_LEAVES
        assert bytes(row.root_hash) == merkle.root(stored[start : start + TILE_LEAVES])
