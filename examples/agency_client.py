#!/usr/bin/env python3
"""An agency's client for Stafett: follow the event feed and verify what it says.

Copy this file as the start of your own integration. It needs Python 3.11+, ``httpx`` and
``cryptography``, and nothing of Stafett's own code.

What it does, in order (docs/integrators.md, "Worked example"):

1. **A token.** In production your system gets one from Maskinporten with the JWT grant
   (RFC 7523): it signs a short JWT with its business certificate's key
   (``iss`` your client id, ``aud`` Maskinporten's audience, ``scope``
   ``"stafett:case.read stafett:log.read"``, ``iat``/``exp`` a minute or two apart, a fresh
   ``jti``) and POSTs it to Maskinporten's token endpoint as
   ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``; the answer's
   ``access_token`` is the bearer token. This script does not do that against a network:
   give it a token (``--token`` or ``STAFETT_TOKEN``), or in the embedded setup let it run
   ``stafett token --client <id>``.
2. **The feed.** ``GET /api/v1/feed?after=<cursor>&wait=<s>`` on the consent service,
   long-polled. The cursor (``next``) is stored in a file after every batch, so a restart
   goes on where it stopped; delivery is at least once, so events are de-duplicated on
   their ``id`` (the ids seen are kept in the same file).
3. **Inclusion.** For an ``entry_appended`` event it reads the entry's position in the event
   stream (``seq``) from the log (a read like any other: decided and recorded), takes the
   latest signed checkpoint, checks its Ed25519 signature with the log's verifier key, asks
   for the RFC 9162 inclusion proof of that position in the checkpoint's tree, and
   recomputes the root from the proof with its own few lines of hashing.

   What this proves: the stream message at that position is in the tree the log signed, so
   the log cannot later drop or rewrite it without the signed checkpoints showing it. The
   leaf is the hash of the stored (encrypted) message, which a client does not hold; an
   auditor checks the messages themselves (docs/auditors.md).

Exit code: 0 when every verification held, 1 when one failed, 2 on a usage or HTTP error.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ENTRY_APPENDED = "no.stafett.feed.entry_appended.v1"
SIGNATURE_DASH = "\u2014 "  # a signed note's signature lines start with an em dash


class VerificationFailed(Exception):
    """A checkpoint's signature or an inclusion proof did not hold."""


# --- 1. The token -------------------------------------------------------------------------


def get_token(args: argparse.Namespace) -> str:
    """The bearer token: given, or minted by the embedded setup's ``stafett token``."""
    token = args.token or os.environ.get("STAFETT_TOKEN")
    if token:
        return str(token).strip()
    command = [args.stafett, "token", "--client", args.client, "--consent-url", args.consent_url]
    minted = subprocess.run(command, capture_output=True, text=True, check=False)
    if minted.returncode != 0:
        print(f"stafett token failed: {minted.stderr.strip() or minted.stdout}", file=sys.stderr)
        raise SystemExit(2)
    return minted.stdout.strip()


# --- 2. The feed, with a cursor that survives a restart -----------------------------------


@dataclass
class CursorFile:
    """The feed's ``next`` and the event ids already handled, kept in one JSON file."""

    path: Path
    after: str | None = None
    seen: list[str] = field(default_factory=list)

    def load(self) -> None:
        if self.path.exists():
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            self.after = stored.get("after")
            self.seen = [str(i) for i in stored.get("seen", [])]

    def save(self) -> None:
        # The last ids are enough: a repeat comes from the batch after the stored cursor.
        body = {"after": self.after, "seen": self.seen[-1000:]}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        temporary.replace(self.path)  # atomic: a crash leaves the old file or the new one


def follow_feed(
    http: httpx.Client, args: argparse.Namespace, cursor: CursorFile
) -> list[dict[str, Any]]:
    """Events not seen before, until ``--max-events`` or ``--timeout`` seconds."""
    deadline = time.monotonic() + args.timeout
    handled: list[dict[str, Any]] = []
    while len(handled) < args.max_events:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        params: dict[str, Any] = {"wait": min(25, max(0, int(remaining))), "limit": 100}
        if cursor.after:
            params["after"] = cursor.after
        answer = http.get(
            f"{args.consent_url}/api/v1/feed", params=params, timeout=params["wait"] + 10
        )
        if answer.status_code == 503:  # the service is catching up
            time.sleep(min(float(answer.headers.get("Retry-After", "1")), max(remaining, 0)))
            continue
        answer.raise_for_status()
        batch = answer.json()
        taken_all = True
        for event in batch["events"]:
            if event["id"] in cursor.seen:
                continue  # at least once: the same id is the same event
            if len(handled) == args.max_events:
                taken_all = False  # the rest of the batch comes again from this cursor
                break
            handled.append(event)
            cursor.seen.append(event["id"])
            print(f"event {event['id']} {event['type']} case {event['subject']}")
        if taken_all:
            cursor.after = batch["next"]
        cursor.save()
    return handled


# --- 3. A signed checkpoint and an inclusion proof ----------------------------------------


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """A note verifier key ``<name>+<hex key hash>+<base64(0x01 ‖ Ed25519 key)>``."""
    name, key_hash_hex, key_b64 = vkey.strip().split("+", 2)
    material = base64.b64decode(key_b64, validate=True)
    if len(material) != 33 or material[0] != 0x01:
        raise VerificationFailed("the verifier key is not an Ed25519 key")
    key_hash = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    if key_hash.hex() != key_hash_hex:
        raise VerificationFailed("the verifier key's hash does not match its name and key")
    return name, key_hash, material[1:]


def verify_checkpoint(note: str, vkey: str) -> tuple[int, bytes]:
    """The tree size and root hash of a signed checkpoint (C2SP signed note) whose signature
    by ``vkey`` holds; :class:`VerificationFailed` otherwise."""
    name, key_hash, public_key = parse_vkey(vkey)
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationFailed("the checkpoint has no signature lines")
    body, signature_lines = note[: split + 1], note[split + 2 :].splitlines()
    for line in signature_lines:
        if not line.startswith(f"{SIGNATURE_DASH}{name} "):
            continue
        raw = base64.b64decode(line.rsplit(" ", 1)[-1], validate=True)
        if raw[:4] != key_hash:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], body.encode())
        except InvalidSignature:
            raise VerificationFailed("the checkpoint's signature does not hold") from None
        origin, size, root = body.splitlines()[:3]
        if origin != name:
            raise VerificationFailed("the checkpoint is of another log")
        return int(size), base64.b64decode(root, validate=True)
    raise VerificationFailed("the checkpoint is not signed by the verifier key")


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, tree_size: int, path: list[bytes]
) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root the audit path leads to from the leaf, or None."""
    if not 0 <= index < tree_size:
        return None
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # right-shift both until fn's lowest bit is set
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def entry_seq(http: httpx.Client, log_url: str, case_id: str, entry_id: str) -> int:
    """The stream position of an entry, from the log's entries (a recorded read)."""
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = http.get(f"{log_url}/api/v1/logs/{case_id}/entries", params=params)
        page.raise_for_status()
        body = page.json()
        for item in body["items"]:
            if item["id"] == entry_id:
                return int(item["seq"])
        if not body.get("next_cursor"):
            raise VerificationFailed(f"the log does not give entry {entry_id}")
        params["cursor"] = body["next_cursor"]


def verify_inclusion(
    http: httpx.Client, args: argparse.Namespace, event: dict[str, Any], deadline: float
) -> None:
    """Check that an ``entry_appended`` event's entry is in the log's signed tree."""
    seq = entry_seq(http, args.log_url, event["subject"], event["data"]["entry_id"])
    while True:  # checkpoints are made at an interval: wait for one that holds the entry
        answer = http.get(f"{args.log_url}/api/v1/checkpoints/latest")
        if answer.status_code == 200 and answer.json()["tree_size"] >= seq:
            break
        if time.monotonic() > deadline:
            raise VerificationFailed(f"no signed checkpoint holds position {seq} yet")
        time.sleep(1)
    checkpoint = answer.json()
    vkey = args.vkey or checkpoint["vkey"]
    note = args.checkpoint_file.read_text(encoding="utf-8") if args.checkpoint_file else None
    size, root = verify_checkpoint(note or checkpoint["note"], vkey)
    proof = http.get(
        f"{args.log_url}/api/v1/proofs/inclusion", params={"seq": seq, "tree_size": size}
    )
    proof.raise_for_status()
    body = proof.json()
    path = [base64.b64decode(h) for h in body["audit_path"]]
    if args.tamper_proof and path:
        path[0] = bytes([path[0][0] ^ 0x01]) + path[0][1:]  # show that a changed byte fails
    leaf = base64.b64decode(body["leaf_hash"])
    if root_from_inclusion_proof(leaf, seq - 1, size, path) != root:
        raise VerificationFailed(f"the proof for position {seq} does not lead to the root")
    print(
        f"verified entry {event['data']['entry_id']} at position {seq} "
        f"in the checkpoint of {size} signed by {vkey.split('+')[0]}"
    )


# --- The command --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--consent-url", default="http://127.0.0.1:8103")
    parser.add_argument("--log-url", default="http://127.0.0.1:8102")
    parser.add_argument("--token", help="a bearer token (or STAFETT_TOKEN)")
    parser.add_argument("--client", default="client-nav-grenland", help="for stafett token")
    parser.add_argument("--stafett", default="stafett", help="the stafett command")
    parser.add_argument("--cursor-file", type=Path, default=Path("feed-cursor.json"))
    parser.add_argument("--max-events", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds in all")
    parser.add_argument("--vkey", help="the log's verifier key, as its operator gives it out")
    parser.add_argument("--checkpoint-file", type=Path, help="a signed note kept before")
    parser.add_argument("--tamper-proof", action="store_true", help="flip a byte (a test)")
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.timeout
    cursor = CursorFile(args.cursor_file)
    cursor.load()
    failed = 0
    try:
        headers = {"Authorization": f"Bearer {get_token(args)}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            for event in follow_feed(http, args, cursor):
                if event["type"] != ENTRY_APPENDED:
                    continue
                try:
                    verify_inclusion(http, args, event, deadline)
                except VerificationFailed as exc:
                    failed += 1
                    print(f"NOT VERIFIED entry {event['data']['entry_id']}: {exc}")
    except httpx.HTTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
