"""The event store: one append-only JetStream stream, ``EVENTS``, is Stafett's system of record.

* One subject is one aggregate (``stafett.ev.<context>.<aggregate_id>``). The aggregate's
  version is the stream sequence of its last commit, which is what
  ``Nats-Expected-Last-Subject-Sequence`` checks (optimistic concurrency).
* ``Nats-Msg-Id`` carries the command's idempotency key; JetStream drops a repeat inside the
  duplicate window, and a repeat that loses the concurrency check is recognised by its key
  in the aggregate's newer commits. A client's key travels only as a digest scoped to the
  principal, route and subject (``stafett_shared.msgid``), so one caller's key can neither
  drop another caller's write nor an id Stafett makes itself.
* Reads use batched direct get (``$JS.API.DIRECT.GET``): stateless on the server, so they
  survive server restarts and leader changes without consumer bookkeeping. ``bench/`` compares
  it with an ordered consumer; see docs/decisions/0002-event-store-reads.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from stafett_shared.envelope import (
    BATCH_CONTENT_TYPE,
    CONTEXTS,
    CloudEvent,
    EnvelopeError,
    decode_commit,
    encode_commit,
)
from stafett_shared.ids import AGGREGATE_ID_PATTERN
from stafett_shared.msgid import CLIENT_KEY_PREFIX, ClientKey
from stafett_shared.telemetry import inject_headers

__all__ = [
    "AppendResult",
    "CommitTooLarge",
    "ConcurrencyConflict",
    "DuplicateAppend",
    "EventStore",
    "EventStoreError",
    "StoreUnavailable",
    "StoredCommit",
    "StreamMisconfigured",
]

DEFAULT_STREAM = "EVENTS"
DEFAULT_PREFIX = "stafett.ev"
MIN_DUPLICATE_WINDOW_S = 120.0
MAX_COMMIT_BYTES = 512 * 1024
_WRONG_LAST_SEQ = 10071
_WRONG_LAST_SEQ_RE = re.compile(r"wrong last sequence: (\d+)")
_tracer = trace.get_tracer("stafett.eventstore")


class EventStoreError(Exception):
    """Root of the event store's errors."""


class ConcurrencyConflict(EventStoreError):
    """The aggregate moved on since the version the command was decided on."""

    def __init__(self, subject: str, expected: int, actual: int | None) -> None:
        super().__init__(f"expected version {expected}, aggregate is at {actual}")
        self.subject = subject
        self.expected = expected
        self.actual = actual


class DuplicateAppend(EventStoreError):
    """A commit with the same idempotency key is already stored, at ``seq``."""

    def __init__(self, subject: str, seq: int) -> None:
        super().__init__(f"already stored at sequence {seq}")
        self.subject = subject
        self.seq = seq


class StoreUnavailable(EventStoreError):
    """NATS or the stream did not answer in time."""


class StreamMisconfigured(EventStoreError):
    """The stream's settings would allow history to be lost or changed."""


class CommitTooLarge(EventStoreError):
    """The commit exceeds the size limit of one message."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    subject: str
    seq: int


@dataclass(frozen=True, slots=True)
class StoredCommit:
    """One stored message: a commit of 1..N events at a stream sequence."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str]
    time: datetime | None
    events: tuple[CloudEvent, ...] = field(default=())

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Nats-Msg-Id")


_STREAM_TIME = re.compile(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def parse_stream_time(value: str) -> datetime:
    """An RFC 3339 time with a zone, as JetStream writes it (``…Z`` with nanoseconds,
    which Python keeps as microseconds) or with an offset; in UTC. ``ValueError`` else."""
    match = _STREAM_TIME.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    micros = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(f"{match.group(1)}.{micros}{zone}").astimezone(UTC)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_stream_time(value)
    except ValueError:
        return None


def required_stream_config(name: str, prefix: str, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=name,
        description="Stafett events: append-only system of record",
        subjects=[f"{prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs=-1,
        max_bytes=-1,
        max_age=0,
        max_msgs_per_subject=-1,
        max_msg_size=MAX_COMMIT_BYTES + 64 * 1024,
        num_replicas=replicas,
        duplicate_window=MIN_DUPLICATE_WINDOW_S,
        deny_delete=True,
        deny_purge=True,
        allow_rollup_hdrs=False,
        allow_direct=True,
        allow_msg_ttl=False,
    )


def stream_problems(config: StreamConfig, prefix: str) -> list[str]:  # noqa: PLR0912
    """Every way ``config`` could lose or alter history; empty when the stream is safe."""
    problems: list[str] = []
    if not config.deny_delete:
        problems.append("deny_delete is off")
    if not config.deny_purge:
        problems.append("deny_purge is off")
    if config.allow_rollup_hdrs:
        problems.append("rollup is allowed")
    if config.retention not in (None, RetentionPolicy.LIMITS):
        problems.append(f"retention is {config.retention}")
    for name in ("max_msgs", "max_bytes", "max_msgs_per_subject"):
        value = getattr(config, name)
        if value is not None and value not in (-1, 0):
            problems.append(f"{name} is limited to {value}")
    if config.max_age:
        problems.append(f"max_age is {config.max_age}")
    if config.allow_msg_ttl:
        problems.append("per-message TTL is allowed")
    if config.subject_delete_marker_ttl:
        problems.append("subject delete markers are enabled")
    if config.discard not in (None, DiscardPolicy.NEW):
        problems.append("discard policy is not 'new'")
    if not config.allow_direct:
        problems.append("direct get is off")
    if (config.duplicate_window or 0) < MIN_DUPLICATE_WINDOW_S:
        problems.append("duplicate window is shorter than 2 minutes")
    if config.storage not in (None, StorageType.FILE):
        problems.append("storage is not file")
    if f"{prefix}.>" not in (config.subjects or []):
        problems.append(f"subjects do not include {prefix}.>")
    return problems


class EventStore:
    """Append to and read from the ``EVENTS`` stream."""

    def __init__(
        self,
        nc: NATS,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
        read_batch: int = 256,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self.stream = stream
        self.prefix = subject_prefix
        self._timeout = timeout
        self._read_batch = read_batch

    @property
    def nc(self) -> NATS:
        return self._nc

    def subject(self, context: str, aggregate_id: str) -> str:
        """The subject of one aggregate."""
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}")
        if not AGGREGATE_ID_PATTERN.fullmatch(aggregate_id):
            raise ValueError("aggregate id may hold only letters, digits, '_' and '-'")
        return f"{self.prefix}.{context}.{aggregate_id}"

    # --- stream administration -------------------------------------------------------------

    async def ensure_stream(self, *, create: bool = True, replicas: int = 1) -> StreamInfo:
        """Verify the stream, creating it first when allowed and missing.

        Refuses (``StreamMisconfigured``) a stream that could lose or alter history: the
        services must not run on one.
        """
        try:
            info = await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not create:
                raise StreamMisconfigured(f"stream {self.stream} does not exist") from None
            try:
                info = await self._js.add_stream(
                    required_stream_config(self.stream, self.prefix, replicas)
                )
            except nats.js.errors.BadRequestError:
                # Another service created it at the same moment.
                info = await self._js.stream_info(self.stream)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise StoreUnavailable("JetStream did not answer") from exc
        problems = stream_problems(info.config, self.prefix)
        if problems:
            raise StreamMisconfigured(f"stream {self.stream} is unsafe: " + "; ".join(problems))
        return info

    async def last_seq(self) -> int:
        """The stream's last sequence (0 when empty)."""
        try:
            info = await self._js.stream_info(self.stream)
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            raise StoreUnavailable("stream info failed") from exc
        return int(info.state.last_seq or 0)

    # --- writing --------------------------------------------------------------------------

    async def append(
        self,
        subject: str,
        events: Sequence[CloudEvent],
        *,
        expected_version: int | None,
        idempotency_key: str | ClientKey | None = None,
        creates: bool = False,
    ) -> AppendResult:
        """Store ``events`` as one commit on ``subject``.

        ``expected_version`` is the stream sequence of the aggregate's last commit as the
        command saw it (0: the aggregate must be new; None: no check, for facts such as access
        records). ``idempotency_key`` is an id Stafett made (a string, used as it is) or a
        client's key (a ``ClientKey``, used as a digest with the subject). ``creates``: the
        command made the aggregate's id, which a repeat makes anew, so a client's key is bound
        to the context's subjects rather than to this one. Raises ``ConcurrencyConflict``,
        ``DuplicateAppend`` (``seq`` is the stored commit's, which may be on another subject
        when ``creates``), ``StoreUnavailable``.
        """
        if not subject.startswith(self.prefix + "."):
            raise ValueError("subject is outside the event stream")
        if any(event.subject != subject.rsplit(".", 1)[-1] for event in events):
            raise EnvelopeError("event subject does not match the aggregate's subject")
        body = encode_commit(events)
        if len(body) > MAX_COMMIT_BYTES:
            raise CommitTooLarge(f"commit is {len(body)} bytes, limit {MAX_COMMIT_BYTES}")
        headers: dict[str, str] = {"Content-Type": BATCH_CONTENT_TYPE}
        if expected_version is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_version)
        msg_id = self._message_id(subject, idempotency_key, creates=creates)
        if msg_id is not None:
            headers["Nats-Msg-Id"] = msg_id
        with _tracer.start_as_current_span(
            "eventstore.append",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": self.stream,
                "stafett.events": len(events),
            },
        ):
            inject_headers(headers)
            try:
                ack = await self._js.publish(subject, body, headers=headers, timeout=self._timeout)
            except nats.js.errors.APIError as exc:
                if exc.err_code == _WRONG_LAST_SEQ and expected_version is not None:
                    await self._raise_conflict(subject, expected_version, msg_id, exc)
                if exc.code == 503:
                    raise StoreUnavailable("JetStream is unavailable") from exc
                raise EventStoreError(f"append refused: {exc.description}") from exc
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                raise StoreUnavailable("JetStream did not acknowledge the append") from exc
            except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as exc:
                raise StoreUnavailable("not connected to NATS") from exc
        if ack.duplicate:
            raise DuplicateAppend(subject, int(ack.seq))
        return AppendResult(subject=subject, seq=int(ack.seq))

    @staticmethod
    def _message_id(subject: str, key: str | ClientKey | None, *, creates: bool) -> str | None:
        if key is None:
            return None
        if isinstance(key, ClientKey):
            scope = subject.rsplit(".", 1)[0] + ".*" if creates else subject
            return key.message_id(scope)
        if key.startswith(CLIENT_KEY_PREFIX):
            raise ValueError("an internal message id must not look like a client key's")
        return key

    async def _raise_conflict(
        self,
        subject: str,
        expected: int,
        idempotency_key: str | None,
        exc: nats.js.errors.APIError,
    ) -> None:
        # JetStream checks the expected sequence before the message id, so a repeated command
        # looks like a conflict. Its key in the newer commits tells the two apart, also after
        # the duplicate window has passed.
        if idempotency_key is not None:
            for commit in await self.load(subject, after_seq=expected, decode=False):
                if commit.idempotency_key == idempotency_key:
                    raise DuplicateAppend(subject, commit.seq) from exc
        match = _WRONG_LAST_SEQ_RE.search(exc.description or "")
        actual = int(match.group(1)) if match else None
        raise ConcurrencyConflict(subject, expected, actual) from exc

    # --- reading --------------------------------------------------------------------------

    async def load(
        self, subject: str, *, after_seq: int = 0, decode: bool = True
    ) -> list[StoredCommit]:
        """Every commit of one aggregate after ``after_seq``, in order."""
        return [c async for c in self._direct_get(subject, after_seq + 1, None, decode=decode)]

    async def read(
        self, from_seq: int, *, limit: int | None = None, decode: bool = True
    ) -> list[StoredCommit]:
        """Up to ``limit`` commits of the whole stream from ``from_seq`` on."""
        return [
            c
            async for c in self._direct_get(
                f"{self.prefix}.>", max(from_seq, 1), limit or self._read_batch, decode=decode
            )
        ]

    async def version(self, subject: str) -> int:
        """The aggregate's version: the stream sequence of its last commit (0 when new)."""
        request = json.dumps({"last_by_subj": subject}).encode()
        try:
            msg = await self._nc.request(
                f"$JS.API.DIRECT.GET.{self.stream}", request, timeout=self._timeout
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise StoreUnavailable("direct get did not answer") from exc
        except nats.errors.Error as exc:
            raise StoreUnavailable("not connected to NATS") from exc
        headers = msg.headers or {}
        if headers.get("Status") == "404":
            return 0
        if headers.get("Status") is not None:
            raise StoreUnavailable(f"direct get answered {headers.get('Status')}")
        return int(headers["Nats-Sequence"])

    async def get(self, seq: int, *, decode: bool = True) -> StoredCommit | None:
        """The commit at one stream sequence, or None."""
        commits = await self.read(seq, limit=1, decode=decode)
        return commits[0] if commits and commits[0].seq == seq else None

    async def _direct_get(
        self, subject_filter: str, start: int, limit: int | None, *, decode: bool
    ) -> AsyncIterator[StoredCommit]:
        api = f"$JS.API.DIRECT.GET.{self.stream}"
        inbox = self._nc.new_inbox()
        remaining = limit
        next_seq = start
        try:
            sub = await self._nc.subscribe(inbox)
        except nats.errors.Error as exc:
            raise StoreUnavailable("not connected to NATS") from exc
        try:
            while remaining is None or remaining > 0:
                batch = self._read_batch if remaining is None else min(remaining, self._read_batch)
                request = {"seq": next_seq, "next_by_subj": subject_filter, "batch": batch}
                try:
                    await self._nc.publish(api, json.dumps(request).encode(), reply=inbox)
                except nats.errors.Error as exc:
                    raise StoreUnavailable("not connected to NATS") from exc
                more = False
                while True:
                    try:
                        msg = await sub.next_msg(timeout=self._timeout)
                    except nats.errors.TimeoutError as exc:
                        raise StoreUnavailable("direct get did not answer") from exc
                    status = (msg.headers or {}).get("Status")
                    if status == "204":  # end of batch
                        more = int((msg.headers or {}).get("Nats-Num-Pending", "0")) > 0
                        break
                    if status == "404":  # nothing (more) to read
                        break
                    if status is not None:
                        raise StoreUnavailable(f"direct get answered {status}")
                    commit = self._to_commit(msg, decode=decode)
                    next_seq = commit.seq + 1
                    if remaining is not None:
                        remaining -= 1
                    yield commit
                if not more:
                    break
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    @staticmethod
    def _to_commit(msg: Msg, *, decode: bool) -> StoredCommit:
        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        seq = int(headers["Nats-Sequence"])
        return StoredCommit(
            seq=seq,
            subject=headers["Nats-Subject"],
            data=msg.data,
            headers=headers,
            time=_parse_time(headers.get("Nats-Time-Stamp")),
            events=decode_commit(msg.data) if decode else (),
        )

    async def subscribe_batches(
        self, from_seq: int, *, idle_poll: float = 1.0, decode: bool = True
    ) -> AsyncIterator[list[StoredCommit]]:
        """Batches of commits from ``from_seq`` on, waiting for new ones; never ends.

        A core subscription on the stream's subjects wakes the reader; the reading itself is
        stateless direct get, so a server restart under a projector loses nothing. With
        ``decode=False`` the commits carry their bytes only (the projector decodes them
        itself, so that a message that does not decode is quarantined, not fatal).
        """
        wake = asyncio.Event()

        async def _on_publish(_msg: Msg) -> None:
            wake.set()

        sub = await self._nc.subscribe(f"{self.prefix}.>", cb=_on_publish)
        next_seq = max(from_seq, 1)
        backoff = 0.05
        try:
            while True:
                wake.clear()
                try:
                    commits = await self.read(next_seq, decode=decode)
                except StoreUnavailable:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                if commits:
                    next_seq = commits[-1].seq + 1
                    yield commits
                    continue
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the wake-up fires, and the reader never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle_poll):
                        await wake.wait()
                if wake.is_set():
                    # A core subscriber can hear a message a moment before the stream has
                    # stored it; give the store that moment.
                    await asyncio.sleep(0.002)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def subscribe(
        self, from_seq: int, *, idle_poll: float = 1.0
    ) -> AsyncIterator[StoredCommit]:
        """Every commit from ``from_seq`` on, one at a time; never ends."""
        async for batch in self.subscribe_batches(from_seq, idle_poll=idle_poll):
            for commit in batch:
                yield commit


def commit_payloads(commit: StoredCommit) -> list[dict[str, Any]]:
    """The raw JSON objects of a commit, for tools that must not depend on models."""
    raw = json.loads(commit.data)
    return raw if isinstance(raw, list) else [raw]
