"""Read models of the log service: entries with every version, the hash chain's head per
case, who read what, the Merkle tree's leaves, and the case and directory facts it needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Connection

from stafett_log import merkle
from stafett_log.merkle import leaf_hash
from stafett_shared.db import parse_time, upsert_sync
from stafett_shared.envelope import CloudEvent
from stafett_shared.eventstore import StoredCommit
from stafett_shared.projector import BlockingProjection

metadata = MetaData()

cases = Table(
    "cases",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("org_id", String(32), nullable=False),
    Column("unit_id", String(64), nullable=False),
    Column("child_id", String(26), nullable=True),
    Column("status", String(16), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("history_from", DateTime(timezone=True), nullable=True),
)
roles = Table(
    "roles",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
)
entries = Table(
    "entries",
    metadata,
    Column("entry_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),  # an entry kind, or correction / retraction
    Column("author_id", String(64), nullable=False),
    Column("author_role", String(32), nullable=True),
    Column("author_unit", String(64), nullable=True),
    Column("regime", String(32), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=True),
    Column("category", String(32), nullable=True),
    Column("text", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("participants", Text, nullable=True),
    Column("key_owner", String(26), nullable=False),
    Column("refers_to", String(26), nullable=True),  # the entry corrected or retracted
    Column("retracted", Integer, nullable=False, default=0),
    Column("restricted_until", DateTime(timezone=True), nullable=True),
    Column("restriction_ground", String(64), nullable=True),
    Index("ix_entries_case_seq", "case_id", "seq"),
    Index("ix_entries_refers", "refers_to"),
)
chains = Table(
    "chains",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("head_seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("links", Integer, nullable=False),
)
access_records = Table(
    "access_records",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("reader_id", String(64), nullable=False),
    Column("reader_kind", String(8), nullable=False),
    Column("basis", String(32), nullable=True),
    Column("what", String(16), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("service", String(16), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=False),
)
leaves = Table(
    "merkle_leaves",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
)

TILE_LEAVES = 256
"""Leaves under one stored tile root. A proof reads the tiles' roots and the leaves of at
most a few tiles, not every leaf of the tree."""

tiles = Table(
    "merkle_tiles",
    metadata,
    Column("tile", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary(32), nullable=False),
)
"""Tile ``t``: the root of the perfect subtree over the leaves of stream messages
``t * TILE_LEAVES + 1`` to ``(t + 1) * TILE_LEAVES``, stored once its last leaf is."""

checkpoint_metadata = MetaData()
checkpoints = Table(
    "checkpoints",
    checkpoint_metadata,
    Column("tree_size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""Checkpoints are signed when made and published to CHECKPOINTS; a rebuild keeps them."""


class LogProjection(BlockingProjection):
    """Every commit adds a Merkle leaf; log, access, case and directory events fill the rest.
    Written against a blocking connection: the projector applies a batch in one call."""

    name = "log"
    # No ``contexts``: every commit of the stream, whatever its context, is a Merkle leaf.
    tables = tuple(metadata.sorted_tables)

    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        self._leaf(conn, commit)
        for event in commit.events:
            self._apply(conn, event, commit.seq)

    def quarantined_sync(self, conn: Connection, commit: StoredCommit) -> None:
        # The tree proves what the stream holds, so a refused message is a leaf all the same.
        self._leaf(conn, commit)

    def _leaf(self, conn: Connection, commit: StoredCommit) -> None:
        upsert_sync(
            conn, leaves, {"seq": commit.seq, "leaf_hash": leaf_hash(commit.data)}, update=False
        )
        if commit.seq % TILE_LEAVES == 0:
            self._tile(conn, commit.seq)

    def _tile(self, conn: Connection, last_seq: int) -> None:
        """Store the root of the tile that the leaf of ``last_seq`` completes."""
        first = last_seq - TILE_LEAVES + 1
        hashes = [bytes(h) for h in conn.scalars(_TILE, {"first": first, "last": last_seq})]
        if len(hashes) == TILE_LEAVES:  # else proofs read these leaves themselves
            upsert_sync(
                conn,
                tiles,
                {"tile": last_seq // TILE_LEAVES - 1, "root_hash": merkle.root(hashes)},
                update=False,
            )

    def _apply(self, conn: Connection, event: CloudEvent, seq: int) -> None:
        d = event.data
        name = event.type.removeprefix("no.stafett.").rsplit(".", 1)[0]
        case_id = event.subject
        match name:
            case "case.opened":
                upsert_sync(
                    conn,
                    cases,
                    {
                        "case_id": case_id,
                        "org_id": d["org_id"],
                        "unit_id": d["unit_id"],
                        "child_id": d.get("child_id"),
                        "status": "open",
                        "opened_at": event.time,
                        "history_from": None,
                    },
                )
            case "case.child_identified":
                conn.execute(
                    update(cases).where(cases.c.case_id == case_id).values(child_id=d["child_id"])
                )
            case "case.handover_accepted":
                values: dict[str, Any] = {"org_id": d["to_org_id"], "unit_id": d["to_unit_id"]}
                if not d.get("history_travels", True):
                    values["history_from"] = parse_time(d.get("history_from")) or event.time
                conn.execute(update(cases).where(cases.c.case_id == case_id).values(**values))
            case "case.closed" | "case.reopened":
                conn.execute(
                    update(cases)
                    .where(cases.c.case_id == case_id)
                    .values(status="closed" if name == "case.closed" else "open")
                )
            case "directory.role_granted":
                upsert_sync(
                    conn,
                    roles,
                    {"person_id": d["person_id"], "unit_id": d["unit_id"], "role": d["role"]},
                )
            case "directory.role_ended":
                conn.execute(
                    delete(roles).where(
                        roles.c.person_id == d["person_id"],
                        roles.c.unit_id == d["unit_id"],
                        roles.c.role == d["role"],
                    )
                )
            case "log.entry_appended" | "log.entry_corrected" | "log.entry_retracted":
                self._entry(conn, event, name, seq)
            case "log.entry_restricted":
                conn.execute(
                    update(entries)
                    .where(entries.c.entry_id == d["entry_id"])
                    .values(restricted_until=parse_time(d["until"]), restriction_ground=d["ground"])
                )
                self._link(conn, case_id, seq, event)
            case "access.recorded":
                upsert_sync(
                    conn,
                    access_records,
                    {
                        "seq": seq,
                        "case_id": d["case_id"],
                        "reader_id": d["reader_id"],
                        "reader_kind": d["reader_kind"],
                        "basis": d.get("basis"),
                        "what": d["what"],
                        "entries": len(d.get("entry_ids", ())),
                        "service": d.get("service", ""),
                        "read_at": event.time,
                    },
                    update=False,
                )

    def _entry(self, conn: Connection, event: CloudEvent, name: str, seq: int) -> None:
        d = event.data
        case_id = event.subject
        child = conn.scalar(_CHILD_OF_CASE, {"case_id": case_id})
        author = d.get("author") or {}
        refers = d.get("corrects_entry_id") or d.get("retracts_entry_id")
        kind = {"log.entry_corrected": "correction", "log.entry_retracted": "retraction"}.get(
            name, d.get("kind", "note")
        )
        upsert_sync(
            conn,
            entries,
            {
                "entry_id": d["entry_id"],
                "case_id": case_id,
                "seq": seq,
                "kind": kind,
                "author_id": author.get("person_id", event.actor),
                "author_role": author.get("role"),
                "author_unit": author.get("unit_id"),
                "regime": d.get("regime"),
                "recorded_at": event.time,
                "occurred_at": parse_time(d.get("occurred_at")),
                "category": d.get("category"),
                "text": d.get("text"),
                "reason": d.get("reason"),
                "participants": d.get("participants"),
                "key_owner": child or case_id,
                "refers_to": refers,
                "retracted": 0,
                "restricted_until": None,
                "restriction_ground": None,
            },
        )
        if name == "log.entry_retracted" and refers:
            conn.execute(update(entries).where(entries.c.entry_id == refers).values(retracted=1))
        self._link(conn, case_id, seq, event)

    def _link(self, conn: Connection, case_id: str, seq: int, event: CloudEvent) -> None:
        links = conn.scalar(_LINKS_OF_CASE, {"case_id": case_id})
        upsert_sync(
            conn,
            chains,
            {
                "case_id": case_id,
                "head_seq": seq,
                "head_hash": event.hash or "",
                "links": (links or 0) + 1,
            },
        )


# Built once: the statements every entry reads.
_CHILD_OF_CASE = select(cases.c.child_id).where(cases.c.case_id == bindparam("case_id"))
_LINKS_OF_CASE = select(chains.c.links).where(chains.c.case_id == bindparam("case_id"))
_TILE = (
    select(leaves.c.leaf_hash)
    .where(leaves.c.seq.between(bindparam("first"), bindparam("last")))
    .order_by(leaves.c.seq)
)
