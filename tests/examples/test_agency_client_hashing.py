"""The example client's own few lines of RFC 9162 hashing and signed-note checking agree
with the log service's: every leaf of trees of many sizes is proved, a changed path or root
or a wrong key is refused. The script is loaded from its file, as an agency runs it."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from stafett_log import merkle
from stafett_log.checkpoint import Checkpoint, sign_checkpoint, vkey

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "agency_client.py"


@pytest.fixture(scope="module")
def client() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agency_client", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["agency_client"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_every_leaf_of_every_tree_size_is_proved_and_a_changed_path_is_not(
    client: ModuleType,
) -> None:
    for size in range(1, 70):
        leaves = [merkle.leaf_hash(f"melding {i}".encode()) for i in range(size)]
        root = merkle.root(leaves)
        for index in range(size):
            path = merkle.inclusion_proof(index, leaves)
            assert client.root_from_inclusion_proof(leaves[index], index, size, path) == root
            assert client.root_from_inclusion_proof(leaves[index], size, size, path) is None
            assert (
                client.root_from_inclusion_proof(leaves[index], index, size, [*path, root]) is None
            )
            if path:
                changed = [*path[:-1], bytes([path[-1][0] ^ 1]) + path[-1][1:]]
                assert client.root_from_inclusion_proof(leaves[index], index, size, changed) != root
            other = (index + 1) % size
            if other != index:
                assert client.root_from_inclusion_proof(leaves[other], index, size, path) != root


def test_a_signed_checkpoint_is_read_with_its_key_and_refused_with_another(
    client: ModuleType,
) -> None:
    key = Ed25519PrivateKey.generate()
    root = hashlib.sha256(b"roten").digest()
    note = sign_checkpoint(Checkpoint("stafett.test/log", 42, root), "stafett.test/log", key)
    verifier = vkey("stafett.test/log", key.public_key())
    assert client.verify_checkpoint(note, verifier) == (42, root)

    other = vkey("stafett.test/log", Ed25519PrivateKey.generate().public_key())
    with pytest.raises(client.VerificationFailed, match="not signed by the verifier key"):
        client.verify_checkpoint(note, other)
    forged = note.replace("\n42\n", "\n43\n")
    with pytest.raises(client.VerificationFailed, match="signature does not hold"):
        client.verify_checkpoint(forged, verifier)
    name, key_hash, encoded = verifier.split("+", 2)
    with pytest.raises(client.VerificationFailed, match="hash does not match"):
        client.verify_checkpoint(note, f"{name}x+{key_hash}+{encoded}")
