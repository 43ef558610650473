"""Field encryption and crypto-shredding with keys in a JetStream key/value bucket."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.aio.client import Client as NATS

from stafett_shared.crypto import (
    DecryptionFailed,
    FieldCipher,
    KeyShredded,
    KeyStore,
    generate_kek,
)
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.testing.events import make_event

NAME = "Ola Nordmann"
NATIONAL_ID = "01010012345"


@pytest.fixture
async def keys(nats_client: NATS) -> KeyStore:
    store = KeyStore(nats_client.jetstream(), {"kek-1": generate_kek()}, "kek-1")
    await store.ensure_bucket()
    return store


async def _append_child_event(
    store: EventStore, cipher: FieldCipher, child: str
) -> tuple[str, int]:
    data = {
        "child_id": child,
        "name": await cipher.encrypt(child, NAME, aggregate=child, context="name"),
        "national_id": await cipher.encrypt(
            child, NATIONAL_ID, aggregate=child, context="national_id"
        ),
    }
    subject = store.subject("directory", child)
    event = make_event(
        child, "no.stafett.directory.child_registered.v1", data, source="stafett/consent"
    )
    result = await store.append(subject, [event], expected_version=0)
    return subject, result.seq


async def test_encrypted_fields_are_unreadable_in_the_stored_message(
    event_store: EventStore, keys: KeyStore
) -> None:
    cipher = FieldCipher(keys)
    child = new_id()
    subject, seq = await _append_child_event(event_store, cipher, child)
    stored = await event_store.get(seq, decode=False)
    assert stored is not None
    assert NAME.encode() not in stored.data
    assert NATIONAL_ID.encode() not in stored.data
    assert b"Nordmann" not in stored.data
    (commit,) = await event_store.load(subject)
    data = commit.events[0].data
    assert await cipher.decrypt(child, data["name"], aggregate=child, context="name") == NAME
    assert (
        await cipher.decrypt(child, data["national_id"], aggregate=child, context="national_id")
        == NATIONAL_ID
    )


async def test_shredding_a_childs_key_makes_the_data_unreadable_everywhere_but_the_event_loads(
    event_store: EventStore, keys: KeyStore, nats_client: NATS
) -> None:
    cipher = FieldCipher(keys)
    child, other_child = new_id(), new_id()
    subject, _ = await _append_child_event(event_store, cipher, child)
    other_subject, _ = await _append_child_event(event_store, cipher, other_child)
    # Another process holding its own key store and cache.
    elsewhere = KeyStore(nats_client.jetstream(), keys._keks_raw, "kek-1")
    await elsewhere.ensure_bucket()
    elsewhere_cipher = FieldCipher(elsewhere)
    (commit,) = await event_store.load(subject)
    token = commit.events[0].data["name"]
    assert await elsewhere_cipher.decrypt(child, token, aggregate=child, context="name") == NAME
    revision = (
        await (await nats_client.jetstream().key_value("STAFETT_KEYS")).get(f"owner.{child}")
    ).revision

    await keys.shred(child)

    (reloaded,) = await event_store.load(subject)  # the event still loads and is unchanged
    assert reloaded.data == commit.data
    with pytest.raises(KeyShredded):
        await cipher.decrypt(child, token, aggregate=child, context="name")
    fresh = KeyStore(nats_client.jetstream(), keys._keks_raw, "kek-1")
    await fresh.ensure_bucket()
    with pytest.raises(KeyShredded):
        await FieldCipher(fresh).decrypt(child, token, aggregate=child, context="name")
    # Nothing new can be written under a shredded child's key either.
    with pytest.raises(KeyShredded):
        await cipher.encrypt(child, "ny tekst", aggregate=child, context="name")
    # The wrapped key's message was erased from the bucket's stream.
    assert revision is not None
    with pytest.raises(nats.js.errors.NotFoundError):
        await nats_client.jetstream().get_msg("KV_STAFETT_KEYS", revision)
    # Other children are untouched.
    (other,) = await event_store.load(other_subject)
    assert (
        await cipher.decrypt(
            other_child, other.events[0].data["name"], aggregate=other_child, context="name"
        )
        == NAME
    )


async def test_a_ciphertext_cannot_be_moved_to_another_child_or_field(keys: KeyStore) -> None:
    cipher = FieldCipher(keys)
    child, other = new_id(), new_id()
    token = await cipher.encrypt(child, NAME, aggregate=child, context="name")
    await cipher.encrypt(other, "x", aggregate=other, context="name")
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(other, token, aggregate=other, context="name")
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(child, token, aggregate=child, context="national_id")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(child, tampered, aggregate=child, context="name")


async def test_two_writers_making_a_childs_first_key_agree_on_one_key(
    nats_client: NATS,
) -> None:
    kek = {"kek-1": generate_kek()}
    first, second = (
        KeyStore(nats_client.jetstream(), kek, "kek-1"),
        KeyStore(nats_client.jetstream(), kek, "kek-1"),
    )
    await first.ensure_bucket()
    await second.ensure_bucket()
    child = new_id()
    import asyncio

    a, b = await asyncio.gather(
        first.data_key(child, create=True), second.data_key(child, create=True)
    )
    assert a == b


async def test_a_wrong_key_encryption_key_cannot_unwrap_data_keys(nats_client: NATS) -> None:
    right = KeyStore(nats_client.jetstream(), {"kek-1": generate_kek()}, "kek-1")
    wrong = KeyStore(nats_client.jetstream(), {"kek-1": generate_kek()}, "kek-1")
    await right.ensure_bucket()
    await wrong.ensure_bucket()
    child = new_id()
    await right.data_key(child, create=True)
    from stafett_shared.crypto import CryptoError

    with pytest.raises(CryptoError):
        await wrong.data_key(child)


def test_a_blind_index_is_stable_per_key_and_context_and_reveals_nothing() -> None:
    from stafett_shared.crypto import BlindIndex

    kek = generate_kek()
    index = BlindIndex(kek)
    value = index(NATIONAL_ID, context="national_id")
    assert value == BlindIndex(kek)(NATIONAL_ID, context="national_id")
    assert value != index(NATIONAL_ID, context="name")
    assert value != BlindIndex(generate_kek())(NATIONAL_ID, context="national_id")
    assert NATIONAL_ID not in value
