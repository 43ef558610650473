"""The hash chain of one case's log (DESIGN.md "Tamper evidence").

Each log event carries ``prevhash`` and ``hash`` in its envelope:
``hash = SHA-256(prevhash ‖ canonical(event without "hash"))`` over the encrypted form, with
64 zeros as the first ``prevhash``. The chain is extended under optimistic concurrency on the
case's subject, so two writers can never fork it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stafett_shared.canonical import canonical_json

GENESIS = "0" * 64


def chain_hash(prevhash: str, event: Mapping[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(bytes.fromhex(prevhash) + canonical_json(body)).hexdigest()


# The same bytes as canonical_json for values read back from a stored message (which were
# checked when written): verifying skips the check, not the form.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None


def verify_chain(links: Iterable[tuple[int, Mapping[str, Any]]]) -> ChainReport:
    """Check ``(stream seq, event dict)`` pairs of one case in order; name the first break."""
    head = GENESIS
    count = 0
    encode = _ENCODER.encode
    sha256 = hashlib.sha256
    for seq, event in links:
        if event.get("prevhash") != head:
            return ChainReport(False, count, head, seq, "prevhash does not match the previous hash")
        body = dict(event)
        body.pop("hash", None)
        link = sha256(bytes.fromhex(head) + encode(body).encode("utf-8")).hexdigest()
        if event.get("hash") != link:
            return ChainReport(False, count, head, seq, "hash does not match the event")
        head = str(event["hash"])
        count += 1
    return ChainReport(True, count, head)
