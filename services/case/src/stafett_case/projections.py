"""Read models of the case service: cases, team, measures, handovers, and the facts it needs
from other contexts (units, roles and children from the directory, consents, log activity).
The read model also serves as the snapshot for lists, deadlines and indicators."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Connection

from stafett_shared.db import parse_time, upsert_sync
from stafett_shared.envelope import CloudEvent
from stafett_shared.eventstore import StoredCommit
from stafett_shared.projector import BlockingProjection

metadata = MetaData()

cases = Table(
    "cases",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("org_id", String(32), nullable=False, index=True),
    Column("unit_id", String(64), nullable=False, index=True),
    Column("level", Integer, nullable=False),
    Column("opened_level", Integer, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("holder_id", String(64), nullable=False, index=True),
    Column("holder_unit_id", String(64), nullable=False),
    Column("child_id", String(26), nullable=True),
    Column("pseudonym", Text, nullable=True),
    Column("concern", Text, nullable=False),
    Column("opened_by", String(64), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("level_changed_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("close_reason", String(32), nullable=True),
    Column("last_entry_at", DateTime(timezone=True), nullable=True),
    Column("history_from", DateTime(timezone=True), nullable=True),
    Column("first_measure_at", DateTime(timezone=True), nullable=True),
    Column("version", BigInteger, nullable=False),
)
team = Table(
    "team",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), nullable=False),
    Column("org_id", String(32), nullable=False),
    Column("access", String(8), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
)
measures = Table(
    "measures",
    metadata,
    Column("measure_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("goal", Text, nullable=False),
    Column("responsible_person_id", String(64), nullable=False),
    Column("start", Date, nullable=False),
    Column("evaluate_by", Date, nullable=True),
    Column("first_due", Date, nullable=False),
    Column("last_outcome", String(16), nullable=True),
    Column("evaluated_on", Date, nullable=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Index("ix_measures_due", "evaluate_by"),
)
evaluations = Table(
    "evaluations",
    metadata,
    Column("case_id", String(26), nullable=False),
    Column("measure_id", String(26), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("evaluated_on", Date, nullable=False),
    Column("due", Date, nullable=True),
)
handovers = Table(
    "handovers",
    metadata,
    Column("handover_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("from_person_id", String(64), nullable=False),
    Column("to_person_id", String(64), nullable=False, index=True),
    Column("to_unit_id", String(64), nullable=False),
    Column("to_org_id", String(32), nullable=False),
    Column("note", Text, nullable=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("from_unit_id", String(64), nullable=True),
    Column("decline_reason", Text, nullable=True),  # encrypted, as in the event
)
level_history = Table(
    "level_history",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("seq", BigInteger, primary_key=True),  # the commit's: one change a commit
    Column("level", Integer, nullable=False),
    Column("previous_level", Integer, nullable=True),  # None: the level the case opened at
    Column("reason", Text, nullable=True),  # encrypted, as in the event; None at opening
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("by_person_id", String(64), nullable=False),
)
reports = Table(
    "child_welfare_reports",
    metadata,
    Column("report_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("reported_by", String(64), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)
# Facts from other contexts ------------------------------------------------------------------
units = Table(
    "units",
    metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("org_id", String(32), nullable=False),
    Column("sector", String(32), nullable=False),
    Column("closed", Boolean, nullable=False),
)
roles = Table(
    "roles",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
    Index("ix_case_roles_unit", "unit_id", "role"),
)
children = Table(
    "children",
    metadata,
    Column("child_id", String(26), primary_key=True),
    Column("national_id_index", String(64), nullable=False, unique=True),
    Column("national_id", Text, nullable=False),
    Column("name", Text, nullable=False),
)
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
)
entries = Table(
    "log_entries",
    metadata,
    Column("entry_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
deadlines_sent = Table(
    "deadlines_sent",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("ref_id", String(26), primary_key=True),
    Column("due_on", Date, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)


def _date(value: Any) -> date | None:
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class CaseProjection(BlockingProjection):
    """Applies case, directory, consent and log events to the case service's tables.
    Written against a blocking connection: the projector applies a batch in one call
    (docs/decisions/0016-blocking-projections.md)."""

    name = "case"
    contexts = frozenset({"case", "consent", "directory", "log"})
    tables = tuple(metadata.sorted_tables)

    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        for event in commit.events:
            self._apply(conn, event, commit.seq)

    @staticmethod
    def _level(conn: Connection, event: CloudEvent, seq: int) -> None:
        """A row of the level history from ``case.opened`` or ``case.level_changed``."""
        d = event.data
        upsert_sync(
            conn,
            level_history,
            {
                "case_id": event.subject,
                "seq": seq,
                "level": d["level"],
                "previous_level": d.get("from_level"),  # None: the opening level
                "reason": d.get("reason"),
                "changed_at": event.time,
                "by_person_id": event.actor,
            },
        )

    def _apply(  # noqa: PLR0912, PLR0915 - one branch per event type
        self, conn: Connection, event: CloudEvent, seq: int
    ) -> None:
        d = event.data
        at = event.time
        name = event.type.removeprefix("no.stafett.").rsplit(".", 1)[0]
        case_id = event.subject

        def touch(**values: Any) -> None:
            conn.execute(
                update(cases).where(cases.c.case_id == case_id).values(version=seq, **values)
            )

        match name:
            case "case.opened":
                upsert_sync(
                    conn,
                    cases,
                    {
                        "case_id": case_id,
                        "org_id": d["org_id"],
                        "unit_id": d["unit_id"],
                        "level": d["level"],
                        "opened_level": d["level"],
                        "status": "open",
                        "holder_id": d["holder"]["person_id"],
                        "holder_unit_id": d["holder"]["unit_id"],
                        "child_id": d.get("child_id"),
                        "pseudonym": d.get("pseudonym"),
                        "concern": d["concern"],
                        "opened_by": event.actor,
                        "opened_at": at,
                        "level_changed_at": at,
                        "version": seq,
                    },
                )
                self._level(conn, event, seq)
            case "case.child_identified":
                touch(child_id=d["child_id"])
            case "case.level_changed":
                self._level(conn, event, seq)
                touch(level=d["level"], level_changed_at=at)
            case "case.team_member_added":
                upsert_sync(
                    conn,
                    team,
                    {
                        "case_id": case_id,
                        "person_id": d["person_id"],
                        "unit_id": d["unit_id"],
                        "org_id": d["org_id"],
                        "access": d["access"],
                        "added_at": at,
                    },
                )
                touch()
            case "case.team_member_removed":
                conn.execute(
                    delete(team).where(
                        team.c.case_id == case_id, team.c.person_id == d["person_id"]
                    )
                )
                touch()
            case "case.handover_requested":
                upsert_sync(
                    conn,
                    handovers,
                    {
                        "handover_id": d["handover_id"],
                        "case_id": case_id,
                        "status": "pending",
                        "from_person_id": d["from_person_id"],
                        "from_unit_id": d.get("from_unit_id"),
                        "to_person_id": d["to_person_id"],
                        "to_unit_id": d["to_unit_id"],
                        "to_org_id": d["to_org_id"],
                        "note": d.get("note"),
                        "requested_at": at,
                        "answered_at": None,
                    },
                )
                touch()
            case "case.handover_accepted" | "case.handover_declined" | "case.handover_cancelled":
                status = name.split("_")[-1]
                conn.execute(
                    update(handovers)
                    .where(handovers.c.handover_id == d["handover_id"])
                    .values(status=status, answered_at=at, decline_reason=d.get("reason"))
                )
                if status == "accepted":
                    values: dict[str, Any] = {
                        "holder_id": d["to_person_id"],
                        "holder_unit_id": d["to_unit_id"],
                        "unit_id": d["to_unit_id"],
                        "org_id": d["to_org_id"],
                    }
                    if not d.get("history_travels", True):
                        values["history_from"] = parse_time(d.get("history_from")) or at
                    touch(**values)
                else:
                    touch()
            case "case.measure_added":
                due = _date(d["evaluate_by"])
                upsert_sync(
                    conn,
                    measures,
                    {
                        "measure_id": d["measure_id"],
                        "case_id": case_id,
                        "title": d["title"],
                        "goal": d["goal"],
                        "responsible_person_id": d["responsible_person_id"],
                        "start": _date(d["start"]),
                        "evaluate_by": due,
                        "first_due": due,
                        "last_outcome": None,
                        "evaluated_on": None,
                        "added_at": at,
                    },
                )
                first = conn.scalar(
                    select(cases.c.first_measure_at).where(cases.c.case_id == case_id)
                )
                touch(**({} if first else {"first_measure_at": at}))
            case "case.measure_evaluated":
                due = conn.scalar(
                    select(measures.c.evaluate_by).where(measures.c.measure_id == d["measure_id"])
                )
                upsert_sync(
                    conn,
                    evaluations,
                    {
                        "case_id": case_id,
                        "measure_id": d["measure_id"],
                        "seq": seq,
                        "outcome": d["outcome"],
                        "evaluated_on": _date(d["evaluated_on"]),
                        "due": due,
                    },
                    update=False,
                )
                conn.execute(
                    update(measures)
                    .where(measures.c.measure_id == d["measure_id"])
                    .values(
                        last_outcome=d["outcome"],
                        evaluated_on=_date(d["evaluated_on"]),
                        evaluate_by=_date(d.get("next_evaluate_by")),
                    )
                )
                touch()
            case "case.child_welfare_reported":
                upsert_sync(
                    conn,
                    reports,
                    {
                        "report_id": d["report_id"],
                        "case_id": case_id,
                        "reported_by": d["reported_by"],
                        "reported_at": at,
                    },
                )
                touch()
            case "case.closed":
                touch(status="closed", closed_at=at, close_reason=d["reason"])
            case "case.reopened":
                touch(status="open", closed_at=None, close_reason=None)
            case "directory.unit_registered" | "directory.unit_changed":
                upsert_sync(
                    conn,
                    units,
                    {
                        "unit_id": d["unit_id"],
                        "org_id": d["org_id"],
                        "sector": d["sector"],
                        "closed": False,
                    },
                )
            case "directory.unit_closed":
                conn.execute(
                    update(units).where(units.c.unit_id == d["unit_id"]).values(closed=True)
                )
            case "directory.role_granted":
                upsert_sync(
                    conn,
                    roles,
                    {
                        "person_id": d["person_id"],
                        "unit_id": d["unit_id"],
                        "role": d["role"],
                    },
                )
            case "directory.role_ended":
                conn.execute(
                    delete(roles).where(
                        roles.c.person_id == d["person_id"],
                        roles.c.unit_id == d["unit_id"],
                        roles.c.role == d["role"],
                    )
                )
            case "directory.child_registered":
                upsert_sync(
                    conn,
                    children,
                    {
                        "child_id": d["child_id"],
                        "national_id_index": d["national_id_index"],
                        "national_id": d["national_id"],
                        "name": d["name"],
                    },
                )
            case "consent.requested":
                upsert_sync(
                    conn,
                    consents,
                    {
                        "consent_id": d["consent_id"],
                        "case_id": d["case_id"],
                        "status": "pending",
                        "scope": d["scope"],
                        "valid_from": parse_time(d["valid_from"]),
                        "valid_until": parse_time(d["valid_until"]),
                    },
                )
            case "consent.activated" | "consent.refused" | "consent.withdrawn" | "consent.expired":
                status = {
                    "activated": "active",
                    "refused": "refused",
                    "withdrawn": "withdrawn",
                    "expired": "expired",
                }[name.split(".")[1]]
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == d["consent_id"])
                    .values(status=status)
                )
            case "log.entry_appended":
                upsert_sync(
                    conn,
                    entries,
                    {
                        "entry_id": d["entry_id"],
                        "case_id": case_id,
                        "kind": d.get("kind", "note"),
                        "recorded_at": at,
                    },
                )
                conn.execute(
                    update(cases).where(cases.c.case_id == case_id).values(last_entry_at=at)
                )
