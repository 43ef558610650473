"""merkle tiles: the root of every 256 leaves, so that proofs need not read every leaf

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:45:00.000000
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TILE_LEAVES = 256  # as stafett_log.projections.TILE_LEAVES at this revision


def _root(hashes: list[bytes]) -> bytes:
    """RFC 9162 root of a perfect subtree of leaf hashes (a power of two of them)."""
    while len(hashes) > 1:
        hashes = [
            hashlib.sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest()
            for i in range(0, len(hashes), 2)
        ]
    return hashes[0]


def upgrade() -> None:
    tiles = op.create_table(
        "merkle_tiles",
        sa.Column("tile", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tile"),
    )
    # The tiles of the leaves already stored, read in order a tile at a time.
    bind = op.get_bind()
    leaves = sa.table("merkle_leaves", sa.column("seq"), sa.column("leaf_hash"))
    tile = 0
    while True:
        rows = bind.execute(
            sa.select(leaves.c.seq, leaves.c.leaf_hash)
            .where(leaves.c.seq > tile * TILE_LEAVES)
            .where(leaves.c.seq <= (tile + 1) * TILE_LEAVES)
            .order_by(leaves.c.seq)
        ).all()
        expected = list(range(tile * TILE_LEAVES + 1, (tile + 1) * TILE_LEAVES + 1))
        if [row.seq for row in rows] != expected:
            break  # an incomplete tile: the projection stores it once it is complete
        op.bulk_insert(
            tiles, [{"tile": tile, "root_hash": _root([bytes(r.leaf_hash) for r in rows])}]
        )
        tile += 1


def downgrade() -> None:
    op.drop_table("merkle_tiles")
