"""The offline auditor's verifier: an export of ``EVENTS``, a signed checkpoint, a public key.

Nothing else is trusted and nothing else is needed: this module, :mod:`stafett_log.merkle`,
:mod:`stafett_log.checkpoint` and :mod:`stafett_log.fastjson` use only the standard library
and ``cryptography``, so an auditor can run them on any machine. With orjson installed they
verify several times faster, with the same result (see :mod:`stafett_log.fastjson`)::

    python -m stafett_log.verifier events.jsonl checkpoint.txt 'stafett.example/log+…'

It reads the export in segments; with ``--workers N`` (by default, one per core) that many
processes parse and hash the segments while the first follows the tree and the chains in
order: the same report, sooner.

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
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from stafett_log import fastjson
from stafett_log.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_signed_note,
    parse_vkey,
    verify_checkpoint,
)
from stafett_log.fastjson import dumps_parsed, dumps_standard, loads_plain, parse_canonical
from stafett_log.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, leaf_hash

__all__ = [
    "GENESIS",
    "LOG_SUBJECT_PREFIX",
    "MAX_PROBLEMS",
    "Problem",
    "ProblemCode",
    "Report",
    "default_workers",
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


def event_hash(
    prevhash: str, event: dict[str, Any], encode: Callable[[Any], bytes] = dumps_standard
) -> str:
    """hex SHA-256(bytes.fromhex(prevhash) ‖ canonical JSON of ``event`` without ``hash``).
    ``encode`` may be :func:`~stafett_log.fastjson.dumps_parsed` for an event that
    :func:`~stafett_log.fastjson.parse_canonical` read."""
    unhashed = dict(event)
    unhashed.pop("hash", None)
    return hashlib.sha256(bytes.fromhex(prevhash) + encode(unhashed)).hexdigest()


class _Link(NamedTuple):
    """What one chained event says, read without the events before it."""

    position: int
    """Its place in the message, from 1."""
    event_id: Any
    """Its ``id`` member, as read (None if it has none), for a problem's detail."""
    prevhash: str | None
    stored: str | None
    """Its ``hash`` member when that is text, else None."""
    fields: int
    """:data:`_FIELDS_OK`, :data:`_FIELDS_MISSING` or :data:`_FIELDS_NOT_HEX`."""
    computed: str | None
    """The hash of its content when the fields are fine and it could be computed."""

    def where(self) -> str:
        return f"event {self.position} ({'no id' if self.event_id is None else self.event_id})"


_FIELDS_OK, _FIELDS_MISSING, _FIELDS_NOT_HEX = 0, 1, 2

_UNKNOWN = ""
"""A chain's head after a message that could not be read: the next link cannot be judged."""

_UNREAD: dict[ProblemCode, str] = {
    "not_json": "the message's bytes are not UTF-8 JSON",
    "not_batch": "the message is not a batch of CloudEvents objects",
}


def _link(position: int, event: dict[str, Any], encode: Callable[[Any], bytes]) -> _Link:
    prevhash, stored = event.get("prevhash"), event.get("hash")
    event_id = event.get("id")
    if not isinstance(prevhash, str) or not isinstance(stored, str):
        return _Link(
            position,
            event_id,
            None,
            stored if isinstance(stored, str) else None,
            _FIELDS_MISSING,
            None,
        )
    if not _HEX64.fullmatch(prevhash) or not _HEX64.fullmatch(stored):
        return _Link(position, event_id, prevhash, stored, _FIELDS_NOT_HEX, None)
    try:
        computed: str | None = event_hash(prevhash, event, encode)
    except (ValueError, UnicodeEncodeError):
        computed = None
    return _Link(position, event_id, prevhash, stored, _FIELDS_OK, computed)


def _judge(subject: str, link: _Link, head: str | None) -> tuple[ProblemCode, str] | None:
    """The problem of one event given its chain's head before it (None: the chain has not
    been seen yet), if any."""
    if link.fields == _FIELDS_MISSING:
        return "chain_fields", f"{link.where()} lacks prevhash or hash"
    if link.fields == _FIELDS_NOT_HEX:
        return (
            "chain_fields",
            f"{link.where()} has a prevhash or hash that is not 64 hex digits",
        )
    if head is None and link.prevhash != GENESIS:
        return (
            "chain_start",
            f"{link.where()} starts the chain of {subject} but its prevhash is not 64 zeros",
        )
    if head not in (None, _UNKNOWN, link.prevhash):
        return (
            "chain_link",
            f"{link.where()}: prevhash is not the hash of the previous event of {subject}",
        )
    if link.computed != link.stored:
        return "event_hash", f"{link.where()}: hash does not match the event's content"
    return None


def _read_message(data: bytes) -> tuple[ProblemCode | None, list[dict[str, Any]], bool]:
    """``(problem, events, fast)``: the message's events, or why it has none; ``fast`` when
    they were read by :func:`~stafett_log.fastjson.parse_canonical`."""
    fast, value = parse_canonical(data)
    if not fast:
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "not_json", [], False
    # A single structured event is read as a batch of one, as decode_commit does.
    events = value if isinstance(value, list) else [value]
    if not events or not all(isinstance(event, dict) for event in events):
        return "not_batch", [], fast
    return None, events, fast


class _Found(NamedTuple):
    """A message with a problem, as far as its segment can tell, or whose first event is
    judged against the records before the segment (``opening``)."""

    seq: int
    subject: str
    problem: Problem | None
    """Its first problem among the events the segment could judge."""
    opening: _Link | None
    """The first event of the subject's chain in the segment: judged before ``problem``."""


class _Segment(NamedTuple):
    """A run of export records examined on their own. Everything that depends on the
    records before it is left to :func:`verify_export`: whether its first sequence number
    follows on, and each log subject's first event (``_Found.opening``)."""

    first_seq: int | None
    records: int
    """Records examined (up to a stop)."""
    leaves: bytes
    """Their leaf hashes, 32 bytes each."""
    subtree: bytes | None
    """Their Merkle tree hash when ``records`` is a power of two (a perfect subtree)."""
    found: tuple[_Found, ...]
    heads: dict[str, str]
    """Each log subject's chain head after the segment."""
    events: int
    stop: tuple[ProblemCode, str | int] | None
    """Why the segment stopped early: ``("export_format", detail)`` for a line that is not
    a record, ``("sequence", seq found)`` for a sequence number that does not follow on."""


class _Examiner:
    """Builds a segment, one record at a time."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.found: list[_Found] = []
        self.heads: dict[str, str] = {}
        self.events = 0

    def record(self, seq: int, subject: str, data: bytes) -> None:
        self.leaves.append(leaf_hash(data))
        is_log = subject.startswith(LOG_SUBJECT_PREFIX)
        unread, batch, fast = _read_message(data)
        if unread is not None:
            if is_log:
                self.heads[subject] = _UNKNOWN
            self.found.append(_Found(seq, subject, Problem(unread, _UNREAD[unread], seq), None))
            return
        if not is_log:
            return
        encode = dumps_parsed if fast else dumps_standard
        links = [_link(position, event, encode) for position, event in enumerate(batch, 1)]
        self.events += len(links)
        heads = self.heads
        opening: _Link | None = None
        if subject not in heads:
            opening, links = links[0], links[1:]
            heads[subject] = opening.stored or _UNKNOWN
        problem: Problem | None = None
        for link in links:
            judged = _judge(subject, link, heads[subject])
            heads[subject] = link.stored or _UNKNOWN
            if problem is None and judged is not None:
                problem = Problem(judged[0], judged[1], seq)
        if opening is not None or problem is not None:
            self.found.append(_Found(seq, subject, problem, opening))

    def segment(
        self, first_seq: int | None, stop: tuple[ProblemCode, str | int] | None
    ) -> _Segment:
        leaves = self.leaves
        subtree: bytes | None = None
        if leaves and not len(leaves) & (len(leaves) - 1):
            tree = CompactRange()
            tree.extend(leaves)
            subtree = tree.root()
        return _Segment(
            first_seq,
            len(leaves),
            b"".join(leaves),
            subtree,
            tuple(self.found),
            self.heads,
            self.events,
            stop,
        )


def _examine_segment(lines: Iterable[str]) -> _Segment:
    """Examine export lines on their own. Pure: it runs in worker processes too."""
    examiner = _Examiner()
    first_seq: int | None = None
    for line in lines:
        if not line or line.isspace():
            continue
        try:
            seq, subject, data = _read_record(line)
        except _ExportError as exc:
            return examiner.segment(first_seq, ("export_format", str(exc)))
        if first_seq is None:
            first_seq = seq
        elif seq != first_seq + len(examiner.leaves):
            return examiner.segment(first_seq, ("sequence", seq))
        examiner.record(seq, subject, data)
    return examiner.segment(first_seq, None)


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


SEGMENT_LINES = 512
"""Export lines examined together (by one worker process, when there are several)."""


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(lines)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _start_worker(accelerated: bool) -> None:
    """In a worker process: parse as the caller does (with orjson or without)."""
    if not accelerated:
        fastjson.orjson = None


def _process_context() -> multiprocessing.context.BaseContext:
    """Fork, which starts a worker at once, where it is safe: on a platform that has it and
    from a process with one thread (the command line's); else spawn, which starts a fresh
    interpreter (and imports the caller's main module again)."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _segments(lines: Iterable[str], workers: int) -> Generator[_Segment, None, None]:
    """The export examined in segments, in order: here, or by ``workers`` processes when
    there are more than one and the export is longer than one segment."""
    chunks = _chunks(lines, SEGMENT_LINES)
    if workers <= 1:
        yield from map(_examine_segment, chunks)
        return
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None:
        yield _examine_segment(first)
        return
    source = itertools.chain((first, second), chunks)
    with ProcessPoolExecutor(
        workers,
        mp_context=_process_context(),
        initializer=_start_worker,
        initargs=(fastjson.orjson is not None,),
    ) as pool:
        # A bounded number of segments in flight: the export is never all in memory.
        pending: deque[Future[_Segment]] = deque(
            pool.submit(_examine_segment, chunk) for chunk in itertools.islice(source, 2 * workers)
        )
        try:
            while pending:
                segment = pending.popleft().result()
                more = next(source, None)
                if more is not None:
                    pending.append(pool.submit(_examine_segment, more))
                yield segment
        finally:
            for future in pending:
                future.cancel()


class _Follower:
    """Follows the segments in order: the sequence, the tree, the chains, the problems."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.root_at_target = EMPTY_ROOT if target == 0 else None
        self.tree = CompactRange()
        self.heads: dict[str, str] = {}
        self.events = 0
        self.located: list[Problem] = []
        self.omitted = 0
        self.expected = 1
        self.complete = True

    def note(self, problem: Problem) -> None:
        if len(self.located) < MAX_PROBLEMS:
            self.located.append(problem)
        else:
            self.omitted += 1

    def follow(self, segment: _Segment) -> bool:
        """Take the next segment; False when nothing after it can be judged."""
        if segment.first_seq is not None and segment.first_seq != self.expected:
            # A gap or a reordering shifts every later leaf: nothing after it can be judged.
            self._stop("sequence", segment.first_seq)
            return False
        self._grow(segment)
        for found in segment.found:
            problem = found.problem
            if found.opening is not None:
                judged = _judge(found.subject, found.opening, self.heads.get(found.subject))
                if judged is not None:
                    problem = Problem(judged[0], judged[1], found.seq)
            if problem is not None:
                self.note(problem)
        self.heads.update(segment.heads)
        self.events += segment.events
        self.expected += segment.records
        if segment.stop is not None:
            self._stop(*segment.stop)
            return False
        return True

    def _grow(self, segment: _Segment) -> None:
        tree, n = self.tree, segment.records
        reaches_target = self.target is not None and tree.size < self.target <= tree.size + n
        if segment.subtree is not None and not reaches_target and tree.size % n == 0:
            tree.append_subtree(segment.subtree, n)
            return
        leaves = segment.leaves
        for start in range(0, len(leaves), HASH_SIZE):
            tree.append(leaves[start : start + HASH_SIZE])
            if tree.size == self.target:
                self.root_at_target = tree.root()

    def _stop(self, code: ProblemCode, detail: str | int) -> None:
        self.complete = False
        if code == "sequence":
            assert isinstance(detail, int)
            self.located.append(
                Problem("sequence", f"expected seq {self.expected}, found {detail}", detail)
            )
        else:
            self.located.append(Problem(code, f"record {self.expected}: {detail}", self.expected))


def default_workers() -> int:
    """The cores this process may use: the verifier's default number of processes."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return os.cpu_count() or 1


def verify_export(
    lines: Iterable[str],
    note_text: str,
    key_name: str,
    public_key: bytes,
    *,
    workers: int = 1,
) -> Report:
    """Verify an export against a signed checkpoint and the log's public key.

    Reads ``lines`` once, in segments of :data:`SEGMENT_LINES`: memory for a few segments,
    the tree (O(log n)) and one hash per log subject. With ``workers`` > 1, that many
    processes examine the segments (parse, hash) while this one follows them in order:
    the same report, sooner on a machine with several cores.
    """
    checkpoint, checkpoint_problem = _read_checkpoint(note_text, key_name, public_key)
    follower = _Follower(checkpoint.tree_size if checkpoint is not None else None)
    with contextlib.closing(_segments(lines, workers)) as segments:
        for segment in segments:
            if not follower.follow(segment):
                break
    messages = follower.expected - 1

    general = [checkpoint_problem] if checkpoint_problem is not None else []
    if checkpoint is not None:
        root_problem = _root_problem(
            checkpoint, follower.root_at_target, messages, complete=follower.complete
        )
        if root_problem is not None:
            general.append(root_problem)
    return Report(
        checkpoint=checkpoint,
        messages=messages,
        chains=len(follower.heads),
        events=follower.events,
        problems=(*follower.located, *general),
        omitted=follower.omitted,
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
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="prosesser som leser eksporten samtidig (standard: antall kjerner, her %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers må være minst 1")

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
            report = verify_export(sys.stdin, note_text, key_name, public_key, workers=args.workers)
        else:
            with Path(args.export).open(encoding="utf-8") as export:
                report = verify_export(
                    export, note_text, key_name, public_key, workers=args.workers
                )
    except (OSError, UnicodeDecodeError):
        _say(f"FEIL: kan ikke lese eksporten {args.export}")
        return 1
    for line in describe(report, key_name):
        _say(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
