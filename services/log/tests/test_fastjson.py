"""orjson is used for verifying only where its answer is the standard library's.

The reference is ``json`` itself: ``json.loads`` for reading, and ``json.dumps`` with sorted
keys, no spaces and UTF-8 text for the canonical form. Values are drawn at random, with the
cases where the two libraries differ mixed in: floats, integers beyond 64 bits, lone
surrogates, control characters and keys outside the Basic Multilingual Plane.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stafett_log import fastjson
from stafett_log.fastjson import dumps_parsed, loads_plain, parse_canonical

pytestmark = pytest.mark.skipif(fastjson.orjson is None, reason="orjson is not installed")


def reference(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


TEXT = st.text(st.characters(exclude_categories=["Cs"]))
"""Text that UTF-8 can encode (a canonical form exists)."""

CANONICAL: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)
"""Values with a canonical form: no floats; integers orjson writes."""

ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1e-7, -0.0, 100.0, 2.5e300])
    | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)
"""Any value the standard library writes, floats and big integers included."""


@given(CANONICAL)
@settings(max_examples=500)
@example({"a": "\x00\x1f\x7f\u2028\U0001f600", "\U0001f600": 1, "\uffff": 2, "é": [None]})
def test_dumps_of_a_canonical_value_is_the_standard_librarys(value: Any) -> None:
    assert dumps_parsed(value) == reference(value)


@given(CANONICAL)
@settings(max_examples=300)
def test_a_canonical_document_is_read_fast_and_to_the_same_value(value: Any) -> None:
    data = reference(value)
    fast, parsed = parse_canonical(data)
    assert fast
    assert parsed == json.loads(data)
    assert dumps_parsed(parsed) == data


@given(ANY_JSON, st.booleans())
@settings(max_examples=500)
@example(2**64, False)
@example(-(2**63) - 1, False)
@example({"n": 1e16}, False)
@example([1e-7, "x"], False)
def test_any_document_is_read_fast_only_to_the_standard_librarys_value(
    value: Any, spaced: bool
) -> None:
    data = (
        json.dumps(value, ensure_ascii=False, sort_keys=True).encode()
        if spaced
        else reference(value)
    )
    fast, parsed = parse_canonical(data)
    if fast:
        assert parsed == json.loads(data)
        assert dumps_parsed(parsed) == data


@given(ANY_JSON)
@settings(max_examples=500)
@example({"n": 1e-7})
@example([5e-324, 1e16, 0.00001])
def test_a_document_orjson_wrote_is_read_fast_only_where_the_bytes_agree(value: Any) -> None:
    try:
        data = fastjson.orjson.dumps(value, option=fastjson.orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: orjson writes no such document
        return
    fast, parsed = parse_canonical(data)
    if fast:
        standard = json.loads(data)
        assert parsed == standard
        assert dumps_parsed(parsed) == reference(standard)


@given(CANONICAL, st.data())
@settings(max_examples=300)
def test_a_changed_byte_is_never_read_otherwise_than_by_the_standard_library(
    value: Any, data: st.DataObject
) -> None:
    document = bytearray(reference({"v": value, "n": 12345, "t": "2025-03-01T10:00:00.5Z"}))
    position = data.draw(st.integers(0, len(document) - 1))
    document[position] = data.draw(st.integers(0, 255))
    changed = bytes(document)
    fast, parsed = parse_canonical(changed)
    if not fast:
        return
    assert parsed == json.loads(changed)
    assert dumps_parsed(parsed) == changed


def _big_integers(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_big_integers(v) for v in value)
    if isinstance(value, dict):
        return any(_big_integers(v) for v in value.values())
    return False


@given(ANY_JSON, st.booleans(), st.data())
@settings(max_examples=500)
@example(2**64, False, None)
def test_a_plain_reading_is_the_standard_librarys_but_for_big_integers(
    value: Any, spaced: bool, data: st.DataObject | None
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    document = bytearray(
        json.dumps({"v": value}, ensure_ascii=False, separators=separators).encode()
    )
    if data is not None and data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(document) - 1))
        document[position] = data.draw(st.integers(0, 255))
    ok, read = loads_plain(bytes(document))
    if not ok:
        return
    # What orjson reads, the standard library reads too (it never accepts more).
    expected = json.loads(bytes(document))
    if not _big_integers(expected):
        assert read == expected


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1e400}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":18446744073709551616}',
        b'"\\ud800"',
        b'{"a": 1}',
        b'{"b":1,"a":2}',
        b'{"a":1,"a":2}',
        b'{"a":1.5}',
        b"\xef\xbb\xbf[]",
        b"[1,]",
    ],
)
def test_documents_where_the_libraries_may_differ_go_the_standard_way(data: bytes) -> None:
    assert parse_canonical(data) == (False, None)


def test_without_orjson_nothing_is_read_fast_and_dumps_is_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastjson, "orjson", None)
    assert parse_canonical(b'{"a":1}') == (False, None)
    assert loads_plain(b'{"a":1}') == (False, None)
    assert dumps_parsed({"b": [1, "é"], "a": None}) == b'{"a":null,"b":[1,"\xc3\xa9"]}'
