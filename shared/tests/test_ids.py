"""Identifiers: ULIDs Stafett creates, and the patterns ids it receives must match."""

from __future__ import annotations

import time

import pytest
from ulid import ULID

from stafett_shared.ids import AGGREGATE_ID_PATTERN, PERSON_ID_PATTERN, is_ulid, new_id


def test_new_id_is_a_26_character_ulid() -> None:
    value = new_id()

    assert len(value) == 26
    assert is_ulid(value)
    assert str(ULID.from_str(value)) == value


def test_new_id_carries_the_current_time() -> None:
    before = time.time()
    value = new_id()
    after = time.time()

    stamp = ULID.from_str(value).timestamp
    assert before - 0.002 <= stamp <= after + 0.002


def test_new_ids_are_unique() -> None:
    ids = {new_id() for _ in range(2000)}

    assert len(ids) == 2000


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    first = new_id()
    time.sleep(0.003)
    second = new_id()

    assert first < second


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",  # 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVV",  # 27 characters
        "01arz3ndektsv4rrffq69g5fav",  # lower case
        "01ARZ3NDEKTSV4RRFFQ69G5FAI",  # I is not Crockford base32
        "01ARZ3NDEKTSV4RRFFQ69G5FAL",  # nor L
        "01ARZ3NDEKTSV4RRFFQ69G5FAO",  # nor O
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",  # nor U
        "01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
        " 01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ],
)
def test_is_ulid_refuses_text_that_is_not_a_ulid(value: str) -> None:
    assert not is_ulid(value)


def test_is_ulid_accepts_a_known_ulid() -> None:
    assert is_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAV")


@pytest.mark.parametrize("value", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "case_1", "a-b", "A" * 64, "x"])
def test_aggregate_id_pattern_accepts_subject_safe_ids(value: str) -> None:
    assert AGGREGATE_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize("value", ["", "a.b", "a*", "a>", "a b", "a\n", "A" * 65, "æøå", "a/b"])
def test_aggregate_id_pattern_refuses_what_would_break_a_nats_subject(value: str) -> None:
    assert not AGGREGATE_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    "value", ["ann-kristin-allum", "admin", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "a" * 64]
)
def test_person_id_pattern_accepts_staff_and_ulid_ids(value: str) -> None:
    assert PERSON_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    "value", ["", "ann_kristin", "ann kristin", "ann.kristin", "a" * 65, "ann\n", "ola@x"]
)
def test_person_id_pattern_refuses_other_characters_and_long_ids(value: str) -> None:
    assert not PERSON_ID_PATTERN.fullmatch(value)
