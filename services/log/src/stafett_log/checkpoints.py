"""Signed checkpoints over the whole EVENTS stream, and inclusion and consistency proofs.

The log service's projection stores every stored message's RFC 9162 leaf hash; a checkpoint
signs the Merkle root at a tree size (the C2SP tlog-checkpoint format) and is published on
the ``CHECKPOINTS`` stream, at a fixed interval and on demand. Anyone holding a checkpoint
and the public key can check that an event is included and that a later checkpoint extends
an earlier one, without trusting the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from datetime import UTC, datetime
from typing import Any

import nats.js.errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client as NATS
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from sqlalchemy import false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_log import keys, merkle
from stafett_log.checkpoint import (
    Checkpoint,
    CheckpointError,
    key_id,
    parse_signed_note,
    sign_checkpoint,
    vkey,
)
from stafett_log.projections import TILE_LEAVES, checkpoints, leaves, tiles
from stafett_shared.db import upsert
from stafett_shared.metrics import watch_checkpoints
from stafett_shared.projector import Projector

STREAM = "CHECKPOINTS"
SUBJECT = "stafett.checkpoints"


class ProofError(ValueError):
    """The asked-for proof does not exist (a size beyond the tree, a sequence outside it)."""


class ProofUnavailable(RuntimeError):
    """The read model does not hold the leaves a proof needs right now (a rebuild)."""


class Checkpointer:
    def __init__(
        self,
        *,
        nc: NATS,
        sessions: async_sessionmaker[AsyncSession],
        writer: async_sessionmaker[AsyncSession],
        projector: Projector,
        key: Ed25519PrivateKey,
        origin: str,
        replicas: int = 1,
    ) -> None:
        self._js = nc.jetstream()
        self._sessions = sessions
        self._writer = writer
        self._projector = projector
        self._key = key
        self.origin = origin
        self._replicas = replicas
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = public
        self.key_id = key_id(origin, public)
        self.vkey = vkey(origin, public)
        self._vkeys: dict[str, str | None] = {self.key_id: self.vkey}
        self._newest: tuple[float, int] | None = None  # time (epoch s) and tree size
        watch_checkpoints(self, self.newest)
        self._range = merkle.CompactRange()
        # One checkpoint at a time: two would both extend the range by the same new leaves.
        self._making = asyncio.Lock()

    async def ensure_stream(self) -> None:
        try:
            await self._js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            # Made by another instance at the same moment is fine too.
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self._js.add_stream(
                    StreamConfig(
                        name=STREAM,
                        description="Stafett signed checkpoints (append-only)",
                        subjects=[f"{SUBJECT}.>"],
                        storage=StorageType.FILE,
                        discard=DiscardPolicy.NEW,
                        deny_delete=True,
                        deny_purge=True,
                        allow_rollup_hdrs=False,
                        allow_direct=True,
                        num_replicas=self._replicas,
                        duplicate_window=120.0,
                    )
                )
        # The stream says which public key signs from now on (stafett_log.keys).
        await keys.announce(self._js, self.key_id, self.vkey)

    async def _tree(
        self, size: int, *points: int
    ) -> tuple[merkle.SparseLeaves, dict[tuple[int, int], bytes]]:
        """What a proof over the first ``size`` leaves needs: the root of every complete
        tile, and the leaves of the tiles that hold the leaf indexes ``points`` and of the
        last, incomplete tile. Every leaf instead, where a tile's root is missing."""
        complete = size // TILE_LEAVES
        async with self._sessions() as session:
            last = await session.scalar(select(func.max(leaves.c.seq)))
            if (last or 0) < size:
                raise ProofError("the tree size lies beyond the tree")
            roots = (
                await session.execute(
                    select(tiles.c.tile, tiles.c.root_hash)
                    .where(tiles.c.tile < complete)
                    .order_by(tiles.c.tile)
                )
            ).all()
            wanted = {p // TILE_LEAVES for p in points if 0 <= p < size}
            if size % TILE_LEAVES:
                wanted.add(complete)
            stmt = select(leaves.c.seq, leaves.c.leaf_hash).where(leaves.c.seq <= size)
            if len(roots) == complete:
                stmt = stmt.where(
                    or_(
                        false(),
                        *(
                            leaves.c.seq.between(t * TILE_LEAVES + 1, (t + 1) * TILE_LEAVES)
                            for t in sorted(wanted)
                        ),
                    )
                )
            else:
                roots = []  # a tile is missing (not yet stored): read every leaf
            known = {int(r.seq) - 1: bytes(r.leaf_hash) for r in await session.execute(stmt)}
        expected = (
            sum(min((t + 1) * TILE_LEAVES, size) - t * TILE_LEAVES for t in wanted)
            if roots
            else size
        )
        if len(known) != expected:
            # Leaves missing under a stored size: the read model is being rebuilt.
            raise ProofUnavailable("the tree's leaves are not all at hand")
        subtrees = {(t * TILE_LEAVES, (t + 1) * TILE_LEAVES): bytes(root) for t, root in roots}
        return merkle.SparseLeaves(size, known), subtrees

    async def make(self) -> dict[str, Any]:
        """Sign and publish a checkpoint at the read model's current tree size (one at a
        time: the timer's and an operator's may be asked for at once)."""
        async with self._making:
            return await self._make()

    async def _make(self) -> dict[str, Any]:
        """Sign and publish a checkpoint at the read model's current tree size.

        The tree is followed incrementally (a compact range of perfect subtree roots), so a
        checkpoint reads only the leaves added since the last one; where it is a tile or more
        behind (the first after a start), it takes the stored tile roots in their place.
        """
        async with self._sessions() as session:
            if self._range.size % TILE_LEAVES == 0:
                roots = (
                    await session.execute(
                        select(tiles.c.tile, tiles.c.root_hash)
                        .where(tiles.c.tile >= self._range.size // TILE_LEAVES)
                        .order_by(tiles.c.tile)
                    )
                ).all()
                for tile, tile_root in roots:
                    if tile != self._range.size // TILE_LEAVES:
                        break  # a tile is missing: its leaves are read below
                    self._range.append_subtree(bytes(tile_root), TILE_LEAVES)
            fresh = [
                bytes(h)
                for h in (
                    await session.scalars(
                        select(leaves.c.leaf_hash)
                        .where(leaves.c.seq > self._range.size)
                        .order_by(leaves.c.seq)
                    )
                ).all()
            ]
        self._range.extend(fresh)
        size = self._range.size
        root = self._range.root()
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self._key)
        now = datetime.now(UTC)
        self._vkeys[self.key_id] = self.vkey
        self._newest = (now.timestamp(), size)
        async with self._writer() as session, session.begin():
            await upsert(
                session,
                checkpoints,
                {"tree_size": size, "root_hash": root, "note": note, "created_at": now},
                update=False,
            )
        await self._js.publish(
            f"{SUBJECT}.tree",
            note.encode(),
            headers={"Nats-Msg-Id": f"checkpoint-{size}-{root.hex()}"},
        )
        return await self._describe(size, root, note, now)

    async def _describe(self, size: int, root: bytes, note: str, when: datetime) -> dict[str, Any]:
        """A checkpoint as the API shows it, with the key that signed *it*: after the
        signing key was changed, an older checkpoint names the older key."""
        signature_line = note.rstrip("\n").rsplit("\n", 1)[-1]
        signer, signer_vkey = self.key_id, self.vkey
        try:
            _checkpoint, signatures = parse_signed_note(note)
            signer = next(s.key_id for s in signatures if s.key_name == self.origin)
        except (CheckpointError, StopIteration):
            pass
        if signer != self.key_id:
            if signer not in self._vkeys:
                self._vkeys[signer] = await keys.announced_vkey(self._js, signer)
            signer_vkey = self._vkeys[signer] or ""
        return {
            "tree_size": size,
            "root_hash": base64.b64encode(root).decode(),
            "time": when,
            "key_id": signer,
            "signature": signature_line.rsplit(" ", 1)[-1],
            "note": note,
            "origin": self.origin,
            "vkey": signer_vkey,
        }

    def newest(self) -> tuple[float, int] | None:
        """The newest checkpoint's time (seconds since the epoch) and tree size, as this
        instance last made or read it: for the ``stafett_checkpoint_age_seconds`` metric."""
        return self._newest

    async def latest(self) -> dict[str, Any] | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
                )
            ).first()
        if row is None:
            return None
        when = row.created_at.timestamp()
        if self._newest is None or self._newest[0] < when:
            self._newest = (when, int(row.tree_size))
        return await self._describe(row.tree_size, bytes(row.root_hash), row.note, row.created_at)

    async def inclusion(self, seq: int, tree_size: int) -> dict[str, Any]:
        if not 1 <= seq <= tree_size:
            raise ProofError("the sequence or tree size lies outside the tree")
        hashes, subtrees = await self._tree(tree_size, seq - 1)
        path = merkle.inclusion_proof(seq - 1, hashes, subtrees=subtrees)
        return {
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": tree_size,
            "leaf_hash": base64.b64encode(hashes[seq - 1]).decode(),
            "root_hash": base64.b64encode(merkle.root(hashes, subtrees=subtrees)).decode(),
            "audit_path": [base64.b64encode(h).decode() for h in path],
        }

    async def consistency(self, first: int, second: int) -> dict[str, Any]:
        if not 1 <= first <= second:
            raise ProofError("the sizes lie outside the tree")
        hashes, subtrees = await self._tree(second, first - 1, first)
        proof = merkle.consistency_proof(first, hashes, subtrees=subtrees)
        first_root = merkle.root(hashes.prefix(first), subtrees=subtrees)
        return {
            "first": first,
            "second": second,
            "first_root": base64.b64encode(first_root).decode(),
            "second_root": base64.b64encode(merkle.root(hashes, subtrees=subtrees)).decode(),
            "proof": [base64.b64encode(h).decode() for h in proof],
        }
