"""Integration events: what an agency's client reads in ``GET /api/v1/feed`` (decision 0041).

These are not stream events. The stream's events carry encrypted personal data and internal
ids an agency has no ground for; the feed translates a small fixed set of them into the
payloads below, each with the scope that opens it, and hands them out as CloudEvents JSON.
A type here is published once and never changes; a new version is a new type (decision 0021),
so an integrator may rely on a field as long as its type is served.

Every payload names its ``case_id``; nothing else in one names a person (no child, guardian
or staff id, no text) except :class:`EntryAppended.text`, the entry's text, given only to a
client whose ``stafett:log.read`` covers the entry.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stafett_shared.contracts.case import CloseReason, Outcome
from stafett_shared.contracts.consent import ConsentStatus
from stafett_shared.contracts.directory import ClientScope
from stafett_shared.contracts.log import Category, Kind

__all__ = [
    "FEED_SOURCE",
    "FEED_TYPES",
    "CaseClosed",
    "CaseOpened",
    "CaseReopened",
    "ConsentChanged",
    "EntryAppended",
    "FeedCloudEvent",
    "FeedEvent",
    "HandoverRequested",
    "HolderChanged",
    "LevelChanged",
    "MeasureAdded",
    "MeasureEvaluated",
]

FEED_SOURCE = "stafett/feed"
"""The CloudEvents ``source`` of every integration event."""

_ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"


class FeedCloudEvent(BaseModel):
    """One event of the feed: CloudEvents 1.0 in structured JSON. ``id`` is the stream
    event's id (the same id again means the same event: de-duplicate on it), ``subject`` the
    case, ``data`` the payload of the integration event ``type`` names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: Literal["stafett/feed"] = "stafett/feed"
    type: str
    subject: str = Field(pattern=_ULID)
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]


class FeedEvent(BaseModel):
    """Base of every integration event payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feed_type: ClassVar[str]
    """The CloudEvents ``type``: ``no.stafett.feed.<name>.v<N>``."""
    scope: ClassVar[ClientScope]
    """The scope a client needs to be given the event."""

    case_id: str = Field(pattern=_ULID)


class CaseOpened(FeedEvent):
    """A case was opened (or first became visible to the client with its basis)."""

    feed_type: ClassVar[str] = "no.stafett.feed.case_opened.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    org_id: str
    level: int = Field(ge=0, le=3)


class LevelChanged(FeedEvent):
    feed_type: ClassVar[str] = "no.stafett.feed.level_changed.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    from_level: int = Field(ge=0, le=3)
    level: int = Field(ge=0, le=3)


class HandoverRequested(FeedEvent):
    """The holder asked another unit to take the case over."""

    feed_type: ClassVar[str] = "no.stafett.feed.handover_requested.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    handover_id: str
    to_unit_id: str
    to_org_id: str


class HolderChanged(FeedEvent):
    """A handover was accepted: the case has a new holder, in ``unit_id`` of ``org_id``."""

    feed_type: ClassVar[str] = "no.stafett.feed.holder_changed.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    handover_id: str
    unit_id: str
    org_id: str


class MeasureAdded(FeedEvent):
    """A measure was added; its title and goal are the case's text, not in the feed."""

    feed_type: ClassVar[str] = "no.stafett.feed.measure_added.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    measure_id: str
    start: date
    evaluate_by: date


class MeasureEvaluated(FeedEvent):
    feed_type: ClassVar[str] = "no.stafett.feed.measure_evaluated.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    measure_id: str
    outcome: Outcome
    evaluated_on: date
    next_evaluate_by: date | None = None


class CaseClosed(FeedEvent):
    feed_type: ClassVar[str] = "no.stafett.feed.case_closed.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    reason: CloseReason


class CaseReopened(FeedEvent):
    feed_type: ClassVar[str] = "no.stafett.feed.case_reopened.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ


class ConsentChanged(FeedEvent):
    """A consent of the case changed state (``active``, ``refused``, ``withdrawn``,
    ``expired``). A client sees the change of a consent that gives it its basis while the
    basis holds; the withdrawal that ends it is the last event it is given of the case."""

    feed_type: ClassVar[str] = "no.stafett.feed.consent_changed.v1"
    scope: ClassVar[ClientScope] = ClientScope.CASE_READ
    consent_id: str
    status: ConsentStatus


class EntryAppended(FeedEvent):
    """An entry was written in the case's log: its kind, when it happened, its special
    category and its text. Only to a client whose ``stafett:log.read`` covers the entry (a
    category the consent excludes, or a sector's category the client does not work in, is
    left out); ``text`` is null when the child's key has been erased."""

    feed_type: ClassVar[str] = "no.stafett.feed.entry_appended.v1"
    scope: ClassVar[ClientScope] = ClientScope.LOG_READ
    entry_id: str
    kind: Kind
    occurred_at: datetime
    category: Category | None = None
    text: str | None = None


FEED_TYPES: dict[str, type[FeedEvent]] = {
    model.feed_type: model
    for model in (
        CaseOpened,
        LevelChanged,
        HandoverRequested,
        HolderChanged,
        MeasureAdded,
        MeasureEvaluated,
        CaseClosed,
        CaseReopened,
        ConsentChanged,
        EntryAppended,
    )
}
"""Every integration event type, by its CloudEvents ``type``."""
