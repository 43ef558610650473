"""The hash chain of one case's log (DESIGN.md "Tamper evidence").

Each log event carries ``prevhash`` and ``hash`` in its envelope:
``hash = SHA-256(prevhash ‖ canonical(event without "hash"))`` over the encrypted form, with
64 zeros as the first ``prevhash``. The chain is extended under optimistic concurrency on the
case's subject, so two writers can never fork it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stafett_log.fastjson import dumps_parsed, parse_canonical
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


def _standard(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None


def verify_chain(
    links: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    encode: Callable[[Any], bytes] = _standard,
) -> ChainReport:
    """Check ``(stream seq, event dict)`` pairs of one case in order; name the first break.
    ``encode`` may be :func:`~stafett_log.fastjson.dumps_parsed` when every event was read
    by :func:`~stafett_log.fastjson.parse_canonical` (see :func:`verify_stored`)."""
    head = GENESIS
    count = 0
    sha256 = hashlib.sha256
    for seq, event in links:
        if event.get("prevhash") != head:
            return ChainReport(False, count, head, seq, "prevhash does not match the previous hash")
        body = dict(event)
        body.pop("hash", None)
        link = sha256(bytes.fromhex(head) + encode(body)).hexdigest()
        if event.get("hash") != link:
            return ChainReport(False, count, head, seq, "hash does not match the event")
        head = str(event["hash"])
        count += 1
    return ChainReport(True, count, head)


def verify_stored(messages: Iterable[tuple[int, bytes]]) -> ChainReport:
    """Check one case's stored messages, ``(stream seq, bytes)`` in order: the chain over
    the bytes as they are stored, not over a re-serialisation of a model of them.

    Messages in canonical form are read and re-serialised with orjson when it is installed
    (:mod:`stafett_log.fastjson`: the same bytes, several times faster); if any message is
    not, all are handled by the standard library. A message that is not JSON raises
    ``ValueError``."""
    stored = list(messages)
    read = [parse_canonical(data) for _seq, data in stored]
    parsed = [value for _fast, value in read]
    encode = dumps_parsed
    if not all(fast for fast, _value in read):
        parsed = [json.loads(data) for _seq, data in stored]
        encode = _standard
    links: list[tuple[int, Mapping[str, Any]]] = []
    for (seq, _data), value in zip(stored, parsed, strict=True):
        # A single structured event is read as a batch of one, as decode_commit does.
        events: list[Any] = value if isinstance(value, list) else [value]
        if not events or not all(isinstance(event, dict) for event in events):
            before = verify_chain(links, encode=encode)
            if not before.ok:
                return before
            return ChainReport(
                False, before.entries, before.head_hash, seq, "the message is not a batch of events"
            )
        links.extend((seq, event) for event in events)
    return verify_chain(links, encode=encode)
