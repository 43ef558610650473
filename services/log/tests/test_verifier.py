"""The offline verifier: an export, a signed checkpoint and a public key, nothing else.

The history is made up: three cases' stafettlogger (``stafett.ev.log.<case>``) interleaved
with case and access events, as the ``EVENTS`` stream would hold them. The chain hashes are
computed here from the rule in DESIGN.md, not by the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from stafett_log import fastjson, verifier
from stafett_log.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint, vkey
from stafett_log.merkle import consistency_proof, leaf_hash, root, verify_consistency
from stafett_log.verifier import Report, main, verify_export
from stafett_shared.canonical import canonical_json

ORIGIN = "stafett.example/vestfold-og-telemark"
KEY_NAME = "stafett.example/vestfold-og-telemark"
CASES = ["01JCASE0000000000000000001", "01JCASE0000000000000000002", "01JCASE0000000000000000003"]
ZEROS = "0" * 64

Message = tuple[str, bytes]  # (NATS subject, stored bytes)


def canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(prevhash: str, event: dict[str, Any]) -> str:
    without_hash = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(bytes.fromhex(prevhash) + canonical(without_hash)).hexdigest()


def event(case: str, n: int, context: str, text: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"01JEVENT{n:018d}",
        "source": f"stafett/{context}",
        "type": f"no.stafett.{context}.entry_added.v1",
        "subject": case,
        "time": f"2025-03-{1 + n % 28:02d}T09:{n % 60:02d}:00Z",
        "datacontenttype": "application/json",
        "tenant": "4010",
        "actor": "ann-kristin-allum",
        "data": {"text": f"enc:v1:{text}", "seq": n},
    }


def history(count: int = 30) -> list[Message]:
    """``count`` messages: every fourth one is a case or access event, the rest log entries."""
    heads: dict[str, str] = {}
    messages: list[Message] = []
    for n in range(count):
        case = CASES[n % 3]
        if n % 4 == 3:
            context = "case" if n % 8 == 3 else "access"
            body = [event(case, n, context, "sak")]
        else:
            # Some commits hold two entries: both go into the chain, in order.
            body = []
            for part in range(2 if n % 5 == 0 else 1):
                entry = event(case, n * 10 + part, "log", f"innføring {n}.{part} – Æøå")
                entry["prevhash"] = heads.get(case, ZEROS)
                entry["hash"] = chain_hash(entry["prevhash"], entry)
                heads[case] = entry["hash"]
                body.append(entry)
            context = "log"
        messages.append((f"stafett.ev.{context}.{case}", canonical(body)))
    return messages


def export(messages: Sequence[Message], *, spaced: bool = False) -> list[str]:
    """Export lines as ``stafett audit export`` writes them (sorted keys, no spaces), or
    ``spaced`` as it wrote them before (still valid)."""
    separators = (", ", ": ") if spaced else (",", ":")
    return [
        json.dumps(
            {
                "seq": seq,
                "subject": subject,
                "time": f"2025-03-01T10:00:{seq % 60:02d}.000000Z",
                "data": base64.b64encode(data).decode(),
            },
            sort_keys=not spaced,
            separators=separators,
        )
        + "\n"
        for seq, (subject, data) in enumerate(messages, start=1)
    ]


def checkpoint_note(messages: Sequence[Message], size: int, key: Ed25519PrivateKey) -> str:
    tree_root = root([leaf_hash(data) for _, data in messages[:size]])
    return sign_checkpoint(Checkpoint(ORIGIN, size, tree_root), KEY_NAME, key)


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def flip(data: bytes, position: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[position] ^= mask
    return bytes(changed)


def replace_data(messages: list[Message], seq: int, data: bytes) -> list[Message]:
    changed = list(messages)
    changed[seq - 1] = (changed[seq - 1][0], data)
    return changed


def codes(report: Report) -> list[str]:
    return [problem.code for problem in report.problems]


@pytest.fixture(autouse=True, params=["orjson", "standard library"])
def json_library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with orjson (the accelerated path) and without it: same results."""
    if request.param == "standard library":
        monkeypatch.setattr(fastjson, "orjson", None)
    else:
        assert fastjson.orjson is not None
    return str(request.param)


@pytest.fixture(autouse=True, params=[512, 4, 3], ids=lambda n: f"segments of {n}")
def segment_lines(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every test runs with the export in one segment and in many (of a power of two lines,
    appended to the tree as subtrees, and of three, leaf by leaf): same results."""
    monkeypatch.setattr(verifier, "SEGMENT_LINES", request.param)
    return int(request.param)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return history(30)


def test_the_synthetic_history_is_what_the_tests_claim(messages: list[Message]) -> None:
    subjects = {subject for subject, _ in messages}
    assert len(messages) == 30
    assert {s for s in subjects if s.startswith("stafett.ev.log.")} == {
        f"stafett.ev.log.{case}" for case in CASES
    }
    assert any(s.startswith("stafett.ev.case.") for s in subjects)
    assert any(s.startswith("stafett.ev.access.") for s in subjects)


def test_an_intact_export_verifies(key: Ed25519PrivateKey, messages: list[Message]) -> None:
    report = verify_export(
        export(messages), checkpoint_note(messages, 30, key), KEY_NAME, public(key)
    )
    assert report.ok, report.problems
    assert report.seq is None
    assert report.reason == "ok"
    assert report.messages == 30
    assert report.chains == 3
    assert report.events == sum(len(json.loads(d)) for s, d in messages if ".log." in s)
    assert report.checkpoint is not None
    assert report.checkpoint.tree_size == 30


def test_an_export_longer_than_the_checkpoint_verifies_up_to_it(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    for size in (0, 1, 17, 29):
        report = verify_export(
            export(messages), checkpoint_note(messages, size, key), KEY_NAME, public(key)
        )
        assert report.ok, (size, report.problems)
        assert report.messages == 30


def test_one_flipped_byte_in_a_log_message_is_named_by_its_seq(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    note = checkpoint_note(messages, 30, key)
    seq = 11  # a commit of two entries to the second case's log
    subject, data = messages[seq - 1]
    assert subject.startswith("stafett.ev.log.")
    for position in range(len(data)):
        for mask in (0x01, 0x20):
            tampered = replace_data(messages, seq, flip(data, position, mask))
            report = verify_export(export(tampered), note, KEY_NAME, public(key))
            assert not report.ok
            assert report.seq == seq, (position, mask, report.problems)
            assert report.reason.startswith(f"seq {seq}: ")
            assert codes(report)[-1] == "root"


def test_a_flipped_byte_that_breaks_the_json_of_another_message_is_named(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    seq = 4
    subject, data = messages[seq - 1]
    assert not subject.startswith("stafett.ev.log.")
    tampered = replace_data(messages, seq, flip(data, 0))  # '[' becomes 'Z'
    report = verify_export(
        export(tampered), checkpoint_note(messages, 30, key), KEY_NAME, public(key)
    )
    assert report.seq == seq
    assert codes(report) == ["not_json", "root"]


def test_a_change_that_only_the_root_sees_is_reported_without_a_seq(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    seq = 4
    _, data = messages[seq - 1]
    tampered = replace_data(messages, seq, data.replace(b"enc:v1:sak", b"enc:v1:sal"))
    report = verify_export(
        export(tampered), checkpoint_note(messages, 30, key), KEY_NAME, public(key)
    )
    assert not report.ok
    assert report.seq is None
    assert codes(report) == ["root"]
    assert "Merkle root" in report.reason


def test_a_broken_chain_link_is_named_even_when_the_checkpoint_covers_it(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    # The entry is rewritten to hang off a forged prevhash, with a hash that fits its new
    # content, and a checkpoint is signed over the result: only the chain can tell.
    seq = 14
    subject, data = messages[seq - 1]
    assert subject.startswith("stafett.ev.log.")
    [entry] = json.loads(data)
    entry["prevhash"] = hashlib.sha256(b"en annen fortid").hexdigest()
    entry["hash"] = chain_hash(entry["prevhash"], entry)
    tampered = replace_data(messages, seq, canonical([entry]))
    report = verify_export(
        export(tampered), checkpoint_note(tampered, 30, key), KEY_NAME, public(key)
    )
    assert report.seq == seq
    # The next entry of the same case still names the old hash: its link breaks too.
    assert codes(report) == ["chain_link", "chain_link"]
    assert report.problems[1].seq == seq + 3


def test_a_deleted_log_message_breaks_the_chain_of_its_case(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    deleted = [*messages[:12], *messages[13:]]  # seq 13 was an entry in the first case's log
    report = verify_export(
        export(deleted), checkpoint_note(deleted, 29, key), KEY_NAME, public(key)
    )
    assert report.seq == 19 - 1  # the case's next entry, renumbered
    assert codes(report) == ["chain_link"]


def test_a_chain_that_does_not_start_from_zeros_is_named(key: Ed25519PrivateKey) -> None:
    messages = history(6)
    _, data = messages[0]
    [first, second] = json.loads(data)
    first["prevhash"] = "1" * 64
    first["hash"] = chain_hash(first["prevhash"], first)
    second["prevhash"] = first["hash"]
    second["hash"] = chain_hash(second["prevhash"], second)
    tampered = replace_data(messages, 1, canonical([first, second]))
    report = verify_export(
        export(tampered), checkpoint_note(tampered, 6, key), KEY_NAME, public(key)
    )
    assert (report.seq, codes(report)[0]) == (1, "chain_start")


def test_a_log_event_without_hashes_is_named(key: Ed25519PrivateKey) -> None:
    messages = history(6)
    [entry] = json.loads(messages[1][1])
    del entry["hash"]
    tampered = replace_data(messages, 2, canonical([entry]))
    report = verify_export(
        export(tampered), checkpoint_note(tampered, 6, key), KEY_NAME, public(key)
    )
    assert (report.seq, codes(report)) == (2, ["chain_fields"])


def test_a_checkpoint_signed_by_another_key_fails_the_signature(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    forged = checkpoint_note(messages, 30, Ed25519PrivateKey.generate())
    report = verify_export(export(messages), forged, KEY_NAME, public(key))
    assert not report.ok
    assert report.seq is None
    assert codes(report) == ["signature"]


def test_a_checkpoint_with_a_changed_root_fails_the_signature_and_the_root(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    note = checkpoint_note(messages, 30, key)
    real = base64.b64encode(root([leaf_hash(d) for _, d in messages])).decode()
    other = base64.b64encode(hashlib.sha256(b"en annen rot").digest()).decode()
    report = verify_export(export(messages), note.replace(real, other), KEY_NAME, public(key))
    assert codes(report) == ["signature", "root"]


def test_a_validly_signed_checkpoint_over_another_history_fails_the_root(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    other = history(31)[1:]
    report = verify_export(export(messages), checkpoint_note(other, 30, key), KEY_NAME, public(key))
    assert codes(report) == ["root"]


def test_a_malformed_checkpoint_is_reported(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    note = checkpoint_note(messages, 30, key).replace("\n\n", "\n")
    report = verify_export(export(messages), note, KEY_NAME, public(key))
    assert codes(report) == ["checkpoint_format"]
    assert report.checkpoint is None


def test_a_gap_in_the_sequence_numbers_is_named(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    lines = export(messages)
    del lines[9]
    report = verify_export(lines, checkpoint_note(messages, 30, key), KEY_NAME, public(key))
    assert (report.seq, codes(report)) == (11, ["sequence"])


def test_an_export_shorter_than_the_checkpoint_fails(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    report = verify_export(
        export(messages)[:20], checkpoint_note(messages, 30, key), KEY_NAME, public(key)
    )
    assert codes(report) == ["export_short"]
    assert report.messages == 20


def test_an_unreadable_export_line_is_named_by_its_position(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    lines = export(messages)
    lines[4] = '{"seq": 5, "subject": "stafett.ev.log.x", "time": "t", "data": "***"}\n'
    report = verify_export(lines, checkpoint_note(messages, 30, key), KEY_NAME, public(key))
    assert (report.seq, codes(report)) == (5, ["export_format"])


def test_blank_lines_between_records_are_skipped(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    lines = export(messages)
    for position in (25, 17, 9, 8, 3, 0):
        lines.insert(position, "\n" if position % 2 else "   \n")
    for size in (30, 13, 8):
        report = verify_export(lines, checkpoint_note(messages, size, key), KEY_NAME, public(key))
        assert report.ok, (size, report.problems)
        assert report.messages == 30


def tampered_exports(messages: list[Message]) -> dict[str, list[str]]:
    lines = export(messages)
    _subject, data = messages[10]
    unreadable = list(lines)
    unreadable[21] = '{"seq": 22, "subject": "x", "time": "t", "data": "***"}\n'
    return {
        "intact": lines,
        "flipped byte": export(replace_data(messages, 11, flip(data, 40))),
        "deleted message": export([*messages[:12], *messages[13:]]),
        "gap": [*lines[:17], *lines[18:]],
        "unreadable line": unreadable,
        "not json": export(replace_data(messages, 23, b"ikke json")),
    }


@pytest.mark.parametrize("segment_lines", [4], indirect=True)
def test_worker_processes_give_the_same_report_as_one_process(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    note = checkpoint_note(messages, 30, key)
    for name, lines in tampered_exports(messages).items():
        alone = verify_export(lines, note, KEY_NAME, public(key))
        shared = verify_export(lines, note, KEY_NAME, public(key), workers=2)
        assert shared == alone, name
        assert alone.ok == (name == "intact"), name


HISTORY = history(40)
SIGNER = Ed25519PrivateKey.generate()
NOTE_40 = checkpoint_note(HISTORY, 40, SIGNER)
Mutation = tuple[str, int, int]


def mutated(mutations: Sequence[Mutation]) -> list[str]:
    """The export of the 40-message history after flips, deletions, swaps, blank lines and
    unreadable lines, in order."""
    messages = list(HISTORY)
    for kind, where, how in mutations:
        if kind == "flip":
            seq = where % len(messages) + 1
            data = messages[seq - 1][1]
            messages = replace_data(messages, seq, flip(data, how % len(data), 1 << (how % 7)))
    lines = export(messages)
    for kind, where, _how in mutations:
        at = where % len(lines)
        if kind == "delete":
            del lines[at]
        elif kind == "swap" and at + 1 < len(lines):
            lines[at], lines[at + 1] = lines[at + 1], lines[at]
        elif kind == "blank":
            lines.insert(at, "\n")
        elif kind == "garbage":
            lines[at] = "ikke en post\n"
    return lines


@pytest.mark.parametrize("segment_lines", [512], indirect=True)
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "delete", "swap", "blank", "garbage"]),
            st.integers(0, 200),
            st.integers(0, 5000),
        ),
        max_size=3,
    )
)
def test_any_segment_size_gives_the_same_report(mutations: list[Mutation]) -> None:
    lines = mutated(mutations)
    whole = verify_export(lines, NOTE_40, KEY_NAME, public(SIGNER))
    for size in (1, 2, 3, 5, 8):
        verifier.SEGMENT_LINES = size
        try:
            assert verify_export(lines, NOTE_40, KEY_NAME, public(SIGNER)) == whole, size
        finally:
            verifier.SEGMENT_LINES = 512
    # Every change but blank lines is found: the root covers every byte of every message.
    assert whole.ok == ([line for line in lines if line.strip()] == export(HISTORY))


def test_checkpoints_before_and_after_more_messages_are_consistent(
    key: Ed25519PrivateKey,
) -> None:
    before_messages = history(20)
    after_messages = history(30)
    assert after_messages[:20] == before_messages
    before = checkpoint_note(before_messages, 20, key)
    after = checkpoint_note(after_messages, 30, key)
    assert verify_export(export(after_messages), before, KEY_NAME, public(key)).ok
    assert verify_export(export(after_messages), after, KEY_NAME, public(key)).ok

    old = verify_checkpoint(before, KEY_NAME, public(key))
    new = verify_checkpoint(after, KEY_NAME, public(key))
    leaves = [leaf_hash(data) for _, data in after_messages]
    proof = consistency_proof(old.tree_size, leaves)
    assert verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    # A rewritten past is not consistent with the old checkpoint.
    rewritten = [leaf_hash(b"omskrevet"), *leaves[1:]]
    forged_root = root(rewritten)
    forged_proof = consistency_proof(old.tree_size, rewritten)
    assert not verify_consistency(20, 30, old.root_hash, forged_root, forged_proof)


def test_the_chain_hash_uses_the_same_canonical_json_as_the_envelope() -> None:
    sample = event(CASES[0], 1, "log", "Ærlig talt – «sitat» 😀")
    sample["prevhash"] = ZEROS
    assert canonical(sample) == canonical_json(sample)


def write_files(tmp_path: Path, lines: list[str], note: str) -> tuple[str, str]:
    export_path = tmp_path / "events.jsonl"
    export_path.write_text("".join(lines), encoding="utf-8")
    note_path = tmp_path / "checkpoint.txt"
    note_path.write_text(note, encoding="utf-8")
    return str(export_path), str(note_path)


def test_the_command_says_ok_in_norwegian_and_exits_0(
    key: Ed25519PrivateKey,
    messages: list[Message],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export_path, note_path = write_files(
        tmp_path, export(messages), checkpoint_note(messages, 30, key)
    )
    assert main([export_path, note_path, vkey(KEY_NAME, public(key))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: eksporten stemmer med sjekkpunktet")
    assert "30 meldinger" in out


def test_the_command_names_the_broken_seq_in_norwegian_and_exits_1(
    key: Ed25519PrivateKey,
    messages: list[Message],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tampered = replace_data(messages, 11, flip(messages[10][1], 40))
    export_path, note_path = write_files(
        tmp_path, export(tampered), checkpoint_note(messages, 30, key)
    )
    assert main([export_path, note_path, vkey(KEY_NAME, public(key))]) == 1
    first, *rest = capsys.readouterr().out.splitlines()
    assert first.startswith("FEIL: sekvens 11: ")
    assert first.endswith("(og 1 feil til)")
    assert rest == ["  Merkle-roten over de første 30 meldingene stemmer ikke med sjekkpunktet"]


def test_the_command_refuses_a_bad_verifier_key(
    key: Ed25519PrivateKey,
    messages: list[Message],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export_path, note_path = write_files(
        tmp_path, export(messages), checkpoint_note(messages, 30, key)
    )
    assert main([export_path, note_path, "ikke+en+nøkkel"]) == 1
    assert capsys.readouterr().out.startswith("FEIL: verifiseringsnøkkelen er ugyldig")


def test_the_verifier_runs_as_a_module_without_the_service_stack(
    key: Ed25519PrivateKey, messages: list[Message], tmp_path: Path
) -> None:
    export_path, note_path = write_files(
        tmp_path, export(messages), checkpoint_note(messages, 30, key)
    )
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['verifier', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('stafett_log.verifier', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    heavy = {'pydantic', 'nats', 'fastapi', 'sqlalchemy', 'stafett_shared'}\n"
        "    loaded = sorted(heavy & {name.split('.')[0] for name in sys.modules})\n"
        "    print('loaded:', loaded)\n"
        "    raise\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, export_path, note_path, vkey(KEY_NAME, public(key))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")
    assert "loaded: []" in result.stdout


@pytest.mark.parametrize("segment_lines", [512], indirect=True)
@pytest.mark.parametrize("json_library", ["orjson"], indirect=True)
def test_the_command_with_worker_processes_names_the_same_seq(
    key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    messages = history(1300)  # three segments of 512 lines
    tampered = replace_data(messages, 1201, flip(messages[1200][1], 40))
    export_path, note_path = write_files(
        tmp_path, export(tampered), checkpoint_note(messages, 1300, key)
    )
    for workers in ("1", "2"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "stafett_log.verifier",
                export_path,
                note_path,
                vkey(KEY_NAME, public(key)),
                "--workers",
                workers,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert result.stdout.startswith("FEIL: sekvens 1201: "), (workers, result.stdout)


def test_the_command_refuses_fewer_than_one_worker(
    key: Ed25519PrivateKey, messages: list[Message], tmp_path: Path
) -> None:
    export_path, note_path = write_files(
        tmp_path, export(messages), checkpoint_note(messages, 30, key)
    )
    with pytest.raises(SystemExit) as refused:
        main([export_path, note_path, vkey(KEY_NAME, public(key)), "--workers", "0"])
    assert refused.value.code == 2


def test_the_services_chain_check_names_the_first_broken_link() -> None:
    from stafett_log.chain import GENESIS, chain_hash, verify_chain

    head = GENESIS
    links = []
    for i in range(5):
        event = {"id": f"e{i}", "subject": "case", "data": {"n": i}, "prevhash": head}
        event["hash"] = chain_hash(head, event)
        head = str(event["hash"])
        links.append((10 + i, event))
    assert verify_chain(links).ok
    tampered = [(seq, dict(event)) for seq, event in links]
    tampered[2][1]["data"] = {"n": 99}
    report = verify_chain(tampered)
    assert (report.ok, report.broken_seq, report.entries) == (False, 12, 2)


def test_an_export_in_the_earlier_spaced_form_verifies_and_names_a_flipped_byte(
    key: Ed25519PrivateKey, messages: list[Message]
) -> None:
    note = checkpoint_note(messages, 30, key)
    assert verify_export(export(messages, spaced=True), note, KEY_NAME, public(key)).ok
    seq = 6
    changed = replace_data(messages, seq, flip(messages[seq - 1][1], 40))
    report = verify_export(export(changed, spaced=True), note, KEY_NAME, public(key))
    assert report.seq == seq


def test_the_services_check_of_stored_messages_names_the_first_broken_link() -> None:
    from stafett_log.chain import verify_stored

    case = CASES[0]
    stored = [(seq, data) for seq, (subject, data) in enumerate(history(30), start=1)]
    own = [
        (seq, data)
        for seq, data in stored
        if any(e.get("subject") == case and "hash" in e for e in json.loads(data))
    ]
    report = verify_stored(own)
    assert report.ok
    assert report.entries == sum(len(json.loads(data)) for _seq, data in own)
    # A float where an integer was: no canonical form; orjson would write it otherwise.
    seq, data = own[3]
    events = json.loads(data)
    events[0]["data"]["seq"] = 1e16
    tampered = [*own[:3], (seq, canonical(events)), *own[4:]]
    report = verify_stored(tampered)
    assert (report.ok, report.broken_seq) == (False, seq)
    # A message that is not a batch of events.
    report = verify_stored([*own[:2], (own[2][0], b"[1,2]"), *own[3:]])
    assert (report.ok, report.broken_seq, report.reason) == (
        False,
        own[2][0],
        "the message is not a batch of events",
    )
