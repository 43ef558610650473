"""Consents and the directory: the pure rules of the consent service.

Decide, then evolve: ``decide_consent(state, command, now)`` returns the events a command
yields or raises a ``ConsentError``; ``evolve_consent(state, event)`` returns the next state.
No I/O and no clock: time is passed in, and personal data arrives already encrypted (the
handler encrypts before it decides), so this module never sees a name or a national id. Its
events are the consent and directory contexts' contracts, defined in
``stafett_shared.contracts.consent`` and ``stafett_shared.contracts.directory``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from stafett_shared.contracts.base import ORG_ID_PATTERN, POLICY_ID_PATTERN, Encrypted
from stafett_shared.contracts.consent import (
    ConsentActivated,
    ConsentExpired,
    ConsentExpiryReminderDue,
    ConsentRefused,
    ConsentRequested,
    ConsentScope,
    ConsentSigned,
    ConsentWithdrawn,
    Evidence,
    EvidenceMethod,
    GrantorGroup,
)
from stafett_shared.contracts.directory import (
    MAX_CONSENT_DAYS,
    CatalogueMeasure,
    ChildRegistered,
    ClientPurpose,
    ClientRegistered,
    ClientScope,
    ClientUnregistered,
    GuardianAdded,
    GuardianRecord,
    GuardianRemoved,
    Guide,
    LoginBound,
    LoginUnbound,
    OrganisationChanged,
    OrganisationChildWelfareServiceSet,
    OrganisationGuideSet,
    OrganisationMeasureCatalogueSet,
    OrganisationRegistered,
    OrganisationSettings,
    OrganisationSettingsSet,
    OrgKind,
    ParentalResponsibilityChanged,
    RoleEnded,
    RoleGranted,
    Sector,
    StaffRegistered,
    StaffRenamed,
    StaffRole,
    UnitChanged,
    UnitClosed,
    UnitRegistered,
)
from stafett_shared.envelope import EventData
from stafett_shared.ids import CLIENT_ID_PATTERN, CLIENT_ID_PREFIX, LOGIN_ID_PREFIX, is_org_number
from stafett_shared.settings import DEV_ISSUER

CONTEXT = "consent"
PERSON_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
MAX_VALIDITY = timedelta(days=MAX_CONSENT_DAYS)
DEFAULT_VALIDITY = timedelta(days=365)
DEFAULT_REMINDER = timedelta(days=30)


class ConsentStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


# --- errors --------------------------------------------------------------------------------


class ConsentError(Exception):
    """A command the rules refuse. ``code`` is for machines; the message names no person."""

    code: ClassVar[str] = "consent_error"
    status: ClassVar[int] = 409


class NoGrantor(ConsentError):
    code = "no_grantor"
    status = 422


class ValidityInPast(ConsentError):
    code = "validity_in_past"
    status = 422


class ValidityTooLong(ConsentError):
    code = "validity_too_long"
    status = 422


class UnknownBirthDate(ConsentError):
    code = "unknown_birth_date"
    status = 422


class NotAGrantor(ConsentError):
    code = "not_a_grantor"
    status = 422


class AlreadySigned(ConsentError):
    code = "already_signed"


class NotPending(ConsentError):
    code = "not_pending"


class NotInForce(ConsentError):
    code = "not_in_force"


class UnknownConsent(ConsentError):
    code = "unknown_consent"
    status = 404


# --- the consent aggregate ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentState:
    consent_id: str | None = None
    case_id: str | None = None
    status: ConsentStatus | None = None
    grantors: tuple[GrantorGroup, ...] = ()
    signed: frozenset[str] = frozenset()
    valid_until: datetime | None = None
    reminded: bool = False

    @property
    def all_grantors(self) -> frozenset[str]:
        return frozenset(m for group in self.grantors for m in group.members)


@dataclass(frozen=True, slots=True)
class RequestConsent:
    consent_id: str
    case_id: str
    child_id: str
    scope: ConsentScope
    valid_until: datetime | None
    evidence: Evidence
    grantors: GrantorRule
    requested_by: str
    default_validity: timedelta = DEFAULT_VALIDITY  # the organisation's settings
    max_validity: timedelta = MAX_VALIDITY
    valid_from: datetime | None = None  # a renewal starts when the consent it renews ends
    renews: str | None = None


@dataclass(frozen=True, slots=True)
class SignConsent:
    grantor_person_id: str
    method: EvidenceMethod
    reference: Encrypted | None
    recorded_by: str


@dataclass(frozen=True, slots=True)
class RefuseConsent:
    grantor_person_id: str
    reason: Encrypted | None
    recorded_by: str


@dataclass(frozen=True, slots=True)
class WithdrawConsent:
    grantor_person_id: str
    reason: Encrypted | None
    recorded_by: str


@dataclass(frozen=True, slots=True)
class ExpireConsent:
    pass


@dataclass(frozen=True, slots=True)
class RemindOfExpiry:
    """Remind the grantors of an active consent ending within ``ahead`` (once)."""

    ahead: timedelta


ConsentCommand = (
    RequestConsent | SignConsent | RefuseConsent | WithdrawConsent | ExpireConsent | RemindOfExpiry
)


def decide_consent(state: ConsentState, command: ConsentCommand, now: datetime) -> list[EventData]:
    """The events ``command`` yields on ``state`` at ``now``; raises ``ConsentError``."""
    if isinstance(command, RequestConsent):
        if state.status is not None:
            raise ConsentError("the consent exists already")
        # A renewal's window starts where the old one ends, so that no day falls between.
        start = max(now, command.valid_from or now)
        valid_until = command.valid_until or start + min(
            command.default_validity, command.max_validity
        )
        if valid_until <= start:
            raise ValidityInPast("valid_until must lie in the future")
        if valid_until - start > min(command.max_validity, MAX_VALIDITY):
            raise ValidityTooLong("the consent is valid longer than the organisation allows")
        return [
            ConsentRequested(
                consent_id=command.consent_id,
                case_id=command.case_id,
                child_id=command.child_id,
                scope=command.scope,
                valid_from=start,
                valid_until=valid_until,
                evidence=command.evidence,
                grantors=command.grantors.groups,
                rule=command.grantors.rule,
                age_applied=command.grantors.age,
                threshold_age=command.grantors.threshold,
                requested_by=command.requested_by,
                renews=command.renews,
            )
        ]
    if state.status is None or state.consent_id is None or state.case_id is None:
        raise UnknownConsent("no such consent")
    if isinstance(command, SignConsent):
        if state.status is not ConsentStatus.PENDING:
            raise NotPending("only a pending consent can be signed")
        if command.grantor_person_id not in state.all_grantors:
            raise NotAGrantor("the person is not among the required grantors")
        if command.grantor_person_id in state.signed:
            raise AlreadySigned("the grantor has signed already")
        events: list[EventData] = [
            ConsentSigned(
                consent_id=state.consent_id,
                grantor_person_id=command.grantor_person_id,
                method=command.method,
                reference=command.reference,
                recorded_by=command.recorded_by,
            )
        ]
        signed = state.signed | {command.grantor_person_id}
        if all(group.satisfied_by(signed) for group in state.grantors):
            events.append(ConsentActivated(consent_id=state.consent_id, case_id=state.case_id))
        return events
    if isinstance(command, RefuseConsent):
        if state.status is not ConsentStatus.PENDING:
            raise NotPending("only a pending consent can be refused; withdraw an active one")
        if command.grantor_person_id not in state.all_grantors:
            raise NotAGrantor("the person is not among the grantors")
        return [
            ConsentRefused(
                consent_id=state.consent_id,
                case_id=state.case_id,
                grantor_person_id=command.grantor_person_id,
                reason=command.reason,
                recorded_by=command.recorded_by,
            )
        ]
    if isinstance(command, WithdrawConsent):
        if state.status not in (ConsentStatus.PENDING, ConsentStatus.ACTIVE):
            raise NotInForce("the consent is no longer in force")
        if command.grantor_person_id not in state.all_grantors:
            raise NotAGrantor("the person is not among the grantors")
        return [
            ConsentWithdrawn(
                consent_id=state.consent_id,
                case_id=state.case_id,
                grantor_person_id=command.grantor_person_id,
                reason=command.reason,
                recorded_by=command.recorded_by,
            )
        ]
    if isinstance(command, RemindOfExpiry):
        if state.status is not ConsentStatus.ACTIVE or state.reminded:
            return []
        if state.valid_until is None or not now < state.valid_until <= now + command.ahead:
            return []
        return [
            ConsentExpiryReminderDue(
                consent_id=state.consent_id,
                case_id=state.case_id,
                valid_until=state.valid_until,
                grantor_person_ids=tuple(sorted(state.all_grantors)),
            )
        ]
    # ExpireConsent
    if state.status not in (ConsentStatus.PENDING, ConsentStatus.ACTIVE):
        return []
    if state.valid_until is None or now < state.valid_until:
        return []
    return [ConsentExpired(consent_id=state.consent_id, case_id=state.case_id)]


def evolve_consent(state: ConsentState, event: EventData) -> ConsentState:
    if isinstance(event, ConsentRequested):
        return ConsentState(
            consent_id=event.consent_id,
            case_id=event.case_id,
            status=ConsentStatus.PENDING,
            grantors=event.grantors,
            valid_until=event.valid_until,
        )
    if isinstance(event, ConsentSigned):
        return replace(state, signed=state.signed | {event.grantor_person_id})
    if isinstance(event, ConsentActivated):
        return replace(state, status=ConsentStatus.ACTIVE)
    if isinstance(event, ConsentRefused):
        return replace(state, status=ConsentStatus.REFUSED)
    if isinstance(event, ConsentWithdrawn):
        return replace(state, status=ConsentStatus.WITHDRAWN)
    if isinstance(event, ConsentExpired):
        return replace(state, status=ConsentStatus.EXPIRED)
    if isinstance(event, ConsentExpiryReminderDue):
        return replace(state, reminded=True)
    return state


def replay_consent(events: Iterable[EventData]) -> ConsentState:
    state = ConsentState()
    for event in events:
        state = evolve_consent(state, event)
    return state


# --- who must consent --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantorPolicy:
    """Age thresholds are policy settings; every consent stores the rule and age it used."""

    youth_age: int = 15  # from this age the youth consents too (some municipalities use 16)
    health_youth_age: int = 16  # health information (pasient- og brukerrettighetsloven § 4-3)
    adult_age: int = 18  # from this age the person consents alone
    one_guardian_enough: bool = False  # joint responsibility: both must consent by default
    default_validity: timedelta = DEFAULT_VALIDITY  # a consent asked for without an end
    max_validity: timedelta = MAX_VALIDITY
    reminder: timedelta = DEFAULT_REMINDER  # grantors are reminded this long before the end

    def for_organisation(self, settings: OrganisationSettings) -> GrantorPolicy:
        """The region's policy with what the organisation set itself in its place."""
        return replace(
            self,
            youth_age=_or(settings.youth_consent_age, self.youth_age),
            health_youth_age=_or(settings.health_youth_consent_age, self.health_youth_age),
            default_validity=_days_or(settings.consent_default_days, self.default_validity),
            max_validity=_days_or(settings.consent_max_days, self.max_validity),
            reminder=_days_or(settings.consent_reminder_days, self.reminder),
        )


def _or(value: int | None, region: int) -> int:
    return region if value is None else value


def _days_or(days: int | None, region: timedelta) -> timedelta:
    return region if days is None else timedelta(days=days)


@dataclass(frozen=True, slots=True)
class GrantorRule:
    rule: str
    age: int
    threshold: int
    groups: tuple[GrantorGroup, ...]


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def required_grantors(
    *,
    child_id: str,
    birth_date: date | None,
    guardians_with_responsibility: Sequence[str],
    covers_health: bool,
    today: date,
    policy: GrantorPolicy = GrantorPolicy(),
) -> GrantorRule:
    """Who must sign, by the child's age on ``today`` (forvaltningsloven § 13 a nr. 1)."""
    if birth_date is None:
        raise UnknownBirthDate("the child's birth date is not known")
    age = age_on(birth_date, today)
    if age >= policy.adult_age:
        return GrantorRule(
            "adult_alone",
            age,
            policy.adult_age,
            (GrantorGroup(kind="person", members=(child_id,)),),
        )
    youth_threshold = policy.health_youth_age if covers_health else policy.youth_age
    guardians = tuple(dict.fromkeys(guardians_with_responsibility))
    if not guardians:
        raise NoGrantor("no guardian with parental responsibility is registered")
    guardian_group = GrantorGroup(
        kind="guardians", members=guardians, needed="any" if policy.one_guardian_enough else "all"
    )
    if age >= youth_threshold:
        return GrantorRule(
            "guardians_and_youth_health" if covers_health else "guardians_and_youth",
            age,
            youth_threshold,
            (guardian_group, GrantorGroup(kind="youth", members=(child_id,))),
        )
    return GrantorRule("guardians", age, youth_threshold, (guardian_group,))


# --- the directory ------------------------------------------------------------------------

# What one region document may hold, and so what the directory answers at most.
MAX_ORGANISATIONS = 500
MAX_UNITS = 2000  # per organisation
MAX_STAFF = 20000
MAX_STAFF_CARDS = 50
"""Staff a person may look up at once (``GET /api/v1/staff``): a page of readers."""
MAX_ROLES = 50  # per staff member
MAX_LOGINS = 10  # per staff member
MAX_CLIENTS = 1000  # agency clients in the region


PHONE_PATTERN = r"^\+?[0-9][0-9 ]*[0-9]$"
"""A unit's phone number, loosely: digits and spaces, perhaps a leading +, 8 to 16 long."""
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
"""A unit's e-mail address, loosely: one @, a domain with a dot, no spaces."""


class UnitDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=POLICY_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    sector: Sector
    # The unit's own contact details, for families: organisational, never a person's.
    phone: str | None = Field(default=None, max_length=16)
    email: str | None = Field(default=None, max_length=254)

    @field_validator("phone", "email", mode="before")
    @classmethod
    def _strip_contact(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) >= 8 and re.fullmatch(PHONE_PATTERN, value)):
            raise ValueError(
                "Telefonnummeret må ha 8 til 16 tegn: sifre og mellomrom, gjerne med + først."
            )
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(EMAIL_PATTERN, value):
            raise ValueError("E-postadressen har ikke riktig form, som post@kommune.no.")
        return value


GuideLevel = Literal["0", "1", "2", "3"]
BTI_LEVELS: tuple[GuideLevel, ...] = ("0", "1", "2", "3")
GuideStep = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
GuideSteps = Annotated[tuple[GuideStep, ...], Field(max_length=20)]
EMPTY_GUIDE: Guide = ((), (), (), ())


class _OrganisationContent(BaseModel):
    """What an organisation holds itself: its units, guide, measure catalogue and settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    units: tuple[UnitDoc, ...] = Field(default=(), max_length=MAX_UNITS)
    # The handlingsveileder: what to do at each BTI level, as short steps.
    guide: dict[GuideLevel, GuideSteps] = Field(default_factory=dict)
    measure_catalogue: tuple[CatalogueMeasure, ...] = Field(default=(), max_length=200)
    # Where reports of concern to child welfare go (opplysningsplikt): a unit with sector
    # child_welfare, the organisation's own or an inter-municipal service's; left out, the
    # organisation's own child welfare unit.
    child_welfare_unit_id: str | None = Field(default=None, pattern=POLICY_ID_PATTERN)
    settings: OrganisationSettings = Field(default_factory=OrganisationSettings)

    @field_validator("guide", mode="before")
    @classmethod
    def _level_names(cls, value: object) -> object:
        # YAML reads the key `0:` as a number and JSON as a string: both name level 0.
        if isinstance(value, dict):
            return {str(k) if type(k) is int else k: v for k, v in value.items()}
        return value

    @field_validator("measure_catalogue")
    @classmethod
    def _unique_titles(cls, value: tuple[CatalogueMeasure, ...]) -> tuple[CatalogueMeasure, ...]:
        titles = [measure.title for measure in value]
        if len(set(titles)) != len(titles):
            raise ValueError("Hvert tiltak i katalogen må ha sin egen tittel.")
        return value

    def guide_steps(self) -> Guide:
        """The steps of levels 0 to 3, in order (a level the document leaves out has none)."""
        steps = [self.guide.get(level, ()) for level in BTI_LEVELS]
        return (steps[0], steps[1], steps[2], steps[3])


class OrganisationDoc(_OrganisationContent):
    id: str = Field(pattern=ORG_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    kind: OrgKind


class RoleDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: str = Field(pattern=POLICY_ID_PATTERN)
    role: StaffRole


def _exact(value: str) -> str:
    # A token's claims are compared as they stand: white space around one is a mistake in
    # the document, never part of an id.
    if value != value.strip() or any(c.isspace() for c in value):
        raise ValueError("Verdien kan ikke ha mellomrom.")
    return value


def _configured(issuer: str) -> str:
    if issuer == DEV_ISSUER:
        raise ValueError("Utviklingsutstederens innlogginger er personens eller klientens id selv.")
    return issuer


ConfiguredIssuer = Annotated[
    str, Field(min_length=1, max_length=500), AfterValidator(_exact), AfterValidator(_configured)
]
"""A configured issuer's ``iss`` as its tokens carry it (never the development issuer's)."""
TokenClaim = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_exact)]
"""A subject or client id as an issuer's tokens carry it."""


class LoginDoc(BaseModel):
    """A login that is this staff member: a configured staff issuer's ``iss`` and the
    ``sub`` its tokens carry for them (an Entra ID ``oid``, a Feide user id), exactly as
    the issuer writes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: ConfiguredIssuer
    subject: TokenClaim

    @property
    def key(self) -> tuple[str, str]:
        return (self.issuer, self.subject)


class StaffDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=POLICY_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    roles: tuple[RoleDoc, ...] = Field(default=(), max_length=MAX_ROLES)
    logins: tuple[LoginDoc, ...] = Field(default=(), max_length=MAX_LOGINS)

    @field_validator("id")
    @classmethod
    def _not_a_login_id(cls, value: str) -> str:
        # Ids starting so are derived from an administrator's login (stafett_shared.auth):
        # a staff member of that id would be that administrator. Clients' ids have their
        # own prefix, so no staff id is ever a client's.
        for prefix in (LOGIN_ID_PREFIX, CLIENT_ID_PREFIX):
            if value.startswith(prefix):
                raise ValueError(f"En ansatt-id kan ikke begynne med {prefix!r}.")
        return value

    @field_validator("logins")
    @classmethod
    def _unique_logins(cls, value: tuple[LoginDoc, ...]) -> tuple[LoginDoc, ...]:
        if len({login.key for login in value}) != len(value):
            raise ValueError("En innlogging står to ganger.")
        return value


class ClientDoc(BaseModel):
    """An agency's system that may call Stafett (Maskinporten style): ``id`` is its id in
    the directory (``client-…``, the principal's id), ``org_id`` the Stafett organisation it
    belongs to, and a token names it when a configured client issuer (``issuer``) signed it
    for ``client_id``, with ``consumer_org`` (the organisation number in Maskinporten's
    ``consumer`` claim) as the consumer when the token names one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=CLIENT_ID_PATTERN.pattern)
    name: str = Field(min_length=1, max_length=200)
    org_id: str = Field(pattern=ORG_ID_PATTERN)
    issuer: ConfiguredIssuer
    client_id: TokenClaim
    consumer_org: str = Field(min_length=9, max_length=9)
    scopes: tuple[ClientScope, ...] = Field(default=(), max_length=len(ClientScope))
    """The scopes it may use (decision 0039): a token's scope counts only where listed."""
    sectors: tuple[Sector, ...] = Field(default=(), max_length=len(Sector))
    """The services it works for: a consent must name its organisation and one of them."""
    purposes: tuple[ClientPurpose, ...] = Field(default=(), max_length=len(ClientPurpose))
    """The legal grounds it serves; none gives it no case data."""

    @property
    def access(self) -> ClientAccess:
        return ClientAccess(
            tuple(sorted(set(self.scopes))),
            tuple(sorted(set(self.sectors))),
            tuple(sorted(set(self.purposes))),
        )

    @field_validator("consumer_org")
    @classmethod
    def _org_number(cls, value: str) -> str:
        if not is_org_number(value):
            raise ValueError("Må være et organisasjonsnummer: ni sifre med gyldig kontrollsiffer.")
        return value

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.issuer, self.client_id, self.consumer_org)


@dataclass(frozen=True, slots=True)
class ClientAccess:
    """A registered client's scopes, the services it works for and its legal grounds, as
    the region document lists them (sorted, so that a reordered list is no change)."""

    scopes: tuple[ClientScope, ...] = ()
    sectors: tuple[Sector, ...] = ()
    purposes: tuple[ClientPurpose, ...] = ()


class RegionDocument(BaseModel):
    """The region document of CONTRACT.md (YAML or JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str = Field(pattern=POLICY_ID_PATTERN)
    organisations: tuple[OrganisationDoc, ...] = Field(max_length=MAX_ORGANISATIONS)
    staff: tuple[StaffDoc, ...] = Field(default=(), max_length=MAX_STAFF)
    clients: tuple[ClientDoc, ...] = Field(default=(), max_length=MAX_CLIENTS)

    @model_validator(mode="after")
    def _consistent(self) -> RegionDocument:
        org_ids = [org.id for org in self.organisations]
        if len(set(org_ids)) != len(org_ids):
            raise ValueError("Hver virksomhet må ha sin egen id.")
        unit_ids = [unit.id for org in self.organisations for unit in org.units]
        if len(set(unit_ids)) != len(unit_ids):
            raise ValueError("Hver enhet i regionen må ha sin egen id.")
        staff_ids = [person.id for person in self.staff]
        if len(set(staff_ids)) != len(staff_ids):
            raise ValueError("Hver ansatt må ha sin egen id.")
        bound: set[tuple[str, str]] = set()
        for person in self.staff:
            for login in person.logins:
                if login.key in bound:
                    # Neither the issuer nor the subject is repeated in the message.
                    raise ValueError("En innlogging er bundet til to ansatte.")
                bound.add(login.key)
        known = set(unit_ids)
        for person in self.staff:
            for role in person.roles:
                if role.unit_id not in known:
                    raise ValueError(f"En rolle viser til en ukjent enhet: {role.unit_id}.")
        client_ids = [client.id for client in self.clients]
        if len(set(client_ids)) != len(client_ids):
            raise ValueError("Hver klient må ha sin egen id.")
        if set(client_ids) & set(staff_ids):
            raise ValueError("En klient-id er også en ansatt-id.")  # the prefixes forbid it already
        if len({client.key for client in self.clients}) != len(self.clients):
            # Neither the issuer nor the client id is repeated in the message.
            raise ValueError("En klients utsteder, klient-id og konsument er registrert to ganger.")
        for client in self.clients:
            if client.org_id not in org_ids:
                raise ValueError(f"En klient viser til en ukjent virksomhet: {client.org_id}.")
        self._child_welfare_services()
        return self

    def _child_welfare_services(self) -> None:
        sectors = {unit.id: unit.sector for org in self.organisations for unit in org.units}
        for org in self.organisations:
            named = org.child_welfare_unit_id
            if named is None:
                own = [unit.id for unit in org.units if unit.sector == Sector.CHILD_WELFARE]
                if len(own) > 1:
                    raise ValueError(
                        f"Virksomheten {org.id} har flere barneverntjenester: oppgi hvilken "
                        "som tar imot bekymringsmeldinger (child_welfare_unit_id)."
                    )
            elif sectors.get(named) != Sector.CHILD_WELFARE:
                raise ValueError(
                    f"Virksomheten {org.id} viser til en enhet som ikke er en "
                    f"barneverntjeneste i regionen: {named}."
                )

    def unit_org(self) -> dict[str, str]:
        return {unit.id: org.id for org in self.organisations for unit in org.units}


@dataclass(frozen=True, slots=True)
class DirectoryState:
    """What the directory holds now, as far as a region document can change it."""

    organisations: dict[str, tuple[str, OrgKind]] = field(default_factory=dict)
    guides: dict[str, Guide] = field(default_factory=dict)  # org id -> steps per level
    catalogues: dict[str, tuple[CatalogueMeasure, ...]] = field(default_factory=dict)
    # org id -> the child welfare unit it names for reports (absent: none named)
    child_welfare: dict[str, str | None] = field(default_factory=dict)
    settings: dict[str, OrganisationSettings] = field(default_factory=dict)
    # unit id -> (org id, name, sector)
    units: dict[str, tuple[str, str, Sector]] = field(default_factory=dict)
    # unit id -> (phone, email) of an open unit with contact details
    unit_contacts: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    closed_units: dict[str, str] = field(default_factory=dict)  # unit id -> org id
    staff: dict[str, str] = field(default_factory=dict)  # person id -> name index
    roles: frozenset[tuple[str, str, StaffRole]] = frozenset()  # person, unit, role
    logins: frozenset[tuple[str, str, str]] = frozenset()  # person, issuer, subject
    # client id -> (org id, name, issuer, client id of the issuer, consumer organisation)
    clients: dict[str, tuple[str, str, str, str, str]] = field(default_factory=dict)
    # client id -> what it may be given (decision 0039); a client not here has none
    client_access: dict[str, ClientAccess] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaffName:
    """A staff member's name as the handler prepared it: encrypted, with its blind index."""

    encrypted: Encrypted
    index: str


def diff_directory(
    current: DirectoryState, document: RegionDocument, names: dict[str, StaffName]
) -> dict[str, list[EventData]]:
    """Events per aggregate (``org-<id>``, ``person-<id>``) that bring the directory to the
    document: new and changed organisations and units, changed guides, measure catalogues
    and child welfare services (an organisation the document gives none has none), closed
    units, new staff, renamed staff, roles granted and roles ended (a staff member dropped
    from a unit loses the roles there at once), logins bound and unbound (a login the
    document no longer lists, or lists for someone else, stops naming its staff member), and
    clients registered and unregistered (``client-<id>``: a client the document leaves out,
    or registers with another issuer, client id, consumer or organisation, is unregistered
    as it was first)."""
    out: dict[str, list[EventData]] = {}
    unit_org = document.unit_org()
    for org in document.organisations:
        events = out.setdefault(f"org-{org.id}", [])
        known = current.organisations.get(org.id)
        if known is None:
            events.append(
                OrganisationRegistered(
                    org_id=org.id, region=document.region, name=org.name, kind=org.kind
                )
            )
        elif known != (org.name, org.kind):
            events.append(OrganisationChanged(org_id=org.id, name=org.name, kind=org.kind))
        if current.guides.get(org.id, EMPTY_GUIDE) != org.guide_steps():
            events.append(OrganisationGuideSet(org_id=org.id, levels=org.guide_steps()))
        if current.settings.get(org.id, OrganisationSettings()) != org.settings:
            events.append(OrganisationSettingsSet(org_id=org.id, settings=org.settings))
        if current.catalogues.get(org.id, ()) != org.measure_catalogue:
            events.append(
                OrganisationMeasureCatalogueSet(org_id=org.id, measures=org.measure_catalogue)
            )
        if current.child_welfare.get(org.id) != org.child_welfare_unit_id:
            events.append(
                OrganisationChildWelfareServiceSet(org_id=org.id, unit_id=org.child_welfare_unit_id)
            )
        for unit in org.units:
            existing = current.units.get(unit.id)
            contact = (unit.phone, unit.email)
            if existing is None:
                kind: type[UnitRegistered | UnitChanged] = UnitRegistered
            elif (
                existing != (org.id, unit.name, unit.sector)
                or current.unit_contacts.get(unit.id, (None, None)) != contact
            ):
                kind = UnitChanged
            else:
                continue
            events.append(
                kind(
                    org_id=org.id,
                    unit_id=unit.id,
                    name=unit.name,
                    sector=unit.sector,
                    phone=unit.phone,
                    email=unit.email,
                )
            )
    for unit_id, (org_id, _name, _sector) in sorted(current.units.items()):
        if unit_id not in unit_org:
            out.setdefault(f"org-{org_id}", []).append(UnitClosed(org_id=org_id, unit_id=unit_id))
    wanted_roles: set[tuple[str, str, StaffRole]] = set()
    for person in document.staff:
        events = out.setdefault(f"person-{person.id}", [])
        name = names[person.id]
        if person.id not in current.staff:
            events.append(
                StaffRegistered(person_id=person.id, name=name.encrypted, name_index=name.index)
            )
        elif current.staff[person.id] != name.index:
            events.append(
                StaffRenamed(person_id=person.id, name=name.encrypted, name_index=name.index)
            )
        for role in person.roles:
            key = (person.id, role.unit_id, role.role)
            wanted_roles.add(key)
            if key not in current.roles:
                events.append(
                    RoleGranted(
                        person_id=person.id,
                        org_id=unit_org[role.unit_id],
                        unit_id=role.unit_id,
                        role=role.role,
                    )
                )
    wanted_logins = {
        (person.id, login.issuer, login.subject)
        for person in document.staff
        for login in person.logins
    }
    # A login moved from one staff member to another is unbound from the one and bound to
    # the other; the read model keeps one person per login, whichever event comes first.
    for person_id, issuer, subject in sorted(current.logins - wanted_logins):
        out.setdefault(f"person-{person_id}", []).append(
            LoginUnbound(person_id=person_id, issuer=issuer, sub=subject)
        )
    for person in document.staff:
        for login in person.logins:
            if (person.id, login.issuer, login.subject) not in current.logins:
                out.setdefault(f"person-{person.id}", []).append(
                    LoginBound(person_id=person.id, issuer=login.issuer, sub=login.subject)
                )
    for person_id, unit_id, role_name in sorted(current.roles - wanted_roles):
        org_id = current.units.get(unit_id, ("", "", Sector.OTHER))[0]
        out.setdefault(f"person-{person_id}", []).append(
            RoleEnded(person_id=person_id, org_id=org_id, unit_id=unit_id, role=role_name)
        )
    _diff_clients(current, document, out)
    return {aggregate: events for aggregate, events in out.items() if events}


def _diff_clients(
    current: DirectoryState, document: RegionDocument, out: dict[str, list[EventData]]
) -> None:
    wanted = {
        c.id: (c.org_id, c.name, c.issuer, c.client_id, c.consumer_org) for c in document.clients
    }
    # A registration that changes what names the client, or its organisation, is undone
    # first: the read model keeps one client per (issuer, client id, consumer).
    for client_id, (org_id, _name, issuer, token_client, consumer) in sorted(
        current.clients.items()
    ):
        now = wanted.get(client_id)
        if now is None or (now[0], *now[2:]) != (org_id, issuer, token_client, consumer):
            out.setdefault(client_id, []).append(
                ClientUnregistered(
                    client=client_id,
                    org_id=org_id,
                    issuer=issuer,
                    client_id=token_client,
                    consumer_org=consumer,
                )
            )
    for client in document.clients:
        if (
            current.clients.get(client.id) != wanted[client.id]
            or current.client_access.get(client.id, ClientAccess()) != client.access
        ):
            access = client.access
            out.setdefault(client.id, []).append(
                ClientRegistered(
                    client=client.id,
                    org_id=client.org_id,
                    name=client.name,
                    issuer=client.issuer,
                    client_id=client.client_id,
                    consumer_org=client.consumer_org,
                    scopes=access.scopes,
                    sectors=access.sectors,
                    purposes=access.purposes,
                )
            )


# --- a child's guardians ---------------------------------------------------------------------

MAX_GUARDIANS = 10


class UnknownChild(ConsentError):
    code = "unknown_child"
    status = 404


class UnknownGuardian(ConsentError):
    code = "unknown_guardian"
    status = 404


class AlreadyGuardian(ConsentError):
    code = "already_guardian"


class TooManyGuardians(ConsentError):
    code = "too_many_guardians"
    status = 422


class ChildIsGuardian(ConsentError):
    code = "child_is_guardian"
    status = 422


@dataclass(frozen=True, slots=True)
class ChildGuardians:
    """A registered child's guardians as the child's events leave them: person id to
    (blind index of the national id, parental responsibility)."""

    child_id: str
    national_id_index: str
    guardians: dict[str, tuple[str, bool]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddGuardian:
    guardian: GuardianRecord  # name and national id already encrypted with the child's key
    reason: Encrypted
    changed_by: str


@dataclass(frozen=True, slots=True)
class RemoveGuardian:
    person_id: str
    reason: Encrypted
    changed_by: str


@dataclass(frozen=True, slots=True)
class SetParentalResponsibility:
    person_id: str
    parental_responsibility: bool
    reason: Encrypted
    changed_by: str


GuardianCommand = AddGuardian | RemoveGuardian | SetParentalResponsibility


def decide_guardians(state: ChildGuardians | None, command: GuardianCommand) -> list[EventData]:
    """The events a change to a child's guardians yields; raises ``ConsentError``. Setting
    the responsibility a guardian already has yields nothing (asked again, it is done)."""
    if state is None:
        raise UnknownChild("the child is not registered")
    common = {
        "child_id": state.child_id,
        "national_id_index": state.national_id_index,
        "reason": command.reason,
        "changed_by": command.changed_by,
    }
    if isinstance(command, AddGuardian):
        new = command.guardian
        if new.national_id_index == state.national_id_index:
            raise ChildIsGuardian("the child cannot be their own guardian")
        if new.person_id in state.guardians or any(
            index == new.national_id_index for index, _ in state.guardians.values()
        ):
            raise AlreadyGuardian("the person is a guardian of the child already")
        if len(state.guardians) >= MAX_GUARDIANS:
            raise TooManyGuardians(f"a child has at most {MAX_GUARDIANS} guardians")
        return [GuardianAdded(guardian=new, **common)]
    if command.person_id not in state.guardians:
        raise UnknownGuardian("the person is not a guardian of the child")
    if isinstance(command, RemoveGuardian):
        return [GuardianRemoved(person_id=command.person_id, **common)]
    if state.guardians[command.person_id][1] == command.parental_responsibility:
        return []
    return [
        ParentalResponsibilityChanged(
            person_id=command.person_id,
            parental_responsibility=command.parental_responsibility,
            **common,
        )
    ]


def evolve_guardians(state: ChildGuardians | None, event: EventData) -> ChildGuardians | None:
    match event:
        case ChildRegistered():
            return ChildGuardians(
                event.child_id,
                event.national_id_index,
                {
                    g.person_id: (g.national_id_index, g.parental_responsibility)
                    for g in event.guardians
                },
            )
        case GuardianAdded() if state is not None:
            record = event.guardian
            return replace(
                state,
                guardians={
                    **state.guardians,
                    record.person_id: (record.national_id_index, record.parental_responsibility),
                },
            )
        case GuardianRemoved() if state is not None:
            return replace(
                state,
                guardians={p: g for p, g in state.guardians.items() if p != event.person_id},
            )
        case ParentalResponsibilityChanged() if state is not None and (
            event.person_id in state.guardians
        ):
            index, _ = state.guardians[event.person_id]
            return replace(
                state,
                guardians={
                    **state.guardians,
                    event.person_id: (index, event.parental_responsibility),
                },
            )
    return state


def replay_guardians(events: Iterable[EventData]) -> ChildGuardians | None:
    state: ChildGuardians | None = None
    for event in events:
        state = evolve_guardians(state, event)
    return state


# --- an organisation's own part of the region document -----------------------------------


class NotYours(ConsentError):
    """An organisation's administrator named what belongs to another organisation."""

    code = "forbidden"
    status = 403


class OrganisationPart(_OrganisationContent):
    """An organisation's part of the region document, as its administrator manages it: its
    units, guide, measure catalogue and settings, the staff with roles in its units (only
    those roles), and its clients. The organisation's id, name and kind are the region's."""

    staff: tuple[StaffDoc, ...] = Field(default=(), max_length=MAX_STAFF)
    clients: tuple[ClientDoc, ...] = Field(default=(), max_length=MAX_CLIENTS)


def own_staff(current: DirectoryState, org_id: str) -> frozenset[str]:
    """Staff the organisation has to itself: every role they hold is in its units. Only
    these are renamed and given logins through the organisation's part; a staff member with
    a role elsewhere, or with no role at all, is the region's (or shared)."""
    orgs_of: dict[str, set[str]] = {}
    for person_id, unit_id, _role in current.roles:
        unit = current.units.get(unit_id)
        orgs_of.setdefault(person_id, set()).add(unit[0] if unit else "")
    return frozenset(person for person, orgs in orgs_of.items() if orgs == {org_id})


def organisation_scope(
    current: DirectoryState,
    region: str,
    org_id: str,
    part: OrganisationPart,
    name_indexes: dict[str, str],
) -> tuple[DirectoryState, RegionDocument]:
    """The directory as far as ``org_id``'s part reaches, and the region document that part
    makes of it: ``diff_directory`` over the two changes this organisation only (its units,
    guide, catalogue, settings and clients, the roles in its units, its own staff's names
    and logins). Raises ``NotYours`` for a unit, client or login of another organisation,
    a new name or other logins for a staff member it does not have to itself, and
    ``ValueError`` (bokmål) for a part that does not hold together."""
    name, kind = current.organisations[org_id]
    own = own_staff(current, org_id)
    named = part.child_welfare_unit_id
    own_units = {unit.id for unit in part.units}
    if named is not None and named not in own_units:
        elsewhere = current.units.get(named)
        if elsewhere is None or elsewhere[2] != Sector.CHILD_WELFARE:
            raise ValueError(
                "Virksomheten viser til en enhet som ikke er en barneverntjeneste i regionen: "
                f"{named}."
            )
    listed = {person.id for person in part.staff}
    for unit in part.units:
        # A closed unit is still its organisation's: its cases are, and registering it
        # again here would give this organisation's leaders access to them.
        owner = current.units[unit.id][0] if unit.id in current.units else None
        owner = owner or current.closed_units.get(unit.id)
        if owner is not None and owner != org_id:
            raise NotYours("Enheten hører til en annen virksomhet.")
    logins_of: dict[str, set[tuple[str, str]]] = {}
    for person_id, issuer, subject in current.logins:
        logins_of.setdefault(person_id, set()).add((issuer, subject))
    bound_to = {(issuer, subject): person for person, issuer, subject in current.logins}
    staff: list[StaffDoc] = []
    for listed_person in part.staff:
        person = listed_person
        wanted = {login.key for login in person.logins}
        if person.id in current.staff and person.id not in own:
            # Someone shared with (or left by) another organisation: their roles here only.
            if name_indexes[person.id] != current.staff[person.id]:
                raise NotYours(
                    "Navnet til en ansatt med roller i andre virksomheter endres av regionens "
                    "administrator."
                )
            if wanted and wanted != logins_of.get(person.id, set()):
                raise NotYours(
                    "Innlogginger til en ansatt med roller i andre virksomheter endres av "
                    "regionens administrator."
                )
            kept = sorted(logins_of.get(person.id, set()))
            person = person.model_copy(
                update={"logins": tuple(LoginDoc(issuer=i, subject=s) for i, s in kept)}
            )
        for key in wanted:
            holder = bound_to.get(key)
            if (
                holder is not None
                and holder != person.id
                and not (holder in own and holder in listed)
            ):
                raise NotYours("Innloggingen er bundet til en ansatt i en annen virksomhet.")
        staff.append(person)
    ours = {cid: c for cid, c in current.clients.items() if c[0] == org_id}
    for client in part.clients:
        if client.org_id != org_id:
            raise NotYours("En klient i delen må høre til virksomheten.")
        if client.id in current.clients and client.id not in ours:
            raise NotYours("Klienten hører til en annen virksomhet.")
    taken = {c[2:]: cid for cid, c in current.clients.items() if c[0] != org_id}
    for client in part.clients:
        if client.key in taken:
            raise ValueError("En klients utsteder, klient-id og konsument er registrert fra før.")
    units = {uid: u for uid, u in current.units.items() if u[0] == org_id}
    state = DirectoryState(
        organisations={org_id: (name, kind)},
        guides={k: v for k, v in current.guides.items() if k == org_id},
        catalogues={k: v for k, v in current.catalogues.items() if k == org_id},
        settings={k: v for k, v in current.settings.items() if k == org_id},
        child_welfare={k: v for k, v in current.child_welfare.items() if k == org_id},
        units=units,
        unit_contacts={u: c for u, c in current.unit_contacts.items() if u in units},
        staff={p: index for p, index in current.staff.items() if p in listed},
        roles=frozenset(r for r in current.roles if r[1] in units),
        logins=frozenset(b for b in current.logins if b[0] in listed),
        clients=ours,
        client_access={c: a for c, a in current.client_access.items() if c in ours},
    )
    document = RegionDocument(
        region=region,
        organisations=(
            OrganisationDoc(
                id=org_id,
                name=name,
                kind=kind,
                units=part.units,
                guide=part.guide,
                measure_catalogue=part.measure_catalogue,
                settings=part.settings,
                child_welfare_unit_id=named if named in own_units else None,
            ),
        ),
        staff=tuple(staff),
        clients=part.clients,
    )
    if named is not None and named not in own_units:
        # Another organisation's service (inter-municipal): checked against the directory,
        # as the part holds only this organisation's units.
        org_doc = document.organisations[0].model_copy(update={"child_welfare_unit_id": named})
        document = document.model_copy(update={"organisations": (org_doc,)})
    return state, document
