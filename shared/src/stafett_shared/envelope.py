"""The CloudEvents 1.0 envelope, event payload base class, registry and upcasters.

A command's events travel as one NATS message in the CloudEvents JSON batch format
(``application/cloudevents-batch+json``): a JSON array of 1..N structured events, encoded as
canonical JSON so that the stored bytes are exactly what the hash chain and the Merkle tree
cover. Payload models are frozen pydantic models registered by their ``type``; a published
type never changes, a new version gets a new type and an upcaster from the old one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from stafett_shared.canonical import canonical_json
from stafett_shared.ids import AGGREGATE_ID_PATTERN, new_id

__all__ = [
    "BATCH_CONTENT_TYPE",
    "CONTEXTS",
    "MAX_EVENTS_PER_COMMIT",
    "CloudEvent",
    "EnvelopeError",
    "EventData",
    "EventRegistry",
    "UnknownEventType",
    "decode_commit",
    "encode_commit",
    "registry",
]

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
CONTEXTS = frozenset({"case", "log", "consent", "directory", "access"})
MAX_EVENTS_PER_COMMIT = 100
_TYPE_PATTERN = r"^no\.stafett\.[a-z_]+\.[a-z_]+\.v[1-9][0-9]*$"
_TYPE_RE = re.compile(_TYPE_PATTERN)


class EnvelopeError(ValueError):
    """A message is not a valid Stafett commit."""


class UnknownEventType(EnvelopeError):
    """No payload model is registered for an event type."""


class CloudEvent(BaseModel):
    """One CloudEvents 1.0 event in structured JSON with Stafett's extension attributes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    source: str = Field(pattern=r"^stafett/[a-z]+$")
    type: str = Field(pattern=_TYPE_PATTERN)
    subject: str = Field(pattern=AGGREGATE_ID_PATTERN.pattern)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    tenant: str = Field(min_length=1, max_length=64)
    actor: str = Field(min_length=1, max_length=128)
    actorrole: str | None = Field(default=None, max_length=64)
    actorunit: str | None = Field(default=None, max_length=64)
    correlationid: str | None = Field(default=None, max_length=64)
    causationid: str | None = Field(default=None, max_length=64)
    traceparent: str | None = Field(default=None, max_length=128)
    prevhash: str | None = Field(default=None, max_length=128)
    hash: str | None = Field(default=None, max_length=128)
    data: dict[str, Any]
    # The payload as a registry decoded it (see EventRegistry.payload): the guard on the read
    # side decodes every event before a projection does, and a model is frozen, so the
    # projection is given the same object instead of validating the data a second time.
    _decoded: tuple[int, EventData] | None = PrivateAttr(default=None)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a time zone")
        return value.astimezone(UTC)

    @property
    def context(self) -> str:
        """The bounded context named in the type: ``no.stafett.<context>.<name>.vN``."""
        return self.type.split(".")[2]

    def to_json_dict(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="json", exclude_none=True)
        # RFC 3339 with a Z suffix, the form CloudEvents SDKs write.
        dumped["time"] = self.time.isoformat().replace("+00:00", "Z")
        return dumped


class EventData(BaseModel):
    """Base of every event payload. Subclasses set ``event_type`` and register themselves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]


E = TypeVar("E", bound=EventData)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Payload models by CloudEvents ``type``, with upcasters from retired versions."""

    def __init__(self) -> None:
        self._models: dict[str, type[EventData]] = {}
        self._upcasters: dict[str, tuple[str, Upcaster]] = {}

    def register(self, model: type[E]) -> type[E]:
        event_type = getattr(model, "event_type", None)
        if not isinstance(event_type, str) or not _TYPE_RE.fullmatch(event_type):
            raise EnvelopeError(f"{model.__name__} has no valid event_type")
        known = self._models.get(event_type)
        if known is not None and known is not model:
            raise EnvelopeError(f"{event_type} is registered twice")
        if event_type in self._upcasters:
            # Its events would be upcast and never read by this model.
            raise EnvelopeError(f"{event_type} is retired: it has an upcaster")
        self._models[event_type] = model
        return model

    def register_upcaster(self, old_type: str, new_type: str, upcast: Upcaster) -> None:
        """Read events of ``old_type`` as ``new_type`` by transforming their data."""
        if old_type in self._models:
            raise EnvelopeError(f"{old_type} still has a model; retire it before upcasting")
        self._upcasters[old_type] = (new_type, upcast)

    def types(self) -> list[str]:
        return sorted(self._models)

    def model_for(self, event_type: str) -> type[EventData]:
        try:
            return self._models[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def upcast(self, event_type: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        current_type, current = event_type, dict(data)
        seen: set[str] = set()
        while current_type in self._upcasters:
            if current_type in seen:
                raise EnvelopeError(f"upcaster cycle at {current_type}")
            seen.add(current_type)
            current_type, upcast = self._upcasters[current_type]
            current = upcast(current)
        return current_type, current

    def payload(self, event: CloudEvent) -> EventData:
        """The event's payload as its current model, upcast when it was written by an old one.

        Every reader decodes through here, so upcasters run wherever events are read; the
        returned model, not ``event.type``, says which version the reader holds."""
        decoded = event._decoded
        if decoded is not None and decoded[0] == id(self):
            return decoded[1]
        event_type, data = self.upcast(event.type, event.data)
        model = self.model_for(event_type)
        try:
            payload = model.model_validate(data)
        except ValidationError as exc:
            raise EnvelopeError(f"{event.type} payload does not match its model") from exc
        event._decoded = (id(self), payload)
        return payload

    def envelope(
        self,
        payload: EventData,
        *,
        subject: str,
        source: str,
        tenant: str,
        actor: str,
        time: datetime,
        actorrole: str | None = None,
        actorunit: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        traceparent: str | None = None,
        event_id: str | None = None,
    ) -> CloudEvent:
        """Wrap a registered payload in a CloudEvent."""
        self.model_for(payload.event_type)  # refuses unregistered payloads
        return CloudEvent(
            id=event_id or new_id(),
            source=source,
            type=payload.event_type,
            subject=subject,
            time=time,
            tenant=tenant,
            actor=actor,
            actorrole=actorrole,
            actorunit=actorunit,
            correlationid=correlationid,
            causationid=causationid,
            traceparent=traceparent,
            data=payload.model_dump(mode="json"),
        )


registry = EventRegistry()
"""The process-wide registry; each service registers its payload models at import."""


def encode_commit(events: Sequence[CloudEvent]) -> bytes:
    """The canonical bytes of one commit: a CloudEvents JSON batch."""
    if not 1 <= len(events) <= MAX_EVENTS_PER_COMMIT:
        raise EnvelopeError(f"a commit holds 1 to {MAX_EVENTS_PER_COMMIT} events")
    subjects = {event.subject for event in events}
    if len(subjects) != 1:
        raise EnvelopeError("all events of a commit belong to one aggregate")
    return canonical_json([event.to_json_dict() for event in events])


def decode_commit(body: bytes) -> tuple[CloudEvent, ...]:
    """Parse a stored commit. Accepts a batch or, for interoperability, one structured event."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError("commit is not JSON") from exc
    items: Iterable[Any] = raw if isinstance(raw, list) else [raw]
    try:
        events = tuple(CloudEvent.model_validate(item) for item in items)
    except ValidationError as exc:
        raise EnvelopeError("commit holds an invalid CloudEvent") from exc
    if not events:
        raise EnvelopeError("commit is empty")
    return events


def utc_now() -> datetime:
    return datetime.now(UTC)
