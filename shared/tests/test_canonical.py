"""Canonical JSON: the one byte form Stafett hashes and signs."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stafett_shared.canonical import CanonicalJSONError, canonical_json


def _nested_lists(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value


def _nested_objects(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_keys_are_sorted_whatever_the_insertion_order() -> None:
    first = {"b": 1, "a": 2, "c": {"z": 1, "y": 2}}
    second = OrderedDict([("c", {"y": 2, "z": 1}), ("a", 2), ("b", 1)])

    assert canonical_json(first) == b'{"a":2,"b":1,"c":{"y":2,"z":1}}'
    assert canonical_json(second) == canonical_json(first)


def test_keys_are_ordered_by_code_point() -> None:
    assert canonical_json({"b": 1, "B": 2, "å": 3, "a": 4}) == '{"B":2,"a":4,"b":1,"å":3}'.encode()


def test_output_has_no_insignificant_white_space() -> None:
    assert canonical_json({"a": [1, 2, {"b": None}], "c": True}) == (
        b'{"a":[1,2,{"b":null}],"c":true}'
    )


def test_norwegian_letters_are_written_as_utf8_not_escaped() -> None:
    encoded = canonical_json({"navn": "Æsa Øvre-Ålien"})

    assert encoded == '{"navn":"Æsa Øvre-Ålien"}'.encode()
    assert "æøå".encode() in canonical_json("æøå")
    assert b"\\u" not in encoded


def test_tuples_are_written_as_arrays() -> None:
    assert canonical_json((1, "to", None)) == b'[1,"to",null]'


def test_large_integers_keep_every_digit() -> None:
    assert canonical_json(2**80) == str(2**80).encode()


@pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), float("inf"), {"a": [1, 2.0]}])
def test_floats_are_refused_anywhere_in_the_value(value: Any) -> None:
    with pytest.raises(CanonicalJSONError, match="float"):
        canonical_json(value)


@pytest.mark.parametrize("key", [1, None, True, ("a",)])
def test_object_keys_that_are_not_strings_are_refused(key: Any) -> None:
    with pytest.raises(CanonicalJSONError, match="keys must be strings"):
        canonical_json({"nested": {key: "value"}})


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", bytearray(b"x"), object()])
def test_values_that_are_not_json_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJSONError, match="not a JSON value"):
        canonical_json({"a": value})


def test_text_with_a_lone_surrogate_is_refused_as_not_canonical() -> None:
    parsed = json.loads('{"a":"\\ud800"}')

    with pytest.raises(CanonicalJSONError, match="surrogate"):
        canonical_json(parsed)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert canonical_json(_nested_lists(64)) == b"[" * 64 + b"null" + b"]" * 64
    assert canonical_json(_nested_objects(64)).count(b"{") == 64


@pytest.mark.parametrize("build", [_nested_lists, _nested_objects])
def test_nesting_beyond_the_limit_is_refused(build: Any) -> None:
    with pytest.raises(CanonicalJSONError, match="nested too deeply"):
        canonical_json(build(65))


def test_a_very_deep_value_is_refused_without_a_recursion_error() -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json(_nested_lists(10_000))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(_json_values)
def test_canonical_form_survives_a_parse_and_reencode(value: Any) -> None:
    encoded = canonical_json(value)

    assert canonical_json(json.loads(encoded)) == encoded
    assert json.loads(encoded) == value


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=8))
def test_canonical_form_does_not_depend_on_key_insertion_order(value: dict[str, int]) -> None:
    reversed_order = dict(reversed(list(value.items())))

    assert canonical_json(reversed_order) == canonical_json(value)
