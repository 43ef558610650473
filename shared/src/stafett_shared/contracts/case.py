"""The case context's events, owned by the case service: the child's stafett (relay) from
opening to closing. Published on ``stafett.ev.case.<case id>``; deadlines for notify on
``stafett.ev.case.<case id>-deadlines``."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from stafett_shared.contracts.base import ContractEvent, Encrypted
from stafett_shared.envelope import registry

__all__ = [
    "Access",
    "CaseClosedEvent",
    "CaseEvent",
    "CaseOpened",
    "CaseReopened",
    "ChildIdentified",
    "ChildWelfareReportReceived",
    "ChildWelfareReported",
    "CloseReason",
    "DeadlineDue",
    "DeadlineKind",
    "HandoverAccepted",
    "HandoverCancelled",
    "HandoverDeclined",
    "HandoverRequested",
    "HolderRef",
    "LevelChanged",
    "MeasureAdded",
    "MeasureEvaluated",
    "Outcome",
    "TeamMemberAdded",
    "TeamMemberRemoved",
]


class CloseReason(StrEnum):
    RESOLVED = "resolved"
    MOVED = "moved"
    HANDED_TO_CHILD_WELFARE = "handed_to_child_welfare"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    INDIVIDUAL_PLAN_STARTED = "individual_plan_started"
    AGED_OUT = "aged_out"
    OTHER = "other"


class Outcome(StrEnum):
    NOT_ACHIEVED = "not_achieved"
    PARTLY = "partly"
    ACHIEVED = "achieved"


Access = Literal["read", "write"]
DeadlineKind = Literal[
    "level0_unresolved",
    "measure_evaluation_soon",
    "measure_evaluation_due",
    "handover_unanswered",
    "inactive",
    "holder_left_unit",
]


class CaseEvent(ContractEvent):
    context: ClassVar[str] = "case"
    owner: ClassVar[str | None] = "case"
    subject_pattern: ClassVar[str] = "stafett.ev.case.{case_id}"


class HolderRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str
    unit_id: str


@registry.register
class CaseOpened(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.opened.v1"
    case_id: str
    org_id: str
    unit_id: str
    level: int
    holder: HolderRef
    child_id: str | None = None
    pseudonym: Encrypted | None = None
    concern: Encrypted


@registry.register
class ChildIdentified(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.child_identified.v1"
    case_id: str
    child_id: str


@registry.register
class LevelChanged(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.level_changed.v1"
    case_id: str
    from_level: int
    level: int
    reason: Encrypted


@registry.register
class TeamMemberAdded(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.team_member_added.v1"
    case_id: str
    person_id: str
    unit_id: str
    org_id: str
    access: Access


@registry.register
class TeamMemberRemoved(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.team_member_removed.v1"
    case_id: str
    person_id: str


@registry.register
class HandoverRequested(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.handover_requested.v1"
    case_id: str
    handover_id: str
    from_person_id: str
    from_unit_id: str
    to_person_id: str
    to_unit_id: str
    to_org_id: str
    requested_by: str
    note: Encrypted | None = None
    consent_id: str | None = None


@registry.register
class HandoverAccepted(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.handover_accepted.v1"
    case_id: str
    handover_id: str
    from_person_id: str
    to_person_id: str
    to_unit_id: str
    to_org_id: str
    history_travels: bool
    history_from: datetime | None = None
    consent_id: str | None = None


@registry.register
class HandoverDeclined(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.handover_declined.v1"
    case_id: str
    handover_id: str
    reason: Encrypted


@registry.register
class HandoverCancelled(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.handover_cancelled.v1"
    case_id: str
    handover_id: str
    cancelled_by: str


@registry.register
class MeasureAdded(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.measure_added.v1"
    case_id: str
    measure_id: str
    title: Encrypted
    goal: Encrypted
    responsible_person_id: str
    start: date
    evaluate_by: date


@registry.register
class MeasureEvaluated(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.measure_evaluated.v1"
    case_id: str
    measure_id: str
    outcome: Outcome
    note: Encrypted | None = None
    evaluated_on: date
    next_evaluate_by: date | None = None


@registry.register
class ChildWelfareReported(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.child_welfare_reported.v1"
    case_id: str
    report_id: str
    text: Encrypted
    reported_by: str
    unit_id: str | None = None


@registry.register
class ChildWelfareReportReceived(CaseEvent):
    """The child welfare service the report was sent to (``unit_id``) has acknowledged it."""

    event_type: ClassVar[str] = "no.stafett.case.child_welfare_report_received.v1"
    case_id: str
    report_id: str
    unit_id: str
    received_by: str


@registry.register
class CaseClosedEvent(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.closed.v1"
    case_id: str
    reason: CloseReason
    note: Encrypted | None = None


@registry.register
class CaseReopened(CaseEvent):
    event_type: ClassVar[str] = "no.stafett.case.reopened.v1"
    case_id: str
    reason: Encrypted


@registry.register
class DeadlineDue(CaseEvent):
    """A deadline the holder must act on, for notify: on an aggregate of its own beside the
    case, so that the deadline job never contends with the case's writers."""

    event_type: ClassVar[str] = "no.stafett.case.deadline_due.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.case.{case_id}-deadlines"
    case_id: str
    kind: DeadlineKind
    due_on: date
    ref_id: str | None = None
    notify_person_ids: tuple[str, ...] = ()
