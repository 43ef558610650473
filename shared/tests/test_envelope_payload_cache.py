"""A payload is decoded once per event and registry: the guard's decoding serves the
projection that applies the event after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from stafett_shared.envelope import CloudEvent, EventData, EventRegistry


class _Noted(EventData):
    event_type: ClassVar[str] = "no.stafett.case.noted.v1"
    case_id: str


def _event() -> CloudEvent:
    return CloudEvent(
        source="stafett/case",
        type="no.stafett.case.noted.v1",
        subject="01JN0000000000000000000000",
        time=datetime.now(UTC),
        tenant="4010",
        actor="ann-kristin-allum",
        data={"case_id": "01JN0000000000000000000000"},
    )


def test_the_same_registry_gets_the_same_payload_object_back() -> None:
    registry = EventRegistry()
    registry.register(_Noted)
    event = _event()
    first = registry.payload(event)
    assert isinstance(first, _Noted)
    assert registry.payload(event) is first


def test_another_registry_decodes_for_itself() -> None:
    one, other = EventRegistry(), EventRegistry()
    one.register(_Noted)
    other.register(_Noted)
    event = _event()
    assert one.payload(event) is not other.payload(event)
