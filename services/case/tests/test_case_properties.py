"""Properties of the case aggregate over random command sequences.

Commands are drawn from small pools (4 persons, 3 units in 2 organisations, 2 case ids,
2 handover ids, 2 measure ids) so that the sequences hit each other: a handover requested
by one step is answered by a later one, a measure added is evaluated, a closed case is
reopened. An ``AnswerPending`` step names the pending handover when it is applied, so that
accepted and declined handovers are common. Each command is decided on the current state at
an advancing ``now``; a refused command (``CaseError``) leaves the state as it was, an
accepted one is evolved with its events, and ``Run`` checks the invariants after every
event and step:

- from opening on there is exactly one holder, and it changes only through
  ``HandoverAccepted`` (to the pending handover's addressee);
- a closed case refuses every command but ``ReopenCase`` with ``CaseClosed`` (``OpenCase``
  is refused with ``CaseExists``, as on an open case);
- ``replay`` of every event so far gives exactly the state reached step by step;
- only the addressee accepts or declines; nothing crosses organisations without a consent;
- the level stays in 0..3, above 0 only with an identified child, and 2 or 3 never with
  ``uncovered_members``;
- every event carries the case's id, and nothing but ``CaseOpened`` comes before opening.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from stafett_case.domain import (
    AcceptHandover,
    AddMeasure,
    AddTeamMember,
    CancelHandover,
    CaseClosed,
    CaseError,
    CaseExists,
    CaseState,
    ChangeLevel,
    CloseCase,
    Command,
    ConsentMissingForTeam,
    CrossOrgConsent,
    DeclineHandover,
    EvaluateMeasure,
    Holder,
    IdentificationRequired,
    IdentifyChild,
    OpenCase,
    RemoveTeamMember,
    ReopenCase,
    ReportToChildWelfare,
    RequestHandover,
    SameLevel,
    UnknownCase,
    decide,
    evolve,
    replay,
)
from stafett_shared.contracts.case import (
    CaseOpened,
    CloseReason,
    HandoverAccepted,
    HandoverDeclined,
    HandoverRequested,
    LevelChanged,
    Outcome,
)
from stafett_shared.envelope import EventData

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

PERSONS = ("p1", "p2", "p3", "p4")
ORG_OF_UNIT = {"u1": "org-a", "u2": "org-a", "u3": "org-b"}
CASE_IDS = ("case-1", "case-2")
CHILD_IDS = ("child-1", "child-2")
HANDOVER_IDS = ("h1", "h2")
MEASURE_IDS = ("m1", "m2")
CONSENT_IDS = ("consent-1", "consent-2")
REPORT_IDS = ("r1", "r2")

# --- strategies ----------------------------------------------------------------------------------

persons = st.sampled_from(PERSONS)
units = st.sampled_from(sorted(ORG_OF_UNIT))
children = st.sampled_from(CHILD_IDS)
encrypted = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8).map(
    lambda s: f"enc:v1:{s}"
)
maybe_encrypted = st.none() | encrypted
dates = st.dates(
    min_value=T0.date() - timedelta(days=60), max_value=T0.date() + timedelta(days=400)
)
consents = st.none() | st.builds(
    CrossOrgConsent, consent_id=st.sampled_from(CONSENT_IDS), history_travels=st.booleans()
)
levels = st.sampled_from([-1, 0, 1, 2, 3, 4])


@st.composite
def open_cases(draw: st.DrawFn, *, valid: bool = False) -> OpenCase:
    unit = draw(units)
    if valid:
        level = draw(st.sampled_from([0, 1]))
        child_id = draw(children) if level == 1 else draw(st.none() | children)
        pseudonym = draw(encrypted) if child_id is None else draw(maybe_encrypted)
    else:
        level = draw(st.sampled_from([0, 0, 1, 1, 2, 3, -1]))
        child_id = draw(st.none() | children)
        pseudonym = draw(maybe_encrypted)
    return OpenCase(
        case_id=draw(st.sampled_from(CASE_IDS)),
        org_id=ORG_OF_UNIT[unit],
        unit_id=unit,
        level=level,
        holder_id=draw(persons),
        concern=draw(encrypted),
        child_id=child_id,
        pseudonym=pseudonym,
    )


@st.composite
def add_team_members(draw: st.DrawFn) -> AddTeamMember:
    unit = draw(units)
    return AddTeamMember(
        person_id=draw(persons),
        unit_id=unit,
        org_id=ORG_OF_UNIT[unit],
        access=draw(st.sampled_from(["read", "write"])),
    )


@st.composite
def request_handovers(draw: st.DrawFn) -> RequestHandover:
    unit = draw(units)
    return RequestHandover(
        handover_id=draw(st.sampled_from(HANDOVER_IDS)),
        to_person_id=draw(persons),
        to_unit_id=unit,
        to_org_id=ORG_OF_UNIT[unit],
        requested_by=draw(persons),
        note=draw(maybe_encrypted),
        consent=draw(consents),
    )


@dataclass(frozen=True, slots=True)
class AnswerPending:
    """A step resolved against the state when applied: answers the pending handover.

    Random accept/decline/cancel commands rarely name the pending handover and its
    addressee; this step does, so that sequences reach accepted and declined handovers,
    and, with ``by_addressee`` false, also try to answer as someone else.
    """

    kind: Literal["accept", "decline", "cancel"]
    by_addressee: bool
    by: str
    consent: CrossOrgConsent | None
    reason: str

    def resolve(self, state: CaseState) -> Command:
        pending = state.pending
        handover_id = pending.handover_id if pending else HANDOVER_IDS[0]
        by = pending.to_person_id if pending and self.by_addressee else self.by
        match self.kind:
            case "accept":
                return AcceptHandover(handover_id=handover_id, by=by, consent=self.consent)
            case "decline":
                return DeclineHandover(handover_id=handover_id, by=by, reason=self.reason)
            case "cancel":
                return CancelHandover(handover_id=handover_id, by=by)


Step = Command | AnswerPending

answer_pending = st.builds(
    AnswerPending,
    kind=st.sampled_from(["accept", "accept", "decline", "cancel"]),
    by_addressee=st.sampled_from([True, True, False]),
    by=persons,
    consent=consents,
    reason=encrypted,
)

handover_ids = st.sampled_from(HANDOVER_IDS)
measure_ids = st.sampled_from(MEASURE_IDS)

identify_children = st.builds(IdentifyChild, child_id=children)
change_levels = st.builds(
    ChangeLevel,
    level=levels,
    reason=encrypted,
    uncovered_members=st.frozensets(persons, max_size=2),
)
add_measures = st.builds(
    AddMeasure,
    measure_id=measure_ids,
    title=encrypted,
    goal=encrypted,
    responsible_person_id=persons,
    start=dates,
    evaluate_by=dates,
)
evaluate_measures = st.builds(
    EvaluateMeasure,
    measure_id=measure_ids,
    outcome=st.sampled_from(Outcome),
    note=maybe_encrypted,
    next_evaluate_by=st.none() | dates,
)

commands: st.SearchStrategy[Command] = st.one_of(
    open_cases(),
    identify_children,
    change_levels,
    add_team_members(),
    st.builds(RemoveTeamMember, person_id=persons),
    request_handovers(),
    st.builds(AcceptHandover, handover_id=handover_ids, by=persons, consent=consents),
    st.builds(DeclineHandover, handover_id=handover_ids, by=persons, reason=encrypted),
    st.builds(CancelHandover, handover_id=handover_ids, by=persons),
    add_measures,
    evaluate_measures,
    st.builds(
        ReportToChildWelfare,
        report_id=st.sampled_from(REPORT_IDS),
        text=encrypted,
        reported_by=persons,
        unit_id=st.none() | units,
    ),
    st.builds(CloseCase, reason=st.sampled_from(CloseReason), note=maybe_encrypted),
    st.builds(ReopenCase, reason=encrypted),
)
advances = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5))


def _step_kind(kind: int) -> st.SearchStrategy[Step]:
    # Weighted by hand: ``one_of`` flattens ``commands`` into its fourteen branches.
    match kind:
        case 0 | 1:
            return commands
        case 2 | 3:
            return answer_pending
        case 4:
            return request_handovers()
        case 5:
            return add_measures | evaluate_measures
        case _:
            return identify_children | change_levels


steps: st.SearchStrategy[tuple[Step, timedelta]] = st.tuples(
    st.integers(0, 6).flatmap(_step_kind), advances
)

# A few commands on the empty state, an attempt to open, then the case's life.
scripts = st.tuples(
    st.lists(st.tuples(commands, advances), max_size=3),
    st.tuples(
        st.one_of(open_cases(valid=True), open_cases(valid=True), open_cases()),
        st.just(timedelta(0)),
    ),
    st.lists(steps, min_size=5, max_size=50),
).map(lambda parts: [*parts[0], parts[1], *parts[2]])


# --- the checked run -----------------------------------------------------------------------------


def case_id_of(payload: EventData) -> str:
    case_id = payload.model_dump()["case_id"]
    assert isinstance(case_id, str)
    return case_id


@dataclass
class Run:
    """Applies commands one by one and checks every invariant on the way."""

    state: CaseState = field(default_factory=CaseState)
    now: datetime = T0
    events: list[EventData] = field(default_factory=list)

    def step(self, step: Step, advance: timedelta = timedelta(0)) -> list[EventData]:
        self.now += advance
        before = self.state
        command = step.resolve(before) if isinstance(step, AnswerPending) else step
        try:
            produced = decide(before, command, self.now)
        except CaseError as refused:
            event(f"refused {type(command).__name__}: {type(refused).__name__}")
            self.check_refusal(before, command, refused)
            return []
        event(f"accepted {type(command).__name__}")
        self.check_refusal_was_not_due(before, command)
        state = before
        for payload in produced:
            after = evolve(state, payload)
            self.check_event(state, command, payload, after)
            state = after
        self.state = state
        self.events.extend(produced)
        self.check_state()
        assert replay(self.events) == self.state
        return produced

    # -- refused commands

    def check_refusal(self, before: CaseState, command: Command, refused: CaseError) -> None:
        if not before.exists:
            # Nothing happens before OpenCase succeeded.
            assert isinstance(command, OpenCase) or isinstance(refused, UnknownCase)
        elif before.status == "closed" and not isinstance(command, ReopenCase):
            expected = CaseExists if isinstance(command, OpenCase) else CaseClosed
            assert isinstance(refused, expected), (command, refused)

    def check_refusal_was_not_due(self, before: CaseState, command: Command) -> None:
        if not before.exists:
            assert isinstance(command, OpenCase)
        if before.status == "closed":
            assert isinstance(command, ReopenCase)
        if isinstance(command, AcceptHandover | DeclineHandover):
            assert before.pending is not None
            assert command.by == before.pending.to_person_id

    # -- accepted commands

    def check_event(
        self, before: CaseState, command: Command, payload: EventData, after: CaseState
    ) -> None:
        # Every event belongs to this case; before opening, only the opening itself.
        if before.exists:
            assert case_id_of(payload) == before.case_id
        else:
            assert isinstance(payload, CaseOpened)
            assert isinstance(command, OpenCase)
            assert case_id_of(payload) == command.case_id
        assert after.case_id == case_id_of(payload)

        # The holder changes only through an accepted handover.
        if isinstance(payload, CaseOpened):
            assert isinstance(command, OpenCase)
            assert after.holder == Holder(command.holder_id, command.unit_id)
        elif isinstance(payload, HandoverAccepted):
            pending = before.pending
            assert pending is not None
            assert isinstance(command, AcceptHandover)
            assert command.by == pending.to_person_id  # only the addressee accepts
            assert payload.handover_id == pending.handover_id
            assert after.holder == Holder(pending.to_person_id, pending.to_unit_id)
            assert after.pending is None
            if pending.to_org_id != before.org_id:
                # Never across organisations without a consent in force.
                assert command.consent is not None
                assert payload.consent_id == command.consent.consent_id
                assert payload.history_travels == command.consent.history_travels
                assert (payload.history_from is None) == payload.history_travels
            else:
                assert payload.history_travels
                assert payload.history_from is None
            across = after.org_id != before.org_id
            event(f"handover accepted {'across' if across else 'inside'} organisations")
        else:
            assert after.holder == before.holder

        if isinstance(payload, HandoverRequested):
            assert isinstance(command, RequestHandover)
            assert before.pending is None
            assert after.pending is not None
            if command.to_org_id != before.org_id:
                assert command.consent is not None
                assert payload.consent_id == command.consent.consent_id
        if isinstance(payload, HandoverDeclined):
            assert isinstance(command, DeclineHandover)
            assert before.pending is not None
            assert command.by == before.pending.to_person_id  # only the addressee declines
            assert after.pending is None
        if isinstance(payload, LevelChanged):
            assert isinstance(command, ChangeLevel)
            assert payload.from_level == before.level
            if payload.level >= 2:
                assert not command.uncovered_members

    def check_state(self) -> None:
        state = self.state
        assert state.exists
        # Exactly one holder from opening to closing (and kept while closed).
        assert state.holder is not None
        assert state.unit_id == state.holder.unit_id
        if state.pending is not None:
            assert state.pending.to_person_id != state.holder.person_id
        assert 0 <= state.level <= 3
        if state.level > 0:
            assert state.child_id is not None
        if state.status == "closed":
            assert state.pending is None


def run_script(script: Sequence[tuple[Step, timedelta]]) -> Run:
    run = Run()
    for command, advance in script:
        run.step(command, advance)
    return run


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(scripts)
def test_random_command_sequences_keep_every_invariant(
    script: list[tuple[Step, timedelta]],
) -> None:
    run = run_script(script)
    event(
        f"{len(script)} steps, {len(run.events)} events",
    )

    assert replay(run.events) == run.state
    if run.state.exists:
        event(f"ended {run.state.status}")


@settings(max_examples=150, deadline=None)
@given(
    open_cases(valid=True), st.lists(steps, min_size=3, max_size=30), st.lists(commands, min_size=1)
)
def test_a_closed_case_refuses_every_command_but_reopen(
    opening: OpenCase, life: list[tuple[Step, timedelta]], afterwards: list[Command]
) -> None:
    run = Run()
    assert run.step(opening)
    for command, advance in life:
        run.step(command, advance)
    if run.state.status == "open":
        if run.state.pending is not None:
            holder = run.state.holder
            assert holder is not None
            run.step(CancelHandover(run.state.pending.handover_id, holder.person_id))
        assert run.step(CloseCase(reason=CloseReason.RESOLVED))
    assert run.state.status == "closed"

    closed = run.state
    for command in afterwards:
        if isinstance(command, ReopenCase):
            assert run.step(command)
            break
        expected = CaseExists if isinstance(command, OpenCase) else CaseClosed
        try:
            produced = decide(closed, command, run.now)
        except expected:
            continue
        raise AssertionError(f"{command!r} on a closed case produced {produced!r}")


@settings(max_examples=150, deadline=None)
@given(
    open_cases(valid=True),
    st.lists(steps, min_size=3, max_size=30),
    st.frozensets(persons, min_size=1),
)
def test_level_2_or_3_is_never_reached_with_uncovered_team_members(
    opening: OpenCase, life: list[tuple[Step, timedelta]], uncovered: frozenset[str]
) -> None:
    run = Run()
    run.step(opening)
    for command, advance in life:
        run.step(command, advance)
    if run.state.status != "open":
        return
    for level in (2, 3):
        # The refusal may come for another reason first (same level, no child), never a pass.
        expected: type[CaseError] = ConsentMissingForTeam
        if run.state.level == level:
            expected = SameLevel
        elif run.state.child_id is None:
            expected = IdentificationRequired
        event(f"level {level} refused: {expected.__name__}")
        with pytest.raises(expected):
            decide(run.state, ChangeLevel(level, "enc:v1:cg", uncovered), run.now)


@settings(max_examples=100, deadline=None)
@given(st.lists(steps, max_size=10))
def test_no_event_is_produced_before_the_case_is_opened(
    script: list[tuple[Step, timedelta]],
) -> None:
    state = CaseState()
    for step, _ in script:
        command = step.resolve(state) if isinstance(step, AnswerPending) else step
        if isinstance(command, OpenCase):
            continue
        try:
            produced = decide(state, command, T0)
        except UnknownCase:
            continue
        raise AssertionError(f"{command!r} produced {produced!r} before opening")


@settings(max_examples=150, deadline=None)
@given(
    open_cases(valid=True),
    persons,
    consents,
    st.lists(st.tuples(st.booleans(), persons, consents), min_size=1, max_size=4),
)
def test_a_handover_across_organisations_is_never_accepted_without_a_consent(
    opening: OpenCase,
    receiver: str,
    consent_at_request: CrossOrgConsent | None,
    answers: list[tuple[bool, str, CrossOrgConsent | None]],
) -> None:
    run = Run()
    run.step(opening)
    other_unit = next(u for u, org in ORG_OF_UNIT.items() if org != opening.org_id)
    requested = run.step(
        RequestHandover(
            handover_id="h1",
            to_person_id=receiver,
            to_unit_id=other_unit,
            to_org_id=ORG_OF_UNIT[other_unit],
            requested_by=opening.holder_id,
            note=None,
            consent=consent_at_request,
        )
    )
    if consent_at_request is None or receiver == opening.holder_id:
        assert requested == []
        return
    for by_receiver, someone, consent in answers:
        by = receiver if by_receiver else someone
        accepted = run.step(AcceptHandover(handover_id="h1", by=by, consent=consent))
        if accepted:
            assert by == receiver
            assert consent is not None
            event("accepted across organisations")
            break
        assert run.state.holder == Holder(opening.holder_id, opening.unit_id)
