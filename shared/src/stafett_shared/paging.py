"""Opaque list cursors (CONTRACT.md: lists are paged with ``?limit=`` and an opaque
``?cursor=``).

A cursor is base64url, without padding, of ``v1:<list>:<scope>:<position>``: a format
version, the list it belongs to, what the list is of (a case id) and the position of the
last item served. Clients hand it back as they got it; Stafett may change what is inside
(a new version) without telling them. A cursor is checked strictly: one that does not
decode, is not in its one canonical spelling, names another list or scope, or holds a
position that is not a positive 63-bit integer is 422 ``invalid_cursor`` (never a 500,
never a silent first page).

A list ordered by a key rather than a sequence (a ULID, a notice id) has a key cursor,
``v1:<list>:<scope>:<key>``, checked as strictly (:func:`encode_key_cursor`)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from fastapi import Query

from stafett_shared.problems import Problem

__all__ = [
    "CURSOR_PATTERN",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Cursor",
    "Limit",
    "decode_cursor",
    "decode_key_cursor",
    "encode_cursor",
    "encode_key_cursor",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"
_VERSION = "v1"
_POSITION_MAX = 2**63 - 1  # a stream sequence as the databases keep it (signed 64-bit)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SCOPE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_TEXT = re.compile(
    rf"^{_VERSION}:(?P<name>[a-z][a-z0-9_]{{0,31}}):(?P<scope>[0-9A-Za-z_-]{{1,64}})"
    r":(?P<position>[1-9][0-9]{0,18})$"
)
_KEY = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_KEY_TEXT = re.compile(
    rf"^{_VERSION}:(?P<name>[a-z][a-z0-9_]{{0,31}}):(?P<scope>[0-9A-Za-z_-]{{1,64}})"
    r":(?P<key>[0-9A-Za-z_-]{1,64})$"
)

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Items per page: {DEFAULT_LIMIT} unless given, at most {MAX_LIMIT}.",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the page before, as it was given (opaque). A cursor "
        "that is not one Stafett gave for this list is 422 `invalid_cursor`.",
    ),
]


def encode_cursor(name: str, scope: str, position: int) -> str:
    """The cursor after ``position`` in the list ``name`` of ``scope``."""
    if not _NAME.fullmatch(name) or not _SCOPE.fullmatch(scope):
        raise ValueError("a cursor's list name or scope is not in its format")
    if not 1 <= position <= _POSITION_MAX:
        raise ValueError("a cursor's position must be a positive 63-bit integer")
    raw = f"{_VERSION}:{name}:{scope}:{position}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, name: str, scope: str) -> int:
    """The position in a cursor given for the list ``name`` of ``scope``; else 422."""
    position = _position(token, name, scope)
    if position is None:
        raise _invalid()
    return position


def encode_key_cursor(name: str, scope: str, key: str) -> str:
    """The cursor after the item ``key`` in the list ``name`` of ``scope``."""
    if not _NAME.fullmatch(name) or not _SCOPE.fullmatch(scope) or not _KEY.fullmatch(key):
        raise ValueError("a cursor's list name, scope or key is not in its format")
    raw = f"{_VERSION}:{name}:{scope}:{key}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_key_cursor(token: str, name: str, scope: str) -> str:
    """The key in a cursor given for the list ``name`` of ``scope``; else 422."""
    text = _text(token)
    found = _KEY_TEXT.fullmatch(text) if text is not None else None
    if (
        found is None
        or found["name"] != name
        or found["scope"] != scope
        # One spelling a cursor (see _position).
        or encode_key_cursor(name, scope, found["key"]) != token
    ):
        raise _invalid()
    return found["key"]


def _invalid() -> Problem:
    return Problem(
        422,
        "invalid_cursor",
        "Markøren er ugyldig. Bruk next_cursor fra forrige side slik den ble gitt.",
        extra={
            "errors": [
                {
                    "loc": ["query", "cursor"],
                    "type": "invalid_cursor",
                    "msg": "Ikke en markør for denne listen.",
                }
            ]
        },
    )


def _text(token: str) -> str | None:
    if not re.fullmatch(CURSOR_PATTERN, token):
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _position(token: str, name: str, scope: str) -> int | None:
    text = _text(token)
    found = _TEXT.fullmatch(text) if text is not None else None
    if found is None or found["name"] != name or found["scope"] != scope:
        return None
    position = int(found["position"])
    # One spelling a cursor: base64 that differs only in its unused low bits decodes to the
    # same bytes, and is refused rather than taken as the same cursor.
    if position > _POSITION_MAX or encode_cursor(name, scope, position) != token:
        return None
    return position
