"""Canonical JSON: the one byte form of a value that Stafett hashes and signs.

Keys are sorted by code point, there is no insignificant white space, text is UTF-8 (not
escaped), and floats are refused: their text form differs between implementations, so a
hash over a float could not be recomputed by an auditor's tool. Numbers are integers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CanonicalJSONError", "canonical_json"]

_MAX_DEPTH = 64


class CanonicalJSONError(ValueError):
    """The value has no canonical JSON form (a float, a non-string key, too deep)."""


def _check(value: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CanonicalJSONError("value is nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        raise CanonicalJSONError("floats have no canonical form; use integers or strings")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError("object keys must be strings")
            _check(item, depth + 1)
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for item in value:
            _check(item, depth + 1)
        return
    raise CanonicalJSONError(f"{type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """Return the canonical UTF-8 JSON bytes of ``value``."""
    _check(value, 0)
    text = json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from json.loads('"\\ud800"')
        raise CanonicalJSONError("text holds a lone surrogate, which UTF-8 cannot encode") from exc
