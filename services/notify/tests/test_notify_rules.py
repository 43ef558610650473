"""The notice rules: which events may call for a notice at all."""

from __future__ import annotations

import dataclasses

import pytest

# Every context's events, registered as the services register them.
import stafett_case.domain
import stafett_consent.domain
import stafett_log.domain
import stafett_shared.access
from stafett_notify.domain import LEADER_EVENTS, NOTICE_EVENTS, CaseFacts, EventView, drafts
from stafett_shared.envelope import registry

REGISTERED = (
    stafett_case.domain,
    stafett_consent.domain,
    stafett_log.domain,
    stafett_shared.access,
)

FACTS = CaseFacts(
    case_id="sak",
    holder_id="holder",
    unit_id="enhet",
    level=3,
    team=frozenset({"team-a", "team-b"}),
    unit_leaders=frozenset({"leder"}),
)
# Data that gives every rule something to name: people, a level of 3, ids.
RICH = {
    "case_id": "sak",
    "to_person_id": "mottaker",
    "from_person_id": "avsender",
    "entry_id": "innforing",
    "level": 3,
    "consent_id": "samtykke",
    "grant_id": "tilgang",
    "notify_person_ids": ["varslet"],
    "kind": "evaluation",
    "due_on": "2026-12-01",
}


def _name(event_type: str) -> str:
    return event_type.removeprefix("no.stafett.").rsplit(".", 1)[0]


@pytest.mark.parametrize("event_type", registry.types())
def test_only_the_notice_events_ever_call_for_a_notice(event_type: str) -> None:
    name = _name(event_type)
    view = EventView(name, "hendelse", "sak", "noen-andre", RICH)
    for facts in (FACTS, None):
        if drafts(view, facts):
            assert name in NOTICE_EVENTS, name


@pytest.mark.parametrize("event_type", registry.types())
def test_only_the_leader_events_need_the_units_leaders(event_type: str) -> None:
    name = _name(event_type)
    view = EventView(name, "hendelse", "sak", "noen-andre", RICH)
    without = dataclasses.replace(FACTS, unit_leaders=frozenset())
    if drafts(view, without) != drafts(view, FACTS):
        assert name in LEADER_EVENTS, name


def test_every_notice_event_is_a_registered_event_type() -> None:
    assert {_name(t) for t in registry.types()} >= NOTICE_EVENTS >= LEADER_EVENTS
