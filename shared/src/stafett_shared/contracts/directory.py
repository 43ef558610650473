"""The directory context's events, owned by the consent service: organisations and their
units (``stafett.ev.directory.org-<org id>``), staff and their roles
(``stafett.ev.directory.person-<person id>``), with the logins that make a staff issuer's
subject that person, agency clients (``stafett.ev.directory.client-<name>``, the client's
directory id), and registered children with their guardians
(``stafett.ev.directory.nid-<blind index>``, one subject per national id), whose guardians
change on that subject: added, removed, or their parental responsibility changed (from the
population register in production, by an administrator with a reason in the embedded
setup)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stafett_shared.contracts.base import ORG_ID_PATTERN, ULID_PATTERN, ContractEvent, Encrypted
from stafett_shared.envelope import registry

__all__ = [
    "CatalogueMeasure",
    "ChildRegistered",
    "ClientPurpose",
    "ClientRegistered",
    "ClientScope",
    "ClientUnregistered",
    "DirectoryEvent",
    "GuardianAdded",
    "GuardianRecord",
    "GuardianRemoved",
    "Guide",
    "LoginBound",
    "LoginUnbound",
    "OrgKind",
    "OrganisationChanged",
    "OrganisationChildWelfareServiceSet",
    "OrganisationGuideSet",
    "OrganisationMeasureCatalogueSet",
    "OrganisationRegistered",
    "OrganisationSettings",
    "OrganisationSettingsSet",
    "ParentalResponsibilityChanged",
    "RoleEnded",
    "RoleGranted",
    "Sector",
    "StaffRegistered",
    "StaffRenamed",
    "StaffRole",
    "UnitChanged",
    "UnitClosed",
    "UnitRegistered",
]


class Sector(StrEnum):
    KINDERGARTEN = "kindergarten"
    SCHOOL = "school"
    UPPER_SECONDARY = "upper_secondary"
    HEALTH = "health"
    PPT = "ppt"
    CHILD_WELFARE = "child_welfare"
    NAV = "nav"
    FAMILY = "family"
    FOLLOWUP = "followup"
    OTHER = "other"


class StaffRole(StrEnum):
    LEADER = "leader"
    TEACHER = "teacher"
    SOCIAL_WORKER = "social_worker"
    HEALTH_NURSE = "health_nurse"
    PP_ADVISER = "pp_adviser"
    CHILD_WELFARE_WORKER = "child_welfare_worker"
    NAV_ADVISER = "nav_adviser"
    COORDINATOR = "coordinator"
    PILOT = "pilot"


class OrgKind(StrEnum):
    MUNICIPALITY = "municipality"
    COUNTY = "county"
    STATE_AGENCY = "state_agency"


Guide = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
"""An organisation's handlingsveileder: the steps of BTI levels 0 to 3, in order."""


class CatalogueMeasure(BaseModel):
    """A help measure (tiltak) in an organisation's catalogue ("Oversikt over tiltak")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    goal: str | None = Field(default=None, min_length=1, max_length=1000)

    @field_validator("title", "goal", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


MAX_CONSENT_DAYS = 3 * 366
"""No consent is valid longer than three years, whatever an organisation sets."""
MAX_REMINDER_DAYS = 180
"""Grantors are reminded at most half a year before a consent ends."""


class OrganisationSettings(BaseModel):
    """An organisation's own policy settings. A setting left out (``None``) is the region's:
    the consent service's ``STAFETT_CONSENT_*`` settings and its built-in lengths, and for
    the reminder times the case service's ``STAFETT_CASE_*`` settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    youth_consent_age: int | None = Field(default=None, ge=12, le=18)
    """From this age the youth consents too, beside the guardians."""
    health_youth_consent_age: int | None = Field(default=None, ge=12, le=18)
    """The same for consents that cover health (pasient- og brukerrettighetsloven § 4-3)."""
    consent_default_days: int | None = Field(default=None, ge=1, le=MAX_CONSENT_DAYS)
    """How long a consent asked for without ``valid_until`` is valid."""
    consent_max_days: int | None = Field(default=None, ge=1, le=MAX_CONSENT_DAYS)
    """The longest a consent may be valid."""
    level0_days: int | None = Field(default=None, ge=1, le=365)
    """Days a case may stay at level 0 before its holder is reminded (the case service's
    ``STAFETT_CASE_LEVEL0_DAYS`` when left out; so for the three below)."""
    evaluation_warning_days: int | None = Field(default=None, ge=0, le=60)
    """Days before a measure's evaluation date that its holder and responsible are reminded."""
    handover_days: int | None = Field(default=None, ge=1, le=60)
    """Days a handover may wait for an answer before both sides are reminded."""
    inactive_days: int | None = Field(default=None, ge=1, le=365)
    """Days without a log entry before the holder is reminded."""
    consent_reminder_days: int | None = Field(default=None, ge=1, le=MAX_REMINDER_DAYS)
    """How many days before a consent ends its grantors are reminded to renew it."""

    @model_validator(mode="after")
    def _consistent(self) -> OrganisationSettings:
        youth, health = self.youth_consent_age, self.health_youth_consent_age
        if youth is not None and health is not None and health < youth:
            raise ValueError(
                "Aldersgrensen for samtykke om helse kan ikke være lavere enn den vanlige."
            )
        default, longest = self.consent_default_days, self.consent_max_days
        reminder = self.consent_reminder_days
        if reminder is not None and longest is not None and reminder >= longest:
            raise ValueError("Påminnelsen må komme før det lengste et samtykke kan vare.")
        if default is not None and longest is not None and default > longest:
            raise ValueError("Vanlig varighet for samtykke kan ikke være lengre enn den lengste.")
        return self


class GuardianRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str = Field(pattern=ULID_PATTERN)
    national_id: Encrypted
    national_id_index: str
    name: Encrypted
    parental_responsibility: bool


class DirectoryEvent(ContractEvent):
    context: ClassVar[str] = "directory"
    owner: ClassVar[str | None] = "consent"


class _OrganisationEvent(DirectoryEvent):
    subject_pattern: ClassVar[str] = "stafett.ev.directory.org-{org_id}"


class _PersonEvent(DirectoryEvent):
    subject_pattern: ClassVar[str] = "stafett.ev.directory.person-{person_id}"


@registry.register
class OrganisationRegistered(_OrganisationEvent):
    event_type: ClassVar[str] = "no.stafett.directory.organisation_registered.v1"
    org_id: str
    region: str
    name: str
    kind: OrgKind


@registry.register
class OrganisationChanged(_OrganisationEvent):
    event_type: ClassVar[str] = "no.stafett.directory.organisation_changed.v1"
    org_id: str
    name: str
    kind: OrgKind


@registry.register
class OrganisationGuideSet(_OrganisationEvent):
    """The organisation's handlingsveileder now reads ``levels``: the steps of BTI levels 0
    to 3, in order. Organisational text, never personal data."""

    event_type: ClassVar[str] = "no.stafett.directory.organisation_guide_set.v1"
    org_id: str
    levels: Guide


@registry.register
class OrganisationMeasureCatalogueSet(_OrganisationEvent):
    """The organisation's catalogue of help measures now reads ``measures``."""

    event_type: ClassVar[str] = "no.stafett.directory.organisation_measure_catalogue_set.v1"
    org_id: str
    measures: tuple[CatalogueMeasure, ...]


@registry.register
class OrganisationChildWelfareServiceSet(_OrganisationEvent):
    """Reports of concern about children of the organisation go to ``unit_id``, a unit with
    sector ``child_welfare``, possibly another organisation's (an inter-municipal service);
    ``None``: to the organisation's own child welfare unit, as when nothing was set."""

    event_type: ClassVar[str] = "no.stafett.directory.organisation_child_welfare_service_set.v1"
    org_id: str
    unit_id: str | None = None


@registry.register
class OrganisationSettingsSet(_OrganisationEvent):
    """The organisation's own policy settings now read ``settings`` (the region's where a
    setting is ``None``). Organisational, never personal data."""

    event_type: ClassVar[str] = "no.stafett.directory.organisation_settings_set.v1"
    org_id: str
    settings: OrganisationSettings


@registry.register
class UnitRegistered(_OrganisationEvent):
    event_type: ClassVar[str] = "no.stafett.directory.unit_registered.v1"
    org_id: str
    unit_id: str
    name: str
    sector: Sector
    phone: str | None = Field(default=None, max_length=16)
    """The unit's organisational phone number, for families (not a person's)."""
    email: str | None = Field(default=None, max_length=254)
    """The unit's organisational e-mail address, for families (not a person's)."""


@registry.register
class UnitChanged(_OrganisationEvent):
    event_type: ClassVar[str] = "no.stafett.directory.unit_changed.v1"
    org_id: str
    unit_id: str
    name: str
    sector: Sector
    phone: str | None = Field(default=None, max_length=16)
    """The unit's organisational phone number, for families (not a person's)."""
    email: str | None = Field(default=None, max_length=254)
    """The unit's organisational e-mail address, for families (not a person's)."""


@registry.register
class UnitClosed(_OrganisationEvent):
    event_type: ClassVar[str] = "no.stafett.directory.unit_closed.v1"
    org_id: str
    unit_id: str


@registry.register
class StaffRegistered(_PersonEvent):
    event_type: ClassVar[str] = "no.stafett.directory.staff_registered.v1"
    person_id: str
    name: Encrypted
    name_index: str


@registry.register
class StaffRenamed(_PersonEvent):
    event_type: ClassVar[str] = "no.stafett.directory.staff_renamed.v1"
    person_id: str
    name: Encrypted
    name_index: str


@registry.register
class RoleGranted(_PersonEvent):
    event_type: ClassVar[str] = "no.stafett.directory.role_granted.v1"
    person_id: str
    org_id: str
    unit_id: str
    role: StaffRole


@registry.register
class RoleEnded(_PersonEvent):
    event_type: ClassVar[str] = "no.stafett.directory.role_ended.v1"
    person_id: str
    org_id: str
    unit_id: str
    role: StaffRole


class _LoginEvent(_PersonEvent):
    """A login of a staff issuer: its ``iss`` and the subject of its tokens (``sub``; the
    name ``subject`` is every contract's NATS subject). The subject is an identifier the
    issuer gives, not content about anyone: it is kept in clear, and never logged."""

    person_id: str
    issuer: str = Field(min_length=1, max_length=500)
    sub: str = Field(min_length=1, max_length=255)


@registry.register
class LoginBound(_LoginEvent):
    """The login now names this staff member (the region document's ``logins``)."""

    event_type: ClassVar[str] = "no.stafett.directory.login_bound.v1"


@registry.register
class LoginUnbound(_LoginEvent):
    """The login no longer names this staff member (left out of the region document)."""

    event_type: ClassVar[str] = "no.stafett.directory.login_unbound.v1"


class ClientScope(StrEnum):
    """What an agency's client may ask for (Maskinporten style ``prefix:name``; decision
    0039). Each scope opens the actions the consent service maps it to, never more: a
    client's grant needs both a basis (its purposes) and the scope of the action."""

    CASE_READ = "stafett:case.read"
    """The case: level, holder, team, measures, consents (``case:read``)."""
    LOG_READ = "stafett:log.read"
    """The stafettlogg's entries (``log:read``), within the categories its sectors open."""


class ClientPurpose(StrEnum):
    """The legal grounds an agency's client serves: on which basis it may be given case
    data at all (decision 0039)."""

    CONSENT = "consent"
    """Samtykke (forvaltningsloven § 13 a nr. 1): a consent in force names the client's
    organisation and one of the services (sectors) it serves."""


class _ClientEvent(DirectoryEvent):
    """An agency's client as the region document registers it (``clients``): its directory
    id (``client``, always ``client-…``, never a staff id), the Stafett organisation it
    belongs to, and what its tokens carry: the issuer's ``iss``, the issuer's ``client_id``
    and the consumer's organisation number (Maskinporten's ``consumer``). Identifiers an
    issuer or Brønnøysundregistrene gives, not content about anyone: kept in clear, and
    never logged."""

    subject_pattern: ClassVar[str] = "stafett.ev.directory.{client}"
    client: str = Field(pattern=r"^client-[a-z0-9-]{1,57}$")
    org_id: str = Field(pattern=ORG_ID_PATTERN)
    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=255)
    consumer_org: str = Field(pattern=r"^[0-9]{9}$")


@registry.register
class ClientRegistered(_ClientEvent):
    """A token of ``issuer`` for ``client_id`` (and ``consumer_org``) now names this client;
    registered again, the client now reads so (its name, its organisation)."""

    event_type: ClassVar[str] = "no.stafett.directory.client_registered.v1"
    name: str = Field(min_length=1, max_length=200)
    scopes: tuple[ClientScope, ...] = Field(default=(), max_length=len(ClientScope))
    """The scopes it may use (a token's scopes count only where registered here)."""
    sectors: tuple[Sector, ...] = Field(default=(), max_length=len(Sector))
    """The services it works for: a consent must name one of them."""
    purposes: tuple[ClientPurpose, ...] = Field(default=(), max_length=len(ClientPurpose))
    """The legal grounds it serves; none: it is given no case data (as before 0039)."""


@registry.register
class ClientUnregistered(_ClientEvent):
    """Those tokens no longer name this client (left out of the region document, or the
    client now registered with another issuer, client id or consumer)."""

    event_type: ClassVar[str] = "no.stafett.directory.client_unregistered.v1"


@registry.register
class ChildRegistered(DirectoryEvent):
    # One subject per national id (its blind index, cut to fit a subject token): two
    # registrations of one child cannot both win.
    event_type: ClassVar[str] = "no.stafett.directory.child_registered.v1"
    subject_pattern: ClassVar[str] = "stafett.ev.directory.nid-{national_id_index:.40}"
    child_id: str
    national_id: Encrypted
    national_id_index: str
    name: Encrypted
    birth_date: Encrypted
    guardians: tuple[GuardianRecord, ...] = Field(max_length=10)
    registered_by: str


class _GuardianEvent(DirectoryEvent):
    """A change to a registered child's guardians, on the child's subject (the blind index
    of the child's national id, as :class:`ChildRegistered`). ``reason`` is why, encrypted
    with the child's key: an administrator's words in the embedded setup, the population
    register's event in production. ``changed_by`` is who made the change (a person id, or
    the adapter that reads the register)."""

    subject_pattern: ClassVar[str] = "stafett.ev.directory.nid-{national_id_index:.40}"
    child_id: str
    national_id_index: str
    reason: Encrypted
    changed_by: str = Field(min_length=1, max_length=64)


@registry.register
class GuardianAdded(_GuardianEvent):
    """A guardian now belongs to the child, with their name and national id encrypted with
    the child's key as :class:`ChildRegistered` has them."""

    event_type: ClassVar[str] = "no.stafett.directory.guardian_added.v1"
    guardian: GuardianRecord


@registry.register
class GuardianRemoved(_GuardianEvent):
    """The person is no longer the child's guardian: they lose what being one gave them."""

    event_type: ClassVar[str] = "no.stafett.directory.guardian_removed.v1"
    person_id: str = Field(pattern=ULID_PATTERN)


@registry.register
class ParentalResponsibilityChanged(_GuardianEvent):
    """The guardian now has (or no longer has) parental responsibility for the child."""

    event_type: ClassVar[str] = "no.stafett.directory.parental_responsibility_changed.v1"
    person_id: str = Field(pattern=ULID_PATTERN)
    parental_responsibility: bool
