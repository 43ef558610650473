"""Field encryption with a data key per child, crypto-shredding, and Ed25519 signing keys.

* A child's data key (AES-256) is made at first use, wrapped with the key-encryption key
  (KEK, AES-256-GCM) and kept in the JetStream key/value bucket ``STAFETT_KEYS``, which,
  unlike ``EVENTS``, allows deletion.
* A field is AES-256-GCM under the child's data key with a fresh 96-bit nonce; the associated
  data binds the ciphertext to the child, to the aggregate whose event carries it and to the
  field, so it cannot be moved to another child, event stream or field unnoticed. Text form:
  ``enc:v2:<base64url(nonce ‖ ciphertext)>``; the older ``enc:v1:`` (bound to child and field
  only) is still read.
* Only the consent service writes the bucket (``KeyStore`` without ``create_via``). Every
  other service reads it: a key it needs that does not exist yet is made by the consent
  service on request (``stafett.rpc.consent.key``), and deploy/nats/cluster.conf lets no
  other NATS user publish to ``$KV.STAFETT_KEYS.>`` or delete from its stream.
* Shredding securely erases the wrapped key from the bucket (JetStream overwrites the message
  on delete) and leaves a tombstone, so the key is never made again. The events stay and
  still load and verify; their personal data can no longer be read by anyone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats.errors
import nats.js.errors
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from stafett_shared.ids import AGGREGATE_ID_PATTERN

__all__ = [
    "KEY_SUBJECT",
    "BlindIndex",
    "CryptoError",
    "DecryptionFailed",
    "FieldCipher",
    "KeyShredded",
    "KeyStore",
    "KeyUnavailable",
    "derive_blind_index_key",
    "generate_kek",
    "load_or_create_kek",
    "load_or_create_signing_key",
    "load_signing_key",
]

KEY_BUCKET = "STAFETT_KEYS"
KEY_SUBJECT = "stafett.rpc.consent.key"
"""Where a service that does not write the bucket asks the consent service to make a key."""
KeyMaker = Callable[[str], Awaitable[None]]
_MADE_VISIBLE_TRIES = 20  # a key made by another writer, read from a replica that lags
_PREFIX = "enc:v2:"  # written today: bound to owner, aggregate and field
_PREFIX_V1 = "enc:v1:"  # read only: bound to owner and field
_NONCE = 12
_TOMBSTONE = b'{"shredded":true}'


class CryptoError(Exception):
    """Root of the crypto errors."""


class KeyShredded(CryptoError):
    """The owner's data key was shredded; the data is unreadable for good."""


class KeyUnavailable(CryptoError):
    """The key store did not answer."""


class DecryptionFailed(CryptoError):
    """The ciphertext is damaged, or belongs to another owner or field."""


def generate_kek() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def load_or_create_kek(path: Path) -> bytes:
    """Development only: the KEK kept in the data folder, made at first start."""
    if path.exists():
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        if len(raw) != 32:
            raise CryptoError("the key-encryption key file does not hold 32 bytes")
        return raw
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_kek()
    _write_secret(path, base64.b64encode(key))
    return key


def _write_secret(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


@dataclass(slots=True)
class _CachedKey:
    key: bytes
    expires: float


class KeyStore:
    """Wrapped data keys in a JetStream key/value bucket, one per owner (a child's id).

    With ``create_via`` the store never writes the bucket: a missing key is made by calling
    it (the consent service, over NATS) and then read, and shredding is refused."""

    def __init__(
        self,
        js: JetStreamContext,
        keks: dict[str, bytes],
        current_kek: str,
        *,
        bucket: str = KEY_BUCKET,
        cache_ttl_s: float = 5.0,
        replicas: int = 1,
        create_via: KeyMaker | None = None,
    ) -> None:
        if current_kek not in keks:
            raise CryptoError("the current KEK id has no key")
        self._js = js
        self._keks_raw = dict(keks)
        self._keks = {kid: AESGCM(key) for kid, key in keks.items()}
        self._current = current_kek
        self._bucket_name = bucket
        self._bucket: KeyValue | None = None
        self._cache: dict[str, _CachedKey] = {}
        self._cache_ttl = cache_ttl_s
        self._replicas = replicas
        self._lock = asyncio.Lock()
        self._create_via = create_via

    @property
    def writes(self) -> bool:
        """Whether this store writes the bucket (the consent service's) or only reads it."""
        return self._create_via is None

    async def ensure_bucket(self) -> None:
        """Bind to the bucket, creating its stream when missing.

        The stream is made here rather than by the client library's bucket helper, because
        that helper denies message deletion, and shredding needs the stream's secure delete.
        """
        stream = f"KV_{self._bucket_name}"
        try:
            await self._js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # made concurrently
                await self._js.add_stream(
                    StreamConfig(
                        name=stream,
                        description="Stafett wrapped data keys (deleting one is crypto-shredding)",
                        subjects=[f"$KV.{self._bucket_name}.>"],
                        max_msgs_per_subject=1,
                        discard=DiscardPolicy.NEW,
                        storage=StorageType.FILE,
                        num_replicas=self._replicas,
                        allow_rollup_hdrs=True,
                        deny_delete=False,
                        deny_purge=False,
                        allow_direct=True,
                        duplicate_window=120.0,
                    )
                )
        self._bucket = await self._js.key_value(self._bucket_name)

    @property
    def _kv(self) -> KeyValue:
        if self._bucket is None:
            raise CryptoError("call ensure_bucket() first")
        return self._bucket

    @staticmethod
    def _name(owner: str) -> str:
        if not AGGREGATE_ID_PATTERN.fullmatch(owner):
            raise CryptoError("owner id may hold only letters, digits, '_' and '-'")
        return f"owner.{owner}"

    def _wrap(self, owner: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        wrapped = self._keks[self._current].encrypt(nonce, key, self._name(owner).encode())
        return json.dumps(
            {
                "v": 1,
                "kek": self._current,
                "n": base64.b64encode(nonce).decode(),
                "w": base64.b64encode(wrapped).decode(),
            }
        ).encode()

    def _unwrap(self, owner: str, value: bytes) -> bytes:
        if value == _TOMBSTONE:
            raise KeyShredded(owner)
        record = _record(value)
        kek = self._keks.get(record["kek"])
        if kek is None:
            raise CryptoError(f"no key-encryption key {record['kek']!r} is configured")
        try:
            return kek.decrypt(
                base64.b64decode(record["n"]),
                base64.b64decode(record["w"]),
                self._name(owner).encode(),
            )
        except InvalidTag as exc:
            raise CryptoError("a wrapped data key failed its integrity check") from exc

    async def data_key(self, owner: str, *, create: bool = False) -> bytes:
        """The owner's data key; made when ``create`` and there is none yet."""
        cached = self._cache.get(owner)
        if cached is not None and cached.expires > time.monotonic():
            return cached.key
        name = self._name(owner)
        try:
            try:
                entry = await self._kv.get(name)
                assert entry.value is not None
                key = self._unwrap(owner, entry.value)
            except nats.js.errors.KeyNotFoundError:
                if not create:
                    raise KeyShredded(owner) from None
                if self._create_via is not None:
                    return await self._made_elsewhere(owner, self._create_via)
                key = AESGCM.generate_key(bit_length=256)
                try:
                    await self._kv.create(name, self._wrap(owner, key))
                except nats.js.errors.KeyWrongLastSequenceError:
                    # Made by another writer in the meantime: use theirs.
                    entry = await self._kv.get(name)
                    assert entry.value is not None
                    key = self._unwrap(owner, entry.value)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise KeyUnavailable("the key store did not answer") from exc
        self._cache[owner] = _CachedKey(key, time.monotonic() + self._cache_ttl)
        return key

    async def _made_elsewhere(self, owner: str, make: KeyMaker) -> bytes:
        """Have the bucket's writer make the owner's key, then read it (a replica may lag
        the create by a moment)."""
        await make(owner)
        name = self._name(owner)
        for attempt in range(_MADE_VISIBLE_TRIES):
            try:
                entry = await self._kv.get(name)
            except nats.js.errors.KeyNotFoundError:
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            assert entry.value is not None
            key = self._unwrap(owner, entry.value)
            self._cache[owner] = _CachedKey(key, time.monotonic() + self._cache_ttl)
            return key
        raise KeyUnavailable("the key made for the owner cannot be read")

    async def wrapped_by(self) -> dict[str, int]:
        """How many data keys each KEK id wraps, and how many were shredded
        (``"shredded"``): what ``stafett keys status`` shows during a KEK change."""
        counts: dict[str, int] = {}
        for name in await self._names():
            try:
                entry = await self._kv.get(name)
            except nats.js.errors.KeyNotFoundError:
                continue
            kind = "shredded" if entry.value == _TOMBSTONE else _record(entry.value)["kek"]
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    async def rewrap(self) -> dict[str, int]:
        """Wrap every data key that another KEK wraps under the current one; no event and no
        data key changes, only the wrapping in the bucket.

        Each key is replaced only if it is still the revision that was read, so a key
        shredded meanwhile stays shredded. Safe to run again (or while the services run):
        a key already under the current KEK is left alone. Answers what was done:
        ``rewrapped``, ``current`` (already under it), ``shredded``."""
        if self._create_via is not None:
            raise CryptoError("only the key bucket's writer rewraps keys")
        done = {"rewrapped": 0, "current": 0, "shredded": 0}
        for name in await self._names():
            owner = name.removeprefix("owner.")
            while True:
                try:
                    entry = await self._kv.get(name)
                except nats.js.errors.KeyNotFoundError:
                    break
                assert entry.value is not None
                if entry.value == _TOMBSTONE:
                    done["shredded"] += 1
                    break
                if _record(entry.value)["kek"] == self._current:
                    done["current"] += 1
                    break
                key = self._unwrap(owner, entry.value)
                try:
                    await self._kv.update(name, self._wrap(owner, key), last=entry.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # changed meanwhile (shredded, or rewrapped by another run)
                done["rewrapped"] += 1
                break
        self._cache.clear()
        return done

    async def _names(self) -> list[str]:
        try:
            names = await self._kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        return sorted(n for n in names if n.startswith("owner."))

    async def shred(self, owner: str) -> None:
        """Erase the owner's data key for good (end of retention)."""
        if self._create_via is not None:
            raise CryptoError("only the consent service shreds keys")
        name = self._name(owner)
        self._cache.pop(owner, None)
        stream = f"KV_{self._bucket_name}"
        async with self._lock:
            try:
                entry = await self._kv.get(name)
                if entry.revision is not None and entry.value != _TOMBSTONE:
                    # The stream API's delete overwrites the stored bytes (no_erase is false).
                    await self._js.delete_msg(stream, entry.revision)
            except nats.js.errors.KeyNotFoundError:
                pass
            await self._kv.put(name, _TOMBSTONE)


def _record(value: bytes | None) -> dict[str, str]:
    """A wrapped key's record: ``{"v", "kek", "n", "w"}``."""
    try:
        record = json.loads(value or b"")
    except ValueError as exc:
        raise CryptoError("a wrapped data key is unreadable") from exc
    if not isinstance(record, dict) or not isinstance(record.get("kek"), str):
        raise CryptoError("a wrapped data key is unreadable")
    return record


class FieldCipher:
    """Encrypts and decrypts personal-data fields of events under the owner's data key.

    A ciphertext is bound by its associated data to the owner, to the aggregate whose event
    carries it (the id in the event's subject) and to the event field, so that a stream
    writer cannot move it into another event: ``enc:v2:`` tokens, AAD
    ``stafett:v2:<owner>:<aggregate>:<field>``. Tokens written before that (``enc:v1:``,
    AAD ``stafett:v1:<owner>:<field>``) stay readable; nothing new is written in that form.
    See docs/security.md, "Field encryption: associated data".
    """

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    @staticmethod
    def _aad(version: str, owner: str, aggregate: str, context: str) -> bytes:
        if version == _PREFIX_V1:
            return f"stafett:v1:{owner}:{context}".encode()
        if not AGGREGATE_ID_PATTERN.fullmatch(aggregate):
            raise CryptoError("aggregate id may hold only letters, digits, '_' and '-'")
        return f"stafett:v2:{owner}:{aggregate}:{context}".encode()

    async def encrypt(self, owner: str, plaintext: str, *, aggregate: str, context: str) -> str:
        """Seal ``plaintext`` for the ``context`` field of an event of ``aggregate``."""
        aad = self._aad(_PREFIX, owner, aggregate, context)
        key = await self._keys.data_key(owner, create=True)
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    async def decrypt(self, owner: str, token: str, *, aggregate: str, context: str) -> str:
        """Open a token of the ``context`` field of an event of ``aggregate`` (for a v1 token,
        which is bound to no aggregate, ``aggregate`` is not checked)."""
        version = next((p for p in (_PREFIX, _PREFIX_V1) if token.startswith(p)), None)
        if version is None:
            raise DecryptionFailed("not an encrypted field")
        body = token[len(version) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise DecryptionFailed("the field is not valid base64") from exc
        if len(raw) < _NONCE + 16:
            raise DecryptionFailed("the field is too short")
        try:
            aad = self._aad(version, owner, aggregate, context)
        except CryptoError as exc:
            raise DecryptionFailed("the field does not belong here") from exc
        key = await self._keys.data_key(owner)
        try:
            plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except InvalidTag as exc:
            raise DecryptionFailed("the field does not belong here or was altered") from exc
        return plain.decode("utf-8")

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith((_PREFIX, _PREFIX_V1))


def derive_blind_index_key(kek: bytes) -> bytes:
    """The blind indexes' key as derived from a KEK (HKDF-SHA256). One way: it does not
    give the KEK back, so it may outlive a KEK that is changed."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"stafett blind index v1"
    ).derive(kek)


class BlindIndex:
    """A keyed hash (HMAC-SHA256) of a personal value, so that an encrypted value can still be
    found and compared ("is this national id registered?") without decrypting anything.
    The key is derived from the KEK (or given, ``with_key``, once the KEK has been changed:
    the indexes in the stream never change); without it the index cannot be brute-forced."""

    def __init__(self, kek: bytes) -> None:
        self._key = derive_blind_index_key(kek)

    @classmethod
    def with_key(cls, index_key: bytes) -> BlindIndex:
        """An index under ``index_key`` itself (``STAFETT_BLIND_INDEX_KEY``)."""
        index = cls.__new__(cls)
        index._key = index_key
        return index

    def fingerprint(self) -> str:
        """Eight hex digits that tell two index keys apart without revealing either: the
        index of a fixed text. Compare it before and after a KEK is changed."""
        return self("stafett", context="fingerprint")[:8]

    def __call__(self, value: str, *, context: str) -> str:
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(f"{context}\x00{value}".encode())
        return base64.urlsafe_b64encode(mac.finalize()).decode().rstrip("=")


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoError("the signing key is not an Ed25519 key")
    return key


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Development only: the signing key kept in the data folder, made at first start."""
    if path.exists():
        return load_signing_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_secret(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return key
