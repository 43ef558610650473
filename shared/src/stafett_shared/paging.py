"""Opaque list cursors (CONTRACT.md: lists are paged with ``?limit=`` and an opaque
``?cursor=``).

A cursor is base64url, without padding, of ``v1:<list>:<scope>:<position>``: a format
version, the list it belongs to, what the list is of (a case id) and the position of the
last item served. Clients hand it back as they got it; Stafett may change what is inside
(a new version) without telling them. A cursor is checked strictly: one that does not
decode, is not in its one canonical spelling, names another list or scope, or holds a
position that is not a positive 63-bit integer is 422 ``invalid_cursor`` (never a 500,
never a silent first page)."""

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
    "encode_cursor",
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
        raise Problem(
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
    return position


def _position(token: str, name: str, scope: str) -> int | None:
    if not re.fullmatch(CURSOR_PATTERN, token):
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    found = _TEXT.fullmatch(text)
    if found is None or found["name"] != name or found["scope"] != scope:
        return None
    position = int(found["position"])
    # One spelling a cursor: base64 that differs only in its unused low bits decodes to the
    # same bytes, and is refused rather than taken as the same cursor.
    if position > _POSITION_MAX or encode_cursor(name, scope, position) != token:
        return None
    return position
