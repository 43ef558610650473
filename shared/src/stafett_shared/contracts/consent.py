"""The consent context's events, owned by the consent service: consents to share across
services (``stafett.ev.consent.<consent id>``), emergency access grants
(``…consent.<grant id>``) and auditors' scopes (``…consent.<scope id>``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stafett_shared.contracts.base import (
    ORG_ID_PATTERN,
    POLICY_ID_PATTERN,
    ContractEvent,
    Encrypted,
)
from stafett_shared.contracts.directory import Sector
from stafett_shared.contracts.log import Category
from stafett_shared.envelope import registry

__all__ = [
    "AuditScopeGranted",
    "ConsentActivated",
    "ConsentEvent",
    "ConsentExpired",
    "ConsentExpiryReminderDue",
    "ConsentRefused",
    "ConsentRequested",
    "ConsentScope",
    "ConsentSigned",
    "ConsentStatus",
    "ConsentWithdrawn",
    "EmergencyAccessApproved",
    "EmergencyAccessGranted",
    "EmergencyAccessRequested",
    "EmergencyGround",
    "Evidence",
    "EvidenceMethod",
    "GrantorGroup",
]


ConsentStatus = Literal["pending", "active", "refused", "withdrawn", "expired"]
"""Where a consent stands: waiting for its grantors, in force, or ended without or after it."""


class EvidenceMethod(StrEnum):
    DIGITAL_SIGNATURE = "digital_signature"
    PAPER = "paper"
    VERBAL_DOCUMENTED = "verbal_documented"


class ConsentScope(BaseModel):
    """To whom information may flow: services, never a named employee (fvl. § 13 a nr. 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_ids: tuple[str, ...] = Field(min_length=1, max_length=50)
    sectors: tuple[Sector, ...] = Field(min_length=1, max_length=10)
    unit_ids: tuple[str, ...] = Field(default=(), max_length=200)
    history_travels: bool = False
    excluded_categories: tuple[Category, ...] = ()
    purpose: Encrypted

    @field_validator("org_ids")
    @classmethod
    def _org_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for org_id in value:
            if not re.fullmatch(ORG_ID_PATTERN, org_id):
                raise ValueError("En virksomhets-id har ikke riktig form.")
        return tuple(dict.fromkeys(value))

    @field_validator("unit_ids")
    @classmethod
    def _unit_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for unit_id in value:
            if not re.fullmatch(POLICY_ID_PATTERN, unit_id):
                raise ValueError("En enhets-id har ikke riktig form.")
        return tuple(dict.fromkeys(value))


class EmergencyGround(StrEnum):
    """Why emergency access is needed: a fixed list (the free-text reason says more)."""

    DANGER_TO_LIFE_OR_HEALTH = "danger_to_life_or_health"
    ACUTE_CHILD_WELFARE = "acute_child_welfare"
    MISSING_CHILD = "missing_child"
    SUSPECTED_VIOLENCE_OR_ABUSE = "suspected_violence_or_abuse"


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: EvidenceMethod
    reference: Encrypted | None = None


class GrantorGroup(BaseModel):
    """Persons of whom ``needed`` must sign: all of them, or any one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["guardians", "youth", "person"]
    members: tuple[str, ...] = Field(min_length=1)
    needed: Literal["all", "any"] = "all"

    def satisfied_by(self, signed: Iterable[str]) -> bool:
        done = set(signed) & set(self.members)
        return bool(done) if self.needed == "any" else done == set(self.members)


class ConsentEvent(ContractEvent):
    context: ClassVar[str] = "consent"
    owner: ClassVar[str | None] = "consent"
    subject_pattern: ClassVar[str] = "stafett.ev.consent.{consent_id}"


@registry.register
class ConsentRequested(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.requested.v1"
    consent_status: ClassVar[ConsentStatus] = "pending"
    """The consent's status after this event (every reader's, never a payload field)."""
    consent_id: str
    case_id: str
    child_id: str
    scope: ConsentScope
    valid_from: datetime
    valid_until: datetime
    evidence: Evidence
    grantors: tuple[GrantorGroup, ...]
    rule: str
    age_applied: int
    threshold_age: int
    requested_by: str
    renews: str | None = None
    """The consent this one renews (decision 0032): ``valid_from`` is then that consent's
    end, or the time of the request if it had ended. None for a consent asked for anew."""


@registry.register
class ConsentSigned(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.signed.v1"
    consent_id: str
    grantor_person_id: str
    method: EvidenceMethod
    reference: Encrypted | None = None
    recorded_by: str


@registry.register
class ConsentActivated(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.activated.v1"
    consent_status: ClassVar[ConsentStatus] = "active"
    consent_id: str
    case_id: str


@registry.register
class ConsentRefused(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.refused.v1"
    consent_status: ClassVar[ConsentStatus] = "refused"
    consent_id: str
    case_id: str
    grantor_person_id: str
    reason: Encrypted | None = None
    recorded_by: str


@registry.register
class ConsentWithdrawn(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.withdrawn.v1"
    consent_status: ClassVar[ConsentStatus] = "withdrawn"
    consent_id: str
    case_id: str
    grantor_person_id: str
    reason: Encrypted | None = None
    recorded_by: str


@registry.register
class ConsentExpired(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.expired.v1"
    consent_status: ClassVar[ConsentStatus] = "expired"
    consent_id: str
    case_id: str


@registry.register
class ConsentExpiryReminderDue(ConsentEvent):
    """The consent ends at ``valid_until`` and its grantors are reminded so they can renew
    it (the organisation's ``consent_reminder_days``). Once per consent; no status change."""

    event_type: ClassVar[str] = "no.stafett.consent.expiry_reminder_due.v1"
    consent_id: str
    case_id: str
    valid_until: datetime
    grantor_person_ids: tuple[str, ...] = Field(max_length=50)


@registry.register
class EmergencyAccessGranted(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.emergency_access_granted.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.consent.{grant_id}"
    grant_id: str
    case_id: str
    person_id: str
    reason: Encrypted
    valid_from: datetime
    valid_until: datetime
    notify_person_ids: tuple[str, ...]
    ground: EmergencyGround | None = None
    """None in grants made before grounds were asked for."""


@registry.register
class EmergencyAccessRequested(ConsentEvent):
    """A repeat within 30 days of an earlier grant to the same person on the same case: the
    grant waits for the approval of a leader of the case's unit (``notify_person_ids``)."""

    event_type: ClassVar[str] = "no.stafett.consent.emergency_access_requested.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.consent.{grant_id}"
    grant_id: str
    case_id: str
    person_id: str
    ground: EmergencyGround
    reason: Encrypted
    requested_at: datetime
    previous_grant_id: str
    notify_person_ids: tuple[str, ...]


@registry.register
class EmergencyAccessApproved(ConsentEvent):
    """A leader of the case's unit approved a waiting request: the grant holds from
    ``valid_from`` to ``valid_until`` (24 hours)."""

    event_type: ClassVar[str] = "no.stafett.consent.emergency_access_approved.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.consent.{grant_id}"
    grant_id: str
    case_id: str
    person_id: str
    approved_by: str
    valid_from: datetime
    valid_until: datetime
    notify_person_ids: tuple[str, ...]


@registry.register
class AuditScopeGranted(ConsentEvent):
    event_type: ClassVar[str] = "no.stafett.consent.audit_scope_granted.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.consent.{scope_id}"
    scope_id: str
    auditor_person_id: str
    org_id: str | None = None
    case_ids: tuple[str, ...] = ()
    valid_until: datetime
    reason: str
    granted_by: str
