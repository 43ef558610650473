"""The case aggregate: the child's stafett (relay).

One holder at every moment from opening to closing; a handover takes effect only when the
receiver accepts, and until then the old holder stays responsible. Levels 0–3 of the BTI
model, a team with read or write access, measures with evaluation dates, reports of concern
to child welfare, close and reopen. Nothing is ever deleted.

Pure: ``decide(state, command, now)`` returns the events a command yields or raises a
``CaseError``; ``evolve(state, event)`` returns the next state. No I/O and no clock; personal
data arrives encrypted, and facts the aggregate cannot know (whether a consent names an
organisation, which team members a consent covers) arrive in the command, decided by the
handler from the read models. Its events are the case context's contracts, defined in
``stafett_shared.contracts.case``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import IntEnum
from typing import ClassVar, Literal

from stafett_shared.contracts.base import Encrypted
from stafett_shared.contracts.case import (
    Access,
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    ChildIdentified,
    ChildWelfareReported,
    ChildWelfareReportReceived,
    CloseReason,
    HandoverAccepted,
    HandoverCancelled,
    HandoverDeclined,
    HandoverRequested,
    HolderRef,
    LevelChanged,
    MeasureAdded,
    MeasureEvaluated,
    Outcome,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.envelope import EventData

CONTEXT = "case"


class Level(IntEnum):
    CONCERN = 0  # a concern is noticed; possibly anonymous
    OWN_UNIT = 1  # the unit handles it with the child and guardians
    ONE_SERVICE = 2  # the unit needs one other service
    BROAD = 3  # broad cooperation across several services


# --- errors ------------------------------------------------------------------------------------


class CaseError(Exception):
    """A command the rules refuse; ``code`` for machines, the message names no person."""

    code: ClassVar[str] = "case_error"
    status: ClassVar[int] = 409


class CaseClosed(CaseError):
    code = "case_closed"


class CaseExists(CaseError):
    code = "case_exists"


class UnknownCase(CaseError):
    code = "not_found"
    status = 404


class InvalidLevel(CaseError):
    code = "invalid_level"
    status = 422


class IdentificationRequired(CaseError):
    code = "identification_required"
    status = 422


class AlreadyIdentified(CaseError):
    code = "already_identified"


class SameLevel(CaseError):
    code = "same_level"


class ConsentMissingForTeam(CaseError):
    code = "consent_missing_for_team"
    status = 422


class AlreadyOnTeam(CaseError):
    code = "already_on_team"


class NotOnTeam(CaseError):
    code = "not_on_team"
    status = 404


class HandoverPending(CaseError):
    code = "handover_pending"


class NoSuchHandover(CaseError):
    code = "no_such_handover"
    status = 404


class NotAddressee(CaseError):
    code = "not_addressee"
    status = 403


class HandoverToHolder(CaseError):
    code = "handover_to_holder"
    status = 422


class ConsentRequiredForHandover(CaseError):
    code = "consent_required_for_handover"
    status = 422


class NoSuchMeasure(CaseError):
    code = "no_such_measure"
    status = 404


class InvalidDates(CaseError):
    code = "invalid_dates"
    status = 422


class NotClosed(CaseError):
    code = "not_closed"


class NoSuchReport(CaseError):
    code = "not_found"
    status = 404


class ReportReceived(CaseError):
    code = "report_received"


# --- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    person_id: str
    unit_id: str


@dataclass(frozen=True, slots=True)
class TeamEntry:
    unit_id: str
    org_id: str
    access: Access


@dataclass(frozen=True, slots=True)
class PendingHandover:
    handover_id: str
    to_person_id: str
    to_unit_id: str
    to_org_id: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class MeasureState:
    responsible_person_id: str
    start: date
    evaluate_by: date | None  # None once evaluated without a next date


@dataclass(frozen=True, slots=True)
class ReportState:
    unit_id: str | None  # the child welfare unit it was sent to
    received: bool = False


@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str | None = None
    status: Literal["open", "closed"] | None = None
    org_id: str = ""
    unit_id: str = ""
    level: int = 0
    child_id: str | None = None
    holder: Holder | None = None
    team: Mapping[str, TeamEntry] = field(default_factory=dict)
    pending: PendingHandover | None = None
    measures: Mapping[str, MeasureState] = field(default_factory=dict)
    reports: Mapping[str, ReportState] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.status is not None


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenCase:
    case_id: str
    org_id: str
    unit_id: str
    level: int
    holder_id: str
    concern: Encrypted
    child_id: str | None = None
    pseudonym: Encrypted | None = None


@dataclass(frozen=True, slots=True)
class IdentifyChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class ChangeLevel:
    level: int
    reason: Encrypted
    # Outside services on the team that no consent or other basis covers (the handler asks).
    uncovered_members: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AddTeamMember:
    person_id: str
    unit_id: str
    org_id: str
    access: Access
    # Whether a consent or another basis covers the member (the handler asks); at levels 2
    # and 3 an outside service may join only when covered.
    covered: bool = True


@dataclass(frozen=True, slots=True)
class RemoveTeamMember:
    person_id: str


@dataclass(frozen=True, slots=True)
class CrossOrgConsent:
    """The active consent naming the receiving organisation, as the handler found it."""

    consent_id: str
    history_travels: bool


@dataclass(frozen=True, slots=True)
class RequestHandover:
    handover_id: str
    to_person_id: str
    to_unit_id: str
    to_org_id: str
    requested_by: str
    note: Encrypted | None
    consent: CrossOrgConsent | None


@dataclass(frozen=True, slots=True)
class AcceptHandover:
    handover_id: str
    by: str
    consent: CrossOrgConsent | None


@dataclass(frozen=True, slots=True)
class DeclineHandover:
    handover_id: str
    by: str
    reason: Encrypted


@dataclass(frozen=True, slots=True)
class CancelHandover:
    handover_id: str
    by: str


@dataclass(frozen=True, slots=True)
class AddMeasure:
    measure_id: str
    title: Encrypted
    goal: Encrypted
    responsible_person_id: str
    start: date
    evaluate_by: date


@dataclass(frozen=True, slots=True)
class EvaluateMeasure:
    measure_id: str
    outcome: Outcome
    note: Encrypted | None
    next_evaluate_by: date | None


@dataclass(frozen=True, slots=True)
class ReportToChildWelfare:
    report_id: str
    text: Encrypted
    reported_by: str
    # The child welfare unit it goes to, as the handler found it in the directory.
    unit_id: str | None


@dataclass(frozen=True, slots=True)
class ReceiveReport:
    """The child welfare service a report was sent to acknowledges it."""

    report_id: str
    unit_id: str  # the unit the receiver takes in reports for
    by: str


@dataclass(frozen=True, slots=True)
class CloseCase:
    reason: CloseReason
    note: Encrypted | None = None


@dataclass(frozen=True, slots=True)
class ReopenCase:
    reason: Encrypted


Command = (
    OpenCase
    | IdentifyChild
    | ChangeLevel
    | AddTeamMember
    | RemoveTeamMember
    | RequestHandover
    | AcceptHandover
    | DeclineHandover
    | CancelHandover
    | AddMeasure
    | EvaluateMeasure
    | ReportToChildWelfare
    | ReceiveReport
    | CloseCase
    | ReopenCase
)


# --- decide --------------------------------------------------------------------------------------


def decide(state: CaseState, command: Command, now: datetime) -> list[EventData]:
    """The events ``command`` yields on ``state`` at ``now``; raises ``CaseError``."""
    if isinstance(command, OpenCase):
        return _open(state, command)
    if not state.exists or state.case_id is None or state.holder is None:
        raise UnknownCase("no such case")
    case_id = state.case_id
    if isinstance(command, ReopenCase):
        if state.status != "closed":
            raise NotClosed("only a closed case can be reopened")
        return [CaseReopened(case_id=case_id, reason=command.reason)]
    if isinstance(command, ReceiveReport):
        # A case is often closed once it is handed to child welfare: the report is received
        # whatever the case's status.
        return _received(state, case_id, command)
    if state.status == "closed":
        raise CaseClosed("the case is closed; reopen it first")
    if isinstance(command, ReportToChildWelfare):
        return _report(case_id, command)
    match command:
        case IdentifyChild():
            if state.child_id is not None:
                raise AlreadyIdentified("the child is identified already")
            return [ChildIdentified(case_id=case_id, child_id=command.child_id)]
        case ChangeLevel():
            return _change_level(state, case_id, command)
        case AddTeamMember():
            if command.person_id in state.team:
                raise AlreadyOnTeam("the person is on the team already")
            outside = command.unit_id != state.unit_id
            if state.level >= Level.ONE_SERVICE and outside and not command.covered:
                raise ConsentMissingForTeam(
                    "at level 2 and 3 every outside service on the team needs a consent"
                )
            return [
                TeamMemberAdded(
                    case_id=case_id,
                    person_id=command.person_id,
                    unit_id=command.unit_id,
                    org_id=command.org_id,
                    access=command.access,
                )
            ]
        case RemoveTeamMember():
            if command.person_id not in state.team:
                raise NotOnTeam("the person is not on the team")
            return [TeamMemberRemoved(case_id=case_id, person_id=command.person_id)]
        case RequestHandover():
            return _request_handover(state, case_id, command)
        case AcceptHandover():
            pending = _pending(state, command.handover_id)
            if command.by != pending.to_person_id:
                raise NotAddressee("only the receiver can accept the handover")
            cross_org = pending.to_org_id != state.org_id
            if cross_org and command.consent is None:
                raise ConsentRequiredForHandover(
                    "the consent naming the receiving organisation is no longer in force"
                )
            travels = command.consent.history_travels if cross_org and command.consent else True
            return [
                HandoverAccepted(
                    case_id=case_id,
                    handover_id=pending.handover_id,
                    from_person_id=state.holder.person_id,
                    to_person_id=pending.to_person_id,
                    to_unit_id=pending.to_unit_id,
                    to_org_id=pending.to_org_id,
                    history_travels=travels,
                    history_from=None if travels else now,
                    consent_id=(
                        command.consent.consent_id if cross_org and command.consent else None
                    ),
                )
            ]
        case DeclineHandover():
            pending = _pending(state, command.handover_id)
            if command.by != pending.to_person_id:
                raise NotAddressee("only the receiver can decline the handover")
            return [
                HandoverDeclined(
                    case_id=case_id, handover_id=pending.handover_id, reason=command.reason
                )
            ]
        case CancelHandover():
            pending = _pending(state, command.handover_id)
            return [
                HandoverCancelled(
                    case_id=case_id, handover_id=pending.handover_id, cancelled_by=command.by
                )
            ]
        case AddMeasure():
            if command.evaluate_by < command.start:
                raise InvalidDates("the evaluation date lies before the start")
            if command.measure_id in state.measures:
                raise CaseError("the measure exists already")
            return [
                MeasureAdded(
                    case_id=case_id,
                    measure_id=command.measure_id,
                    title=command.title,
                    goal=command.goal,
                    responsible_person_id=command.responsible_person_id,
                    start=command.start,
                    evaluate_by=command.evaluate_by,
                )
            ]
        case EvaluateMeasure():
            measure = state.measures.get(command.measure_id)
            if measure is None:
                raise NoSuchMeasure("no such measure")
            today = now.date()
            if command.next_evaluate_by is not None and command.next_evaluate_by <= today:
                raise InvalidDates("the next evaluation must lie after today")
            return [
                MeasureEvaluated(
                    case_id=case_id,
                    measure_id=command.measure_id,
                    outcome=command.outcome,
                    note=command.note,
                    evaluated_on=today,
                    next_evaluate_by=command.next_evaluate_by,
                )
            ]
        case CloseCase():
            if state.pending is not None:
                raise HandoverPending("answer or cancel the pending handover before closing")
            return [CaseClosedEvent(case_id=case_id, reason=command.reason, note=command.note)]
    raise CaseError("unknown command")  # pragma: no cover - the match is exhaustive


def _report(case_id: str, command: ReportToChildWelfare) -> list[EventData]:
    return [
        ChildWelfareReported(
            case_id=case_id,
            report_id=command.report_id,
            text=command.text,
            reported_by=command.reported_by,
            unit_id=command.unit_id,
        )
    ]


def _received(state: CaseState, case_id: str, command: ReceiveReport) -> list[EventData]:
    report = state.reports.get(command.report_id)
    if report is None or report.unit_id != command.unit_id:
        raise NoSuchReport("no such report sent to the unit")
    if report.received:
        raise ReportReceived("the report is received already")
    return [
        ChildWelfareReportReceived(
            case_id=case_id,
            report_id=command.report_id,
            unit_id=command.unit_id,
            received_by=command.by,
        )
    ]


def _open(state: CaseState, command: OpenCase) -> list[EventData]:
    if state.exists:
        raise CaseExists("the case exists already")
    if command.level not in (Level.CONCERN, Level.OWN_UNIT):
        raise InvalidLevel("a case opens at level 0 or 1")
    if command.level >= Level.OWN_UNIT and command.child_id is None:
        raise IdentificationRequired("identify the child before level 1")
    if command.child_id is None and command.pseudonym is None:
        raise IdentificationRequired("an anonymous case needs a pseudonym")
    return [
        CaseOpened(
            case_id=command.case_id,
            org_id=command.org_id,
            unit_id=command.unit_id,
            level=command.level,
            holder=HolderRef(person_id=command.holder_id, unit_id=command.unit_id),
            child_id=command.child_id,
            pseudonym=command.pseudonym,
            concern=command.concern,
        )
    ]


def _change_level(state: CaseState, case_id: str, command: ChangeLevel) -> list[EventData]:
    if command.level not in tuple(Level):
        raise InvalidLevel("the level must be 0, 1, 2 or 3")
    if command.level == state.level:
        raise SameLevel("the case is at that level already")
    if command.level >= Level.OWN_UNIT and state.child_id is None:
        raise IdentificationRequired("identify the child before level 1")
    if command.level >= Level.ONE_SERVICE and command.uncovered_members:
        raise ConsentMissingForTeam(
            "every outside service on the team needs a consent or another legal basis"
        )
    return [
        LevelChanged(
            case_id=case_id, from_level=state.level, level=command.level, reason=command.reason
        )
    ]


def _request_handover(state: CaseState, case_id: str, command: RequestHandover) -> list[EventData]:
    assert state.holder is not None
    if state.pending is not None:
        raise HandoverPending("a handover is pending already")
    if command.to_person_id == state.holder.person_id:
        raise HandoverToHolder("the receiver holds the case already")
    cross_org = command.to_org_id != state.org_id
    if cross_org and command.consent is None:
        raise ConsentRequiredForHandover(
            "a handover to another organisation needs a consent naming it"
        )
    return [
        HandoverRequested(
            case_id=case_id,
            handover_id=command.handover_id,
            from_person_id=state.holder.person_id,
            from_unit_id=state.holder.unit_id,
            to_person_id=command.to_person_id,
            to_unit_id=command.to_unit_id,
            to_org_id=command.to_org_id,
            requested_by=command.requested_by,
            note=command.note,
            consent_id=command.consent.consent_id if cross_org and command.consent else None,
        )
    ]


def _pending(state: CaseState, handover_id: str) -> PendingHandover:
    if state.pending is None or state.pending.handover_id != handover_id:
        raise NoSuchHandover("no such pending handover")
    return state.pending


# --- evolve --------------------------------------------------------------------------------------


def evolve(state: CaseState, event: EventData) -> CaseState:
    match event:
        case CaseOpened():
            return CaseState(
                case_id=event.case_id,
                status="open",
                org_id=event.org_id,
                unit_id=event.unit_id,
                level=event.level,
                child_id=event.child_id,
                holder=Holder(event.holder.person_id, event.holder.unit_id),
            )
        case ChildIdentified():
            return replace(state, child_id=event.child_id)
        case LevelChanged():
            return replace(state, level=event.level)
        case TeamMemberAdded():
            team = dict(state.team)
            team[event.person_id] = TeamEntry(event.unit_id, event.org_id, event.access)
            return replace(state, team=team)
        case TeamMemberRemoved():
            return replace(
                state, team={k: v for k, v in state.team.items() if k != event.person_id}
            )
        case HandoverRequested():
            return replace(
                state,
                pending=PendingHandover(
                    event.handover_id,
                    event.to_person_id,
                    event.to_unit_id,
                    event.to_org_id,
                    event.requested_by,
                ),
            )
        case HandoverAccepted():
            return replace(
                state,
                pending=None,
                holder=Holder(event.to_person_id, event.to_unit_id),
                unit_id=event.to_unit_id,
                org_id=event.to_org_id,
            )
        case HandoverDeclined() | HandoverCancelled():
            return replace(state, pending=None)
        case MeasureAdded():
            measures = dict(state.measures)
            measures[event.measure_id] = MeasureState(
                event.responsible_person_id, event.start, event.evaluate_by
            )
            return replace(state, measures=measures)
        case MeasureEvaluated():
            measures = dict(state.measures)
            old = measures[event.measure_id]
            measures[event.measure_id] = replace(old, evaluate_by=event.next_evaluate_by)
            return replace(state, measures=measures)
        case ChildWelfareReported():
            return replace(
                state, reports={**state.reports, event.report_id: ReportState(event.unit_id)}
            )
        case ChildWelfareReportReceived():
            received = ReportState(event.unit_id, received=True)
            return replace(state, reports={**state.reports, event.report_id: received})
        case CaseClosedEvent():
            return replace(state, status="closed")
        case CaseReopened():
            return replace(state, status="open")
    return state


def replay(events: Iterable[EventData]) -> CaseState:
    state = CaseState()
    for event in events:
        state = evolve(state, event)
    return state
