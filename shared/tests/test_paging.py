"""Opaque list cursors: one spelling each, bound to their list and scope, refused strictly."""

from __future__ import annotations

import base64

import pytest

from stafett_shared.paging import (
    decode_cursor,
    decode_key_cursor,
    encode_cursor,
    encode_key_cursor,
)
from stafett_shared.problems import Problem

CASE = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("position", [1, 9, 123_456, 2**63 - 1])
def test_a_cursor_gives_back_its_position_and_shows_none_of_it(position: int) -> None:
    cursor = encode_cursor("entries", CASE, position)
    assert decode_cursor(cursor, "entries", CASE) == position
    assert str(position) not in cursor and CASE not in cursor
    assert "=" not in cursor


@pytest.mark.parametrize(
    "token",
    [
        "",
        "12",
        "@@@",
        _b64(f"v1:entries:{CASE}:5") + "=",
        _b64(f"v1:entries:{CASE}:0"),
        _b64(f"v1:entries:{CASE}:05"),
        _b64(f"v1:entries:{CASE}:{2**63}"),
        _b64(f"v1:entries:{CASE}:5:6"),
        _b64(f"v2:entries:{CASE}:5"),
        _b64(f"v1:access:{CASE}:5"),
        _b64("v1:entries:01ARZ3NDEKTSV4RRFFQ69G5FAW:5"),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    ],
)
def test_anything_but_a_cursor_given_for_this_list_is_422(token: str) -> None:
    with pytest.raises(Problem) as refused:
        decode_cursor(token, "entries", CASE)
    assert refused.value.status == 422
    assert refused.value.code == "invalid_cursor"


def test_a_cursor_spelled_with_other_unused_bits_is_refused() -> None:
    cursor = encode_cursor("entries", CASE, 77)  # 40 bytes: four unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twins = [cursor[:-1] + c for c in alphabet if c != cursor[-1]]
    decodable = [
        t
        for t in twins
        if base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
        == (base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    ]
    assert decodable  # base64 leaves low bits unused: other spellings of the same bytes
    for twin in decodable:
        with pytest.raises(Problem):
            decode_cursor(twin, "entries", CASE)


@pytest.mark.parametrize("key", [CASE, "n-0123456789abcdef", "k-1"])
def test_a_key_cursor_gives_back_its_key_and_shows_none_of_it(key: str) -> None:
    cursor = encode_key_cursor("cases", "ann-kristin-allum", key)
    assert decode_key_cursor(cursor, "cases", "ann-kristin-allum") == key
    assert key not in cursor and "ann-kristin-allum" not in cursor


@pytest.mark.parametrize(
    "token",
    [
        "",
        CASE,  # the bare key a list used to give
        _b64(f"v1:cases:me:{CASE}") + "=",
        _b64(f"v1:cases:me:{CASE}:x"),
        _b64(f"v1:cases:me:{CASE}/"),
        _b64(f"v2:cases:me:{CASE}"),
        _b64(f"v1:notifications:me:{CASE}"),
        _b64(f"v1:cases:someone-else:{CASE}"),
    ],
)
def test_anything_but_a_key_cursor_given_for_this_list_and_scope_is_422(token: str) -> None:
    with pytest.raises(Problem) as refused:
        decode_key_cursor(token, "cases", "me")
    assert refused.value.status == 422
    assert refused.value.code == "invalid_cursor"


def test_a_key_cursor_spelled_with_other_unused_bits_is_refused() -> None:
    cursor = encode_key_cursor("cases", "me", CASE)  # 37 bytes: two unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    decodable = [
        t
        for t in (cursor[:-1] + c for c in alphabet if c != cursor[-1])
        if base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)) == raw
    ]
    assert decodable
    for twin in decodable:
        with pytest.raises(Problem):
            decode_key_cursor(twin, "cases", "me")
