"""The access policy: who may do what with a case, and on which basis (taushetsplikt).

The policy is a table of rules, read top to bottom. Each rule names a basis, the actions it
gives, the relation between the principal and the case it needs, and how an entry's
category and restrictions narrow it. A rule yields a *grant* with a validity window (a
consent's end date, an emergency grant's 24 hours, an auditor's scope, the youth's
birthday); a decision permits when a grant's window holds now. The access index stores the
same grants, so a list filter and a single check can never disagree.

Every rule names the kinds of principal it relates: a person rule (holder, team, guardian,
self, ...) never relates an agency's client, whatever its id, and a client rule never a
person. Ids of different kinds are different namespaces and cannot collide here.

Pure: no I/O, no clock. Facts come from the consent service's read models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from stafett_shared.contracts.directory import ClientPurpose, ClientScope, Sector, StaffRole
from stafett_shared.contracts.log import Category

POLICY_VERSION = "2026-12-19.1"
OSLO = ZoneInfo("Europe/Oslo")
EMERGENCY_DURATION = timedelta(hours=24)
EMERGENCY_REPEAT_WINDOW = timedelta(days=30)
"""A grant asked for within this long of an earlier one's start waits for a leader."""
EMERGENCY_REQUEST_LAPSES = timedelta(hours=24)
"""A waiting request no leader approved within this long can no longer be approved."""


class Action(StrEnum):
    CASE_READ = "case:read"
    CASE_WRITE = "case:write"
    CASE_MANAGE = "case:manage"  # level, team, handover, close
    CASE_REPORT = "case:report"  # report of concern to child welfare (opplysningsplikt)
    CASE_HANDOVER = "case:handover"  # the header of a pending handover, for its receiver
    CASE_EMERGENCY = "case:emergency"  # ask for emergency access (read for 24 hours)
    # A report of concern sent to child welfare, for the intake staff of the service it was
    # sent to: reading it, and acknowledging that it was received (never the log).
    CASE_REPORT_READ = "case:report_read"
    CASE_REPORT_RECEIVE = "case:report_receive"
    LOG_READ = "log:read"
    LOG_APPEND = "log:append"
    LOG_RESTRICT = "log:restrict"
    # The youth's own words, «Hva er viktig for meg?», written by the youth (decision 0033):
    # one kind of entry, nothing else in the log.
    LOG_APPEND_OWN_VOICE = "log:append_own_voice"
    CONSENT_MANAGE = "consent:manage"
    AUDIT_READ = "audit:read"


READ = frozenset({Action.CASE_READ, Action.LOG_READ})
WRITE = frozenset({Action.CASE_WRITE, Action.LOG_APPEND})
ENTRY_ACTIONS = frozenset({Action.LOG_READ})
# Actions whose rules do not depend on who the index lists for a case are decided case by
# case, never indexed: reporting and asking for emergency access relate staff through their
# sector, far beyond anyone the index lists; the intake reads reports of concern.
INDEXED_ACTIONS = frozenset(Action) - {
    Action.CASE_REPORT,
    Action.CASE_REPORT_READ,
    Action.CASE_REPORT_RECEIVE,
    Action.CASE_EMERGENCY,
}
INTAKE_ROLES = frozenset({StaffRole.CHILD_WELFARE_WORKER, StaffRole.LEADER})
"""Who takes in reports of concern at a child welfare unit (decision 0026)."""

# An entry's category is readable in the sector it belongs to (helsepersonelloven § 21,
# barnevernsloven § 13-1): a health entry by health staff, a child-welfare entry by
# child-welfare staff, besides its author, the family (unless restricted) and auditors.
CATEGORY_SECTOR: Mapping[Category, Sector] = {
    Category.HEALTH: Sector.HEALTH,
    Category.CHILD_WELFARE: Sector.CHILD_WELFARE,
}


# --- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Role:
    org_id: str
    unit_id: str
    sector: Sector
    role: StaffRole


@dataclass(frozen=True, slots=True)
class AuditScope:
    scope_id: str
    org_id: str | None
    case_ids: frozenset[str]
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class EmergencyGrant:
    grant_id: str
    case_id: str
    valid_from: datetime
    valid_until: datetime


# What each scope a client may hold opens (decision 0039): one action each, reads only.
SCOPE_ACTIONS: Mapping[ClientScope, frozenset[Action]] = {
    ClientScope.CASE_READ: frozenset({Action.CASE_READ}),
    ClientScope.LOG_READ: frozenset({Action.LOG_READ}),
}


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """An agency's client as the directory registers it, with the scopes of the token it
    came with: only scopes both registered and in the token count."""

    org_id: str
    sectors: frozenset[Sector] = frozenset()
    scopes: frozenset[ClientScope] = frozenset()
    purposes: frozenset[ClientPurpose] = frozenset()

    def may(self, action: Action) -> bool:
        return any(action in SCOPE_ACTIONS[scope] for scope in self.scopes)


@dataclass(frozen=True, slots=True)
class PrincipalFacts:
    """What the directory and the consent service know about the caller."""

    id: str
    kind: Literal["person", "client"] = "person"
    roles: tuple[Role, ...] = ()
    guardian_of: Mapping[str, bool] = field(default_factory=dict)  # child id -> responsibility
    audit_scopes: tuple[AuditScope, ...] = ()
    emergency: tuple[EmergencyGrant, ...] = ()
    client: ClientFacts | None = None
    """A registered client's facts (kind ``client``); None: no client the directory knows."""

    def has_role_at(self, unit_id: str, role: StaffRole | None = None) -> bool:
        return any(r.unit_id == unit_id and (role is None or r.role == role) for r in self.roles)

    def works_in_sector(self, sector: Sector) -> bool:
        return any(r.sector == sector for r in self.roles)


@dataclass(frozen=True, slots=True)
class TeamMember:
    person_id: str
    unit_id: str
    org_id: str
    sector: Sector
    access: Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """An active consent on the case (pending, refused, withdrawn, expired ones are no facts)."""

    consent_id: str
    org_ids: frozenset[str]
    sectors: frozenset[Sector]
    unit_ids: frozenset[str]
    excluded_categories: frozenset[Category]
    valid_from: datetime
    valid_until: datetime

    def covers(self, member: TeamMember) -> bool:
        return (
            member.org_id in self.org_ids
            and member.sector in self.sectors
            and (not self.unit_ids or member.unit_id in self.unit_ids)
        )

    def covers_client(self, client: ClientFacts) -> bool:
        """The consent names the client's organisation and a service it works for; a consent
        narrowed to named units names staff's units, never an organisation's system."""
        return (
            client.org_id in self.org_ids
            and bool(self.sectors & client.sectors)
            and not self.unit_ids
        )


@dataclass(frozen=True, slots=True)
class PendingHandover:
    """The handover waiting for its receiver's answer (a case has at most one)."""

    handover_id: str
    to_person_id: str
    to_unit_id: str


@dataclass(frozen=True, slots=True)
class CaseFacts:
    case_id: str
    org_id: str
    unit_id: str
    holder_id: str
    team: Mapping[str, TeamMember] = field(default_factory=dict)
    sector: Sector | None = None  # the owning unit's
    child_id: str | None = None
    child_birth_date: date | None = None
    consents: tuple[ConsentFacts, ...] = ()
    status: Literal["open", "closed"] = "open"
    pending_handover: PendingHandover | None = None
    youth_age: int | None = None
    """The case's organisation's own youth age (``youth_consent_age``); None: the region's."""


@dataclass(frozen=True, slots=True)
class EntryFacts:
    entry_id: str
    case_id: str
    author_id: str
    category: Category | None = None
    restricted_until: datetime | None = None  # withheld from guardians and the youth until


@dataclass(frozen=True, slots=True)
class PolicySettings:
    self_access_age: int = 15
    youth_age: int = 15
    """The region's age from which a youth has rights of their own (``youth_consent_age``);
    an organisation may set its own (decision 0030)."""


# --- grants and decisions ----------------------------------------------------------------------

Gate = Literal["staff", "team", "family", "auditor", "client"]


@dataclass(frozen=True, slots=True)
class Grant:
    basis: str
    action: Action
    consent_id: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    gate: Gate = "staff"
    excluded_categories: frozenset[Category] = frozenset()

    def holds_at(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )


@dataclass(frozen=True, slots=True)
class Decision:
    permit: bool
    basis: str | None
    reason: str  # coarse code for callers
    detail: str  # the full reason, for the audit record only
    consent_id: str | None = None
    valid_until: datetime | None = None
    policy_version: str = POLICY_VERSION


@dataclass(frozen=True, slots=True)
class Window:
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    consent_id: str | None = None
    excluded_categories: frozenset[Category] = frozenset()


Relation = Callable[[PrincipalFacts, CaseFacts, PolicySettings], list[Window]]

_ALWAYS = [Window()]


def _holder(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    return _ALWAYS if p.id == c.holder_id else []


def _own_unit(access: Literal["read", "write"]) -> Relation:
    """Staff of the owning unit on the team: reading always, writing only when their team
    membership says ``write`` (a colleague given ``read`` is a reader like anyone else)."""

    def relation(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
        member = c.team.get(p.id)
        ok = member is not None and member.unit_id == c.unit_id and p.has_role_at(c.unit_id)
        if ok and access == "write":
            ok = member is not None and member.access == "write"
        return _ALWAYS if ok else []

    return relation


def _consent_windows(c: CaseFacts, covers: Callable[[ConsentFacts], bool]) -> list[Window]:
    """The windows of the case's consents that cover the principal, with what they exclude."""
    return [
        Window(k.valid_from, k.valid_until, k.consent_id, k.excluded_categories)
        for k in c.consents
        if covers(k)
    ]


def _team(access: Literal["read", "write"]) -> Relation:
    def relation(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
        member = c.team.get(p.id)
        if member is None or member.unit_id == c.unit_id or not p.has_role_at(member.unit_id):
            return []
        if access == "write" and member.access != "write":
            return []
        return _consent_windows(c, lambda k: k.covers(member))

    return relation


def _unit_leader(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    return _ALWAYS if p.has_role_at(c.unit_id, StaffRole.LEADER) else []


def _guardian(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    # A guardian without parental responsibility has no access to the log.
    return _ALWAYS if c.child_id is not None and p.guardian_of.get(c.child_id) is True else []


def _self(p: PrincipalFacts, c: CaseFacts, s: PolicySettings) -> list[Window]:
    if c.child_id is None or p.id != c.child_id or c.child_birth_date is None:
        return []
    birthday = _birthday(c.child_birth_date, s.self_access_age)
    # From midnight on the birthday, Norwegian time.
    start = datetime.combine(birthday, time.min, tzinfo=OSLO).astimezone(UTC)
    return [Window(valid_from=start)]


def _youth(p: PrincipalFacts, c: CaseFacts, s: PolicySettings) -> list[Window]:
    """The child of the case writes their own words from the youth age of the case's
    organisation, and never before they may read their own log (decision 0033)."""
    if c.child_id is None or p.id != c.child_id or c.child_birth_date is None:
        return []
    age = max(s.self_access_age, c.youth_age if c.youth_age is not None else s.youth_age)
    start = datetime.combine(_birthday(c.child_birth_date, age), time.min, tzinfo=OSLO)
    return [Window(valid_from=start.astimezone(UTC))]


def _emergency(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    if not p.roles:
        return []
    # Never longer than 24 hours, whatever a grant says.
    return [
        Window(g.valid_from, min(g.valid_until, g.valid_from + EMERGENCY_DURATION))
        for g in p.emergency
        if g.case_id == c.case_id
    ]


def _auditor(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    return [
        Window(valid_until=scope.valid_until)
        for scope in p.audit_scopes
        if scope.org_id == c.org_id or c.case_id in scope.case_ids
    ]


def _addressee(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    # Only while the handover waits, and while the receiver still works at the unit named.
    pending = c.pending_handover
    ok = (
        pending is not None
        and p.id == pending.to_person_id
        and p.has_role_at(pending.to_unit_id)
        and c.status == "open"
    )
    return _ALWAYS if ok else []


def _related(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
    """Staff with a role in the case's organisation, or in a unit of the owning unit's
    sector anywhere in the region (health staff to a health station's case)."""
    ok = any(
        r.org_id == c.org_id or (c.sector is not None and r.sector == c.sector) for r in p.roles
    )
    return _ALWAYS if ok else []


def _intake(p: PrincipalFacts, _c: CaseFacts, _s: PolicySettings) -> list[Window]:
    # Intake staff of some child welfare unit; the case service, which addressed the report,
    # serves it only to the intake staff of the unit it was sent to (decision 0026).
    ok = any(r.sector == Sector.CHILD_WELFARE and r.role in INTAKE_ROLES for r in p.roles)
    return _ALWAYS if ok else []


def _staff(p: PrincipalFacts, _c: CaseFacts, _s: PolicySettings) -> list[Window]:
    return _ALWAYS if p.kind == "person" and p.roles else []


def _client_consent(action: Action) -> Relation:
    """An agency's client that serves consents, holding the scope of ``action``: while a
    consent in force names its organisation and a service it works for (decision 0039)."""

    def relation(p: PrincipalFacts, c: CaseFacts, _s: PolicySettings) -> list[Window]:
        client = p.client
        if client is None or ClientPurpose.CONSENT not in client.purposes:
            return []
        if not client.may(action):
            return []
        return _consent_windows(c, lambda k: k.covers_client(client))

    return relation


Kind = Literal["person", "client"]
PERSONS: frozenset[Kind] = frozenset({"person"})


@dataclass(frozen=True, slots=True)
class Rule:
    basis: str
    actions: frozenset[Action]
    relation: Relation
    gate: Gate
    why: str
    kinds: frozenset[Kind] = PERSONS
    """The kinds of principal the rule relates: persons, or agencies' clients (never both)."""


CLIENTS: frozenset[Kind] = frozenset({"client"})


MANAGE = frozenset({Action.CASE_MANAGE, Action.CONSENT_MANAGE})

RULES: tuple[Rule, ...] = (
    # Restricting an entry from guardians is the leader's decision alone (DOMAIN.md).
    Rule(
        "holder",
        READ | WRITE | MANAGE | {Action.CASE_REPORT},
        _holder,
        "staff",
        "the stafettholder is responsible for the case",
    ),
    Rule(
        "own_unit",
        READ | {Action.CASE_REPORT},
        _own_unit("read"),
        "staff",
        "staff of the owning unit assigned to the case",
    ),
    Rule(
        "own_unit",
        WRITE,
        _own_unit("write"),
        "staff",
        "staff of the owning unit assigned to the case with write access",
    ),
    Rule(
        "unit_leader",
        READ | MANAGE | {Action.LOG_RESTRICT, Action.CASE_REPORT},
        _unit_leader,
        "staff",
        "the owning unit's leader sees all its cases and decides restrictions",
    ),
    Rule(
        "team",
        READ | {Action.CASE_REPORT},
        _team("read"),
        "team",
        "a team member outside the owning unit, while a consent covers them",
    ),
    Rule(
        "team",
        WRITE,
        _team("write"),
        "team",
        "a team member with write access, while a consent covers them",
    ),
    Rule(
        "guardian",
        READ,
        _guardian,
        "family",
        "a guardian with parental responsibility reads the child's log",
    ),
    Rule("self", READ, _self, "family", "the youth reads their own log from the self-access age"),
    Rule(
        "youth",
        frozenset({Action.LOG_APPEND_OWN_VOICE}),
        _youth,
        "family",
        "the youth writes their own words in their own log from the youth age",
    ),
    Rule(
        "emergency",
        READ,
        _emergency,
        "staff",
        "emergency access for 24 hours with a written reason",
    ),
    Rule(
        "auditor",
        READ | {Action.AUDIT_READ},
        _auditor,
        "auditor",
        "an auditor with an audit scope reads, every read logged",
    ),
    Rule(
        "handover_addressee",
        frozenset({Action.CASE_HANDOVER}),
        _addressee,
        "staff",
        "the receiver of a pending handover sees its header, nothing more, until answering",
    ),
    Rule(
        "related_staff",
        frozenset({Action.CASE_EMERGENCY}),
        _related,
        "staff",
        "staff of the case's organisation or of its unit's sector may ask for emergency access",
    ),
    Rule(
        "duty_to_report",
        frozenset({Action.CASE_REPORT}),
        _staff,
        "staff",
        "any staff may report a concern to child welfare without consent",
    ),
    Rule(
        "child_welfare_intake",
        frozenset({Action.CASE_REPORT_READ, Action.CASE_REPORT_RECEIVE}),
        _intake,
        "staff",
        "child welfare intake staff read and acknowledge the reports sent to their service, "
        "never the log",
    ),
    *(
        Rule(
            "client_consent",
            frozenset({action}),
            _client_consent(action),
            "client",
            "an agency's system reads, within its scope, while a consent names its "
            "organisation and service",
            kinds=CLIENTS,
        )
        for action in (Action.CASE_READ, Action.LOG_READ)
    ),
)


FAMILY_BASES = frozenset(rule.basis for rule in RULES if rule.gate == "family")
"""The bases on which the child's family reads the case (guardian, self, youth)."""


def sees_consent_purpose(basis: str | None, principal_id: str, grantors: frozenset[str]) -> bool:
    """Whether a caller whose ``case:read`` was permitted on ``basis`` sees what a consent is
    for (decision 0034): staff and auditors who read the case do, and of the family only the
    grantors the consent names. A guardian or youth it does not name sees that the consent
    exists and what it covers, never its purpose."""
    if basis is None:
        return False
    return basis not in FAMILY_BASES or principal_id in grantors


def _birthday(born: date, years: int) -> date:
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # 29 February: the birthday is kept on 1 March
        return date(born.year + years, 3, 1)


def grants(
    principal: PrincipalFacts,
    case: CaseFacts,
    action: Action,
    settings: PolicySettings = PolicySettings(),
) -> list[Grant]:
    """Every grant the rules give ``principal`` for ``action`` on ``case``, in table order."""
    out: list[Grant] = []
    for rule in RULES:
        if action not in rule.actions or principal.kind not in rule.kinds:
            continue
        for window in rule.relation(principal, case, settings):
            out.append(
                Grant(
                    basis=rule.basis,
                    action=action,
                    consent_id=window.consent_id,
                    valid_from=window.valid_from,
                    valid_until=window.valid_until,
                    gate=rule.gate,
                    excluded_categories=window.excluded_categories,
                )
            )
    return out


def _entry_gate(
    grant: Grant, principal: PrincipalFacts, entry: EntryFacts, now: datetime
) -> str | None:
    """Why ``entry`` is closed to ``grant``, or None when it is open."""
    if grant.gate == "auditor":
        return None
    if grant.gate == "family":
        if entry.restricted_until is not None and now < entry.restricted_until:
            return "entry_restricted"
        return None
    if grant.gate == "client":
        # As a team member covered by the consent: its exclusions, then the sectors the
        # client works for (helsepersonelloven § 21, barnevernsloven § 13-1).
        if entry.category is None:
            return None
        if entry.category in grant.excluded_categories:
            return "category_excluded"
        client = principal.client
        if client is None or CATEGORY_SECTOR[entry.category] not in client.sectors:
            return "category_restricted"
        return None
    if entry.category is None or (principal.kind == "person" and entry.author_id == principal.id):
        return None
    if grant.gate == "team" and entry.category in grant.excluded_categories:
        return "category_excluded"
    if not principal.works_in_sector(CATEGORY_SECTOR[entry.category]):
        return "category_restricted"
    return None


def decide(
    principal: PrincipalFacts,
    action: Action,
    case: CaseFacts | None,
    now: datetime,
    *,
    entry: EntryFacts | None = None,
    settings: PolicySettings = PolicySettings(),
) -> Decision:
    """Permit on the first grant that holds now (and opens the entry), or deny."""
    if case is None:
        return Decision(False, None, "no_basis", "unknown case")
    if entry is not None and entry.case_id != case.case_id:
        return Decision(False, None, "no_basis", "the entry belongs to another case")
    closed: list[str] = []
    expired: list[str] = []
    for grant in grants(principal, case, action, settings):
        if not grant.holds_at(now):
            expired.append(grant.basis)
            continue
        if entry is not None and action in ENTRY_ACTIONS:
            why = _entry_gate(grant, principal, entry, now)
            if why is not None:
                closed.append(why)
                continue
        return Decision(
            True,
            grant.basis,
            "permitted",
            f"{grant.basis}: {next(r.why for r in RULES if r.basis == grant.basis)}",
            consent_id=grant.consent_id,
            valid_until=grant.valid_until,
        )
    if closed:
        return Decision(False, None, closed[0], f"entry closed to the caller: {', '.join(closed)}")
    if expired:
        return Decision(False, None, "basis_not_in_force", f"bases not in force: {expired}")
    member = case.team.get(principal.id) if principal.kind == "person" else None
    if (
        member is not None
        and member.unit_id != case.unit_id
        and not any(k.covers(member) and k.valid_from <= now < k.valid_until for k in case.consents)
    ):
        return Decision(
            False,
            None,
            "consent_required",
            "team member outside the owning unit without a consent that covers them",
        )
    if principal.kind == "client":
        return Decision(False, None, "no_basis", _client_detail(principal.client, action))
    return Decision(False, None, "no_basis", "no rule relates the principal to the case")


def _client_detail(client: ClientFacts | None, action: Action) -> str:
    """Why a client was refused, for the decision record only (the caller sees 404)."""
    if client is None:
        return "no client the directory registers"
    if ClientPurpose.CONSENT not in client.purposes:
        return "the client serves no legal ground that gives case data"
    if not client.may(action):
        return "no scope both registered for the client and in its token covers the action"
    return "no consent in force names the client's organisation and a service it works for"
