"""Proofs from the log's read model: tile roots where stored, and refusal, not a wrong
proof or a crash, when leaves are missing under a stored size."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from stafett_log import merkle
from stafett_log.checkpoints import Checkpointer, ProofUnavailable
from stafett_log.projections import TILE_LEAVES, leaves, metadata, tiles
from stafett_shared.db import create_engine, sessionmaker
from stafett_shared.projector import Projector

SIZE = TILE_LEAVES + 44
HASHES = [merkle.leaf_hash(f"melding {i}".encode()) for i in range(SIZE)]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(
            leaves.insert(), [{"seq": i + 1, "leaf_hash": h} for i, h in enumerate(HASHES)]
        )
        await conn.execute(
            tiles.insert().values(tile=0, root_hash=merkle.root(HASHES[:TILE_LEAVES]))
        )
    yield engine
    await engine.dispose()


def _checkpointer(engine: AsyncEngine) -> Checkpointer:
    return Checkpointer(
        nc=NATS(),  # never connected: proofs do not use the stream
        sessions=sessionmaker(engine),
        writer=sessionmaker(engine),
        projector=cast("Projector", None),  # not used by proofs
        key=Ed25519PrivateKey.generate(),
        origin="stafett.test/log",
    )


async def test_a_proof_from_a_tile_root_equals_the_proof_from_every_leaf(
    engine: AsyncEngine,
) -> None:
    proofs = _checkpointer(engine)
    for seq in (3, TILE_LEAVES, SIZE):
        body = await proofs.inclusion(seq, SIZE)
        path = [base64.b64decode(h) for h in body["audit_path"]]
        assert path == merkle.inclusion_proof(seq - 1, HASHES)
        assert base64.b64decode(body["root_hash"]) == merkle.root(HASHES)


@pytest.mark.parametrize("with_tile", [True, False])
async def test_a_leaf_missing_under_the_size_makes_the_proof_unavailable(
    engine: AsyncEngine, with_tile: bool
) -> None:
    async with engine.begin() as conn:
        await conn.execute(leaves.delete().where(leaves.c.seq == 5))
        if not with_tile:
            await conn.execute(tiles.delete())
    proofs = _checkpointer(engine)
    with pytest.raises(ProofUnavailable):
        await proofs.inclusion(5, SIZE)
    with pytest.raises(ProofUnavailable):
        await proofs.consistency(3, SIZE)
    if with_tile:  # a proof that needs only the tile's root still stands
        body = await proofs.inclusion(SIZE, SIZE)
        assert base64.b64decode(body["root_hash"]) == merkle.root(HASHES)
