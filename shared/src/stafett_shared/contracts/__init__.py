"""Event contracts: one module per context in the kernel, and who may publish what, where.

A message on the stream is untrusted input: any service's NATS user can publish on any
``stafett.ev.*`` subject. A reader applies a commit only when :func:`check_commit` finds
nothing wrong with it; a commit it refuses is quarantined (see ``stafett_shared.projector``).

Each context's events are published by the one service that owns it (:data:`OWNERS`).
``access`` events are facts any service records about a read of case content
(DESIGN.md: "any service may publish to ``stafett.ev.access.<case_id>``"), so their
``source`` may be any service's, but an access subject carries access events only. A model
may name an owner of its own, narrower than its context's: an access decision
(``DecisionRecorded``) is the consent service's alone.

The per-context modules beside this one hold the payload models, one module per context
(``case``, ``log``, ``consent``, ``directory``, ``access``); each model knows its context, its
owning service and the subject pattern it may appear on (:class:`~.base.ContractEvent`).
Importing this package imports them all, so every process's registry knows every type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from stafett_shared.contracts import access, case, consent, directory, log
from stafett_shared.contracts.base import ContractEvent
from stafett_shared.envelope import CloudEvent, EventRegistry, UnknownEventType, registry
from stafett_shared.ids import AGGREGATE_ID_PATTERN

__all__ = [
    "CONTEXT_BASES",
    "OWNERS",
    "SERVICES",
    "Reason",
    "Rejection",
    "check_commit",
    "subject_context",
]

CONTEXT_BASES: tuple[type[ContractEvent], ...] = (
    case.CaseEvent,
    log.LogEvent,
    consent.ConsentEvent,
    directory.DirectoryEvent,
    access.AccessEvent,
)
"""The base class of each context's payload models."""

OWNERS: Mapping[str, str | None] = MappingProxyType(
    {base.context: base.owner for base in CONTEXT_BASES}
)
"""The service that owns each context: its events' ``source`` is ``stafett/<owner>``
(``access``: None, any service in SERVICES). Read from the contract modules."""

SERVICES = frozenset({"case", "log", "consent", "notify"})
"""The services that publish events; the sources an ``access`` event may have."""


class Reason(enum.StrEnum):
    """Why a message was refused. Codes only: a reason never quotes the message."""

    UNDECODABLE = "undecodable"
    """Not a CloudEvents JSON batch (not JSON, not CloudEvents, empty)."""
    BAD_SUBJECT = "bad_subject"
    """The NATS subject is not ``<prefix>.<context>.<aggregate_id>`` of a known context."""
    WRONG_CONTEXT = "wrong_context"
    """An event's type belongs to another context than its subject's."""
    WRONG_AGGREGATE = "wrong_aggregate"
    """An event's ``subject`` is not the aggregate id of the NATS subject."""
    WRONG_SOURCE = "wrong_source"
    """An event's ``source`` is not the service that owns its context, or its model where
    the model names an owner of its own."""
    UNKNOWN_TYPE = "unknown_type"
    """No payload model is registered for the type (or its upcaster's target)."""
    INVALID_PAYLOAD = "invalid_payload"
    """The payload does not validate against its model (a missing field, a wrong one)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused commit: the reason and the position of the first offending event
    (None when the message as a whole is at fault)."""

    reason: Reason
    event: int | None = None


def subject_context(subject: str, prefix: str) -> tuple[str, str] | None:
    """``(context, aggregate_id)`` of a stream subject, or None when it is not one."""
    if not subject.startswith(prefix + "."):
        return None
    context, _, aggregate = subject.removeprefix(prefix + ".").partition(".")
    if context not in OWNERS or not AGGREGATE_ID_PATTERN.fullmatch(aggregate):
        return None
    return context, aggregate


_ANY_SERVICE = frozenset(f"stafett/{service}" for service in SERVICES)


def _allowed_source(context: str, source: str) -> bool:
    owner = OWNERS[context]
    return source in _ANY_SERVICE if owner is None else source == f"stafett/{owner}"


def check_commit(
    subject: str,
    events: Sequence[CloudEvent],
    *,
    prefix: str,
    events_registry: EventRegistry = registry,
) -> Rejection | None:
    """Why the commit ``events``, stored on ``subject``, must not be applied; None if it may.

    Every event must be of the subject's context, about the subject's aggregate, published
    by the context's owner, and carry a payload its registered model accepts (after
    upcasting); a model that names an owner of its own (``DecisionRecorded``) is published by
    that owner only. The cheap checks come first; the payload is validated last, and its
    model's own owner (the model of its type after upcasting) is checked then.
    """
    parts = subject_context(subject, prefix)
    if parts is None:
        return Rejection(Reason.BAD_SUBJECT)
    if not events:
        return Rejection(Reason.UNDECODABLE)
    context, aggregate = parts
    for index, event in enumerate(events):
        reason = _misplaced(event, context, aggregate)
        if reason is not None:
            return Rejection(reason, index)
    for index, event in enumerate(events):
        reason = _invalid(event, events_registry)
        if reason is not None:
            return Rejection(reason, index)
    return None


def _misplaced(event: CloudEvent, context: str, aggregate: str) -> Reason | None:
    if event.context != context:
        return Reason.WRONG_CONTEXT
    if event.subject != aggregate:
        return Reason.WRONG_AGGREGATE
    if not _allowed_source(context, event.source):
        return Reason.WRONG_SOURCE
    return None


def _invalid(event: CloudEvent, events_registry: EventRegistry) -> Reason | None:
    try:
        payload = events_registry.payload(event)
    except UnknownEventType:
        return Reason.UNKNOWN_TYPE
    except Exception:  # noqa: BLE001 - a model or an upcaster refused the data
        return Reason.INVALID_PAYLOAD
    if isinstance(payload, ContractEvent) and not _owner_allows(type(payload), event.source):
        return Reason.WRONG_SOURCE
    return None


def _owner_allows(model: type[ContractEvent], source: str) -> bool:
    """Whether ``source`` may publish the model's events, when the model names an owner of its
    own (``DecisionRecorded``: the consent service's, in the access context any service may
    publish in); the context's owner was checked before."""
    owner = model.owner
    if owner == OWNERS.get(model.context):
        return True
    return source in _ANY_SERVICE if owner is None else source == f"stafett/{owner}"
