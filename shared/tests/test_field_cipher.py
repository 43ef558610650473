"""Field encryption's associated data: owner, aggregate and field; old tokens stay readable."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stafett_shared.crypto import DecryptionFailed, FieldCipher, KeyShredded, KeyStore

CHILD = "01J00000000000000000000CHD"
OTHER_CHILD = "01J00000000000000000000OTH"
CASE_A = "01J0000000000000000000CASA"
CASE_B = "01J0000000000000000000CASB"


class _Keys(KeyStore):
    """Data keys in memory: what the cipher needs of a key store, without NATS."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    async def data_key(self, owner: str, *, create: bool = False) -> bytes:
        if owner not in self.keys:
            if not create:
                raise KeyShredded(owner)
            self.keys[owner] = AESGCM.generate_key(bit_length=256)
        return self.keys[owner]


def _v1_token(key: bytes, owner: str, plaintext: str, context: str) -> str:
    """A token as Stafett wrote them before ciphertexts were bound to their aggregate."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(
        nonce, plaintext.encode(), f"stafett:v1:{owner}:{context}".encode()
    )
    return "enc:v1:" + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


async def test_a_new_token_is_v2_and_opens_only_for_its_owner_aggregate_and_field() -> None:
    keys = _Keys()
    cipher = FieldCipher(keys)
    token = await cipher.encrypt(
        CHILD, "Samtale med eleven.", aggregate=CASE_A, context="entry_text"
    )
    assert token.startswith("enc:v2:")
    assert cipher.is_encrypted(token)
    assert (
        await cipher.decrypt(CHILD, token, aggregate=CASE_A, context="entry_text")
        == "Samtale med eleven."
    )
    with pytest.raises(DecryptionFailed):  # moved into another case's event, same child
        await cipher.decrypt(CHILD, token, aggregate=CASE_B, context="entry_text")
    with pytest.raises(DecryptionFailed):  # moved into another field of the same event
        await cipher.decrypt(CHILD, token, aggregate=CASE_A, context="reason")
    await cipher.encrypt(OTHER_CHILD, "x", aggregate=CASE_B, context="entry_text")
    with pytest.raises(DecryptionFailed):  # another child's key
        await cipher.decrypt(OTHER_CHILD, token, aggregate=CASE_A, context="entry_text")


async def _with_old_token() -> tuple[FieldCipher, str]:
    """A cipher, and a v1 token of the child's name under the child's key."""
    keys = _Keys()
    cipher = FieldCipher(keys)
    await cipher.encrypt(CHILD, "warm up", aggregate=CASE_A, context="name")
    return cipher, _v1_token(keys.keys[CHILD], CHILD, "Ola Nordmann", "name")


async def test_an_old_v1_token_still_opens_under_its_old_associated_data() -> None:
    cipher, old = await _with_old_token()
    assert cipher.is_encrypted(old)
    # A v1 token is bound to owner and field only: any aggregate reads it, as before.
    assert await cipher.decrypt(CHILD, old, aggregate=CASE_A, context="name") == "Ola Nordmann"
    assert await cipher.decrypt(CHILD, old, aggregate=CASE_B, context="name") == "Ola Nordmann"
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(CHILD, old, aggregate=CASE_A, context="national_id")


async def test_a_v1_token_relabelled_v2_does_not_open() -> None:
    # Changing the version prefix cannot move an old token out from under its binding.
    cipher, old = await _with_old_token()
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(
            CHILD, "enc:v2:" + old.removeprefix("enc:v1:"), aggregate=CASE_A, context="name"
        )


@pytest.mark.parametrize("token", ["plain text", "enc:v2:!!!", "enc:v2:AAAA", "enc:v9:AAAA"])
async def test_damaged_tokens_fail_as_decryption_errors(token: str) -> None:
    cipher = FieldCipher(_Keys())
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(CHILD, token, aggregate=CASE_A, context="name")


async def test_an_aggregate_id_outside_the_id_alphabet_is_refused() -> None:
    cipher = FieldCipher(_Keys())
    token = await cipher.encrypt(CHILD, "x", aggregate=CASE_A, context="name")
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(CHILD, token, aggregate=f"{CASE_A}:name", context="x")
