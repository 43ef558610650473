"""The stafettlogg: one append-only log per case.

Entries are never edited or deleted: a mistake is fixed by a correction (a new entry that
points at the old one, with the new text and a reason) or a retraction (points at the old
one, with a reason); the history keeps every version. A leader may withhold an entry from
guardians (and the youth) only on a ground from a fixed list, with a reason and an end date.

Pure: ``decide(state, command, now)`` returns events or raises ``LogError``; ``evolve``
folds them. Text arrives encrypted; the handler checks its length before encrypting. Its
events are the log context's contracts, defined in ``stafett_shared.contracts.log``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ClassVar

from stafett_shared.contracts.base import Encrypted
from stafett_shared.contracts.log import (
    Author,
    Category,
    EntryAppended,
    EntryCorrected,
    EntryRestricted,
    EntryRetracted,
    Ground,
    Kind,
    Regime,
)
from stafett_shared.envelope import EventData

CONTEXT = "log"
MAX_TEXT = 10_000  # characters of one entry's text (about four pages)
MAX_OWN_VOICE = 4_000  # characters of the youth's own words (decision 0033)
MAX_OWN_VOICE_A_DAY = 20  # the youth's own entries on one case in 24 hours
CLOCK_SKEW = timedelta(minutes=5)
MAX_RESTRICTION = timedelta(days=3 * 366)


ROLE_REGIME: Mapping[str, Regime] = {
    "health_nurse": Regime.HEALTH,
    "child_welfare_worker": Regime.CHILD_WELFARE,
}


class LogError(Exception):
    code: ClassVar[str] = "log_error"
    status: ClassVar[int] = 409


class CaseNotOpen(LogError):
    code = "case_closed"


class OccurredInFuture(LogError):
    code = "occurred_in_future"
    status = 422


class OccurredBeforeCase(LogError):
    code = "occurred_before_case"
    status = 422


class UnknownEntry(LogError):
    code = "unknown_entry"
    status = 422


class AlreadyRetracted(LogError):
    code = "already_retracted"


class RestrictionEnd(LogError):
    code = "invalid_restriction_end"
    status = 422


@dataclass(frozen=True, slots=True)
class EntryState:
    kind: str
    category: str | None
    retracted: bool = False


@dataclass(frozen=True, slots=True)
class LogState:
    case_id: str | None = None
    entries: Mapping[str, EntryState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the log needs to know about the case, from the case service's events."""

    case_id: str
    open: bool
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class AppendEntry:
    entry_id: str
    kind: Kind
    text: Encrypted
    occurred_at: datetime
    category: Category | None
    participants: Encrypted | None
    author: Author


@dataclass(frozen=True, slots=True)
class CorrectEntry:
    entry_id: str
    corrects_entry_id: str
    text: Encrypted
    reason: Encrypted
    author: Author


@dataclass(frozen=True, slots=True)
class RetractEntry:
    entry_id: str
    retracts_entry_id: str
    reason: Encrypted
    author: Author


@dataclass(frozen=True, slots=True)
class RestrictEntry:
    restriction_id: str
    entry_id: str
    ground: Ground
    reason: Encrypted
    until: datetime
    decided_by: str


Command = AppendEntry | CorrectEntry | RetractEntry | RestrictEntry


def regime_of(role: str | None) -> Regime:
    return ROLE_REGIME.get(role or "", Regime.ADMINISTRATION)


def decide(state: LogState, case: CaseFacts, command: Command, now: datetime) -> list[EventData]:
    if not case.open:
        raise CaseNotOpen("the case is closed; reopen it first")
    case_id = case.case_id
    match command:
        case AppendEntry():
            if command.occurred_at > now + CLOCK_SKEW:
                raise OccurredInFuture("occurred_at lies in the future")
            if command.occurred_at.date() < case.opened_at.date() - timedelta(days=366):
                # A concern may reach back before the case was opened, but not by years.
                raise OccurredBeforeCase("occurred_at lies long before the case")
            return [
                EntryAppended(
                    entry_id=command.entry_id,
                    case_id=case_id,
                    kind=command.kind,
                    text=command.text,
                    occurred_at=command.occurred_at,
                    category=command.category,
                    participants=command.participants,
                    author=command.author,
                    regime=regime_of(command.author.role),
                )
            ]
        case CorrectEntry():
            original = _live(state, command.corrects_entry_id)
            return [
                EntryCorrected(
                    entry_id=command.entry_id,
                    case_id=case_id,
                    corrects_entry_id=command.corrects_entry_id,
                    text=command.text,
                    reason=command.reason,
                    category=Category(original.category) if original.category else None,
                    author=command.author,
                    regime=regime_of(command.author.role),
                )
            ]
        case RetractEntry():
            _live(state, command.retracts_entry_id)
            return [
                EntryRetracted(
                    entry_id=command.entry_id,
                    case_id=case_id,
                    retracts_entry_id=command.retracts_entry_id,
                    reason=command.reason,
                    author=command.author,
                )
            ]
        case RestrictEntry():
            if command.entry_id not in state.entries:
                raise UnknownEntry("no such entry in this case's log")
            if not now < command.until <= now + MAX_RESTRICTION:
                raise RestrictionEnd("a restriction ends in the future, within three years")
            return [
                EntryRestricted(
                    restriction_id=command.restriction_id,
                    entry_id=command.entry_id,
                    case_id=case_id,
                    ground=command.ground,
                    reason=command.reason,
                    until=command.until,
                    decided_by=command.decided_by,
                )
            ]
    raise LogError("unknown command")  # pragma: no cover


def _live(state: LogState, entry_id: str) -> EntryState:
    entry = state.entries.get(entry_id)
    if entry is None:
        raise UnknownEntry("no such entry in this case's log")
    if entry.retracted:
        raise AlreadyRetracted("the entry is retracted")
    return entry


def evolve(state: LogState, event: EventData) -> LogState:
    match event:
        case EntryAppended():
            entries = dict(state.entries)
            entries[event.entry_id] = EntryState(
                event.kind.value, event.category.value if event.category else None
            )
            return replace(state, case_id=event.case_id, entries=entries)
        case EntryCorrected():
            entries = dict(state.entries)
            entries[event.entry_id] = EntryState(
                "correction", event.category.value if event.category else None
            )
            return replace(state, case_id=event.case_id, entries=entries)
        case EntryRetracted():
            entries = dict(state.entries)
            old = entries[event.retracts_entry_id]
            entries[event.retracts_entry_id] = replace(old, retracted=True)
            return replace(state, entries=entries)
    return state


def replay(events: Iterable[EventData]) -> LogState:
    state = LogState()
    for event in events:
        state = evolve(state, event)
    return state
