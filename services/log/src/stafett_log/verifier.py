"""The offline auditor's verifier: an export of ``EVENTS``, a signed checkpoint, a public key.

Nothing else is trusted and nothing else is needed: this module, :mod:`stafett_log.merkle`,
:mod:`stafett_log.checkpoint` and :mod:`stafett_log.fastjson` use only the standard library
and ``cryptography``, so an auditor can run them on any machine. With orjson installed they
verify several times faster, with the same result (see :mod:`stafett_log.fastjson`)::

    python -m stafett_log.verifier events.jsonl checkpoint.txt 'stafett.example/log+…'

The export is JSON Lines, one stored message per line, in stream order::

    {"data":"<base64 of the bytes>","seq":1,"subject":"stafett.ev.log.<case>","time":"…"}

(``stafett audit export`` writes the keys sorted and without spaces; any JSON object with
these four members is read.)

What is checked:

* the sequence numbers run 1, 2, 3, … without a gap;
* every message is a JSON CloudEvents batch (an array of event objects);
* the Merkle root (RFC 9162) of the first ``tree size`` messages equals the checkpoint's,
  and the checkpoint is signed by the given key; messages after the checkpoint's tree size
  are checked for everything but the root;
* for every ``stafett.ev.log.*`` subject, the hash chain of its events in stream order:
  the first ``prevhash`` is 64 zeros, each ``hash`` is hex SHA-256(prevhash bytes ‖
  canonical JSON of the event without ``hash``) and each ``prevhash`` is the previous
  event's ``hash``.

The root covers every byte, so any change to a message makes it differ, but a root cannot
say *where*; the per-message checks can, for a message that no longer parses or whose chain
breaks. The report names the first located problem by its sequence number and then the
problems that have no place (the signature, the root).
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stafett_log.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_signed_note,
    parse_vkey,
    verify_checkpoint,
)
from stafett_log.fastjson import dumps_parsed, loads_plain, parse_canonical
from stafett_log.merkle import EMPTY_ROOT, CompactRange, leaf_hash

__all__ = [
    "GENESIS",
    "LOG_SUBJECT_PREFIX",
    "MAX_PROBLEMS",
    "Problem",
    "ProblemCode",
    "Report",
    "describe",
    "event_hash",
    "main",
    "verify_export",
]

LOG_SUBJECT_PREFIX = "stafett.ev.log."
GENESIS = "0" * 64
"""The ``prevhash`` of the first event of every chain."""

MAX_PROBLEMS = 1000
"""A report keeps this many located problems and counts the rest."""

ProblemCode = Literal[
    "checkpoint_format",
    "signature",
    "export_format",
    "sequence",
    "not_json",
    "not_batch",
    "chain_fields",
    "chain_start",
    "chain_link",
    "event_hash",
    "export_short",
    "root",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify, at a sequence number when it can be located."""

    code: ProblemCode
    detail: str
    seq: int | None = None

    def __str__(self) -> str:
        return self.detail if self.seq is None else f"seq {self.seq}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """The result of :func:`verify_export`: ok, or the problems in order, located ones first."""

    checkpoint: Checkpoint | None
    messages: int
    """Export records read (up to the first one that could not be read)."""
    chains: int
    """``stafett.ev.log.*`` subjects whose chains were followed."""
    events: int
    """Chained events checked."""
    problems: tuple[Problem, ...] = ()
    omitted: int = 0
    """Located problems found beyond :data:`MAX_PROBLEMS` and not listed."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def seq(self) -> int | None:
        """The sequence number of the first problem, when it has one."""
        return self.problems[0].seq if self.problems else None

    @property
    def reason(self) -> str:
        return str(self.problems[0]) if self.problems else "ok"


class _ExportError(ValueError):
    pass


def _read_record(line: str) -> tuple[int, str, bytes]:
    fast, record = loads_plain(line)
    # orjson reads what the standard library reads, but an integer beyond 64 bits as a
    # float: where that could matter (the seq), read the line as the standard library does.
    if not fast or (isinstance(record, dict) and isinstance(record.get("seq"), float)):
        try:
            record = json.loads(line)
        except ValueError:
            raise _ExportError("the line is not JSON") from None
    if not isinstance(record, dict):
        raise _ExportError("the line is not a JSON object")
    seq, subject, time, data = (record.get(k) for k in ("seq", "subject", "time", "data"))
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise _ExportError("the record has no integer seq")
    if not isinstance(subject, str) or not isinstance(time, str) or not isinstance(data, str):
        raise _ExportError("the record lacks a subject, time or data string")
    try:
        # What base64.b64decode(data, validate=True) does, without its wrapping.
        body = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _ExportError("the record's data is not base64") from None
    return seq, subject, body


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def event_hash(
    prevhash: str, event: dict[str, Any], encode: Callable[[Any], bytes] = _canonical
) -> str:
    """hex SHA-256(bytes.fromhex(prevhash) ‖ canonical JSON of ``event`` without ``hash``).
    ``encode`` may be :func:`~stafett_log.fastjson.dumps_parsed` for an event that
    :func:`~stafett_log.fastjson.parse_canonical` read."""
    unhashed = dict(event)
    unhashed.pop("hash", None)
    return hashlib.sha256(bytes.fromhex(prevhash) + encode(unhashed)).hexdigest()


class _Where:
    """Names an event in a problem's detail; formatted only when a problem is noted."""

    __slots__ = ("event", "position")

    def __init__(self, position: int, event: dict[str, Any]) -> None:
        self.position = position
        self.event = event

    def __format__(self, spec: str) -> str:
        return f"event {self.position} ({self.event.get('id', 'no id')})"


class _Chains:
    """The head hash of each log subject's chain, followed in stream order."""

    _UNKNOWN = ""  # after a message that could not be read: the next link cannot be judged

    def __init__(self) -> None:
        self.heads: dict[str, str] = {}
        self.events = 0

    def lose(self, subject: str) -> None:
        self.heads[subject] = self._UNKNOWN

    def follow(
        self,
        seq: int,
        subject: str,
        events: list[dict[str, Any]],
        encode: Callable[[Any], bytes] = _canonical,
    ) -> Problem | None:
        """Check the message's events against the chain; the first problem, if any."""
        problem: Problem | None = None

        def note(code: ProblemCode, detail: str) -> None:
            nonlocal problem
            if problem is None:
                problem = Problem(code, detail, seq)

        for position, event in enumerate(events, start=1):
            self.events += 1
            where = _Where(position, event)
            prevhash, stored = event.get("prevhash"), event.get("hash")
            head = self.heads.get(subject, GENESIS)
            if not isinstance(prevhash, str) or not isinstance(stored, str):
                note("chain_fields", f"{where} lacks prevhash or hash")
                self.heads[subject] = stored if isinstance(stored, str) else self._UNKNOWN
                continue
            if not _HEX64.fullmatch(prevhash) or not _HEX64.fullmatch(stored):
                note("chain_fields", f"{where} has a prevhash or hash that is not 64 hex digits")
                self.heads[subject] = stored
                continue
            if head not in (self._UNKNOWN, prevhash):
                if subject not in self.heads:
                    note(
                        "chain_start",
                        f"{where} starts the chain of {subject} but its prevhash is not 64 zeros",
                    )
                else:
                    note(
                        "chain_link",
                        f"{where}: prevhash is not the hash of the previous event of {subject}",
                    )
            try:
                computed = event_hash(prevhash, event, encode)
            except (ValueError, UnicodeEncodeError):
                computed = None
            if computed != stored:
                note("event_hash", f"{where}: hash does not match the event's content")
            self.heads[subject] = stored
        return problem


def _check_message(seq: int, subject: str, data: bytes, chains: _Chains) -> Problem | None:
    is_log = subject.startswith(LOG_SUBJECT_PREFIX)
    fast, value = parse_canonical(data)
    encode = dumps_parsed
    if not fast:
        encode = _canonical
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            if is_log:
                chains.lose(subject)
            return Problem("not_json", "the message's bytes are not UTF-8 JSON", seq)
    # A single structured event is read as a batch of one, as decode_commit does.
    events = value if isinstance(value, list) else [value]
    if not events or not all(isinstance(event, dict) for event in events):
        if is_log:
            chains.lose(subject)
        return Problem("not_batch", "the message is not a batch of CloudEvents objects", seq)
    if not is_log:
        return None
    return chains.follow(seq, subject, events, encode)


def _read_checkpoint(
    note_text: str, key_name: str, public_key: bytes
) -> tuple[Checkpoint | None, Problem | None]:
    """The checkpoint, even when its signature fails (its root is still worth comparing)."""
    try:
        return verify_checkpoint(note_text, key_name, public_key), None
    except CheckpointError as exc:
        try:
            checkpoint, _signatures = parse_signed_note(note_text)
        except CheckpointError:
            return None, Problem("checkpoint_format", f"the checkpoint is malformed: {exc}")
        return checkpoint, Problem("signature", f"the checkpoint is not valid: {exc}")


def _root_problem(
    checkpoint: Checkpoint, root_at_size: bytes | None, messages: int, *, complete: bool
) -> Problem | None:
    if root_at_size is None:
        if not complete:  # the export could not be read that far; that problem is named
            return None
        return Problem(
            "export_short",
            f"the export holds {messages} messages but the checkpoint covers "
            f"{checkpoint.tree_size}",
        )
    if root_at_size != checkpoint.root_hash:
        return Problem(
            "root",
            f"the Merkle root of the first {checkpoint.tree_size} messages does not match "
            "the checkpoint",
        )
    return None


def verify_export(lines: Iterable[str], note_text: str, key_name: str, public_key: bytes) -> Report:
    """Verify an export against a signed checkpoint and the log's public key.

    Reads ``lines`` once, in O(log n) memory for the tree plus one hash per log subject.
    """
    checkpoint, checkpoint_problem = _read_checkpoint(note_text, key_name, public_key)
    target = checkpoint.tree_size if checkpoint is not None else None
    root_at_target = EMPTY_ROOT if target == 0 else None
    tree = CompactRange()
    chains = _Chains()
    located: list[Problem] = []
    omitted = 0
    expected = 1
    complete = True
    for line in lines:
        if not line.strip():
            continue
        try:
            seq, subject, data = _read_record(line)
        except _ExportError as exc:
            located.append(Problem("export_format", f"record {expected}: {exc}", expected))
            complete = False
            break
        if seq != expected:
            # A gap or a reordering shifts every later leaf: nothing after it can be judged.
            located.append(Problem("sequence", f"expected seq {expected}, found {seq}", seq))
            complete = False
            break
        tree.append(leaf_hash(data))
        if tree.size == target:
            root_at_target = tree.root()
        problem = _check_message(seq, subject, data, chains)
        if problem is not None and len(located) < MAX_PROBLEMS:
            located.append(problem)
        elif problem is not None:
            omitted += 1
        expected += 1
    messages = expected - 1

    general = [checkpoint_problem] if checkpoint_problem is not None else []
    if checkpoint is not None:
        root_problem = _root_problem(checkpoint, root_at_target, messages, complete=complete)
        if root_problem is not None:
            general.append(root_problem)
    return Report(
        checkpoint=checkpoint,
        messages=messages,
        chains=len(chains.heads),
        events=chains.events,
        problems=(*located, *general),
        omitted=omitted,
    )


_NORWEGIAN: dict[ProblemCode, str] = {
    "checkpoint_format": "sjekkpunktet er ikke et gyldig signert sjekkpunkt",
    "signature": "sjekkpunktet har ingen gyldig signatur fra nøkkelen {key}",
    "export_format": "linjen er ikke en gyldig eksportpost",
    "sequence": "sekvensnumrene er ikke sammenhengende fra 1",
    "not_json": "meldingen er ikke gyldig JSON",
    "not_batch": "meldingen er ikke en liste med CloudEvents",
    "chain_fields": "en hendelse mangler gyldig prevhash eller hash",
    "chain_start": "den første hendelsen i hashkjeden har ikke prevhash lik 64 nuller",
    "chain_link": "prevhash er ikke hashen til forrige hendelse i hashkjeden",
    "event_hash": "hashen stemmer ikke med hendelsens innhold",
    "export_short": "eksporten har {messages} meldinger, men sjekkpunktet dekker {size}",
    "root": "Merkle-roten over de første {size} meldingene stemmer ikke med sjekkpunktet",
}


def _norwegian(problem: Problem, report: Report, key_name: str) -> str:
    size = report.checkpoint.tree_size if report.checkpoint is not None else 0
    text = _NORWEGIAN[problem.code].format(key=key_name, messages=report.messages, size=size)
    return text if problem.seq is None else f"sekvens {problem.seq}: {text}"


def describe(report: Report, key_name: str) -> list[str]:
    """The result in Norwegian bokmål: one result line, then one line per further problem."""
    if report.ok:
        assert report.checkpoint is not None  # no problems means the checkpoint verified
        return [
            f"OK: eksporten stemmer med sjekkpunktet for {report.checkpoint.origin} "
            f"(treets størrelse {report.checkpoint.tree_size}); {report.messages} meldinger, "
            f"{report.chains} hashkjeder og {report.events} hendelser kontrollert"
        ]
    first, *rest = report.problems
    more = len(rest) + report.omitted
    suffix = f" (og {more} feil til)" if more else ""
    lines = [f"FEIL: {_norwegian(first, report, key_name)}{suffix}"]
    lines.extend(f"  {_norwegian(problem, report, key_name)}" for problem in rest)
    return lines


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stafett_log.verifier EXPORT CHECKPOINT VKEY``: 0 when verified, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m stafett_log.verifier",
        description="Kontrollerer en eksport av EVENTS mot et signert sjekkpunkt.",
    )
    parser.add_argument("export", help="eksporten (JSON Lines), eller - for standard inn")
    parser.add_argument("checkpoint", help="fil med det signerte sjekkpunktet")
    parser.add_argument("vkey", help="verifiseringsnøkkelen: <navn>+<nøkkelhash>+<base64>")
    args = parser.parse_args(argv)

    try:
        key_name, public_key = parse_vkey(args.vkey)
    except CheckpointError:
        _say("FEIL: verifiseringsnøkkelen er ugyldig")
        return 1
    try:
        note_text = Path(args.checkpoint).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        _say(f"FEIL: kan ikke lese sjekkpunktet {args.checkpoint}")
        return 1
    try:
        if args.export == "-":
            report = verify_export(sys.stdin, note_text, key_name, public_key)
        else:
            with Path(args.export).open(encoding="utf-8") as export:
                report = verify_export(export, note_text, key_name, public_key)
    except (OSError, UnicodeDecodeError):
        _say(f"FEIL: kan ikke lese eksporten {args.export}")
        return 1
    for line in describe(report, key_name):
        _say(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
