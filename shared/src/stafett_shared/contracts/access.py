"""The access context: reads of case content and the decisions that allowed or refused them,
on ``stafett.ev.access.<case id>``; and the access decision's reply, the one answer of the
consent service's decision point over NATS (``stafett.rpc.consent.check``) and over HTTP
(``POST /api/v1/decisions``).

Every service that serves case content records its reads (``AccessRecorded``, any service);
only the decision point records decisions (``DecisionRecorded``, the consent service). A
look-up of a person by national id is recorded too (``LookupRecorded``, on
``stafett.ev.access.lookup-<lookup id>``; the consent and the case service).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stafett_shared.contracts.base import ULID_PATTERN, ContractEvent
from stafett_shared.envelope import registry

__all__ = [
    "AccessDecision",
    "AccessEvent",
    "AccessRecorded",
    "DecisionRecorded",
    "LookupPurpose",
    "LookupRecorded",
    "ReadWhat",
]

ReadWhat = Literal["case", "entries", "consents", "consent", "access", "report"]
"""What was read; ``report``: a report of concern to child welfare (never the log);
``consents``: a case's consents as the list shows them; ``consent``: one consent with what
it is for, its purpose (decision 0034)."""
LookupPurpose = Literal["register_child", "open_case", "identify_child"]


class AccessEvent(ContractEvent):
    context: ClassVar[str] = "access"
    owner: ClassVar[str | None] = None  # every service that serves case content
    subject_pattern: ClassVar[str] = "stafett.ev.access.{case_id}"


@registry.register
class AccessRecorded(AccessEvent):
    """A read of case content (DOMAIN.md: guardians and youth may see who read the log)."""

    event_type: ClassVar[str] = "no.stafett.access.recorded.v1"
    case_id: str
    reader_id: str
    reader_kind: Literal["person", "client"]
    basis: str | None = None
    decision_id: str | None = None
    what: ReadWhat
    entry_ids: tuple[str, ...] = ()
    service: str


@registry.register
class DecisionRecorded(AccessEvent):
    """An access decision the audited history must hold: a denial, or an auditor's permit."""

    event_type: ClassVar[str] = "no.stafett.access.decision_recorded.v1"
    owner: ClassVar[str | None] = "consent"
    decision_id: str
    principal_id: str
    principal_kind: Literal["person", "client"]
    action: str
    case_id: str
    entry_id: str | None = None
    decision: Literal["permit", "deny"]
    basis: str | None = None
    consent_id: str | None = None
    reason: str
    detail: str
    policy_version: str
    asked_by: str | None = None
    """The service that asked for the decision over NATS (``case``, ``log``, ``consent``,
    ``notify``), for the principal above; absent for a decision asked over HTTP by the
    principal itself, and in events recorded before services named themselves."""


@registry.register
class LookupRecorded(AccessEvent):
    """Someone looked a person up by national id: registering a child (the consent service),
    opening a case for a child or identifying the child of a case (the case service).
    Recorded before the look-up is answered, whatever it found, so that an auditor can see
    who looked up whom, when and how often (decision 0029). Only the blind index travels,
    never the national id. A ``register_child`` look-up also lets its person open cases for
    that national id: they gave the child's details."""

    event_type: ClassVar[str] = "no.stafett.access.lookup_recorded.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.access.lookup-{lookup_id}"
    lookup_id: str = Field(pattern=ULID_PATTERN)
    person_id: str = Field(min_length=1, max_length=64)
    national_id_index: str = Field(min_length=1, max_length=128)
    purpose: LookupPurpose
    case_id: str | None = Field(default=None, pattern=ULID_PATTERN)
    service: Literal["consent", "case"]


class AccessDecision(BaseModel):
    """The decision point's answer to ``(principal, action, resource, min_seq)``.

    Not an event: a reply. A reader ignores fields it does not know, so the consent service
    may add one before every client knows it (never rename or remove one)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision: Literal["permit", "deny"]
    basis: str | None = None
    consent_id: str | None = None
    reason: str
    decision_id: str
    policy_version: str

    @property
    def permitted(self) -> bool:
        return self.decision == "permit"
