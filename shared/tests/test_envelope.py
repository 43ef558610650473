"""The CloudEvents envelope, commits, the payload registry and upcasters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from stafett_shared.envelope import (
    MAX_EVENTS_PER_COMMIT,
    CloudEvent,
    EnvelopeError,
    EventData,
    EventRegistry,
    UnknownEventType,
    decode_commit,
    encode_commit,
)
from stafett_shared.ids import is_ulid

T0 = datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": "stafett/case",
        "type": "no.stafett.case.opened.v1",
        "subject": "01JABCDEFGHJKMNPQRSTVWXYZ0",
        "time": T0,
        "tenant": "4010",
        "actor": "ann-kristin-allum",
        "data": {"level": 0},
    }
    fields.update(overrides)
    return fields


def _event(**overrides: Any) -> CloudEvent:
    return CloudEvent.model_validate(_fields(**overrides))


class Opened(EventData):
    event_type: ClassVar[str] = "no.stafett.case.opened.v1"

    level: int


class OpenedAgain(EventData):
    event_type: ClassVar[str] = "no.stafett.case.opened.v1"

    level: int


class NoteV2(EventData):
    event_type: ClassVar[str] = "no.stafett.log.note.v2"

    text: str
    category: str


class NoType(EventData):
    level: int


class BadType(EventData):
    event_type: ClassVar[str] = "no.stafett.case.Opened.v1"


# --- CloudEvent -----------------------------------------------------------------------------


def test_a_valid_event_gets_defaults_for_id_specversion_and_content_type() -> None:
    event = _event()

    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert is_ulid(event.id)
    assert event.context == "case"


def test_two_events_get_different_ids() -> None:
    assert _event().id != _event().id


@pytest.mark.parametrize(
    "event_type",
    [
        "no.stafett.case.Opened.v1",
        "no.stafett.case.opened.v0",
        "no.stafett.case.opened.v01",
        "no.stafett.case.opened",
        "com.example.case.opened.v1",
        "no.stafett.case.opened.v1.extra",
        "no.stafett.case-x.opened.v1",
    ],
)
def test_an_event_type_outside_the_naming_pattern_is_refused(event_type: str) -> None:
    with pytest.raises(ValidationError):
        _event(type=event_type)


@pytest.mark.parametrize(
    "event_type", ["no.stafett.case.opened.v1", "no.stafett.log.entry_appended.v12"]
)
def test_event_types_following_the_naming_pattern_are_accepted(event_type: str) -> None:
    assert _event(type=event_type).type == event_type


@pytest.mark.parametrize("subject", ["", "a.b", "case*", "case>", "a b", "x" * 65, "sak/1"])
def test_a_subject_that_would_break_a_nats_subject_is_refused(subject: str) -> None:
    with pytest.raises(ValidationError):
        _event(subject=subject)


@pytest.mark.parametrize("source", ["case", "stafett/", "stafett/Case", "stafett/case/x"])
def test_a_source_outside_stafett_services_is_refused(source: str) -> None:
    with pytest.raises(ValidationError):
        _event(source=source)


def test_a_time_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        _event(time=datetime(2025, 3, 14, 9, 26, 53))  # noqa: DTZ001


def test_a_time_in_another_zone_is_stored_as_utc() -> None:
    oslo_summer = timezone(timedelta(hours=2))
    event = _event(time=datetime(2025, 6, 1, 12, 0, tzinfo=oslo_summer))

    assert event.time == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)


def test_fields_outside_the_envelope_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        _event(national_id="01010012345")


@pytest.mark.parametrize("specversion", ["0.3", "1.1"])
def test_another_cloudevents_version_is_refused(specversion: str) -> None:
    with pytest.raises(ValidationError):
        _event(specversion=specversion)


def test_an_event_is_frozen() -> None:
    event = _event()

    with pytest.raises(ValidationError, match="frozen"):
        event.subject = "another"  # type: ignore[misc]
    assert event.subject == "01JABCDEFGHJKMNPQRSTVWXYZ0"


def test_to_json_dict_writes_times_with_a_z_suffix() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = _event(time=datetime(2025, 6, 1, 12, 0, 1, 5000, tzinfo=plus_two))

    assert event.to_json_dict()["time"] == "2025-06-01T10:00:01.005000Z"


def test_to_json_dict_omits_extensions_that_are_not_set() -> None:
    dumped = _event().to_json_dict()

    for absent in (
        "actorrole",
        "actorunit",
        "correlationid",
        "causationid",
        "traceparent",
        "prevhash",
        "hash",
    ):
        assert absent not in dumped
    assert set(dumped) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "tenant",
        "actor",
        "data",
    }


def test_to_json_dict_keeps_extensions_that_are_set() -> None:
    dumped = _event(actorrole="teacher", correlationid="c-1", hash="abc").to_json_dict()

    assert dumped["actorrole"] == "teacher"
    assert dumped["correlationid"] == "c-1"
    assert dumped["hash"] == "abc"


# --- commits --------------------------------------------------------------------------------


def test_a_commit_round_trips_through_its_canonical_bytes() -> None:
    events = (
        _event(data={"level": 0, "navn": "Åse"}, actorrole="teacher"),
        _event(type="no.stafett.case.level_changed.v1", data={"level": 1}, traceparent="00-x"),
    )

    body = encode_commit(events)

    assert decode_commit(body) == events
    assert encode_commit(decode_commit(body)) == body


def test_a_commit_is_a_cloudevents_batch_in_canonical_json() -> None:
    event = _event()

    body = encode_commit([event])

    parsed = json.loads(body)
    assert isinstance(parsed, list)
    assert parsed == [event.to_json_dict()]
    assert (
        body
        == json.dumps(parsed, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    )


def test_a_commit_of_no_events_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="1 to 100"):
        encode_commit([])


def test_a_commit_of_the_maximum_number_of_events_is_accepted() -> None:
    events = [_event() for _ in range(MAX_EVENTS_PER_COMMIT)]

    assert len(decode_commit(encode_commit(events))) == MAX_EVENTS_PER_COMMIT


def test_a_commit_of_more_than_the_maximum_number_of_events_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="1 to 100"):
        encode_commit([_event() for _ in range(MAX_EVENTS_PER_COMMIT + 1)])


def test_a_commit_with_events_of_two_aggregates_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="one aggregate"):
        encode_commit([_event(subject="case-a"), _event(subject="case-b")])


def test_a_single_structured_event_decodes_as_a_commit_of_one() -> None:
    event = _event()

    body = json.dumps(event.to_json_dict()).encode()

    assert decode_commit(body) == (event,)


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"[1,"])
def test_a_body_that_is_not_json_is_not_a_commit(body: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not JSON"):
        decode_commit(body)


def test_an_empty_batch_is_not_a_commit() -> None:
    with pytest.raises(EnvelopeError, match="empty"):
        decode_commit(b"[]")


def test_a_batch_with_an_invalid_event_is_not_a_commit() -> None:
    good = _event().to_json_dict()
    bad = dict(good, subject="a.b")

    with pytest.raises(EnvelopeError, match="invalid CloudEvent"):
        decode_commit(json.dumps([good, bad]).encode())


def test_a_batch_holding_a_non_object_is_not_a_commit() -> None:
    with pytest.raises(EnvelopeError, match="invalid CloudEvent"):
        decode_commit(b"[42]")


# --- registry -------------------------------------------------------------------------------


def test_a_registered_model_is_found_by_its_type() -> None:
    events = EventRegistry()

    returned = events.register(Opened)

    assert returned is Opened
    assert events.model_for("no.stafett.case.opened.v1") is Opened
    assert events.types() == ["no.stafett.case.opened.v1"]


def test_registering_the_same_model_twice_is_harmless() -> None:
    events = EventRegistry()
    events.register(Opened)

    events.register(Opened)

    assert events.types() == ["no.stafett.case.opened.v1"]


def test_a_second_model_for_a_registered_type_is_refused() -> None:
    events = EventRegistry()
    events.register(Opened)

    with pytest.raises(EnvelopeError, match="registered twice"):
        events.register(OpenedAgain)
    assert events.model_for("no.stafett.case.opened.v1") is Opened


@pytest.mark.parametrize("model", [NoType, BadType])
def test_a_model_without_a_valid_event_type_is_refused(model: type[EventData]) -> None:
    with pytest.raises(EnvelopeError, match="no valid event_type"):
        EventRegistry().register(model)


def test_an_unknown_type_is_reported_as_unknown() -> None:
    events = EventRegistry()

    with pytest.raises(UnknownEventType):
        events.model_for("no.stafett.case.opened.v1")
    with pytest.raises(UnknownEventType):
        events.payload(_event())


def test_registries_do_not_share_models() -> None:
    first, second = EventRegistry(), EventRegistry()
    first.register(Opened)

    assert second.types() == []


def test_envelope_wraps_a_registered_payload() -> None:
    events = EventRegistry()
    events.register(Opened)

    event = events.envelope(
        Opened(level=1),
        subject="case-1",
        source="stafett/case",
        tenant="4010",
        actor="ann",
        time=T0,
        correlationid="corr-1",
    )

    assert event.type == "no.stafett.case.opened.v1"
    assert event.data == {"level": 1}
    assert event.correlationid == "corr-1"
    assert events.payload(event) == Opened(level=1)


def test_envelope_uses_a_given_event_id() -> None:
    events = EventRegistry()
    events.register(Opened)

    event = events.envelope(
        Opened(level=0),
        subject="case-1",
        source="stafett/case",
        tenant="4010",
        actor="ann",
        time=T0,
        event_id="idem-1",
    )

    assert event.id == "idem-1"


def test_envelope_refuses_an_unregistered_payload() -> None:
    with pytest.raises(UnknownEventType):
        EventRegistry().envelope(
            Opened(level=0),
            subject="case-1",
            source="stafett/case",
            tenant="4010",
            actor="ann",
            time=T0,
        )


def test_a_payload_that_does_not_match_its_model_is_refused() -> None:
    events = EventRegistry()
    events.register(Opened)

    with pytest.raises(EnvelopeError, match="does not match"):
        events.payload(_event(data={"level": "high"}))
    with pytest.raises(EnvelopeError, match="does not match"):
        events.payload(_event(data={"level": 0, "unexpected": 1}))


def test_payload_models_are_frozen() -> None:
    payload = Opened(level=0)

    with pytest.raises(ValidationError, match="frozen"):
        payload.level = 1  # type: ignore[misc]


# --- upcasters ------------------------------------------------------------------------------


def _with_category(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "category": "general"}


def test_an_event_of_a_retired_type_is_read_as_the_new_version() -> None:
    events = EventRegistry()
    events.register(NoteV2)
    events.register_upcaster("no.stafett.log.note.v1", "no.stafett.log.note.v2", _with_category)
    old = _event(type="no.stafett.log.note.v1", data={"text": "enc:v1:abc"})

    payload = events.payload(old)

    assert payload == NoteV2(text="enc:v1:abc", category="general")
    assert old.data == {"text": "enc:v1:abc"}  # the stored event is not changed


def test_an_event_of_the_current_type_is_not_upcast() -> None:
    events = EventRegistry()
    events.register(NoteV2)
    events.register_upcaster("no.stafett.log.note.v1", "no.stafett.log.note.v2", _with_category)

    payload = events.payload(
        _event(type="no.stafett.log.note.v2", data={"text": "t", "category": "health"})
    )

    assert payload == NoteV2(text="t", category="health")


def test_upcasters_chain_through_several_versions() -> None:
    events = EventRegistry()
    events.register(NoteV2)
    events.register_upcaster(
        "no.stafett.log.memo.v1", "no.stafett.log.note.v1", lambda d: {"text": d["body"]}
    )
    events.register_upcaster("no.stafett.log.note.v1", "no.stafett.log.note.v2", _with_category)

    assert events.upcast("no.stafett.log.memo.v1", {"body": "b"}) == (
        "no.stafett.log.note.v2",
        {"text": "b", "category": "general"},
    )


def test_an_upcaster_from_a_type_that_still_has_a_model_is_refused() -> None:
    events = EventRegistry()
    events.register(NoteV2)

    with pytest.raises(EnvelopeError, match="still has a model"):
        events.register_upcaster("no.stafett.log.note.v2", "no.stafett.log.note.v3", dict)


def test_an_upcaster_cycle_is_detected() -> None:
    events = EventRegistry()
    events.register_upcaster("no.stafett.log.a.v1", "no.stafett.log.b.v1", dict)
    events.register_upcaster("no.stafett.log.b.v1", "no.stafett.log.a.v1", dict)

    with pytest.raises(EnvelopeError, match="cycle"):
        events.upcast("no.stafett.log.a.v1", {})
    with pytest.raises(EnvelopeError, match="cycle"):
        events.payload(_event(type="no.stafett.log.b.v1", data={}))


def test_an_upcast_to_a_type_without_a_model_is_unknown() -> None:
    events = EventRegistry()
    events.register_upcaster("no.stafett.log.note.v1", "no.stafett.log.note.v2", _with_category)

    with pytest.raises(UnknownEventType):
        events.payload(_event(type="no.stafett.log.note.v1", data={"text": "t"}))
