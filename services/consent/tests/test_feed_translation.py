"""The feed's translation of stream events into integration events (decision 0041): every
integration type comes from a stream event, nothing encrypted and no person's id travels, and
the stream's other events are not in the feed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from stafett_consent.feed import translate
from stafett_shared.contracts import case, consent, feed, log
from stafett_shared.envelope import EventData

CASE = "01JCASE0000000000000000000"
SECRET = "enc:v1:SECRET"
PEOPLE = ("ann-kristin-allum", "helse-hanne", "mor-1", "child-1")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
AUTHOR = log.Author(person_id="ann-kristin-allum", role="teacher", unit_id="siljan")

TRANSLATED: list[tuple[EventData, type[feed.FeedEvent]]] = [
    (
        case.CaseOpened(
            case_id=CASE,
            org_id="4010",
            unit_id="siljan",
            level=1,
            holder=case.HolderRef(person_id="ann-kristin-allum", unit_id="siljan"),
            child_id="child-1",
            pseudonym=SECRET,
            concern=SECRET,
        ),
        feed.CaseOpened,
    ),
    (case.LevelChanged(case_id=CASE, from_level=1, level=2, reason=SECRET), feed.LevelChanged),
    (
        case.HandoverRequested(
            case_id=CASE,
            handover_id="h1",
            from_person_id="ann-kristin-allum",
            from_unit_id="siljan",
            to_person_id="helse-hanne",
            to_unit_id="helsestasjon",
            to_org_id="4010",
            requested_by="ann-kristin-allum",
            note=SECRET,
        ),
        feed.HandoverRequested,
    ),
    (
        case.HandoverAccepted(
            case_id=CASE,
            handover_id="h1",
            from_person_id="ann-kristin-allum",
            to_person_id="helse-hanne",
            to_unit_id="helsestasjon",
            to_org_id="4010",
            history_travels=True,
        ),
        feed.HolderChanged,
    ),
    (
        case.MeasureAdded(
            case_id=CASE,
            measure_id="m1",
            title=SECRET,
            goal=SECRET,
            responsible_person_id="ann-kristin-allum",
            start=date(2026, 12, 1),
            evaluate_by=date(2027, 1, 1),
        ),
        feed.MeasureAdded,
    ),
    (
        case.MeasureEvaluated(
            case_id=CASE,
            measure_id="m1",
            outcome=case.Outcome.PARTLY,
            note=SECRET,
            evaluated_on=date(2027, 1, 1),
        ),
        feed.MeasureEvaluated,
    ),
    (
        case.CaseClosedEvent(case_id=CASE, reason=case.CloseReason.RESOLVED, note=SECRET),
        feed.CaseClosed,
    ),
    (case.CaseReopened(case_id=CASE, reason=SECRET), feed.CaseReopened),
    (consent.ConsentActivated(consent_id="c1", case_id=CASE), feed.ConsentChanged),
    (
        consent.ConsentWithdrawn(
            consent_id="c1",
            case_id=CASE,
            grantor_person_id="mor-1",
            reason=SECRET,
            recorded_by="mor-1",
        ),
        feed.ConsentChanged,
    ),
    (
        log.EntryAppended(
            entry_id="e1",
            case_id=CASE,
            kind=log.Kind.NOTE,
            text=SECRET,
            occurred_at=NOW,
            participants=SECRET,
            author=AUTHOR,
            regime=log.Regime.ADMINISTRATION,
        ),
        feed.EntryAppended,
    ),
]


@pytest.mark.parametrize(("stream", "expected"), TRANSLATED, ids=lambda v: type(v).__name__)
def test_a_stream_event_becomes_its_integration_event_without_secrets_or_people(
    stream: EventData, expected: type[feed.FeedEvent]
) -> None:
    translated = translate(stream)
    assert type(translated) is expected
    assert translated.case_id == CASE
    dumped = json.dumps(translated.model_dump(mode="json"))
    assert "enc:" not in dumped
    assert not [person for person in PEOPLE if person in dumped]


def test_every_integration_type_comes_from_the_stream() -> None:
    assert {expected for _, expected in TRANSLATED} == set(feed.FEED_TYPES.values())


@pytest.mark.parametrize(
    ("stream", "status"),
    [
        (TRANSLATED[8][0], "active"),
        (TRANSLATED[9][0], "withdrawn"),
        (consent.ConsentExpired(consent_id="c1", case_id=CASE), "expired"),
    ],
)
def test_a_consents_event_is_its_new_state(stream: EventData, status: str) -> None:
    changed = translate(stream)
    assert isinstance(changed, feed.ConsentChanged)
    assert (changed.consent_id, changed.status) == ("c1", status)


@pytest.mark.parametrize(
    "stream",
    [
        case.TeamMemberAdded(
            case_id=CASE, person_id="helse-hanne", unit_id="x", org_id="4010", access="read"
        ),
        case.ChildWelfareReported(
            case_id=CASE, report_id="r1", text=SECRET, reported_by="ann-kristin-allum"
        ),
        log.EntryCorrected(
            entry_id="e2",
            case_id=CASE,
            corrects_entry_id="e1",
            text=SECRET,
            reason=SECRET,
            author=AUTHOR,
            regime=log.Regime.ADMINISTRATION,
        ),
    ],
    ids=lambda v: type(v).__name__,
)
def test_the_streams_other_events_are_not_in_the_feed(stream: EventData) -> None:
    assert translate(stream) is None
