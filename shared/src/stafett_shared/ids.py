"""Identifiers: ULIDs for everything Stafett creates, and the checks on ids it receives."""

from __future__ import annotations

import re

from ulid import ULID

__all__ = ["AGGREGATE_ID_PATTERN", "LOGIN_ID_PREFIX", "PERSON_ID_PATTERN", "is_ulid", "new_id"]

# Aggregate ids go into NATS subjects: no dots, no wildcards, no white space.
AGGREGATE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Staff person ids come from the region document; guardians and children get ULIDs.
PERSON_ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
LOGIN_ID_PREFIX = "login-"
"""The prefix of the id an administrator the directory does not bind gets (derived from
issuer and subject, ``stafett_shared.auth.login_id``): no staff id in the directory has it."""
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_id() -> str:
    """A new ULID as its 26-character text."""
    return str(ULID())


def is_ulid(value: str) -> bool:
    return bool(_ULID.fullmatch(value))
