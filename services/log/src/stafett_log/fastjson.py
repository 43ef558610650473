"""Canonical JSON for verifying, fast where it is certain to be the same.

Verifying a hash chain parses every stored message and re-serialises every event in
canonical form (keys sorted, no white space, UTF-8 text). The standard library takes about
ten microseconds an event for that; orjson, when it is installed, a fraction of one. The two
agree on plain JSON without floats; they differ on floats (``1e+16`` against ``1e16``,
``Infinity`` against ``null``), orjson reads integers beyond 64 bits as floats and refuses
lone surrogates. So orjson is used only where its answer is known to be the standard
library's:

* :func:`parse_canonical` parses with orjson only a message that is *already* canonical and
  holds no float: bytes that are orjson's own output for the value it read. Such bytes are
  plain JSON, which ``json.loads`` reads to the same value. For anything else it says so,
  and the caller parses with the standard library as before.
* :func:`dumps_parsed` serialises such a value (or a part of it, like an event without its
  ``hash``): no floats, no big integers, only text keys, so orjson's bytes are the standard
  library's.

Without orjson both fall back to the standard library: the verifier runs on any Python.
``services/log/tests/test_fastjson.py`` states the equalities as properties over random
values and documents.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any


def _accelerator() -> Any:
    try:
        return importlib.import_module("orjson")
    except ImportError:  # pragma: no cover - the tests hide it by setting ``orjson`` to None
        return None


orjson: Any = _accelerator()
"""orjson, when installed (an accelerator only; see above), else None."""

__all__ = ["ACCELERATED", "dumps_parsed", "dumps_standard", "loads_plain", "parse_canonical"]

ACCELERATED = orjson is not None
"""Whether orjson is there to make verifying faster."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))

# A number with a fraction or an exponent, as a value in compact JSON: after ':', ',' or '['
# and before ',', '}' or ']'. Every float orjson writes in compact form matches (it writes
# no float without '.' or 'e'; infinities and NaN it cannot read); text inside a string may
# match too, which only costs the slower path. One pattern per separator: a literal first
# byte lets the regex engine skip ahead, a set of three does not (three times faster).
_FLOAT = rb"-?\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)"
_FLOAT_TOKENS = tuple(
    re.compile(re.escape(separator) + _FLOAT + rb"(?=[,}\]])") for separator in (b":", b",", b"[")
)
_FLOAT_DOCUMENT = re.compile(_FLOAT)  # a document that is one number


def _has_float_token(data: bytes) -> bool:
    return _FLOAT_DOCUMENT.fullmatch(data) is not None or any(
        pattern.search(data) is not None for pattern in _FLOAT_TOKENS
    )


def parse_canonical(data: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when ``data`` is canonical JSON without floats (``value`` is then
    ``json.loads(data)``); ``(False, None)`` when that is not certain, for the caller's own
    parsing."""
    if orjson is None:
        return False, None
    try:
        value = orjson.loads(data)
        again = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        return False, None
    if again != data or _has_float_token(data):
        return False, None
    return True, value


def loads_plain(data: bytes | str) -> tuple[bool, Any]:
    """``(True, value)`` when orjson reads ``data``, else ``(False, None)``. The value equals
    ``json.loads(data)`` but for integers beyond 64 bits, which orjson reads as floats (and
    for what orjson refuses, which the caller reads with ``json.loads``): use it only where a
    float is refused anyway, and only for reading, never to re-serialise."""
    if orjson is None:
        return False, None
    try:
        return True, orjson.loads(data)
    except orjson.JSONDecodeError:
        return False, None


def dumps_parsed(value: Any) -> bytes:
    """The canonical bytes of a value :func:`parse_canonical` returned, or of a part of it:
    ``json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))``."""
    if orjson is None:
        return dumps_standard(value)
    out: bytes = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return out


def dumps_standard(value: Any) -> bytes:
    """The canonical bytes of any JSON value by the standard library alone: UTF-8 of
    ``json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))``."""
    return _ENCODER.encode(value).encode()
