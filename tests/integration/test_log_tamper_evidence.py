"""Tamper evidence end to end: signed checkpoints, proofs, an export an auditor verifies
offline, and a flipped byte that the verifier names."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log import merkle
from stafett_log.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_signed_note,
    parse_vkey,
    sign_checkpoint,
    verify_checkpoint,
)
from stafett_log.checkpoints import Checkpointer
from stafett_log.projections import TILE_LEAVES, leaves, tiles
from stafett_log.testing import LogHarness
from stafett_shared.ids import new_id
from stafett_shared.testing.events import make_event

AUDIT_VERIFY = [sys.executable, "-m", "stafett_shared.cli", "audit", "verify"]
AUDIT_REPLAY = [sys.executable, "-m", "stafett_shared.cli", "audit", "replay"]


async def _checkpoint(log: LogHarness) -> dict[str, object]:
    response = await log.client.post("/api/v1/checkpoints", headers=log.auth("admin"))
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


async def test_checkpoints_proofs_and_an_offline_verifier_catch_a_flipped_byte(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    tmp_path: Path,
) -> None:
    log = log_service
    child_id, _g, body = await consent.register_child(12, [("Mor", True)])
    await case_service.settle(await consent.store.last_seq())
    opened = await case_service.open_case(national_id=body["national_id"])
    await log.runtime.projector.wait_for(opened["seq"], 10)
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    for i in range(3):
        assert (await log.append(opened["id"], text=f"Første runde {i}.")).status_code == 201
    before = await _checkpoint(log)
    for i in range(3):
        assert (await log.append(opened["id"], text=f"Andre runde {i}.")).status_code == 201
    after = await _checkpoint(log)
    latest = await log.client.get("/api/v1/checkpoints/latest", headers=log.auth("vgs-vidar"))
    assert latest.json()["tree_size"] == after["tree_size"]

    vkey = str(after["vkey"])
    key_name, public_key = parse_vkey(vkey)
    first = verify_checkpoint(str(before["note"]), key_name, public_key)
    second = verify_checkpoint(str(after["note"]), key_name, public_key)
    assert first.tree_size < second.tree_size

    consistency = await log.client.get(
        f"/api/v1/proofs/consistency?first={first.tree_size}&second={second.tree_size}",
        headers=log.auth("vgs-vidar"),
    )
    proof = [base64.b64decode(h) for h in consistency.json()["proof"]]
    assert merkle.verify_consistency(
        first.tree_size, second.tree_size, first.root_hash, second.root_hash, proof
    )
    inclusion = await log.client.get(
        f"/api/v1/proofs/inclusion?seq={opened['seq']}&tree_size={second.tree_size}",
        headers=log.auth("vgs-vidar"),
    )
    body_json = inclusion.json()
    assert merkle.verify_inclusion(
        base64.b64decode(body_json["leaf_hash"]),
        opened["seq"] - 1,
        second.tree_size,
        [base64.b64decode(h) for h in body_json["audit_path"]],
        second.root_hash,
    )
    beyond = await log.client.get(
        f"/api/v1/proofs/inclusion?seq={second.tree_size + 5}&tree_size={second.tree_size}",
        headers=log.auth("vgs-vidar"),
    )
    assert beyond.status_code == 422

    # The auditor exports the stream and verifies it offline against the checkpoint.
    export = tmp_path / "events.jsonl"
    note_file = tmp_path / "checkpoint.txt"
    note_file.write_text(str(after["note"]), encoding="utf-8")
    env = {
        **os.environ,
        "STAFETT_NATS_URL": consent.runtime.settings.nats_url,
        "STAFETT_DATA_DIR": str(tmp_path),
    }
    exported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stafett_shared.cli", "audit", "export", str(export)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    good = await asyncio.to_thread(
        subprocess.run,
        [*AUDIT_VERIFY, str(export), str(note_file), vkey, "--workers", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert good.returncode == 0, good.stdout + good.stderr

    # The verified export replayed: the case with its six entries, as of the second
    # checkpoint; as of before the case was opened, no case at all.
    replayed = await asyncio.to_thread(
        subprocess.run,
        [*AUDIT_REPLAY, str(export), "--json", "--case", str(opened["id"])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    (case,) = json.loads(replayed.stdout)["cases"]
    assert (case["status"], case["entries"]["appended"]) == ("open", 6)
    assert case["holder_id"] and case["unit_id"]
    earlier = await asyncio.to_thread(
        subprocess.run,
        [*AUDIT_REPLAY, str(export), "--json", "--as-of", "2000-01-01T00:00:00Z"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert earlier.returncode == 0, earlier.stderr[-2000:]
    assert json.loads(earlier.stdout)["cases"] == []

    # Flip one byte of a stored log event in a copy of the export.
    lines = export.read_text(encoding="utf-8").splitlines()
    target = next(
        i
        for i, line in enumerate(lines)
        if json.loads(line)["subject"].startswith("stafett.ev.log.")
        and json.loads(line)["seq"] <= second.tree_size
    )
    record = json.loads(lines[target])
    data = bytearray(base64.b64decode(record["data"]))
    position = data.index(b'"hash":"') + 10
    data[position] = ord("0") if data[position] != ord("0") else ord("1")
    record["data"] = base64.b64encode(bytes(data)).decode()
    lines[target] = json.dumps(record)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stafett_log.verifier", str(tampered), str(note_file), vkey],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert bad.returncode == 1
    assert str(record["seq"]) in bad.stdout + bad.stderr
    del child_id


def test_a_forged_checkpoint_fails_its_signature() -> None:
    real = Ed25519PrivateKey.generate()
    forger = Ed25519PrivateKey.generate()
    note = sign_checkpoint(
        Checkpoint("stafett.test/log", 10, b"\x01" * 32), "stafett.test/log", real
    )
    forged = sign_checkpoint(
        Checkpoint("stafett.test/log", 10, b"\x02" * 32), "stafett.test/log", forger
    )
    public = real.public_key().public_bytes_raw()
    assert verify_checkpoint(note, "stafett.test/log", public).tree_size == 10
    with pytest.raises(CheckpointError):
        verify_checkpoint(forged, "stafett.test/log", public)
    checkpoint, signatures = parse_signed_note(note)
    altered = note.replace(
        base64.b64encode(checkpoint.root_hash).decode(), base64.b64encode(b"\x03" * 32).decode()
    )
    with pytest.raises(CheckpointError):
        verify_checkpoint(altered, "stafett.test/log", public)
    assert signatures


async def test_every_commit_of_the_stream_is_a_leaf_whatever_its_context(
    log_service: LogHarness,
) -> None:
    log = log_service
    store = log.runtime.store
    aggregate = new_id()
    # A context the log service reads nothing from: still a leaf of the tree.
    result = await store.append(
        store.subject("consent", aggregate),
        [make_event(aggregate, "no.stafett.consent.reminder_sent.v1", source="stafett/consent")],
        expected_version=None,
    )
    await log.runtime.projector.wait_for(result.seq, 10)
    signed = await _checkpoint(log)
    tree_size = int(str(signed["tree_size"]))
    assert tree_size >= result.seq
    inclusion = await log.client.get(
        f"/api/v1/proofs/inclusion?seq={result.seq}&tree_size={tree_size}",
        headers=log.auth("vgs-vidar"),
    )
    assert inclusion.status_code == 200, inclusion.text
    body = inclusion.json()
    stored = await store.get(result.seq)
    assert stored is not None
    assert base64.b64decode(body["leaf_hash"]) == merkle.leaf_hash(stored.data)
    key_name, public_key = parse_vkey(str(signed["vkey"]))
    checkpoint = verify_checkpoint(str(signed["note"]), key_name, public_key)
    assert merkle.verify_inclusion(
        merkle.leaf_hash(stored.data),
        result.seq - 1,
        tree_size,
        [base64.b64decode(h) for h in body["audit_path"]],
        checkpoint.root_hash,
    )


async def _append_leaves(log: LogHarness, count: int) -> None:
    """``count`` messages of a context the log reads nothing from, each a leaf of the tree,
    applied by the log's projector."""
    store = log.runtime.store
    aggregate = new_id()
    last = None
    for _ in range(count):
        last = await store.append(
            store.subject("consent", aggregate),
            [
                make_event(
                    aggregate, "no.stafett.consent.reminder_sent.v1", source="stafett/consent"
                )
            ],
            expected_version=None,
        )
    assert last is not None
    await log.runtime.projector.wait_for(last.seq, 30)


def _fresh_checkpointer(log: LogHarness, origin: str) -> Checkpointer:
    """A checkpointer of its own on the log service's read model, as after a start."""
    return Checkpointer(
        nc=log.runtime.nc,
        sessions=log.runtime.sessions,
        writer=log.runtime.sessions,
        projector=log.runtime.projector,
        key=Ed25519PrivateKey.generate(),
        origin=origin,
    )


async def test_proofs_over_several_tiles_verify_against_a_signed_checkpoint(
    log_service: LogHarness,
) -> None:
    """Past 256 leaves, proofs are made from stored tile roots and the few leaves they need:
    they must still verify against the checkpoint's root, which is made from every leaf."""
    log = log_service
    await _append_leaves(log, 2 * TILE_LEAVES + 37)
    async with log.runtime.sessions() as session:
        stored_tiles = (await session.execute(select(tiles).order_by(tiles.c.tile))).all()
        every_leaf = [
            bytes(h)
            for h in await session.scalars(select(leaves.c.leaf_hash).order_by(leaves.c.seq))
        ]
    assert [t.tile for t in stored_tiles] == list(range(len(every_leaf) // TILE_LEAVES))
    for t in stored_tiles:
        assert bytes(t.root_hash) == merkle.root(
            every_leaf[t.tile * TILE_LEAVES : (t.tile + 1) * TILE_LEAVES]
        )

    # The first checkpoint after a start follows the tree from the tile roots.
    fresh = _fresh_checkpointer(log, "stafett.test/fresh")
    made = await fresh.make()
    assert made["tree_size"] == len(every_leaf)
    assert base64.b64decode(made["root_hash"]) == merkle.root(every_leaf)

    signed = await _checkpoint(log)
    key_name, public_key = parse_vkey(str(signed["vkey"]))
    checkpoint = verify_checkpoint(str(signed["note"]), key_name, public_key)
    size = checkpoint.tree_size
    assert size >= 2 * TILE_LEAVES + 37
    auth = log.auth("vgs-vidar")
    for seq in (1, TILE_LEAVES, TILE_LEAVES + 1, 2 * TILE_LEAVES + 5, size):
        answer = await log.client.get(
            f"/api/v1/proofs/inclusion?seq={seq}&tree_size={size}", headers=auth
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert merkle.verify_inclusion(
            every_leaf[seq - 1],
            seq - 1,
            size,
            [base64.b64decode(h) for h in body["audit_path"]],
            checkpoint.root_hash,
        ), seq
    for first in (1, TILE_LEAVES - 1, TILE_LEAVES, TILE_LEAVES + 3, size - 1):
        answer = await log.client.get(
            f"/api/v1/proofs/consistency?first={first}&second={size}", headers=auth
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert base64.b64decode(body["first_root"]) == merkle.root(every_leaf[:first])
        assert merkle.verify_consistency(
            first,
            size,
            merkle.root(every_leaf[:first]),
            checkpoint.root_hash,
            [base64.b64decode(h) for h in body["proof"]],
        ), first


async def test_two_checkpoints_asked_for_at_once_both_sign_the_true_tree(
    log_service: LogHarness,
) -> None:
    """The timer's checkpoint and an operator's can be asked for at the same moment; each
    must sign the tree as it is, not a range extended twice by the same leaves."""
    log = log_service
    await _append_leaves(log, 17)
    fresh = _fresh_checkpointer(log, "stafett.test/twice")
    made = await asyncio.gather(fresh.make(), fresh.make())
    async with log.runtime.sessions() as session:
        every_leaf = [
            bytes(h)
            for h in await session.scalars(select(leaves.c.leaf_hash).order_by(leaves.c.seq))
        ]
    for checkpoint in made:
        size = int(checkpoint["tree_size"])
        assert size == len(every_leaf)
        assert base64.b64decode(checkpoint["root_hash"]) == merkle.root(every_leaf[:size])
