"""Message ids for client idempotency keys.

JetStream de-duplicates on ``Nats-Msg-Id`` across the whole stream inside its duplicate
window. A client's ``Idempotency-Key`` is therefore never used as a message id as it is: two
callers who happen to pick the same key would have the second write dropped (and answered as
if stored), and a key that equals an id Stafett uses itself (``expire-<consent id>``,
``decision-…``, ``checkpoint-…``) would suppress that message. The message id is a digest of
who sent the key, on which route, for which subject, and the key::

    k1-<base64url(SHA-256("stafett msg-id v1" ‖ len‖principal ‖ len‖route ‖ len‖subject
                          ‖ len‖key)), unpadded>

where each part is UTF-8 with its length as four bytes, big-endian, in front. The ids
Stafett makes itself never start with ``k1-``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

__all__ = ["CLIENT_KEY_PREFIX", "ClientKey", "message_id"]

CLIENT_KEY_PREFIX = "k1-"
_DOMAIN = b"stafett msg-id v1"


def message_id(principal: str, route: str, subject: str, key: str) -> str:
    """The ``Nats-Msg-Id`` of a client's key: ``k1-`` and 43 characters of base64url."""
    digest = hashlib.sha256(_DOMAIN)
    for part in (principal, route, subject, key):
        raw = part.encode("utf-8")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return CLIENT_KEY_PREFIX + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A client's ``Idempotency-Key`` with what scopes it: the principal (kind and id, as the
    idempotency records key on the id) and the route (method and route template)."""

    principal: str
    route: str
    key: str

    def message_id(self, subject: str) -> str:
        """The message id of this key for a write on ``subject``."""
        return message_id(self.principal, self.route, subject, self.key)
