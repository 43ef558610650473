"""Read models of the case service: cases, team, measures, handovers, and the facts it needs
from other contexts (units, roles and children from the directory, consents, log activity).
The read model also serves as the snapshot for lists, deadlines and indicators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
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

from stafett_shared.contracts.access import LookupRecorded
from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    ChildIdentified,
    ChildWelfareReported,
    ChildWelfareReportReceived,
    HandoverAccepted,
    HandoverCancelled,
    HandoverDeclined,
    HandoverRequested,
    LevelChanged,
    MeasureAdded,
    MeasureEvaluated,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.consent import (
    ConsentActivated,
    ConsentExpired,
    ConsentRefused,
    ConsentRequested,
    ConsentWithdrawn,
)
from stafett_shared.contracts.directory import (
    ChildRegistered,
    OrganisationChildWelfareServiceSet,
    OrganisationSettingsSet,
    RoleEnded,
    RoleGranted,
    UnitChanged,
    UnitClosed,
    UnitRegistered,
)
from stafett_shared.contracts.log import EntryAppended
from stafett_shared.db import UtcDateTime, as_utc, upsert_sync
from stafett_shared.envelope import CloudEvent, EventData
from stafett_shared.eventstore import StoredCommit
from stafett_shared.facts import apply_role, case_status, history_from
from stafett_shared.projector import BlockingProjection
from stafett_shared.settings import REMINDER_FIELDS

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
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("level_changed_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("close_reason", String(32), nullable=True),
    Column("last_entry_at", UtcDateTime(), nullable=True),
    Column("history_from", UtcDateTime(), nullable=True),
    Column("first_measure_at", UtcDateTime(), nullable=True),
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
    Column("added_at", UtcDateTime(), nullable=False),
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
    Column("added_at", UtcDateTime(), nullable=False),
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
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("answered_at", UtcDateTime(), nullable=True),
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
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("by_person_id", String(64), nullable=False),
)
reports = Table(
    "child_welfare_reports",
    metadata,
    Column("report_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("reported_by", String(64), nullable=False),
    Column("reported_at", UtcDateTime(), nullable=False),
    # The child welfare unit it was sent to (None: sent before reports were addressed).
    Column("unit_id", String(64), nullable=True),
    Column("text", Text, nullable=True),  # encrypted, as in the event
    Column("from_org_id", String(32), nullable=True),  # the case's, when it was sent
    Column("from_unit_id", String(64), nullable=True),
    Column("status", String(16), nullable=False, default="sent"),  # sent | received
    Column("received_at", UtcDateTime(), nullable=True),
    Column("received_by", String(64), nullable=True),
    Index("ix_child_welfare_reports_inbox", "unit_id", "report_id"),
)
# The child welfare unit an organisation names for its reports (absent or None: its own).
child_welfare_services = Table(
    "child_welfare_services",
    metadata,
    Column("org_id", String(32), primary_key=True),
    Column("unit_id", String(64), nullable=True),
)
# An organisation's own reminder times (None, or no row: the region's STAFETT_CASE_* ones).
organisation_reminders = Table(
    "organisation_reminders",
    metadata,
    Column("org_id", String(32), primary_key=True),
    Column("level0_days", Integer, nullable=True),
    Column("evaluation_warning_days", Integer, nullable=True),
    Column("handover_days", Integer, nullable=True),
    Column("inactive_days", Integer, nullable=True),
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
child_registrants = Table(
    # Who gave a national id's details to register a child (first or again): only they may
    # open a case or identify a child by that national id (decision 0029).
    "child_registrants",
    metadata,
    Column("national_id_index", String(64), primary_key=True),
    Column("person_id", String(64), primary_key=True),
)
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
)
entries = Table(
    "log_entries",
    metadata,
    Column("entry_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
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


class CaseProjection(BlockingProjection):
    """Applies case, directory, consent and log events to the case service's tables.
    Written against a blocking connection: the projector applies a batch in one call
    (docs/decisions/0016-blocking-projections.md)."""

    name = "case"
    contexts = frozenset({"case", "consent", "directory", "log", "access"})

    def wants(self, commit: StoredCommit) -> bool:
        # Of the access context only look-ups by national id: reads and decisions are many
        # and change nothing here.
        return any(
            event.type == LookupRecorded.event_type
            if event.context == "access"
            else event.context in self.contexts
            for event in commit.events
        )

    tables = tuple(metadata.sorted_tables)

    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        for event in commit.events:
            self._apply(conn, event, self.event_registry.payload(event), commit.seq)

    @staticmethod
    def _level(
        conn: Connection, event: CloudEvent, payload: CaseOpened | LevelChanged, seq: int
    ) -> None:
        """A row of the level history: the level a case opened at, or a change of it."""
        changed = payload if isinstance(payload, LevelChanged) else None
        upsert_sync(
            conn,
            level_history,
            {
                "case_id": event.subject,
                "seq": seq,
                "level": payload.level,
                "previous_level": changed.from_level if changed else None,  # None: opening
                "reason": changed.reason if changed else None,
                "changed_at": event.time,
                "by_person_id": event.actor,
            },
        )

    @staticmethod
    def _answered(
        conn: Connection, handover_id: str, status: str, at: datetime, reason: str | None = None
    ) -> None:
        """A handover accepted, declined (with the event's encrypted reason) or cancelled."""
        conn.execute(
            update(handovers)
            .where(handovers.c.handover_id == handover_id)
            .values(status=status, answered_at=at, decline_reason=reason)
        )

    def _apply(  # noqa: PLR0912, PLR0915 - one branch per event type
        self, conn: Connection, event: CloudEvent, payload: EventData, seq: int
    ) -> None:
        at = event.time
        case_id = event.subject

        def touch(**values: Any) -> None:
            conn.execute(
                update(cases).where(cases.c.case_id == case_id).values(version=seq, **values)
            )

        match payload:
            case CaseOpened():
                upsert_sync(
                    conn,
                    cases,
                    {
                        "case_id": case_id,
                        "org_id": payload.org_id,
                        "unit_id": payload.unit_id,
                        "level": payload.level,
                        "opened_level": payload.level,
                        "status": "open",
                        "holder_id": payload.holder.person_id,
                        "holder_unit_id": payload.holder.unit_id,
                        "child_id": payload.child_id,
                        "pseudonym": payload.pseudonym,
                        "concern": payload.concern,
                        "opened_by": event.actor,
                        "opened_at": at,
                        "level_changed_at": at,
                        "version": seq,
                    },
                )
                self._level(conn, event, payload, seq)
            case ChildIdentified():
                touch(child_id=payload.child_id)
            case LevelChanged():
                self._level(conn, event, payload, seq)
                touch(level=payload.level, level_changed_at=at)
            case TeamMemberAdded():
                upsert_sync(
                    conn,
                    team,
                    {
                        "case_id": case_id,
                        "person_id": payload.person_id,
                        "unit_id": payload.unit_id,
                        "org_id": payload.org_id,
                        "access": payload.access,
                        "added_at": at,
                    },
                )
                touch()
            case TeamMemberRemoved():
                conn.execute(
                    delete(team).where(
                        team.c.case_id == case_id, team.c.person_id == payload.person_id
                    )
                )
                touch()
            case HandoverRequested():
                upsert_sync(
                    conn,
                    handovers,
                    {
                        "handover_id": payload.handover_id,
                        "case_id": case_id,
                        "status": "pending",
                        "from_person_id": payload.from_person_id,
                        "from_unit_id": payload.from_unit_id,
                        "to_person_id": payload.to_person_id,
                        "to_unit_id": payload.to_unit_id,
                        "to_org_id": payload.to_org_id,
                        "note": payload.note,
                        "requested_at": at,
                        "answered_at": None,
                    },
                )
                touch()
            case HandoverAccepted():
                self._answered(conn, payload.handover_id, "accepted", at)
                holder: dict[str, Any] = {
                    "holder_id": payload.to_person_id,
                    "holder_unit_id": payload.to_unit_id,
                    "unit_id": payload.to_unit_id,
                    "org_id": payload.to_org_id,
                }
                start = history_from(payload, at)
                touch(**holder, **({} if start is None else {"history_from": start}))
            case HandoverDeclined():
                self._answered(conn, payload.handover_id, "declined", at, payload.reason)
                touch()
            case HandoverCancelled():
                self._answered(conn, payload.handover_id, "cancelled", at)
                touch()
            case MeasureAdded():
                upsert_sync(
                    conn,
                    measures,
                    {
                        "measure_id": payload.measure_id,
                        "case_id": case_id,
                        "title": payload.title,
                        "goal": payload.goal,
                        "responsible_person_id": payload.responsible_person_id,
                        "start": payload.start,
                        "evaluate_by": payload.evaluate_by,
                        "first_due": payload.evaluate_by,
                        "last_outcome": None,
                        "evaluated_on": None,
                        "added_at": at,
                    },
                )
                first = conn.scalar(
                    select(cases.c.first_measure_at).where(cases.c.case_id == case_id)
                )
                touch(**({} if first else {"first_measure_at": at}))
            case MeasureEvaluated():
                measure = measures.c.measure_id == payload.measure_id
                due = conn.scalar(select(measures.c.evaluate_by).where(measure))
                upsert_sync(
                    conn,
                    evaluations,
                    {
                        "case_id": case_id,
                        "measure_id": payload.measure_id,
                        "seq": seq,
                        "outcome": payload.outcome.value,
                        "evaluated_on": payload.evaluated_on,
                        "due": due,
                    },
                    update=False,
                )
                conn.execute(
                    update(measures)
                    .where(measure)
                    .values(
                        last_outcome=payload.outcome.value,
                        evaluated_on=payload.evaluated_on,
                        evaluate_by=payload.next_evaluate_by,
                    )
                )
                touch()
            case ChildWelfareReported():
                sender = conn.execute(
                    select(cases.c.org_id, cases.c.unit_id).where(cases.c.case_id == case_id)
                ).first()
                upsert_sync(
                    conn,
                    reports,
                    {
                        "report_id": payload.report_id,
                        "case_id": case_id,
                        "reported_by": payload.reported_by,
                        "reported_at": at,
                        "unit_id": payload.unit_id,
                        "text": payload.text,
                        "from_org_id": sender.org_id if sender else None,
                        "from_unit_id": sender.unit_id if sender else None,
                        "status": "sent",
                        "received_at": None,
                        "received_by": None,
                    },
                )
                touch()
            case ChildWelfareReportReceived():
                conn.execute(
                    update(reports)
                    .where(reports.c.report_id == payload.report_id)
                    .values(status="received", received_at=at, received_by=payload.received_by)
                )
                touch()
            case OrganisationChildWelfareServiceSet():
                upsert_sync(
                    conn,
                    child_welfare_services,
                    {"org_id": payload.org_id, "unit_id": payload.unit_id},
                )
            case OrganisationSettingsSet():
                upsert_sync(
                    conn,
                    organisation_reminders,
                    {
                        "org_id": payload.org_id,
                        **{name: getattr(payload.settings, name) for name in REMINDER_FIELDS},
                    },
                )
            case CaseClosedEvent():
                touch(status=case_status(payload), closed_at=at, close_reason=payload.reason.value)
            case CaseReopened():
                touch(status=case_status(payload), closed_at=None, close_reason=None)
            case UnitRegistered() | UnitChanged():
                upsert_sync(
                    conn,
                    units,
                    {
                        "unit_id": payload.unit_id,
                        "org_id": payload.org_id,
                        "sector": payload.sector.value,
                        "closed": False,
                    },
                )
            case UnitClosed():
                conn.execute(
                    update(units).where(units.c.unit_id == payload.unit_id).values(closed=True)
                )
            case RoleGranted() | RoleEnded():
                apply_role(conn, roles, payload)
            case ChildRegistered():
                upsert_sync(
                    conn,
                    children,
                    {
                        "child_id": payload.child_id,
                        "national_id_index": payload.national_id_index,
                        "national_id": payload.national_id,
                        "name": payload.name,
                    },
                )
                _registrant(conn, payload.national_id_index, payload.registered_by)
            case LookupRecorded(purpose="register_child"):
                _registrant(conn, payload.national_id_index, payload.person_id)
            case ConsentRequested():
                upsert_sync(
                    conn,
                    consents,
                    {
                        "consent_id": payload.consent_id,
                        "case_id": payload.case_id,
                        "status": "pending",
                        "scope": payload.scope.model_dump(mode="json"),
                        "valid_from": as_utc(payload.valid_from),
                        "valid_until": as_utc(payload.valid_until),
                    },
                )
            case ConsentActivated() | ConsentRefused() | ConsentWithdrawn() | ConsentExpired():
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == payload.consent_id)
                    .values(status=payload.consent_status)
                )
            case EntryAppended():
                upsert_sync(
                    conn,
                    entries,
                    {
                        "entry_id": payload.entry_id,
                        "case_id": case_id,
                        "kind": payload.kind.value,
                        "recorded_at": at,
                    },
                )
                conn.execute(
                    update(cases).where(cases.c.case_id == case_id).values(last_entry_at=at)
                )


def _registrant(conn: Connection, national_id_index: str, person_id: str) -> None:
    upsert_sync(
        conn,
        child_registrants,
        {"national_id_index": national_id_index, "person_id": person_id},
        update=False,
    )
