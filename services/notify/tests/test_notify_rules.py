"""The notice rules: which events may call for a notice at all."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from stafett_notify.domain import (
    FAMILY_EVENTS,
    LEADER_EVENTS,
    NOTICE_EVENTS,
    CaseFacts,
    Draft,
    EventView,
    action,
    drafts,
    notice_case,
    page,
)
from stafett_shared.contracts.base import ContractEvent  # every context's events, registered
from stafett_shared.contracts.case import ChildWelfareReported, DeadlineDue, HandoverDeclined
from stafett_shared.contracts.consent import GrantorGroup
from stafett_shared.envelope import EventData, registry

FACTS = CaseFacts(
    case_id="sak",
    holder_id="holder",
    unit_id="enhet",
    level=3,
    team=frozenset({"team-a", "team-b"}),
    unit_leaders=frozenset({"leder"}),
    intake=frozenset({"mottak"}),
    guardians=frozenset({"forelder"}),
)
# Fields that give every rule something to name: people, a level of 3, ids.
RICH: dict[str, Any] = {
    "case_id": "sak",
    "to_person_id": "mottaker",
    "from_person_id": "avsender",
    "entry_id": "innforing",
    "level": 3,
    "consent_id": "samtykke",
    "grant_id": "tilgang",
    "notify_person_ids": ("varslet",),
    "kind": "inactive",
    "due_on": date(2026, 12, 1),
    "grantors": (GrantorGroup(kind="guardians", members=("forelder", "mor")),),
    "grantor_person_ids": ("forelder", "mor"),
}
CONTRACT_TYPES = [t for t in registry.types() if issubclass(registry.model_for(t), ContractEvent)]


def _rich(event_type: str) -> EventData:
    """A payload of the type with RICH's value for each field it has (others a placeholder),
    built without validation: the rules read only the fields above."""
    model = registry.model_for(event_type)
    return model.model_construct(**{name: RICH.get(name, "x") for name in model.model_fields})


@pytest.mark.parametrize("event_type", CONTRACT_TYPES)
def test_only_the_notice_events_ever_call_for_a_notice(event_type: str) -> None:
    payload = _rich(event_type)
    view = EventView("hendelse", "sak", "noen-andre", payload)
    for facts in (FACTS, None):
        if drafts(view, facts):
            assert isinstance(payload, NOTICE_EVENTS), event_type
            assert notice_case(payload) == "sak"


@pytest.mark.parametrize("event_type", CONTRACT_TYPES)
def test_only_the_leader_events_need_the_units_leaders(event_type: str) -> None:
    payload = _rich(event_type)
    view = EventView("hendelse", "sak", "noen-andre", payload)
    without = dataclasses.replace(FACTS, unit_leaders=frozenset())
    if drafts(view, without) != drafts(view, FACTS):
        assert isinstance(payload, LEADER_EVENTS), event_type


@pytest.mark.parametrize("event_type", CONTRACT_TYPES)
def test_only_the_family_events_need_the_childs_guardians(event_type: str) -> None:
    payload = _rich(event_type)
    view = EventView("hendelse", "sak", "noen-andre", payload)
    without = dataclasses.replace(FACTS, guardians=frozenset())
    if drafts(view, without) != drafts(view, FACTS):
        assert isinstance(payload, FAMILY_EVENTS), event_type


@pytest.mark.parametrize("model", NOTICE_EVENTS, ids=lambda m: m.__name__)
def test_every_notice_event_calls_for_a_notice_to_someone(model: type[EventData]) -> None:
    view = EventView("hendelse", "sak", "noen-andre", _rich(model.event_type))
    found = drafts(view, FACTS)
    assert found
    for draft in found:
        assert draft.recipients
        assert draft.case_id == "sak"


def test_the_grantors_are_told_a_consent_waits_and_that_it_is_about_to_expire() -> None:
    requested = _rich("no.stafett.consent.requested.v1")
    view = EventView("hendelse", "sak", "mor", requested)
    # The one who asked for it (a grantor renewing it themselves) is not told of it.
    assert drafts(view, None) == [
        Draft("consent_requested", "sak", frozenset({"forelder"}), "samtykke")
    ]
    reminder = _rich("no.stafett.consent.expiry_reminder_due.v1")
    view = EventView("hendelse", "sak", "stafett-consent", reminder)
    assert drafts(view, None) == [
        Draft("consent_expires_soon", "sak", frozenset({"forelder", "mor"}), "samtykke")
    ]
    assert page("consent_requested", "sak") == "/familie/sak"
    assert page("consent_expires_soon", "sak") == "/familie/sak"
    assert action("consent_expires_soon") == "case:read"


def test_the_guardians_are_told_the_case_has_a_new_holder_but_not_who() -> None:
    accepted = _rich("no.stafett.case.handover_accepted.v1")
    view = EventView("hendelse", "sak", "mottaker", accepted)
    assert drafts(view, FACTS) == [
        Draft("handover_accepted", "sak", frozenset({"avsender"})),
        Draft("new_holder", "sak", frozenset({"forelder"})),
    ]
    without = dataclasses.replace(FACTS, guardians=frozenset())
    assert [d.kind for d in drafts(view, without)] == ["handover_accepted"]
    assert page("new_holder", "sak") == "/familie/sak"


def test_a_report_of_concern_is_told_to_the_intake_only_on_their_own_basis() -> None:
    report = ChildWelfareReported(
        case_id="sak", report_id="melding", text="enc:v2:x", reported_by="holder", unit_id="bv"
    )

    (draft,) = drafts(EventView("hendelse", "sak", "holder", report), FACTS)

    assert (draft.kind, draft.recipients, draft.ref_id) == (
        "child_welfare_report",
        frozenset({"mottak"}),
        "melding",
    )
    assert action(draft.kind) == "case:report_read"  # never the case
    assert page(draft.kind, "sak") == "/barnevern/meldinger"
    assert action("entry_appended") == "case:read"
    assert page("entry_appended", "sak") == "/saker/sak"


def test_a_waiting_emergency_request_links_to_the_leaders_approval_page() -> None:
    assert page("emergency_access_requested", "sak") == "/nodtilgang/godkjenn"
    assert page("emergency_access_approved", "sak") == "/saker/sak"


def test_every_notice_event_is_a_registered_event_type() -> None:
    models = {registry.model_for(t) for t in registry.types()}
    assert models >= set(NOTICE_EVENTS) >= set(LEADER_EVENTS) | set(FAMILY_EVENTS)


def test_a_declined_handover_is_told_to_the_holder_who_asked() -> None:
    declined = HandoverDeclined(case_id="sak", handover_id="h", reason="enc:v1:r")
    view = EventView("hendelse", "sak", "mottaker", declined)
    assert [(d.kind, d.recipients) for d in drafts(view, FACTS)] == [
        ("handover_declined", frozenset({"holder"}))
    ]
    assert drafts(view, None)[0].recipients == frozenset()


def test_a_deadline_names_its_kind_and_day_and_falls_to_the_holder() -> None:
    due = DeadlineDue(case_id="sak", kind="inactive", due_on=date(2026, 12, 1))
    view = EventView("hendelse", "sak-deadlines", "stafett", due)
    assert drafts(view, FACTS) == [
        Draft("deadline_inactive", "sak", frozenset({"holder"}), "2026-12-01")
    ]
    named = due.model_copy(update={"notify_person_ids": ("leder",)})
    assert drafts(dataclasses.replace(view, payload=named), FACTS)[0].recipients == {"leder"}
