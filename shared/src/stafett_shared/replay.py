"""The history as it stood at a moment: an auditor's replay of an export.

``stafett audit replay EXPORT --as-of TIME`` reads an export (``stafett audit export``) in
stream order, up to the last message the stream stored at or before ``TIME``, and folds the
events of every case into what the record showed then: its organisation, unit, stafettholder,
level, status and team, the state of each consent, and how many entries were written,
corrected, retracted or restricted, how many reads were recorded (by basis) and how many
denials were published (the consent service publishes a denial repeated for the same
principal, action and case within a minute only once; its decision records hold them
all). Nothing is decrypted: the replay holds ids, levels, statuses and counts, never
content, and needs no key.

Every payload is decoded by the event registry, as on the read side: an event of a retired
version is upcast to the current model, so an export written before a breaking change
replays. Verify the export first (``stafett audit verify``): the replay trusts the order and
the bytes it is given. A stored message the read side would refuse (not a CloudEvents
batch, another context's event on a subject, a source that does not own it, a payload that
does not match the contract of its type: ``contracts.check_commit``) is skipped, as the
services quarantine it, and listed under ``refused`` with its sequence, subject and reason;
one forged message never stops the replay. A line that is not an export record does: the
export itself is damaged.
"""

from __future__ import annotations

import binascii
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from stafett_shared.contracts import Reason, Rejection, check_commit
from stafett_shared.contracts.access import AccessRecorded, DecisionRecorded
from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    HandoverAccepted,
    LevelChanged,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.consent import (
    ConsentActivated,
    ConsentExpired,
    ConsentRefused,
    ConsentRequested,
    ConsentWithdrawn,
)
from stafett_shared.envelope import (
    CloudEvent,
    EnvelopeError,
    EventData,
    UnknownEventType,
    decode_commit,
    registry,
)
from stafett_shared.eventstore import parse_stream_time

__all__ = ["CaseAt", "Replay", "ReplayError", "replay"]


class ReplayError(ValueError):
    """The export cannot be replayed (names the line or sequence number)."""


@dataclass
class CaseAt:
    """One case as the record showed it at the replay's moment."""

    case_id: str
    org_id: str | None = None
    unit_id: str | None = None
    holder_id: str | None = None
    level: int | None = None
    status: str = "open"
    opened_at: str | None = None
    team: set[str] = field(default_factory=set)
    consents: dict[str, str] = field(default_factory=dict)
    """Consent id to its state: requested, active, refused, withdrawn or expired."""
    events: Counter[str] = field(default_factory=Counter)
    """Events about the case by type (``case.opened``, ``log.entry_appended``, …)."""
    reads: Counter[str] = field(default_factory=Counter)
    """Recorded reads of the case's content by basis."""
    denials_published: int = 0
    """``access.decision_recorded`` denials in the stream (repeats within a minute are in
    the consent service's decision records only)."""
    last_seq: int = 0

    def entries(self) -> dict[str, int]:
        """Log events by kind: appended, corrected, retracted and restricted."""
        return {
            kind: self.events[f"log.entry_{kind}"]
            for kind in ("appended", "corrected", "retracted", "restricted")
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "org_id": self.org_id,
            "unit_id": self.unit_id,
            "holder_id": self.holder_id,
            "level": self.level,
            "status": self.status,
            "opened_at": self.opened_at,
            "team": sorted(self.team),
            "consents": dict(sorted(self.consents.items())),
            "entries": self.entries(),
            "reads": dict(sorted(self.reads.items())),
            "denials_published": self.denials_published,
            "events": dict(sorted(self.events.items())),
            "last_seq": self.last_seq,
        }


@dataclass
class Replay:
    """The whole replay: how far it read, and every case it met."""

    as_of: datetime | None
    messages: int = 0
    last_seq: int = 0
    last_time: datetime | None = None
    cases: dict[str, CaseAt] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)
    """Messages the read side would quarantine (``contracts.check_commit``), skipped here as
    there: sequence, subject and the reason's code, never the content."""

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "messages": self.messages,
            "last_seq": self.last_seq,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "cases": [self.cases[k].as_json() for k in sorted(self.cases)],
            "refused": self.refused,
        }


_CONSENT_STATES: dict[type[EventData], str] = {
    ConsentRequested: "requested",
    ConsentActivated: "active",
    ConsentRefused: "refused",
    ConsentWithdrawn: "withdrawn",
    ConsentExpired: "expired",
}


@runtime_checkable
class _AboutACase(Protocol):
    """A payload that names the case it is about: every case, log and access event, and
    the consent events but a signature and an auditor's scope."""

    case_id: str


@dataclass(frozen=True)
class _Record:
    seq: int
    time: datetime
    subject: str
    events: tuple[CloudEvent, ...]
    rejection: Rejection | None


def _record(line: str, number: int) -> _Record:
    """One export line. A line that is not an export record stops the replay (the export is
    damaged); a stored message the read side would refuse is judged as the read side does."""
    try:
        record = json.loads(line)
        seq, stored, data = record["seq"], record["time"], record["data"]
        subject = record.get("subject", "")
        if (
            not isinstance(seq, int)
            or not isinstance(stored, str)
            or not isinstance(data, str)
            or not isinstance(subject, str)
        ):
            raise TypeError
        body = binascii.a2b_base64(data, strict_mode=True)
        when = parse_stream_time(stored)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ReplayError(f"linje {number} er ikke en gyldig eksportpost") from None
    try:
        events = decode_commit(body)
    except EnvelopeError:
        return _Record(seq, when, subject, (), Rejection(Reason.UNDECODABLE))
    # The export keeps the stream's subject; its prefix is the deployment's own.
    prefix = subject.rsplit(".", 2)[0] if subject.count(".") >= 2 else ""
    rejection = (
        check_commit(subject, events, prefix=prefix, events_registry=registry) if subject else None
    )
    return _Record(seq, when, subject, events, rejection)


def _payload(seq: int, index: int, event: CloudEvent) -> EventData:
    """The event's payload as its current model: an old version is upcast, as on the read
    side, so an export written before a breaking change replays as the readers see it."""
    try:
        return registry.payload(event)
    except UnknownEventType:
        raise ReplayError(f"sekvens {seq}: hendelse {index + 1} har en ukjent type") from None
    except (EnvelopeError, ValueError, KeyError, TypeError):  # the model or an upcaster
        raise ReplayError(
            f"sekvens {seq}: hendelse {index + 1} passer ikke kontrakten for sin type"
        ) from None


def _name(payload: EventData) -> str:
    """``case.opened`` of ``no.stafett.case.opened.v1``: the key the counts go by."""
    return payload.event_type.removeprefix("no.stafett.").rsplit(".", 1)[0]


def _apply(case: CaseAt, payload: EventData, event: CloudEvent) -> None:
    case.events[_name(payload)] += 1
    match payload:
        case CaseOpened():
            case.org_id, case.unit_id = payload.org_id, payload.unit_id
            case.holder_id = payload.holder.person_id
            case.level = payload.level
            case.opened_at = event.time.isoformat()
        case LevelChanged():
            case.level = payload.level
        case HandoverAccepted():
            case.holder_id = payload.to_person_id
            case.unit_id = payload.to_unit_id
            case.org_id = payload.to_org_id
        case TeamMemberAdded():
            case.team.add(payload.person_id)
        case TeamMemberRemoved():
            case.team.discard(payload.person_id)
        case CaseClosedEvent():
            case.status = "closed"
        case CaseReopened():
            case.status = "open"
        case AccessRecorded():
            case.reads[payload.basis or "ukjent"] += 1
        case DecisionRecorded():
            if payload.decision == "deny":
                case.denials_published += 1
        case (
            ConsentRequested()
            | ConsentActivated()
            | ConsentRefused()
            | ConsentWithdrawn()
            | ConsentExpired()
        ):
            case.consents[payload.consent_id] = _CONSENT_STATES[type(payload)]


def replay(lines: Iterable[str], as_of: datetime | None = None) -> Replay:
    """Fold an export's events up to ``as_of`` (all of them when None) into cases."""
    result = Replay(as_of=as_of)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _record(line, number)
        seq, when, events = record.seq, record.time, record.events
        if as_of is not None and when > as_of:
            break  # the stream stores in time order: nothing later counts
        result.messages += 1
        result.last_seq, result.last_time = seq, when
        if record.rejection is not None:
            # What the services quarantined never reached a read model: the replay skips it
            # too, and lists it, so one forged message cannot stop an auditor.
            result.refused.append(
                {
                    "seq": seq,
                    "subject": record.subject[:200],
                    "reason": record.rejection.reason.value,
                }
            )
            continue
        for index, event in enumerate(events):
            payload = _payload(seq, index, event)
            if not isinstance(payload, _AboutACase):
                continue  # the directory's events, a signature, an auditor's scope
            case = result.cases.get(payload.case_id)
            if case is None:
                case = result.cases[payload.case_id] = CaseAt(payload.case_id)
            _apply(case, payload, event)
            case.last_seq = seq
    return result
