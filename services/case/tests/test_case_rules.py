"""The case aggregate's rules, one example each (DOMAIN.md, "Case (sak) and its stafettlogg").

The world: Siljan municipality (org ``4010``) with an ungdomsskole and a helsestasjon, and
Vestfold og Telemark county (org ``40``) with Porsgrunn videregående. The case is opened by
a contact teacher at the ungdomsskole. Every name is made up; personal text is given as
already-encrypted strings (``enc:v1:…``) because the aggregate never sees plain text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest

from stafett_case.domain import (
    AcceptHandover,
    AddMeasure,
    AddTeamMember,
    AlreadyIdentified,
    AlreadyOnTeam,
    CancelHandover,
    CaseClosed,
    CaseError,
    CaseExists,
    CaseState,
    ChangeLevel,
    CloseCase,
    Command,
    ConsentMissingForTeam,
    ConsentRequiredForHandover,
    CrossOrgConsent,
    DeclineHandover,
    EvaluateMeasure,
    HandoverPending,
    HandoverToHolder,
    Holder,
    IdentificationRequired,
    IdentifyChild,
    InvalidDates,
    InvalidLevel,
    MeasureState,
    NoSuchHandover,
    NoSuchMeasure,
    NoSuchReport,
    NotAddressee,
    NotClosed,
    NotOnTeam,
    OpenCase,
    PendingHandover,
    ReceiveReport,
    RemoveTeamMember,
    ReopenCase,
    ReportReceived,
    ReportToChildWelfare,
    RequestHandover,
    SameLevel,
    TeamEntry,
    UnknownCase,
    decide,
    evolve,
    replay,
)
from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    ChildIdentified,
    ChildWelfareReported,
    ChildWelfareReportReceived,
    CloseReason,
    DeadlineDue,
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
from stafett_shared.envelope import EventData, registry

NOW = datetime(2026, 9, 14, 10, 30, tzinfo=UTC)
TODAY = NOW.date()
DAY = timedelta(days=1)

CASE = "01JCASE0000000000000000001"
SILJAN = "4010"
COUNTY = "40"
SCHOOL = "siljan-ungdomsskole"
HEALTH = "siljan-helsestasjon"
VGS = "porsgrunn-vgs"
CHILD_WELFARE = "skien-barnevern"  # the inter-municipal service Siljan's reports go to

TEACHER = "kari-kontaktlaerer"  # the contact teacher who opens the case and holds it
NURSE = "helene-helsesykepleier"
INSPECTOR = "ivar-inspektor"  # another staff member at the school
VGS_ADVISER = "ola-radgiver"  # the adviser at the upper secondary school
INTAKE = "bodil-barnevern"  # intake staff at the child welfare service

CHILD = "01JCHILD000000000000000001"
PSEUDONYM = "enc:v1:cHNldWRvbnltLUE"
CONCERN = "enc:v1:Y29uY2Vybg"
REASON = "enc:v1:cmVhc29u"
NOTE = "enc:v1:bm90ZQ"


# --- helpers -------------------------------------------------------------------------------------


def opened(*, level: int = 1, child_id: str | None = CHILD) -> CaseOpened:
    return CaseOpened(
        case_id=CASE,
        org_id=SILJAN,
        unit_id=SCHOOL,
        level=level,
        holder=HolderRef(person_id=TEACHER, unit_id=SCHOOL),
        child_id=child_id,
        pseudonym=None if child_id else PSEUDONYM,
        concern=CONCERN,
    )


def handover_requested(
    *, to_person: str = NURSE, to_unit: str = HEALTH, to_org: str = SILJAN
) -> HandoverRequested:
    return HandoverRequested(
        case_id=CASE,
        handover_id="h1",
        from_person_id=TEACHER,
        from_unit_id=SCHOOL,
        to_person_id=to_person,
        to_unit_id=to_unit,
        to_org_id=to_org,
        requested_by=TEACHER,
        consent_id="consent-1" if to_org != SILJAN else None,
    )


def measure_added(measure_id: str = "m1") -> MeasureAdded:
    return MeasureAdded(
        case_id=CASE,
        measure_id=measure_id,
        title="enc:v1:dGl0bGU",
        goal="enc:v1:Z29hbA",
        responsible_person_id=TEACHER,
        start=TODAY - 30 * DAY,
        evaluate_by=TODAY + 30 * DAY,
    )


def closed() -> CaseClosedEvent:
    return CaseClosedEvent(case_id=CASE, reason=CloseReason.RESOLVED)


def history(*events: EventData) -> CaseState:
    return replay(events)


def open_case() -> CaseState:
    """An identified level-1 case held by the contact teacher at the school."""
    return history(opened())


def run(state: CaseState, command: Command, now: datetime = NOW) -> list[EventData]:
    return decide(state, command, now)


def then(state: CaseState, events: Iterable[EventData]) -> CaseState:
    for event in events:
        state = evolve(state, event)
    return state


def open_command(
    *, level: int = 0, child_id: str | None = None, pseudonym: str | None = PSEUDONYM
) -> OpenCase:
    return OpenCase(
        case_id=CASE,
        org_id=SILJAN,
        unit_id=SCHOOL,
        level=level,
        holder_id=TEACHER,
        concern=CONCERN,
        child_id=child_id,
        pseudonym=pseudonym,
    )


def request(
    *,
    to_person: str = NURSE,
    to_unit: str = HEALTH,
    to_org: str = SILJAN,
    consent: CrossOrgConsent | None = None,
    handover_id: str = "h2",
) -> RequestHandover:
    return RequestHandover(
        handover_id=handover_id,
        to_person_id=to_person,
        to_unit_id=to_unit,
        to_org_id=to_org,
        requested_by=TEACHER,
        note=NOTE,
        consent=consent,
    )


def add_measure(*, start: date, evaluate_by: date, measure_id: str = "m2") -> AddMeasure:
    return AddMeasure(
        measure_id=measure_id,
        title="enc:v1:dGl0bGU",
        goal="enc:v1:Z29hbA",
        responsible_person_id=NURSE,
        start=start,
        evaluate_by=evaluate_by,
    )


def evaluate(measure_id: str = "m1", next_evaluate_by: date | None = None) -> EvaluateMeasure:
    return EvaluateMeasure(
        measure_id=measure_id,
        outcome=Outcome.PARTLY,
        note=NOTE,
        next_evaluate_by=next_evaluate_by,
    )


# --- opening -------------------------------------------------------------------------------------


def test_an_anonymous_concern_opens_at_level_0_with_a_pseudonym_and_the_opener_as_holder() -> None:
    events = run(CaseState(), open_command())

    assert events == [
        CaseOpened(
            case_id=CASE,
            org_id=SILJAN,
            unit_id=SCHOOL,
            level=0,
            holder=HolderRef(person_id=TEACHER, unit_id=SCHOOL),
            child_id=None,
            pseudonym=PSEUDONYM,
            concern=CONCERN,
        )
    ]
    state = then(CaseState(), events)
    assert state.status == "open"
    assert state.holder == Holder(TEACHER, SCHOOL)
    assert state.child_id is None


def test_an_identified_case_may_open_at_level_1() -> None:
    events = run(CaseState(), open_command(level=1, child_id=CHILD, pseudonym=None))

    state = then(CaseState(), events)
    assert state.level == 1
    assert state.child_id == CHILD


@pytest.mark.parametrize("level", [2, 3])
def test_a_case_cannot_open_at_level_2_or_above(level: int) -> None:
    with pytest.raises(InvalidLevel):
        run(CaseState(), open_command(level=level, child_id=CHILD))


@pytest.mark.parametrize("level", [-1, 4, 7])
def test_a_case_cannot_open_at_a_level_outside_the_model(level: int) -> None:
    with pytest.raises(InvalidLevel):
        run(CaseState(), open_command(level=level, child_id=CHILD))


def test_a_level_1_case_cannot_open_without_an_identified_child() -> None:
    with pytest.raises(IdentificationRequired):
        run(CaseState(), open_command(level=1, child_id=None, pseudonym=PSEUDONYM))


def test_an_anonymous_level_0_case_needs_a_pseudonym() -> None:
    with pytest.raises(IdentificationRequired):
        run(CaseState(), open_command(level=0, child_id=None, pseudonym=None))


def test_an_existing_case_cannot_be_opened_again() -> None:
    with pytest.raises(CaseExists):
        run(open_case(), open_command())


def test_a_closed_case_cannot_be_opened_again_either() -> None:
    with pytest.raises(CaseExists):
        run(history(opened(), closed()), open_command())


def test_commands_on_a_case_that_was_never_opened_are_refused() -> None:
    with pytest.raises(UnknownCase):
        run(CaseState(), IdentifyChild(child_id=CHILD))
    with pytest.raises(UnknownCase):
        run(CaseState(), ReopenCase(reason=REASON))


# --- identification and levels ------------------------------------------------------------------


def test_identifying_an_anonymous_child_records_the_child() -> None:
    state = history(opened(level=0, child_id=None))

    events = run(state, IdentifyChild(child_id=CHILD))

    assert events == [ChildIdentified(case_id=CASE, child_id=CHILD)]
    assert then(state, events).child_id == CHILD


def test_identifying_the_child_twice_is_refused() -> None:
    with pytest.raises(AlreadyIdentified):
        run(open_case(), IdentifyChild(child_id="01JCHILD000000000000000002"))


def test_changing_to_the_level_the_case_is_at_is_refused() -> None:
    with pytest.raises(SameLevel):
        run(open_case(), ChangeLevel(level=1, reason=REASON))


@pytest.mark.parametrize("level", [-1, 4, 7])
def test_a_level_outside_0_to_3_is_refused(level: int) -> None:
    with pytest.raises(InvalidLevel):
        run(open_case(), ChangeLevel(level=level, reason=REASON))


def test_raising_an_anonymous_case_above_level_0_is_refused() -> None:
    state = history(opened(level=0, child_id=None))

    with pytest.raises(IdentificationRequired):
        run(state, ChangeLevel(level=1, reason=REASON))


def test_raising_to_level_2_with_uncovered_team_members_is_refused() -> None:
    state = then(
        open_case(),
        [
            TeamMemberAdded(
                case_id=CASE, person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="read"
            )
        ],
    )

    with pytest.raises(ConsentMissingForTeam):
        run(state, ChangeLevel(level=2, reason=REASON, uncovered_members=frozenset({NURSE})))
    with pytest.raises(ConsentMissingForTeam):
        run(state, ChangeLevel(level=3, reason=REASON, uncovered_members=frozenset({NURSE})))


def test_raising_to_level_2_with_every_team_member_covered_records_the_change() -> None:
    events = run(open_case(), ChangeLevel(level=2, reason=REASON))

    assert events == [LevelChanged(case_id=CASE, from_level=1, level=2, reason=REASON)]
    assert then(open_case(), events).level == 2


def test_lowering_to_level_1_does_not_ask_about_consents() -> None:
    state = then(open_case(), [LevelChanged(case_id=CASE, from_level=1, level=3, reason=REASON)])

    events = run(state, ChangeLevel(level=1, reason=REASON, uncovered_members=frozenset({NURSE})))

    assert then(state, events).level == 1


# --- team ----------------------------------------------------------------------------------------


def test_adding_a_team_member_gives_the_access_asked_for() -> None:
    events = run(
        open_case(), AddTeamMember(person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="write")
    )

    assert then(open_case(), events).team == {NURSE: TeamEntry(HEALTH, SILJAN, "write")}


def test_adding_a_team_member_twice_is_refused() -> None:
    add = AddTeamMember(person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="read")
    state = then(open_case(), run(open_case(), add))

    with pytest.raises(AlreadyOnTeam):
        run(state, add)


def test_removing_someone_who_is_not_on_the_team_is_refused() -> None:
    with pytest.raises(NotOnTeam):
        run(open_case(), RemoveTeamMember(person_id=NURSE))


def test_removing_a_team_member_takes_them_off_the_team() -> None:
    state = then(
        open_case(),
        [
            TeamMemberAdded(
                case_id=CASE, person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="read"
            )
        ],
    )

    events = run(state, RemoveTeamMember(person_id=NURSE))

    assert events == [TeamMemberRemoved(case_id=CASE, person_id=NURSE)]
    assert then(state, events).team == {}


# --- handovers -----------------------------------------------------------------------------------


def test_a_handover_to_the_current_holder_is_refused() -> None:
    with pytest.raises(HandoverToHolder):
        run(open_case(), request(to_person=TEACHER, to_unit=SCHOOL))


def test_a_requested_handover_is_pending_and_the_old_holder_stays_responsible() -> None:
    events = run(open_case(), request())

    state = then(open_case(), events)
    assert state.holder == Holder(TEACHER, SCHOOL)
    assert state.pending == PendingHandover("h2", NURSE, HEALTH, SILJAN, TEACHER)


def test_a_second_handover_while_one_is_pending_is_refused() -> None:
    state = history(opened(), handover_requested())

    with pytest.raises(HandoverPending):
        run(state, request(to_person=INSPECTOR, to_unit=SCHOOL))


def test_a_handover_to_another_organisation_without_a_consent_is_refused() -> None:
    with pytest.raises(ConsentRequiredForHandover):
        run(open_case(), request(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY))


def test_a_handover_to_another_organisation_with_a_consent_carries_the_consent_id() -> None:
    consent = CrossOrgConsent(consent_id="consent-7", history_travels=False)

    events = run(
        open_case(), request(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY, consent=consent)
    )

    assert len(events) == 1
    event = events[0]
    assert isinstance(event, HandoverRequested)
    assert event.consent_id == "consent-7"
    assert event.to_org_id == COUNTY
    assert (event.from_person_id, event.from_unit_id) == (TEACHER, SCHOOL)


def test_accepting_a_handover_by_someone_other_than_the_receiver_is_refused() -> None:
    state = history(opened(), handover_requested())

    with pytest.raises(NotAddressee):
        run(state, AcceptHandover(handover_id="h1", by=INSPECTOR, consent=None))
    with pytest.raises(NotAddressee):
        run(state, AcceptHandover(handover_id="h1", by=TEACHER, consent=None))


def test_declining_a_handover_by_someone_other_than_the_receiver_is_refused() -> None:
    state = history(opened(), handover_requested())

    with pytest.raises(NotAddressee):
        run(state, DeclineHandover(handover_id="h1", by=INSPECTOR, reason=REASON))


def test_answering_a_handover_that_is_not_pending_is_refused() -> None:
    state = history(opened(), handover_requested())

    with pytest.raises(NoSuchHandover):
        run(state, AcceptHandover(handover_id="h9", by=NURSE, consent=None))
    with pytest.raises(NoSuchHandover):
        run(open_case(), DeclineHandover(handover_id="h1", by=NURSE, reason=REASON))
    with pytest.raises(NoSuchHandover):
        run(open_case(), CancelHandover(handover_id="h1", by=TEACHER))


def test_accepting_a_handover_inside_the_organisation_moves_the_holder_and_the_history() -> None:
    state = history(opened(), handover_requested())

    events = run(state, AcceptHandover(handover_id="h1", by=NURSE, consent=None))

    assert events == [
        HandoverAccepted(
            case_id=CASE,
            handover_id="h1",
            from_person_id=TEACHER,
            to_person_id=NURSE,
            to_unit_id=HEALTH,
            to_org_id=SILJAN,
            history_travels=True,
            history_from=None,
            consent_id=None,
        )
    ]
    after = then(state, events)
    assert after.holder == Holder(NURSE, HEALTH)
    assert after.unit_id == HEALTH
    assert after.pending is None


def test_accepting_across_organisations_with_history_travels_false_sets_history_from_now() -> None:
    state = history(opened(), handover_requested(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY))
    consent = CrossOrgConsent(consent_id="consent-1", history_travels=False)

    events = run(state, AcceptHandover(handover_id="h1", by=VGS_ADVISER, consent=consent))

    assert len(events) == 1
    event = events[0]
    assert isinstance(event, HandoverAccepted)
    assert event.history_travels is False
    assert event.history_from == NOW
    assert event.consent_id == "consent-1"
    after = then(state, events)
    assert after.holder == Holder(VGS_ADVISER, VGS)
    assert (after.org_id, after.unit_id) == (COUNTY, VGS)


def test_accepting_across_organisations_with_history_travels_true_keeps_the_whole_history() -> None:
    state = history(opened(), handover_requested(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY))
    consent = CrossOrgConsent(consent_id="consent-1", history_travels=True)

    events = run(state, AcceptHandover(handover_id="h1", by=VGS_ADVISER, consent=consent))

    event = events[0]
    assert isinstance(event, HandoverAccepted)
    assert event.history_travels is True
    assert event.history_from is None


def test_accepting_across_organisations_after_the_consent_lapsed_is_refused() -> None:
    state = history(opened(), handover_requested(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY))

    with pytest.raises(ConsentRequiredForHandover):
        run(state, AcceptHandover(handover_id="h1", by=VGS_ADVISER, consent=None))


def test_declining_a_handover_clears_it_and_keeps_the_holder() -> None:
    state = history(opened(), handover_requested())

    events = run(state, DeclineHandover(handover_id="h1", by=NURSE, reason=REASON))

    assert events == [HandoverDeclined(case_id=CASE, handover_id="h1", reason=REASON)]
    after = then(state, events)
    assert after.pending is None
    assert after.holder == Holder(TEACHER, SCHOOL)


def test_cancelling_a_handover_clears_it_and_keeps_the_holder() -> None:
    state = history(opened(), handover_requested())

    events = run(state, CancelHandover(handover_id="h1", by=TEACHER))

    assert events == [HandoverCancelled(case_id=CASE, handover_id="h1", cancelled_by=TEACHER)]
    after = then(state, events)
    assert after.pending is None
    assert after.holder == Holder(TEACHER, SCHOOL)


def test_a_new_handover_may_be_requested_once_the_pending_one_is_declined() -> None:
    state = history(
        opened(),
        handover_requested(),
        HandoverDeclined(case_id=CASE, handover_id="h1", reason=REASON),
    )

    events = run(state, request(to_person=INSPECTOR, to_unit=SCHOOL))

    assert then(state, events).pending is not None


# --- measures ------------------------------------------------------------------------------------


def test_a_measure_evaluated_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidDates):
        run(open_case(), add_measure(start=TODAY, evaluate_by=TODAY - DAY))


def test_a_measure_records_its_responsible_person_and_dates() -> None:
    events = run(open_case(), add_measure(start=TODAY, evaluate_by=TODAY + 42 * DAY))

    assert then(open_case(), events).measures == {
        "m2": MeasureState(NURSE, TODAY, TODAY + 42 * DAY)
    }


def test_adding_a_measure_with_an_id_already_used_is_refused() -> None:
    state = history(opened(), measure_added("m1"))

    with pytest.raises(CaseError):
        run(state, add_measure(start=TODAY, evaluate_by=TODAY + DAY, measure_id="m1"))


def test_evaluating_an_unknown_measure_is_refused() -> None:
    with pytest.raises(NoSuchMeasure):
        run(open_case(), evaluate("m404"))


@pytest.mark.parametrize("days", [-10, -1, 0])
def test_a_next_evaluation_date_not_after_today_is_refused(days: int) -> None:
    state = history(opened(), measure_added())

    with pytest.raises(InvalidDates):
        run(state, evaluate(next_evaluate_by=TODAY + days * DAY))


def test_an_evaluation_records_the_outcome_today_and_the_next_date() -> None:
    state = history(opened(), measure_added())

    events = run(state, evaluate(next_evaluate_by=TODAY + 60 * DAY))

    assert events == [
        MeasureEvaluated(
            case_id=CASE,
            measure_id="m1",
            outcome=Outcome.PARTLY,
            note=NOTE,
            evaluated_on=TODAY,
            next_evaluate_by=TODAY + 60 * DAY,
        )
    ]
    assert then(state, events).measures["m1"].evaluate_by == TODAY + 60 * DAY


def test_an_evaluation_without_a_next_date_leaves_the_measure_without_a_due_date() -> None:
    state = history(opened(), measure_added())

    events = run(state, evaluate(next_evaluate_by=None))

    assert then(state, events).measures["m1"].evaluate_by is None


# --- child welfare, closing and reopening --------------------------------------------------------


def test_a_report_to_child_welfare_is_recorded() -> None:
    events = run(
        open_case(),
        ReportToChildWelfare(report_id="r1", text=NOTE, reported_by=TEACHER, unit_id=SCHOOL),
    )

    assert events == [
        ChildWelfareReported(
            case_id=CASE, report_id="r1", text=NOTE, reported_by=TEACHER, unit_id=SCHOOL
        )
    ]


def _reported_events() -> list[EventData]:
    return [
        opened(),
        ChildWelfareReported(
            case_id=CASE, report_id="r1", text=NOTE, reported_by=TEACHER, unit_id=CHILD_WELFARE
        ),
    ]


def _reported() -> CaseState:
    return history(*_reported_events())


def test_the_child_welfare_service_a_report_was_sent_to_acknowledges_it_once() -> None:
    state = _reported()

    events = run(state, ReceiveReport(report_id="r1", unit_id=CHILD_WELFARE, by=INTAKE))

    assert events == [
        ChildWelfareReportReceived(
            case_id=CASE, report_id="r1", unit_id=CHILD_WELFARE, received_by=INTAKE
        )
    ]
    with pytest.raises(ReportReceived):
        run(then(state, events), ReceiveReport(report_id="r1", unit_id=CHILD_WELFARE, by=INTAKE))


def test_a_report_is_received_only_by_the_service_it_was_sent_to() -> None:
    with pytest.raises(NoSuchReport):
        run(_reported(), ReceiveReport(report_id="r1", unit_id=HEALTH, by=NURSE))
    with pytest.raises(NoSuchReport):
        run(_reported(), ReceiveReport(report_id="r2", unit_id=CHILD_WELFARE, by=INTAKE))


def test_a_report_is_received_though_the_case_was_closed_after_it() -> None:
    state = history(
        *_reported_events(),
        CaseClosedEvent(case_id=CASE, reason=CloseReason.HANDED_TO_CHILD_WELFARE),
    )

    events = run(state, ReceiveReport(report_id="r1", unit_id=CHILD_WELFARE, by=INTAKE))

    assert [type(e) for e in events] == [ChildWelfareReportReceived]


def test_closing_a_case_with_a_pending_handover_is_refused() -> None:
    state = history(opened(), handover_requested())

    with pytest.raises(HandoverPending):
        run(state, CloseCase(reason=CloseReason.MOVED))


def test_closing_a_case_keeps_its_holder() -> None:
    events = run(open_case(), CloseCase(reason=CloseReason.RESOLVED, note=NOTE))

    after = then(open_case(), events)
    assert after.status == "closed"
    assert after.holder == Holder(TEACHER, SCHOOL)


COMMANDS_ON_A_CLOSED_CASE: list[Command] = [
    IdentifyChild(child_id=CHILD),
    ChangeLevel(level=2, reason=REASON),
    AddTeamMember(person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="read"),
    RemoveTeamMember(person_id=NURSE),
    RequestHandover(
        handover_id="h2",
        to_person_id=NURSE,
        to_unit_id=HEALTH,
        to_org_id=SILJAN,
        requested_by=TEACHER,
        note=None,
        consent=None,
    ),
    AcceptHandover(handover_id="h1", by=NURSE, consent=None),
    DeclineHandover(handover_id="h1", by=NURSE, reason=REASON),
    CancelHandover(handover_id="h1", by=TEACHER),
    AddMeasure(
        measure_id="m2",
        title=NOTE,
        goal=NOTE,
        responsible_person_id=TEACHER,
        start=TODAY,
        evaluate_by=TODAY + DAY,
    ),
    EvaluateMeasure(measure_id="m1", outcome=Outcome.ACHIEVED, note=None, next_evaluate_by=None),
    ReportToChildWelfare(report_id="r1", text=NOTE, reported_by=TEACHER, unit_id=None),
    CloseCase(reason=CloseReason.OTHER),
]


@pytest.mark.parametrize(
    "command", COMMANDS_ON_A_CLOSED_CASE, ids=lambda command: type(command).__name__
)
def test_a_command_on_a_closed_case_is_refused_until_it_is_reopened(command: Command) -> None:
    state = history(opened(), measure_added("m1"), closed())

    with pytest.raises(CaseClosed):
        run(state, command)


def test_reopening_a_closed_case_opens_it_with_the_same_holder() -> None:
    state = history(opened(), closed())

    events = run(state, ReopenCase(reason=REASON))

    assert events == [CaseReopened(case_id=CASE, reason=REASON)]
    after = then(state, events)
    assert after.status == "open"
    assert after.holder == Holder(TEACHER, SCHOOL)


def test_reopening_an_open_case_is_refused() -> None:
    with pytest.raises(NotClosed):
        run(open_case(), ReopenCase(reason=REASON))


# --- events on the wire --------------------------------------------------------------------------

EVENT_SAMPLES: list[EventData] = [
    opened(level=0, child_id=None),
    ChildIdentified(case_id=CASE, child_id=CHILD),
    LevelChanged(case_id=CASE, from_level=1, level=2, reason=REASON),
    TeamMemberAdded(case_id=CASE, person_id=NURSE, unit_id=HEALTH, org_id=SILJAN, access="read"),
    TeamMemberRemoved(case_id=CASE, person_id=NURSE),
    handover_requested(to_person=VGS_ADVISER, to_unit=VGS, to_org=COUNTY),
    HandoverAccepted(
        case_id=CASE,
        handover_id="h1",
        from_person_id=TEACHER,
        to_person_id=VGS_ADVISER,
        to_unit_id=VGS,
        to_org_id=COUNTY,
        history_travels=False,
        history_from=NOW,
        consent_id="consent-1",
    ),
    HandoverDeclined(case_id=CASE, handover_id="h1", reason=REASON),
    HandoverCancelled(case_id=CASE, handover_id="h1", cancelled_by=TEACHER),
    measure_added(),
    MeasureEvaluated(
        case_id=CASE,
        measure_id="m1",
        outcome=Outcome.NOT_ACHIEVED,
        note=NOTE,
        evaluated_on=TODAY,
        next_evaluate_by=TODAY + 30 * DAY,
    ),
    ChildWelfareReported(
        case_id=CASE, report_id="r1", text=NOTE, reported_by=TEACHER, unit_id=SCHOOL
    ),
    ChildWelfareReportReceived(
        case_id=CASE, report_id="r1", unit_id=CHILD_WELFARE, received_by=INTAKE
    ),
    CaseClosedEvent(case_id=CASE, reason=CloseReason.HANDED_TO_CHILD_WELFARE, note=NOTE),
    CaseReopened(case_id=CASE, reason=REASON),
    DeadlineDue(
        case_id=CASE,
        kind="measure_evaluation_due",
        due_on=TODAY,
        ref_id="m1",
        notify_person_ids=(TEACHER, NURSE),
    ),
]


def test_every_registered_case_event_type_has_a_sample_here() -> None:
    registered = {t for t in registry.types() if t.startswith("no.stafett.case.")}

    assert {sample.event_type for sample in EVENT_SAMPLES} == registered


@pytest.mark.parametrize("payload", EVENT_SAMPLES, ids=lambda payload: payload.event_type)
def test_every_case_event_survives_the_envelope_unchanged(payload: EventData) -> None:
    envelope = registry.envelope(
        payload,
        subject=CASE,
        source="stafett/case",
        tenant=SILJAN,
        actor=TEACHER,
        time=NOW,
    )

    assert envelope.type == payload.event_type
    assert envelope.context == "case"
    assert registry.payload(envelope) == payload
    assert type(registry.payload(envelope)) is type(payload)


def test_at_level_two_an_uncovered_outside_service_cannot_join_the_team() -> None:
    from datetime import UTC, datetime

    from stafett_case import domain

    now = datetime(2026, 11, 23, tzinfo=UTC)
    state = domain.CaseState(
        case_id="01JCASE0000000000000000001",
        status="open",
        org_id="4010",
        unit_id="siljan-ungdomsskole",
        level=2,
        child_id="01JCHILD000000000000000001",
        holder=domain.Holder("ann", "siljan-ungdomsskole"),
    )
    refused = domain.AddTeamMember("hanne", "siljan-helsestasjon", "4010", "read", covered=False)
    try:
        domain.decide(state, refused, now)
    except domain.ConsentMissingForTeam:
        pass
    else:
        raise AssertionError("an uncovered outside service joined a level-2 case")
    own_unit = domain.AddTeamMember("rolf", "siljan-ungdomsskole", "4010", "read", covered=False)
    assert domain.decide(state, own_unit, now)
    covered = domain.AddTeamMember("hanne", "siljan-helsestasjon", "4010", "read", covered=True)
    assert domain.decide(state, covered, now)
