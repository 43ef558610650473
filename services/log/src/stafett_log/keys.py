"""The checkpoint signing keys over time: announced in ``CHECKPOINTS``, listed for auditors.

When the log service starts with a signing key, it publishes the key's verifier key once on
``stafett.checkpoints.key.<key id>`` in the append-only ``CHECKPOINTS`` stream, beside the
checkpoints it signs. A changed key (docs/operators.md, "Key rotation") is announced the
same way, so the stream itself says which public key signed which checkpoints:
:func:`signing_periods` reads it and lists every key with the first and last checkpoint it
signed (tree size and time). An old checkpoint goes on verifying with the old key, since a
signed note never changes.

``python -m stafett_log.keys [--json]`` prints that list (``stafett keys checkpoint-keys``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from stafett_log.checkpoint import CheckpointError, parse_signed_note, parse_vkey
from stafett_shared.eventstore import EventStore

__all__ = ["announce", "announced_vkey", "signing_periods"]

STREAM = "CHECKPOINTS"
KEY_SUBJECT = "stafett.checkpoints.key"
TREE_SUBJECT = "stafett.checkpoints.tree"


async def announced_vkey(js: JetStreamContext, key_id: str) -> str | None:
    """The verifier key announced for ``key_id``, if any."""
    try:
        msg = await js.get_last_msg(STREAM, f"{KEY_SUBJECT}.{key_id}", direct=True)
    except nats.js.errors.NotFoundError:
        return None
    try:
        vkey = json.loads(msg.data or b"")["vkey"]
        _name, _public = parse_vkey(vkey)
    except (ValueError, KeyError, TypeError, CheckpointError):
        return None
    return str(vkey)


async def announce(js: JetStreamContext, key_id: str, vkey: str) -> None:
    """Publish the signing key's verifier key once (a restart, or a second instance with the
    same key, publishes nothing new)."""
    if await announced_vkey(js, key_id) == vkey:
        return
    body = {"key_id": key_id, "vkey": vkey, "announced_at": datetime.now(UTC).isoformat()}
    await js.publish(
        f"{KEY_SUBJECT}.{key_id}",
        json.dumps(body, sort_keys=True).encode(),
        headers={"Nats-Msg-Id": f"checkpoint-key-{key_id}"},
    )


async def signing_periods(nc: NATS) -> list[dict[str, Any]]:
    """Every key that signed checkpoints (or was announced), in the order it began: its
    id, verifier key, and the first and last checkpoint it signed (tree size and time)."""
    store = EventStore(nc, stream=STREAM, subject_prefix="stafett.checkpoints")
    keys: dict[str, dict[str, Any]] = {}

    def key(key_id: str) -> dict[str, Any]:
        return keys.setdefault(
            key_id,
            {
                "key_id": key_id,
                "key_name": None,
                "vkey": None,
                "announced_at": None,
                "first_tree_size": None,
                "last_tree_size": None,
                "first_time": None,
                "last_time": None,
                "checkpoints": 0,
            },
        )

    seq = 1
    while commits := await store.read(seq, limit=1000, decode=False):
        for commit in commits:
            when = commit.time.isoformat() if commit.time else None
            if commit.subject.startswith(f"{KEY_SUBJECT}."):
                try:
                    body = json.loads(commit.data)
                    name, _public = parse_vkey(body["vkey"])
                except (ValueError, KeyError, TypeError, CheckpointError):
                    continue
                entry = key(commit.subject.rsplit(".", 1)[-1])
                entry.update(vkey=body["vkey"], key_name=name)
                entry["announced_at"] = entry["announced_at"] or when
            elif commit.subject == TREE_SUBJECT:
                try:
                    checkpoint, signatures = parse_signed_note(commit.data.decode())
                except (CheckpointError, UnicodeDecodeError):
                    continue
                for signature in signatures:
                    if signature.key_name != checkpoint.origin:
                        continue  # a witness's cosignature
                    entry = key(signature.key_id)
                    entry["key_name"] = signature.key_name
                    if entry["first_tree_size"] is None:
                        entry.update(first_tree_size=checkpoint.tree_size, first_time=when)
                    entry.update(last_tree_size=checkpoint.tree_size, last_time=when)
                    entry["checkpoints"] += 1
        seq = commits[-1].seq + 1
    return sorted(
        keys.values(), key=lambda k: (k["first_time"] or k["announced_at"] or "", k["key_id"])
    )


def main(argv: Sequence[str] | None = None) -> int:
    from stafett_shared.logging import configure_logging
    from stafett_shared.service import connect_nats
    from stafett_shared.settings import CommonSettings

    configure_logging("operator", "WARNING", json=False)  # on stderr: stdout is the answer
    parser = argparse.ArgumentParser(
        prog="python -m stafett_log.keys",
        description="Sjekkpunktnøklene og perioden hver av dem signerte i.",
    )
    parser.add_argument("--json", action="store_true", help="som JSON")
    args = parser.parse_args(argv)

    async def run() -> list[dict[str, Any]]:
        nc = await connect_nats(CommonSettings(), "operator", wait_s=5.0)
        try:
            return await signing_periods(nc)
        finally:
            await nc.close()

    periods = asyncio.run(run())
    if args.json:
        sys.stdout.write(json.dumps(periods, indent=2, ensure_ascii=False) + "\n")
        return 0
    for p in periods:
        sys.stdout.write(
            f"{p['key_id']} {p['vkey'] or '(offentlig nøkkel ikke kunngjort)'}\n"
            f"  treets størrelse {p['first_tree_size']}–{p['last_tree_size']}, "
            f"{p['first_time']} – {p['last_time']}, {p['checkpoints']} sjekkpunkter\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
