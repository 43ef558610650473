"""The guard on the read side: who may publish an event is its model's owner, where a model
names one of its own, else its context's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stafett_shared.contracts import OWNERS, Reason, Rejection, check_commit
from stafett_shared.contracts.access import AccessRecorded, DecisionRecorded
from stafett_shared.envelope import CloudEvent

PREFIX = "stafett.ev"
CASE = "01JCASE0000000000000000001"
SUBJECT = f"{PREFIX}.access.{CASE}"

DECISION: dict[str, Any] = {
    "decision_id": "01JDEC00000000000000000001",
    "principal_id": "ute-ulrik",
    "principal_kind": "person",
    "action": "case:read",
    "case_id": CASE,
    "decision": "permit",
    "basis": "audit_scope",
    "reason": "audit_scope",
    "detail": "",
    "policy_version": "1",
}
READ: dict[str, Any] = {
    "case_id": CASE,
    "reader_id": "ann",
    "reader_kind": "person",
    "what": "case",
    "service": "log",
}


def _event(event_type: str, data: dict[str, Any], source: str) -> CloudEvent:
    return CloudEvent(
        source=source,
        type=event_type,
        subject=CASE,
        time=datetime.now(UTC),
        tenant="4010",
        actor="ann",
        data=data,
    )


def test_the_access_context_is_any_services_but_a_decision_is_the_consent_services() -> None:
    assert OWNERS["access"] is None
    assert DecisionRecorded.owner == "consent"
    assert AccessRecorded.owner is None


@pytest.mark.parametrize("source", ["stafett/case", "stafett/log", "stafett/notify"])
def test_a_decision_from_any_other_service_is_refused(source: str) -> None:
    forged = _event(DecisionRecorded.event_type, DECISION, source)
    assert check_commit(SUBJECT, [forged], prefix=PREFIX) == Rejection(Reason.WRONG_SOURCE, 0)


def test_a_decision_from_the_consent_service_is_applied() -> None:
    decision = _event(DecisionRecorded.event_type, DECISION, "stafett/consent")
    assert check_commit(SUBJECT, [decision], prefix=PREFIX) is None


@pytest.mark.parametrize("source", ["stafett/case", "stafett/log", "stafett/consent"])
def test_a_read_may_be_recorded_by_any_service(source: str) -> None:
    read = _event(AccessRecorded.event_type, READ, source)
    assert check_commit(SUBJECT, [read], prefix=PREFIX) is None


def test_a_forged_decision_behind_a_read_names_its_place_in_the_commit() -> None:
    events = [
        _event(AccessRecorded.event_type, READ, "stafett/log"),
        _event(DecisionRecorded.event_type, DECISION, "stafett/log"),
    ]
    assert check_commit(SUBJECT, events, prefix=PREFIX) == Rejection(Reason.WRONG_SOURCE, 1)


def test_a_source_outside_the_services_may_not_record_a_read() -> None:
    read = _event(AccessRecorded.event_type, READ, "stafett/portal")
    assert check_commit(SUBJECT, [read], prefix=PREFIX) == Rejection(Reason.WRONG_SOURCE, 0)
