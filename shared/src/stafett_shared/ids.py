"""Identifiers: ULIDs for everything Stafett creates, and the checks on ids it receives."""

from __future__ import annotations

import re
import secrets

from ulid import ULID

__all__ = [
    "AGGREGATE_ID_PATTERN",
    "CLIENT_ID_PATTERN",
    "CLIENT_ID_PREFIX",
    "LOGIN_ID_PREFIX",
    "ORG_NUMBER_PATTERN",
    "PERSON_ID_PATTERN",
    "is_org_number",
    "is_ulid",
    "new_id",
    "new_untimed_id",
]

# Aggregate ids go into NATS subjects: no dots, no wildcards, no white space.
AGGREGATE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Staff person ids come from the region document; guardians and children get ULIDs.
PERSON_ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
LOGIN_ID_PREFIX = "login-"
"""The prefix of the id an administrator the directory does not bind gets (derived from
issuer and subject, ``stafett_shared.auth.login_id``): no staff id in the directory has it."""
CLIENT_ID_PREFIX = "client-"
"""The prefix of every agency client's id in the directory (``clients`` in the region
document): no staff id has it, so a client's id is never a person's."""
CLIENT_ID_PATTERN = re.compile(r"^client-[a-z0-9-]{1,57}$")
ORG_NUMBER_PATTERN = re.compile(r"^[0-9]{9}$")
"""A Norwegian organisation number (Enhetsregisteret): nine digits, the last a mod-11 check."""
_ORG_NUMBER_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_id() -> str:
    """A new ULID as its 26-character text."""
    return str(ULID())


def new_untimed_id() -> str:
    """An id in the ULID format whose 128 bits are all random: no time of creation can be
    read from it. For the people a caller may find by national id (children, guardians), so
    that an answer naming them does not tell whether they were registered before
    (docs/decisions/0029-no-oracles-on-national-ids.md)."""
    return str(ULID.from_bytes(secrets.token_bytes(16)))


def is_ulid(value: str) -> bool:
    return bool(_ULID.fullmatch(value))


def is_org_number(value: str) -> bool:
    """Whether ``value`` is nine ASCII digits whose last is the mod-11 check digit of an
    organisation number (Brønnøysundregistrene)."""
    if not ORG_NUMBER_PATTERN.fullmatch(value):
        return False
    remainder = sum(w * int(d) for w, d in zip(_ORG_NUMBER_WEIGHTS, value, strict=False)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return check != 10 and check == int(value[8])
