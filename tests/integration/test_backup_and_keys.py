"""Operations over real NATS: a backup restored into a fresh server verifies and decrypts;
the key-encryption key is changed without changing an event; the checkpoint signing key is
changed and both keys' checkpoints verify, each with its own public key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import select

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness, fresh_consent, running_consent
from stafett_log import merkle
from stafett_log.checkpoint import CheckpointError, parse_vkey, verify_checkpoint
from stafett_log.projections import entries
from stafett_log.testing import LogHarness, running_log
from stafett_log.verifier import describe, verify_export
from stafett_shared.crypto import (
    BlindIndex,
    FieldCipher,
    KeyStore,
    generate_kek,
    load_or_create_kek,
    load_or_create_signing_key,
)
from stafett_shared.eventstore import EventStore, StoredCommit
from stafett_shared.projector import ProjectionAhead
from stafett_shared.testing.servers import NatsHandle, start_nats

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For the tests of what NATS holds: their read models are the harness's, not the subject."""

CLI = [sys.executable, "-m", "stafett_shared.cli"]
PREFIXES = {
    "EVENTS": "stafett.ev",
    "CHECKPOINTS": "stafett.checkpoints",
    "KV_STAFETT_KEYS": "$KV.STAFETT_KEYS",
}


async def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


async def _checkpoint(log: LogHarness) -> dict[str, Any]:
    response = await log.client.post("/api/v1/checkpoints", headers=log.auth("admin"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _messages(nc: NATS, stream: str) -> list[StoredCommit]:
    store = EventStore(nc, stream=stream, subject_prefix=PREFIXES[stream])
    found: list[StoredCommit] = []
    seq = 1
    while batch := await store.read(seq, limit=500, decode=False):
        found.extend(batch)
        seq = batch[-1].seq + 1
    return found


def _stored(commit: StoredCommit) -> tuple[Any, ...]:
    return (commit.seq, commit.subject, commit.data, dict(commit.headers), commit.time)


async def _entry_texts(
    nc: NATS, cipher: FieldCipher, owners: dict[str, str], case_id: str
) -> list[str]:
    """Every entry text of the case's log, opened with the data keys the bucket holds."""
    texts = []
    for commit in await EventStore(nc).read(1, limit=10_000):
        for event in commit.events:
            if event.type == "no.stafett.log.entry_appended.v1" and event.subject == case_id:
                data = dict(event.data or {})
                owner = owners[data["entry_id"]]
                texts.append(
                    await cipher.decrypt(
                        owner, data["text"], aggregate=case_id, context="entry_text"
                    )
                )
    return texts


async def _owners(log: LogHarness) -> dict[str, str]:
    async with log.runtime.sessions() as session:
        rows = (await session.execute(select(entries.c.entry_id, entries.c.key_owner))).all()
    return {row.entry_id: row.key_owner for row in rows}


@SQLITE
async def test_a_backup_restored_into_a_fresh_server_verifies_every_chain_and_decrypts(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    tmp_path: Path,
) -> None:
    log = log_service
    case_id, _guardians = await log.open_case(consent, case_service)
    texts = [f"Samtale nr. {i} med eleven om skolehverdagen." for i in range(5)]
    for text in texts[:2]:
        assert (await log.append(case_id, text=text)).status_code == 201
    first = await _checkpoint(log)
    for text in texts[2:]:
        assert (await log.append(case_id, text=text)).status_code == 201
    second = await _checkpoint(log)
    assert second["tree_size"] > first["tree_size"]

    source_url = consent.runtime.settings.nats_url
    backup_file = tmp_path / "stafett.backup"
    made = await _cli("backup", str(backup_file), env={"STAFETT_NATS_URL": source_url})
    assert made.returncode == 0, made.stdout + made.stderr
    assert oct(backup_file.stat().st_mode & 0o777) == "0o600"
    again = await _cli("backup", str(backup_file), env={"STAFETT_NATS_URL": source_url})
    assert again.returncode == 2  # never overwrites a backup

    kek = load_or_create_kek(tmp_path / "keys" / "kek")
    owners = await _owners(log)
    source = await nats.connect(source_url)
    try:
        with start_nats(prefer_docker=False) as fresh:
            env = {"STAFETT_NATS_URL": fresh.url}
            restored = await _cli("restore", str(backup_file), env=env)
            assert restored.returncode == 0, restored.stdout + restored.stderr
            # Restoring over streams that exist changes nothing and says so.
            twice = await _cli("restore", str(backup_file), env=env)
            assert twice.returncode == 1, twice.stdout + twice.stderr
            assert "exists; nothing was restored" in twice.stderr
            target = await nats.connect(fresh.url)
            try:
                # Every message as it was: sequence, subject, bytes, headers, stored time.
                for stream in PREFIXES:
                    before = [_stored(c) for c in await _messages(source, stream)]
                    after = [_stored(c) for c in await _messages(target, stream)]
                    assert after == before, stream
                    assert before, stream

                # The project's verifier, over an export of the restored stream, against
                # every checkpoint the restored CHECKPOINTS holds.
                export = tmp_path / "restored.jsonl"
                exported = await _cli("audit", "export", str(export), env=env)
                assert exported.returncode == 0, exported.stderr
                notes = [
                    c.data.decode()
                    for c in await _messages(target, "CHECKPOINTS")
                    if c.subject == "stafett.checkpoints.tree"
                ]
                assert [n for n in notes if n in (first["note"], second["note"])] == [
                    first["note"],
                    second["note"],
                ]
                key_name, public_key = parse_vkey(second["vkey"])
                for note in notes:
                    with export.open(encoding="utf-8") as lines:
                        report = verify_export(lines, note, key_name, public_key)
                    assert report.ok, describe(report, key_name)
                    assert report.chains >= 1
                note_file = tmp_path / "checkpoint.txt"
                note_file.write_text(second["note"], encoding="utf-8")
                verified = await _cli(
                    "audit", "verify", str(export), str(note_file), second["vkey"], env=env
                )
                assert verified.returncode == 0, verified.stdout + verified.stderr

                # Encrypted fields open with the restored key bucket and the KEK.
                keys = KeyStore(target.jetstream(), {"kek-1": kek}, "kek-1")
                await keys.ensure_bucket()
                opened = await _entry_texts(target, FieldCipher(keys), owners, case_id)
                assert opened == texts
                # ... and with no other KEK.
                strangers = KeyStore(target.jetstream(), {"kek-1": generate_kek()}, "kek-1")
                await strangers.ensure_bucket()
                with pytest.raises(Exception, match="integrity"):
                    await _entry_texts(target, FieldCipher(strangers), owners, case_id)
            finally:
                await target.close()
    finally:
        await source.close()


@SQLITE
async def test_a_damaged_backup_is_refused_and_restores_nothing(
    consent: ConsentHarness, tmp_path: Path
) -> None:
    assert (await consent.load_region()).status_code in (200, 204)
    backup_file = tmp_path / "stafett.backup"
    source_url = consent.runtime.settings.nats_url
    only = ["--stream", "EVENTS", "--stream", "KV_STAFETT_KEYS"]  # no log service here
    made = await _cli("backup", str(backup_file), *only, env={"STAFETT_NATS_URL": source_url})
    assert made.returncode == 0, made.stdout + made.stderr
    raw = bytearray(backup_file.read_bytes())
    # Flip a byte inside the last snapshot: the first, whole one is not restored either.
    with tarfile.open(backup_file) as archive:
        last = archive.getmember("KV_STAFETT_KEYS/stream.tar.s2")
    middle = last.offset_data + last.size // 2
    raw[middle] ^= 0xFF
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(bytes(raw))
    with start_nats(prefer_docker=False) as fresh:
        refused = await _cli("restore", str(damaged), env={"STAFETT_NATS_URL": fresh.url})
        assert refused.returncode == 1
        assert "SHA-256" in refused.stderr + refused.stdout
        target = await nats.connect(fresh.url)
        try:
            assert await target.jetstream().streams_info() == []
        finally:
            await target.close()
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hei")
    refused = await _cli("restore", str(not_a_backup), env={"STAFETT_NATS_URL": source_url})
    assert refused.returncode == 1


@SQLITE
async def test_the_kek_is_changed_without_changing_an_event(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    tmp_path: Path,
) -> None:
    log = log_service
    case_id, _guardians = await log.open_case(consent, case_service)
    texts = ["Første samtale.", "Andre samtale."]
    for text in texts:
        assert (await log.append(case_id, text=text)).status_code == 201
    url = consent.runtime.settings.nats_url
    old = load_or_create_kek(tmp_path / "keys" / "kek")
    new = generate_kek()
    b64 = base64.b64encode
    owners = await _owners(log)
    nc = await nats.connect(url)
    try:
        events_before = [_stored(c) for c in await _messages(nc, "EVENTS")]
        index_key = await _cli(
            "keys",
            "blind-index-key",
            env={"STAFETT_KEK": b64(old).decode(), "STAFETT_NATS_URL": url},
        )
        assert index_key.returncode == 0, index_key.stderr
        index_b64 = index_key.stdout.strip()
        # The index key printed is the one the running services index with.
        assert BlindIndex.with_key(base64.b64decode(index_b64))(
            "12345678901", context="national_id"
        ) == BlindIndex(old)("12345678901", context="national_id")

        # Step 1: every instance knows the coming key, the old one still wraps.
        # Step 2: the new key wraps; the old one still unwraps.
        during = {
            "STAFETT_NATS_URL": url,
            "STAFETT_KEK": b64(new).decode(),
            "STAFETT_KEK_ID": "kek-2",
            "STAFETT_OTHER_KEKS": json.dumps({"kek-1": b64(old).decode()}),
            "STAFETT_BLIND_INDEX_KEY": index_b64,
        }
        status = await _cli("keys", "status", env=during)
        assert status.returncode == 0, status.stderr
        assert "kek-1: " in status.stdout and "kek-2" not in status.stdout
        ring = KeyStore(nc.jetstream(), {"kek-2": new, "kek-1": old}, "kek-2")
        await ring.ensure_bucket()
        wrapped_before = await ring.wrapped_by()
        assert set(wrapped_before) == {"kek-1"}
        # A key made during the change is wrapped by the new KEK at once.
        await FieldCipher(ring).encrypt("child-made-during", "x", aggregate="a", context="c")
        # A shredded key stays shredded.
        await ring.shred("child-made-during")

        # Step 3: rewrap (twice: the second run finds nothing to do).
        first_run = await _cli("keys", "rewrap", env=during)
        assert first_run.returncode == 0, first_run.stderr
        assert f"{wrapped_before['kek-1']} pakket inn på nytt" in first_run.stdout
        assert "1 slettet" in first_run.stdout
        second_run = await _cli("keys", "rewrap", env=during)
        assert "0 pakket inn på nytt" in second_run.stdout

        # Step 4: the old KEK is gone; every data key opens with the new one alone.
        only_new = KeyStore(nc.jetstream(), {"kek-2": new}, "kek-2")
        await only_new.ensure_bucket()
        assert await only_new.wrapped_by() == {
            "kek-2": wrapped_before["kek-1"],
            "shredded": 1,
        }
        assert await _entry_texts(nc, FieldCipher(only_new), owners, case_id) == texts
        only_old = KeyStore(nc.jetstream(), {"kek-1": old}, "kek-1")
        await only_old.ensure_bucket()
        with pytest.raises(Exception, match="kek-2"):
            await _entry_texts(nc, FieldCipher(only_old), owners, case_id)
        # Not one event changed.
        assert [_stored(c) for c in await _messages(nc, "EVENTS")] == events_before
        after = {
            "STAFETT_NATS_URL": url,
            "STAFETT_KEK": b64(new).decode(),
            "STAFETT_KEK_ID": "kek-2",
            "STAFETT_BLIND_INDEX_KEY": index_b64,
        }
        status = await _cli("keys", "status", env=after)
        assert f"kek-2: {wrapped_before['kek-1']} (gjeldende)" in status.stdout
        fingerprint = BlindIndex(old).fingerprint()
        assert f"blindindeks: {fingerprint}" in status.stdout
    finally:
        await nc.close()


@SQLITE
async def test_a_new_signing_key_signs_from_now_on_and_old_checkpoints_keep_their_key(
    consent: ConsentHarness, case_service: CaseHarness, tmp_path: Path
) -> None:
    url = consent.runtime.settings.nats_url
    database = f"sqlite:///{tmp_path / 'log.db'}"
    async with running_log(url, database, tmp_path) as log:
        await log.runtime.projector.catch_up()
        case_id, _guardians = await log.open_case(consent, case_service)
        assert (await log.append(case_id, text="Før nøkkelbyttet.")).status_code == 201
        old = await _checkpoint(log)

    new_key = tmp_path / "checkpoint-2.pem"
    load_or_create_signing_key(new_key)
    async with running_log(url, database, tmp_path, signing_key_file=new_key) as log:
        await log.runtime.projector.catch_up()
        # The latest checkpoint is still the old key's, and says so.
        latest = await log.client.get("/api/v1/checkpoints/latest", headers=log.auth("admin"))
        assert latest.status_code == 200
        assert (latest.json()["key_id"], latest.json()["vkey"]) == (old["key_id"], old["vkey"])
        assert (await log.append(case_id, text="Etter nøkkelbyttet.")).status_code == 201
        new = await _checkpoint(log)
        assert new["key_id"] != old["key_id"] and new["vkey"] != old["vkey"]
        consistency = await log.client.get(
            f"/api/v1/proofs/consistency?first={old['tree_size']}&second={new['tree_size']}",
            headers=log.auth("admin"),
        )
        assert consistency.status_code == 200

    old_name, old_public = parse_vkey(old["vkey"])
    new_name, new_public = parse_vkey(new["vkey"])
    first = verify_checkpoint(old["note"], old_name, old_public)
    second = verify_checkpoint(new["note"], new_name, new_public)
    with pytest.raises(CheckpointError):
        verify_checkpoint(old["note"], new_name, new_public)
    with pytest.raises(CheckpointError):
        verify_checkpoint(new["note"], old_name, old_public)
    proof = [base64.b64decode(h) for h in consistency.json()["proof"]]
    assert merkle.verify_consistency(
        first.tree_size, second.tree_size, first.root_hash, second.root_hash, proof
    )

    # The auditors' list: each key with its public key and the checkpoints it signed.
    listed = await _cli("keys", "checkpoint-keys", "--json", env={"STAFETT_NATS_URL": url})
    assert listed.returncode == 0, listed.stderr
    periods = json.loads(listed.stdout)
    assert [(p["key_id"], p["vkey"]) for p in periods] == [
        (old["key_id"], old["vkey"]),
        (new["key_id"], new["vkey"]),
    ]
    assert (periods[0]["first_tree_size"], periods[0]["last_tree_size"]) == (
        old["tree_size"],
        old["tree_size"],
    )
    assert periods[1]["first_tree_size"] == new["tree_size"]
    assert [p["checkpoints"] for p in periods] == [1, 1]
    assert periods[0]["last_time"] <= periods[1]["first_time"]


async def test_a_read_model_ahead_of_a_restored_stream_stops_the_service_until_rebuilt(
    private_nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> None:
    """A stream restored from an older backup ends before what the read model applied: the
    service refuses to start rather than skip the events that take those sequences again."""
    url = private_nats_server.url
    database = database_url  # SQLite and PostgreSQL: the position is in the read model
    async with fresh_consent(url, database, tmp_path) as consent:
        await consent.register_child(12, [("Mor", True)])
        position = await consent.runtime.projector.position()
    assert position > 1
    # The stream as an older backup had it: the region document only.
    async with fresh_consent(url, f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "o"):
        pass
    nc = await nats.connect(url)
    try:
        last = await EventStore(nc).last_seq()
    finally:
        await nc.close()
    assert last < position
    with pytest.raises(ProjectionAhead) as refused:
        async with running_consent(url, database, tmp_path):
            pass
    assert (refused.value.position, refused.value.last_seq) == (position, last)

    rebuilt = await _cli(
        *("projections", "rebuild", "consent"),
        env={
            "STAFETT_NATS_URL": url,
            "STAFETT_DATA_DIR": str(tmp_path),
            "STAFETT_CONSENT_DATABASE_URL": database,
        },
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    async with running_consent(url, database, tmp_path) as consent:
        assert await consent.runtime.projector.position() == last
