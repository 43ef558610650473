"""Read models of the log service: entries with every version, the hash chain's head per
case, who read what, the Merkle tree's leaves, and the case and directory facts it needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.engine import Connection

from stafett_log import merkle
from stafett_log.merkle import leaf_hash
from stafett_shared.contracts.access import AccessRecorded
from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    ChildIdentified,
    HandoverAccepted,
)
from stafett_shared.contracts.directory import RoleEnded, RoleGranted
from stafett_shared.contracts.log import (
    EntryAppended,
    EntryCorrected,
    EntryRestricted,
    EntryRetracted,
)
from stafett_shared.db import UtcDateTime, as_utc, upsert_sync
from stafett_shared.envelope import CloudEvent, EventData
from stafett_shared.eventstore import StoredCommit
from stafett_shared.facts import apply_role, case_status, history_from
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
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("history_from", UtcDateTime(), nullable=True),
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
    Column("author_kind", String(16), nullable=True),  # "child": the youth's own words
    Column("regime", String(32), nullable=True),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=True),
    Column("category", String(32), nullable=True),
    Column("text", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("participants", Text, nullable=True),
    Column("key_owner", String(26), nullable=False),
    Column("refers_to", String(26), nullable=True),  # the entry corrected or retracted
    Column("retracted", Integer, nullable=False, default=0),
    Column("restricted_until", UtcDateTime(), nullable=True),
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
    Column("read_at", UtcDateTime(), nullable=False),
)
access_record_entries = Table(
    "access_record_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True),  # the access record's
    Column("entry_id", String(26), primary_key=True),
)
"""Which entries each read served, so the who-read view can count for a viewer only the
entries that viewer may see."""
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
    Column("created_at", UtcDateTime(), nullable=False),
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
            self._apply(conn, event, self.event_registry.payload(event), commit.seq)

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

    def _apply(self, conn: Connection, event: CloudEvent, payload: EventData, seq: int) -> None:
        case_id = event.subject
        match payload:
            case CaseOpened():
                upsert_sync(
                    conn,
                    cases,
                    {
                        "case_id": case_id,
                        "org_id": payload.org_id,
                        "unit_id": payload.unit_id,
                        "child_id": payload.child_id,
                        "status": "open",
                        "opened_at": event.time,
                        "history_from": None,
                    },
                )
            case ChildIdentified():
                self._case(conn, case_id, child_id=payload.child_id)
            case HandoverAccepted():
                start = history_from(payload, event.time)
                self._case(
                    conn,
                    case_id,
                    org_id=payload.to_org_id,
                    unit_id=payload.to_unit_id,
                    **({} if start is None else {"history_from": start}),
                )
            case CaseClosedEvent() | CaseReopened():
                self._case(conn, case_id, status=case_status(payload))
            case RoleGranted() | RoleEnded():
                apply_role(conn, roles, payload)
            case EntryAppended() | EntryCorrected() | EntryRetracted():
                self._entry(conn, event, payload, seq)
            case EntryRestricted():
                conn.execute(
                    update(entries)
                    .where(entries.c.entry_id == payload.entry_id)
                    .values(
                        restricted_until=as_utc(payload.until),
                        restriction_ground=payload.ground.value,
                    )
                )
                self._link(conn, case_id, seq, event)
            case AccessRecorded():
                upsert_sync(
                    conn,
                    access_records,
                    {
                        "seq": seq,
                        "case_id": payload.case_id,
                        "reader_id": payload.reader_id,
                        "reader_kind": payload.reader_kind,
                        "basis": payload.basis,
                        "what": payload.what,
                        "entries": len(payload.entry_ids),
                        "service": payload.service,
                        "read_at": event.time,
                    },
                    update=False,
                )
                for entry_id in dict.fromkeys(payload.entry_ids):
                    upsert_sync(
                        conn,
                        access_record_entries,
                        {"seq": seq, "entry_id": entry_id},
                        update=False,
                    )

    @staticmethod
    def _case(conn: Connection, case_id: str, **values: Any) -> None:
        conn.execute(update(cases).where(cases.c.case_id == case_id).values(**values))

    def _entry(
        self,
        conn: Connection,
        event: CloudEvent,
        payload: EntryAppended | EntryCorrected | EntryRetracted,
        seq: int,
    ) -> None:
        case_id = event.subject
        child = conn.scalar(_CHILD_OF_CASE, {"case_id": case_id})
        upsert_sync(
            conn,
            entries,
            {
                "entry_id": payload.entry_id,
                "case_id": case_id,
                "seq": seq,
                "author_id": payload.author.person_id,
                "author_role": payload.author.role,
                "author_unit": payload.author.unit_id,
                "author_kind": payload.author.kind,
                "recorded_at": event.time,
                "key_owner": child or case_id,
                "retracted": 0,
                "restricted_until": None,
                "restriction_ground": None,
                **_version(payload),
            },
        )
        if isinstance(payload, EntryRetracted):
            conn.execute(
                update(entries)
                .where(entries.c.entry_id == payload.retracts_entry_id)
                .values(retracted=1)
            )
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


def _version(payload: EntryAppended | EntryCorrected | EntryRetracted) -> dict[str, Any]:
    """The columns in which an entry, its correction and its retraction differ."""
    match payload:
        case EntryAppended():
            return {
                "kind": payload.kind.value,
                "regime": payload.regime.value,
                "occurred_at": as_utc(payload.occurred_at),
                "category": payload.category.value if payload.category else None,
                "text": payload.text,
                "reason": None,
                "participants": payload.participants,
                "refers_to": None,
            }
        case EntryCorrected():
            return {
                "kind": "correction",
                "regime": payload.regime.value,
                "occurred_at": None,
                "category": payload.category.value if payload.category else None,
                "text": payload.text,
                "reason": payload.reason,
                "participants": None,
                "refers_to": payload.corrects_entry_id,
            }
        case EntryRetracted():
            return {
                "kind": "retraction",
                "regime": None,
                "occurred_at": None,
                "category": None,
                "text": None,
                "reason": payload.reason,
                "participants": None,
                "refers_to": payload.retracts_entry_id,
            }


# Built once: the statements every entry reads.
_CHILD_OF_CASE = select(cases.c.child_id).where(cases.c.case_id == bindparam("case_id"))
_LINKS_OF_CASE = select(chains.c.links).where(chains.c.case_id == bindparam("case_id"))
_TILE = (
    select(leaves.c.leaf_hash)
    .where(leaves.c.seq.between(bindparam("first"), bindparam("last")))
    .order_by(leaves.c.seq)
)
