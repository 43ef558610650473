"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes.

A checkpoint commits the log to the Merkle root of the ``EVENTS`` stream at a tree size::

    stafett.example/log
    1234
    <base64 root hash>

    — stafett.example/log <base64(4-byte key hash ‖ 64-byte Ed25519 signature)>

The signature covers the note body (the text before the blank line, with its final newline).
The key hash is the first 4 bytes of SHA-256(key name ‖ "\\n" ‖ 0x01 ‖ public key). A
verifier is configured with a *verifier key* string ``<name>+<hex key hash>+<base64(0x01 ‖
public key)>``, the same text the Go ``golang.org/x/mod/sumdb/note`` package and the
transparency-dev tools read, so standard tools can check our checkpoints and witnesses can
cosign them (their signature lines are ignored here unless their key is the one asked for).

Only the standard library and ``cryptography`` are used so that an auditor can run this
anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ED25519",
    "Checkpoint",
    "CheckpointError",
    "Signature",
    "key_hash",
    "key_id",
    "parse_signed_note",
    "parse_vkey",
    "sign_checkpoint",
    "verify_checkpoint",
    "vkey",
]

ED25519 = 0x01
"""The signed-note signature type of Ed25519."""

MAX_SIGNATURES = 100
"""More signature lines than this and a note is refused (the Go note package's limit)."""

_DASH = "\u2014 "  # em dash and a space open every signature line
_HASH_SIZE = 32
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_TREE_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")


class CheckpointError(ValueError):
    """A note is malformed, or carries no valid signature by the expected key."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: its origin, the number of leaves and the root hash at that size."""

    origin: str
    tree_size: int
    root_hash: bytes
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL_RE.search(self.origin):
            raise CheckpointError("the origin must be one non-empty line")
        if self.tree_size < 0:
            raise CheckpointError("the tree size must not be negative")
        if len(self.root_hash) != _HASH_SIZE:
            raise CheckpointError(f"the root hash must have {_HASH_SIZE} bytes")
        for line in self.extra:
            if not line or "\n" in line or _CONTROL_RE.search(line):
                raise CheckpointError("extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text: origin, tree size, base64 root hash and extension lines."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.tree_size), root, *self.extra]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse a note text (ending in a newline) as a checkpoint."""
        if not text.endswith("\n"):
            raise CheckpointError("a checkpoint body ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint body has at least three lines")
        origin, size_text, root_text, *extra = lines
        if not _TREE_SIZE_RE.fullmatch(size_text):
            raise CheckpointError("the tree size is not a decimal number without leading zeros")
        if any(not line for line in extra):
            raise CheckpointError("a checkpoint body has no empty lines")
        root_hash = _b64decode(root_text, "the root hash")
        return cls(origin, int(size_text), root_hash, tuple(extra))


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: key name, 4-byte key hash and the signature bytes."""

    key_name: str
    key_hash: bytes
    signature: bytes

    @property
    def key_id(self) -> str:
        return self.key_hash.hex()

    def line(self) -> str:
        encoded = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{_DASH}{self.key_name} {encoded}\n"


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise CheckpointError(f"{what} is not standard base64") from exc
    # Only the canonical encoding is accepted, so one value has one text.
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _check_key_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" for ch in name) or _CONTROL_RE.search(name):
        raise CheckpointError("a key name is non-empty and has no spaces and no '+'")


def _public_bytes(public_key: bytes | Ed25519PublicKey) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if len(public_key) != _ED25519_KEY_SIZE:
        raise CheckpointError(f"an Ed25519 public key has {_ED25519_KEY_SIZE} bytes")
    return bytes(public_key)


def key_hash(key_name: str, public_key: bytes | Ed25519PublicKey) -> bytes:
    """The 4-byte key hash: SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4]."""
    _check_key_name(key_name)
    material = key_name.encode("utf-8") + b"\n" + bytes([ED25519]) + _public_bytes(public_key)
    return hashlib.sha256(material).digest()[:4]


def key_id(key_name: str, public_key: bytes | Ed25519PublicKey) -> str:
    """The key hash as 8 lowercase hex digits, as it appears in a verifier key."""
    return key_hash(key_name, public_key).hex()


def vkey(key_name: str, public_key: bytes | Ed25519PublicKey) -> str:
    """The verifier key string ``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``."""
    raw = _public_bytes(public_key)
    encoded = base64.b64encode(bytes([ED25519]) + raw).decode("ascii")
    return f"{key_name}+{key_id(key_name, raw)}+{encoded}"


def parse_vkey(text: str) -> tuple[str, bytes]:
    """The key name and raw Ed25519 public key of a verifier key string."""
    # The name and key hash hold no "+", but the base64 key may.
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise CheckpointError("a verifier key is <name>+<hex key hash>+<base64 key>")
    name, hash_hex, key_text = parts
    _check_key_name(name)
    material = _b64decode(key_text, "the verifier key")
    if len(material) != 1 + _ED25519_KEY_SIZE or material[0] != ED25519:
        raise CheckpointError("the verifier key is not an Ed25519 key")
    public_key = material[1:]
    if hash_hex != key_id(name, public_key):
        raise CheckpointError("the verifier key's key hash does not match its name and key")
    return name, public_key


def sign_checkpoint(
    checkpoint: Checkpoint, key_name: str, private_key: Ed25519PrivateKey | bytes
) -> str:
    """The signed note of ``checkpoint``: its body, a blank line and one signature line.

    ``private_key`` is a key object or its 32-byte seed.
    """
    if not isinstance(private_key, Ed25519PrivateKey):
        private_key = Ed25519PrivateKey.from_private_bytes(private_key)
    body = checkpoint.body()
    signature = Signature(
        key_name=key_name,
        key_hash=key_hash(key_name, private_key.public_key()),
        signature=private_key.sign(body.encode("utf-8")),
    )
    return f"{body}\n{signature.line()}"


def parse_signed_note(text: str) -> tuple[Checkpoint, list[Signature]]:
    """Split a signed note into its checkpoint and signature lines, verifying nothing.

    Raises :class:`CheckpointError` when the text is not a well-formed signed note holding
    a checkpoint.
    """
    body, signatures = _split_note(text)
    return Checkpoint.from_body(body), signatures


def _split_note(text: str) -> tuple[str, list[Signature]]:
    """The note text (with its final newline) and the parsed signature lines."""
    if _CONTROL_RE.search(text):
        raise CheckpointError("a note holds no control characters other than newline")
    # The text is separated from the signatures by the last empty line (C2SP signed-note).
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    body, sig_text = text[: split + 1], text[split + 2 :]
    if not sig_text.endswith("\n"):
        raise CheckpointError("the note's signature lines end with a newline")
    lines = sig_text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"the note has more than {MAX_SIGNATURES} signatures")
    return body, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(_DASH):
        raise CheckpointError("a signature line starts with an em dash and a space")
    fields = line[len(_DASH) :].split(" ")
    if len(fields) != 2:
        raise CheckpointError("a signature line is '— <key name> <base64 signature>'")
    name, encoded = fields
    _check_key_name(name)
    raw = _b64decode(encoded, "a signature")
    if len(raw) < 5:
        raise CheckpointError("a signature holds a 4-byte key hash and the signature")
    return Signature(key_name=name, key_hash=raw[:4], signature=raw[4:])


def verify_checkpoint(
    note_text: str, key_name: str, public_key: bytes | Ed25519PublicKey
) -> Checkpoint:
    """The checkpoint of a note that carries a valid signature by ``key_name``'s key.

    Signatures by other keys (witnesses, a rotated key) are ignored. A signature line that
    names this key and its key hash but does not verify rejects the whole note, as the C2SP
    signed-note spec recommends. Raises :class:`CheckpointError` otherwise.
    """
    raw_key = _public_bytes(public_key)
    expected_hash = key_hash(key_name, raw_key)
    body, signatures = _split_note(note_text)
    checkpoint = Checkpoint.from_body(body)
    # The signature covers the text as received, not a re-serialisation of what was parsed.
    message = body.encode("utf-8")
    verifier = Ed25519PublicKey.from_public_bytes(raw_key)
    found = False
    for signature in signatures:
        if signature.key_name != key_name or signature.key_hash != expected_hash:
            continue
        if len(signature.signature) != _ED25519_SIGNATURE_SIZE:
            raise CheckpointError(f"the signature by {key_name} has the wrong length")
        try:
            verifier.verify(signature.signature, message)
        except InvalidSignature:
            raise CheckpointError(f"the signature by {key_name} does not verify") from None
        found = True
    if not found:
        raise CheckpointError(f"the note carries no signature by {key_name} with that key")
    return checkpoint
