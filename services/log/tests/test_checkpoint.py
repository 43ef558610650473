"""Signed checkpoints in the C2SP tlog-checkpoint and signed-note formats."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stafett_log.checkpoint import (
    Checkpoint,
    CheckpointError,
    Signature,
    key_hash,
    key_id,
    parse_signed_note,
    parse_vkey,
    sign_checkpoint,
    verify_checkpoint,
    vkey,
)

ORIGIN = "stafett.example/vestfold-og-telemark"
NAME = "stafett.example/vestfold-og-telemark"
ROOT = hashlib.sha256(b"roten").digest()


def raw_public(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def public_key(private_key: Ed25519PrivateKey) -> bytes:
    return raw_public(private_key)


def test_a_checkpoint_body_is_origin_size_and_base64_root_on_three_lines() -> None:
    checkpoint = Checkpoint(ORIGIN, 1234, ROOT)
    assert checkpoint.body() == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    with_extra = Checkpoint(ORIGIN, 0, ROOT, extra=("tid 2025-01-01T00:00:00Z",))
    assert with_extra.body().endswith("\ntid 2025-01-01T00:00:00Z\n")


def test_a_signed_checkpoint_round_trips(private_key: Ed25519PrivateKey, public_key: bytes) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT, extra=("ekstra",))
    note = sign_checkpoint(checkpoint, NAME, private_key)
    body, signature_line = note.split("\n\n")
    assert body + "\n" == checkpoint.body()
    assert signature_line.startswith(f"\u2014 {NAME} ")
    assert signature_line.endswith("\n")
    assert verify_checkpoint(note, NAME, public_key) == checkpoint
    parsed, signatures = parse_signed_note(note)
    assert parsed == checkpoint
    assert [s.key_name for s in signatures] == [NAME]
    assert len(signatures[0].signature) == 64
    assert signatures[0].key_id == key_id(NAME, public_key)


def test_the_signature_is_ed25519_over_the_body_with_the_key_hash_in_front(
    private_key: Ed25519PrivateKey, public_key: bytes
) -> None:
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    note = sign_checkpoint(checkpoint, NAME, private_key)
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    assert blob[:4] == key_hash(NAME, public_key)
    private_key.public_key().verify(blob[4:], checkpoint.body().encode())


def test_the_key_hash_is_computed_as_c2sp_says(public_key: bytes) -> None:
    by_hand = hashlib.sha256(NAME.encode() + b"\n" + b"\x01" + public_key).digest()[:4]
    assert key_hash(NAME, public_key) == by_hand
    assert key_id(NAME, public_key) == by_hand.hex()


def test_the_key_hash_and_signature_match_the_go_note_package_example() -> None:
    # The example of golang.org/x/mod/sumdb/note: an independent implementation of the
    # signed-note format. Ed25519 is deterministic, so the same key signs the same bytes.
    go_vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    go_skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    go_line = (
        "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
        "dngotpRZb6KE6RyyBwJnAM=\n"
    )
    name, public = parse_vkey(go_vkey)
    assert name == "PeterNeumann"
    assert key_id(name, public) == "c74f20a3"
    assert vkey(name, public) == go_vkey
    seed = base64.b64decode(go_skey.split("+", 4)[4])[1:]
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    assert raw_public(signer) == public
    line = Signature(name, key_hash(name, public), signer.sign(text.encode())).line()
    assert line == go_line


def test_a_verifier_key_round_trips_and_refuses_a_wrong_key_hash(public_key: bytes) -> None:
    text = vkey(NAME, public_key)
    name, hash_hex, encoded = text.split("+", 2)
    assert name == NAME
    assert hash_hex == key_id(NAME, public_key)
    assert base64.b64decode(encoded) == b"\x01" + public_key
    assert parse_vkey(text) == (NAME, public_key)
    with pytest.raises(CheckpointError, match="key hash"):
        parse_vkey(f"{NAME}+00000000+{encoded}")
    with pytest.raises(CheckpointError):
        parse_vkey(f"{NAME}+{hash_hex}")


def test_a_verifier_key_whose_base64_holds_a_plus_parses() -> None:
    # A verifier key of transparency-dev/formats' tests: '+' separates the fields, but the
    # standard base64 alphabet has '+' too, so only the first two split.
    text = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    name, public = parse_vkey(text)
    assert name == "TEST"
    assert vkey(name, public) == text


def test_a_tampered_body_fails(private_key: Ed25519PrivateKey, public_key: bytes) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(note.replace("\n42\n", "\n43\n"), NAME, public_key)
    other_root = base64.b64encode(hashlib.sha256(b"en annen rot").digest()).decode()
    tampered = note.replace(base64.b64encode(ROOT).decode(), other_root)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(tampered, NAME, public_key)


def test_a_checkpoint_signed_by_another_key_fails(private_key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    stranger = raw_public(Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(note, NAME, stranger)


def test_a_checkpoint_under_another_key_name_fails(
    private_key: Ed25519PrivateKey, public_key: bytes
) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(note, "stafett.example/agder", public_key)
    # Renaming the signature line does not help: the key hash binds the name.
    renamed = note.replace(f"\u2014 {NAME} ", "\u2014 stafett.example/agder ")
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(renamed, "stafett.example/agder", public_key)


def test_a_truncated_signature_fails(private_key: Ed25519PrivateKey, public_key: bytes) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    head, encoded = note.rstrip("\n").rsplit(" ", 1)
    short = base64.b64encode(base64.b64decode(encoded)[:-8]).decode()
    with pytest.raises(CheckpointError, match="wrong length"):
        verify_checkpoint(f"{head} {short}\n", NAME, public_key)
    with pytest.raises(CheckpointError, match="base64"):
        verify_checkpoint(f"{head} {encoded[:-6]}\n", NAME, public_key)
    with pytest.raises(CheckpointError):
        verify_checkpoint(note[:-20], NAME, public_key)


def test_a_note_without_the_blank_line_fails(
    private_key: Ed25519PrivateKey, public_key: bytes
) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    with pytest.raises(CheckpointError, match="blank line"):
        verify_checkpoint(note.replace("\n\n", "\n"), NAME, public_key)
    with pytest.raises(CheckpointError, match="blank line"):
        parse_signed_note(Checkpoint(ORIGIN, 42, ROOT).body())


def test_malformed_checkpoint_bodies_are_refused(private_key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, private_key)
    body, signatures = note.split("\n\n")
    root_text = base64.b64encode(ROOT).decode()
    for bad_body in (
        f"{ORIGIN}\n042\n{root_text}\n",  # a leading zero
        f"{ORIGIN}\n-1\n{root_text}\n",
        f"{ORIGIN}\n42\n",  # no root
        f"{ORIGIN}\n42\n{root_text[:-4]}\n",  # a short root
        f"{ORIGIN}\n42\n{root_text}\n\nextra\n",  # an empty extension line
        f"{ORIGIN}\t\n42\n{root_text}\n",  # a control character
    ):
        with pytest.raises(CheckpointError):
            parse_signed_note(f"{bad_body}\n{signatures}")
    with pytest.raises(CheckpointError, match="em dash"):
        parse_signed_note(f"{body}\n\n- {NAME} AAAA\n")


def test_signatures_by_other_keys_are_ignored(
    private_key: Ed25519PrivateKey, public_key: bytes
) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    witness = sign_checkpoint(checkpoint, "vitne.example/agder", Ed25519PrivateKey.generate())
    note = sign_checkpoint(checkpoint, NAME, private_key) + witness.split("\n\n")[1]
    assert len(parse_signed_note(note)[1]) == 2
    assert verify_checkpoint(note, NAME, public_key) == checkpoint


def test_a_failing_signature_by_the_trusted_key_rejects_the_note(
    private_key: Ed25519PrivateKey, public_key: bytes
) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    good = sign_checkpoint(checkpoint, NAME, private_key)
    other = sign_checkpoint(Checkpoint(ORIGIN, 43, ROOT), NAME, private_key)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(good + other.split("\n\n")[1], NAME, public_key)


def test_key_names_with_spaces_or_plus_are_refused(public_key: bytes) -> None:
    for bad in ("", "to ord", "a+b"):
        with pytest.raises(CheckpointError, match="key name"):
            key_id(bad, public_key)
