"""Message ids for client idempotency keys: scoped to principal, route and subject."""

from __future__ import annotations

import re

import pytest

from stafett_shared.eventstore import EventStore
from stafett_shared.msgid import CLIENT_KEY_PREFIX, ClientKey, message_id

ROUTE = "POST /api/v1/logs/{case_id}/entries"
SUBJECT = "stafett.ev.log.01J0000000000000000000000A"


def test_a_message_id_is_a_versioned_digest_and_never_the_key_itself() -> None:
    mid = message_id("person:ann", ROUTE, SUBJECT, "same-key-123")
    assert re.fullmatch(r"k1-[A-Za-z0-9_-]{43}", mid)
    assert "same-key-123" not in mid
    assert mid == message_id("person:ann", ROUTE, SUBJECT, "same-key-123")  # stable


@pytest.mark.parametrize(
    ("principal", "route", "subject", "key"),
    [
        ("person:rektor", ROUTE, SUBJECT, "same-key-123"),  # another principal
        ("client:ann", ROUTE, SUBJECT, "same-key-123"),  # another kind of principal
        (
            "person:ann",
            "POST /api/v1/logs/{case_id}/entries/{entry_id}/corrections",
            SUBJECT,
            "same-key-123",
        ),
        ("person:ann", ROUTE, "stafett.ev.log.01J0000000000000000000000B", "same-key-123"),
        ("person:ann", ROUTE, SUBJECT, "same-key-124"),
    ],
)
def test_each_part_changes_the_id(principal: str, route: str, subject: str, key: str) -> None:
    assert message_id(principal, route, subject, key) != message_id(
        "person:ann", ROUTE, SUBJECT, "same-key-123"
    )


def test_parts_cannot_be_shifted_into_one_another() -> None:
    # Each part is length-prefixed: moving characters across a boundary changes the id.
    assert message_id("person:a", "b", "c", "dddddddd") != message_id(
        "person:ab", "", "c", "dddddddd"
    )
    assert message_id("p", "r", "s.x", "key-key-1") != message_id("p", "r", "s", ".xkey-key-1")


def test_the_store_digests_client_keys_and_keeps_internal_ids() -> None:
    key = ClientKey("person:ann", ROUTE, "expire-01J0000000000000000000000A")
    assert EventStore._message_id(SUBJECT, key, creates=False) == key.message_id(SUBJECT)
    internal = EventStore._message_id(SUBJECT, "expire-01J0000000000000000000000A", creates=False)
    assert internal == "expire-01J0000000000000000000000A"
    assert internal != EventStore._message_id(SUBJECT, key, creates=False)
    assert EventStore._message_id(SUBJECT, None, creates=False) is None
    with pytest.raises(ValueError, match="client key"):
        EventStore._message_id(SUBJECT, CLIENT_KEY_PREFIX + "forged", creates=False)


def test_a_key_for_a_new_aggregate_is_bound_to_the_context_not_the_fresh_id() -> None:
    key = ClientKey("person:ann", "POST /api/v1/consents", "open-once-1")
    first = EventStore._message_id(
        "stafett.ev.consent.01J0000000000000000000000A", key, creates=True
    )
    again = EventStore._message_id(
        "stafett.ev.consent.01J0000000000000000000000B", key, creates=True
    )
    assert first == again == key.message_id("stafett.ev.consent.*")
    other_context = EventStore._message_id(
        "stafett.ev.case.01J0000000000000000000000A", key, creates=True
    )
    assert other_context != first
