"""The event contracts: every type in a module of its context, knowing its owner and subject;
upcasters on the read side; the access decision's one reply."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast

import pytest

from stafett_shared.access import AccessClient, AccessUnavailable
from stafett_shared.auth import Principal
from stafett_shared.contracts import CONTEXT_BASES, OWNERS
from stafett_shared.contracts.access import AccessDecision, AccessRecorded, DecisionRecorded
from stafett_shared.contracts.base import ContractEvent
from stafett_shared.contracts.case import CaseOpened, DeadlineDue, HolderRef
from stafett_shared.contracts.directory import ChildRegistered, RoleGranted, StaffRole
from stafett_shared.contracts.log import Category, LogEvent
from stafett_shared.envelope import (
    CONTEXTS,
    CloudEvent,
    EnvelopeError,
    EventRegistry,
    registry,
)

CASE = "01JABCDEFGHJKMNPQRSTVWXYZ0"
T0 = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def _contract(event_type: str) -> type[ContractEvent]:
    model = registry.model_for(event_type)
    assert issubclass(model, ContractEvent), event_type
    return model


# --- the layout ---------------------------------------------------------------------------


def test_every_context_has_a_base_class_and_an_owner() -> None:
    assert {base.context for base in CONTEXT_BASES} == CONTEXTS
    assert dict(OWNERS) == {
        "case": "case",
        "log": "log",
        "consent": "consent",
        "directory": "consent",
        "access": None,
    }


@pytest.mark.parametrize("event_type", registry.types())
def test_every_registered_type_lives_in_the_contract_module_of_its_context(
    event_type: str,
) -> None:
    model = _contract(event_type)
    context = event_type.split(".")[2]

    assert model.context == context
    assert model.__module__ == f"stafett_shared.contracts.{context}"
    assert model.subject_pattern.startswith(f"stafett.ev.{context}.")
    assert model.owner == OWNERS[context] or model is DecisionRecorded


def test_each_context_has_its_types() -> None:
    by_context: dict[str, int] = {}
    for event_type in registry.types():
        context = _contract(event_type).context
        by_context[context] = by_context.get(context, 0) + 1

    assert by_context == {"case": 16, "log": 4, "consent": 11, "directory": 21, "access": 3}


def test_only_the_decision_point_records_decisions_while_any_service_records_a_read() -> None:
    assert DecisionRecorded.owner == "consent"
    assert AccessRecorded.owner is None


# --- subjects ------------------------------------------------------------------------------


def test_a_payload_names_the_subject_of_its_aggregate() -> None:
    opened = CaseOpened(
        case_id=CASE,
        org_id="4010",
        unit_id="u",
        level=0,
        holder=HolderRef(person_id="p", unit_id="u"),
        concern="enc:v1:x",
    )
    deadline = DeadlineDue(case_id=CASE, kind="inactive", due_on=date(2025, 4, 1))
    role = RoleGranted(person_id="ann", org_id="4010", unit_id="u", role=StaffRole.LEADER)

    assert opened.subject() == f"stafett.ev.case.{CASE}"
    assert opened.subject("test.ev") == f"test.ev.case.{CASE}"
    assert deadline.aggregate_id() == f"{CASE}-deadlines"
    assert role.subject() == "stafett.ev.directory.person-ann"


def test_a_child_is_registered_on_the_subject_of_its_national_ids_blind_index() -> None:
    child = ChildRegistered(
        child_id=CASE,
        national_id="enc:v1:a",
        national_id_index="f" * 64,
        name="enc:v1:b",
        birth_date="enc:v1:c",
        guardians=(),
        registered_by="ann",
    )

    assert child.aggregate_id() == "nid-" + "f" * 40


def test_a_contract_in_the_wrong_context_is_refused() -> None:
    with pytest.raises(TypeError, match="not in the context"):

        class Misplaced(LogEvent):
            event_type: ClassVar[str] = "no.stafett.case.misplaced.v1"
            case_id: str


def test_a_subject_pattern_naming_a_missing_field_is_refused() -> None:
    with pytest.raises(TypeError, match="does not have"):

        class NoCase(LogEvent):
            event_type: ClassVar[str] = "no.stafett.log.no_case.v1"
            entry_id: str


# --- upcasters on the read side -------------------------------------------------------------


class NoteV2(LogEvent):
    """A made-up second version: ``no.stafett.log.note.v1`` had no category."""

    event_type: ClassVar[str] = "no.stafett.log.note.v2"
    case_id: str
    text: str
    category: Category | None


def _note_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "category": None}


def _stored(event_type: str, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent(
        source="stafett/log",
        type=event_type,
        subject=CASE,
        time=T0,
        tenant="4010",
        actor="ann",
        data=data,
    )


def test_a_reader_decoding_an_old_version_gets_the_new_model() -> None:
    events = EventRegistry()
    events.register(NoteV2)
    events.register_upcaster("no.stafett.log.note.v1", NoteV2.event_type, _note_v1_to_v2)
    old = _stored("no.stafett.log.note.v1", {"case_id": CASE, "text": "enc:v1:t"})

    payload = events.payload(old)

    assert isinstance(payload, NoteV2)
    assert payload == NoteV2(case_id=CASE, text="enc:v1:t", category=None)
    assert payload.subject() == f"stafett.ev.log.{CASE}"
    assert old.data == {"case_id": CASE, "text": "enc:v1:t"}


def test_an_old_version_the_upcaster_cannot_complete_does_not_validate() -> None:
    events = EventRegistry()
    events.register(NoteV2)
    events.register_upcaster("no.stafett.log.note.v1", NoteV2.event_type, _note_v1_to_v2)

    with pytest.raises(EnvelopeError, match="does not match"):
        events.payload(_stored("no.stafett.log.note.v1", {"text": "enc:v1:t"}))


def test_a_retired_version_cannot_get_a_model_again() -> None:
    class NoteV1(LogEvent):
        event_type: ClassVar[str] = "no.stafett.log.note.v1"
        case_id: str
        text: str

    events = EventRegistry()
    events.register_upcaster(NoteV1.event_type, NoteV2.event_type, _note_v1_to_v2)

    with pytest.raises(EnvelopeError, match="retired"):
        events.register(NoteV1)


# --- the access decision's reply -----------------------------------------------------------


def _client(reply: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> AccessClient:
    client = AccessClient(cast("Any", None), service="case", permit_cache_s=0)

    async def answer(subject: str, payload: dict[str, Any]) -> dict[str, Any]:
        return reply

    monkeypatch.setattr(client, "_ask", answer)
    return client


PERMIT = AccessDecision(
    decision="permit",
    basis="holder",
    reason="holder",
    decision_id=CASE,
    policy_version="2025-01",
)
NURSE = Principal(kind="person", id="helse-hanne", issuer="test")


async def test_the_client_reads_the_reply_the_decision_point_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client(PERMIT.model_dump(), monkeypatch)

    decision = await client.check(NURSE, "case:read", CASE)

    assert decision == PERMIT
    assert decision.permitted


async def test_a_field_the_client_does_not_know_yet_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client({**PERMIT.model_dump(), "obligations": ["log"]}, monkeypatch)

    assert await client.check(NURSE, "case:read", CASE) == PERMIT


async def test_a_reply_that_is_not_a_decision_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client({"decision": "maybe", "decision_id": CASE}, monkeypatch)

    with pytest.raises(AccessUnavailable):
        await client.check(NURSE, "case:read", CASE)
