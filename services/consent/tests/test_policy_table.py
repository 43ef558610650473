"""The access policy stated as a table (DOMAIN.md, "Access, consent and taushetsplikt").

Each row reads: *who* (the principal's relation to the case), the case's *consent* state,
the *entry* read (its category and restriction), the *action* -> the decision the policy
must give, with its basis (permit) or its coarse reason (deny).

The facts come from one small world, fixed at ``NOW``: Siljan municipality (4010) with an
ungdomsskole, a helsestasjon, barnevern and PPT; Vestfold og Telemark county (40) with
Porsgrunn videregående. The case is a 15-year-old's case owned by the ungdomsskole. Every
name is made up.

A withdrawn or expired consent is no fact of the case (the read model drops it), so
"withdrawn" is modelled as the consent no longer being among ``CaseFacts.consents``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stafett_consent.policy import (
    EMERGENCY_DURATION,
    POLICY_VERSION,
    RULES,
    Action,
    AuditScope,
    CaseFacts,
    ClientFacts,
    ConsentFacts,
    Decision,
    EmergencyGrant,
    EntryFacts,
    PendingHandover,
    PolicySettings,
    PrincipalFacts,
    Role,
    TeamMember,
    decide,
    grants,
    sees_consent_purpose,
)
from stafett_shared.contracts.directory import ClientPurpose, ClientScope, Sector, StaffRole
from stafett_shared.contracts.log import Category

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
DEFAULTS = PolicySettings()
AGE_16 = PolicySettings(self_access_age=16)
YOUTH_AGE_16 = PolicySettings(youth_age=16)

# --- the world ---------------------------------------------------------------------------------

SILJAN = "4010"
COUNTY = "40"
OTHER_MUNICIPALITY = "3805"
NAV_GRENLAND = "nav-grenland"

SCHOOL = "siljan-ungdomsskole"
HEALTH = "siljan-helsestasjon"
CHILD_WELFARE = "siljan-barnevern"
PPT = "siljan-ppt"
VGS = "porsgrunn-vgs"
OTHER_SCHOOL = "porsgrunn-ungdomsskole"

UNITS: dict[str, tuple[str, Sector]] = {
    SCHOOL: (SILJAN, Sector.SCHOOL),
    HEALTH: (SILJAN, Sector.HEALTH),
    CHILD_WELFARE: (SILJAN, Sector.CHILD_WELFARE),
    PPT: (SILJAN, Sector.PPT),
    VGS: (COUNTY, Sector.UPPER_SECONDARY),
    OTHER_SCHOOL: (OTHER_MUNICIPALITY, Sector.SCHOOL),
}

CASE_ID = "case-1"
OTHER_CASE_ID = "case-2"
CHILD_ID = "child-1"
OTHER_CHILD_ID = "child-2"


def role(unit_id: str, staff_role: StaffRole) -> Role:
    org_id, sector = UNITS[unit_id]
    return Role(org_id=org_id, unit_id=unit_id, sector=sector, role=staff_role)


def member(person_id: str, unit_id: str, access: str) -> TeamMember:
    org_id, sector = UNITS[unit_id]
    assert access in ("read", "write")
    return TeamMember(
        person_id=person_id,
        unit_id=unit_id,
        org_id=org_id,
        sector=sector,
        access="write" if access == "write" else "read",
    )


def staff(person_id: str, unit_id: str, staff_role: StaffRole) -> PrincipalFacts:
    return PrincipalFacts(id=person_id, roles=(role(unit_id, staff_role),))


def emergency(person_id: str, valid_from: datetime, valid_until: datetime) -> PrincipalFacts:
    return PrincipalFacts(
        id=person_id,
        roles=(role(HEALTH, StaffRole.HEALTH_NURSE),),
        emergency=(EmergencyGrant(f"grant-{person_id}", CASE_ID, valid_from, valid_until),),
    )


BOTH_SCOPES = frozenset(ClientScope)


def system(
    client_id: str,
    org_id: str,
    *sectors: Sector,
    scopes: frozenset[ClientScope] = BOTH_SCOPES,
    purposes: frozenset[ClientPurpose] = frozenset({ClientPurpose.CONSENT}),
) -> PrincipalFacts:
    """An agency's registered client, with the scopes both registered and in its token."""
    facts = ClientFacts(org_id, frozenset(sectors), scopes, purposes)
    return PrincipalFacts(id=client_id, kind="client", client=facts)


def auditor(person_id: str, org_id: str | None, until: datetime, *cases: str) -> PrincipalFacts:
    scope = AuditScope(f"scope-{person_id}", org_id, frozenset(cases), until)
    return PrincipalFacts(id=person_id, audit_scopes=(scope,))


PEOPLE: dict[str, PrincipalFacts] = {
    # the owning unit
    "holder": staff("holder", SCHOOL, StaffRole.TEACHER),
    "own-unit-teacher": staff("own-unit-teacher", SCHOOL, StaffRole.TEACHER),
    "teacher-off-team": staff("teacher-off-team", SCHOOL, StaffRole.TEACHER),
    "school-leader": staff("school-leader", SCHOOL, StaffRole.LEADER),
    # other units of the municipality
    "ppt-leader": staff("ppt-leader", PPT, StaffRole.LEADER),
    "nurse": staff("nurse", HEALTH, StaffRole.HEALTH_NURSE),
    "ppt-adviser": staff("ppt-adviser", PPT, StaffRole.PP_ADVISER),
    "cw-worker": staff("cw-worker", CHILD_WELFARE, StaffRole.CHILD_WELFARE_WORKER),
    # the county
    "county-teacher": staff("county-teacher", VGS, StaffRole.TEACHER),
    # a school of another municipality: the case's sector, not its organisation
    "other-school-teacher": staff("other-school-teacher", OTHER_SCHOOL, StaffRole.TEACHER),
    # asked to take over the baton; not on the team
    "receiver": staff("receiver", VGS, StaffRole.TEACHER),
    "receiver-moved-on": staff("receiver-moved-on", PPT, StaffRole.PP_ADVISER),
    # the family
    "guardian": PrincipalFacts(id="guardian", guardian_of={CHILD_ID: True}),
    "guardian-no-pr": PrincipalFacts(id="guardian-no-pr", guardian_of={CHILD_ID: False}),
    "youth": PrincipalFacts(id=CHILD_ID),
    # auditors
    "auditor-4010": auditor("auditor-4010", SILJAN, NOW + 90 * DAY),
    "auditor-other-org": auditor("auditor-other-org", OTHER_MUNICIPALITY, NOW + 90 * DAY),
    "auditor-expired": auditor("auditor-expired", SILJAN, NOW - DAY),
    "auditor-case-1": auditor("auditor-case-1", None, NOW + 90 * DAY, CASE_ID),
    # emergency access (a health nurse who is not on the team)
    "emergency": emergency("emergency", NOW - 2 * HOUR, NOW - 2 * HOUR + EMERGENCY_DURATION),
    "emergency-expired": emergency("emergency-expired", NOW - 30 * HOUR, NOW - 6 * HOUR),
    "emergency-overlong": emergency("emergency-overlong", NOW - 30 * HOUR, NOW + 18 * HOUR),
    "emergency-no-role": PrincipalFacts(
        id="emergency-no-role",
        emergency=(EmergencyGrant("grant-x", CASE_ID, NOW - HOUR, NOW + 23 * HOUR),),
    ),
    # a machine client of an agency: no person, no roles
    "client": PrincipalFacts(id="client-nav-integration", kind="client"),
    # clients whose client_id equals a person's id: ids of different kinds never collide, so
    # the facts a person has (roles, guardianship, audit scopes, emergency grants) are not
    # theirs; even facts loaded by mistake under the client's id give nothing
    "client-named-holder": PrincipalFacts(id="holder", kind="client"),
    "client-named-child": PrincipalFacts(id=CHILD_ID, kind="client"),
    "client-named-receiver": PrincipalFacts(
        id="receiver", kind="client", roles=(role(VGS, StaffRole.TEACHER),)
    ),
    "client-named-teacher": PrincipalFacts(
        id="own-unit-teacher", kind="client", roles=(role(SCHOOL, StaffRole.TEACHER),)
    ),
    "client-named-leader": PrincipalFacts(
        id="school-leader", kind="client", roles=(role(SCHOOL, StaffRole.LEADER),)
    ),
    "client-named-guardian": PrincipalFacts(
        id="guardian", kind="client", guardian_of={CHILD_ID: True}
    ),
    "client-named-auditor": PrincipalFacts(
        id="auditor-4010",
        kind="client",
        audit_scopes=(AuditScope("scope-c", SILJAN, frozenset(), NOW + 90 * DAY),),
    ),
    "client-named-emergency": PrincipalFacts(
        id="emergency",
        kind="client",
        roles=(role(HEALTH, StaffRole.HEALTH_NURSE),),
        emergency=(EmergencyGrant("grant-c", CASE_ID, NOW - HOUR, NOW + 23 * HOUR),),
    ),
    "client-named-nurse": PrincipalFacts(
        id="nurse", kind="client", roles=(role(HEALTH, StaffRole.HEALTH_NURSE),)
    ),
    # agencies' registered clients (decision 0039): the municipality's health records
    # system, NAV Grenland's case system, and variants without a scope, ground or service
    "health-system": system("client-journal", SILJAN, Sector.HEALTH),
    "health-system-case-scope": system(
        "client-journal-case", SILJAN, Sector.HEALTH, scopes=frozenset({ClientScope.CASE_READ})
    ),
    "health-system-no-scope": system(
        "client-journal-none", SILJAN, Sector.HEALTH, scopes=frozenset()
    ),
    "health-system-no-ground": system(
        "client-journal-nogrounds", SILJAN, Sector.HEALTH, purposes=frozenset()
    ),
    "school-system": system("client-school", SILJAN, Sector.SCHOOL),
    "county-health-system": system("client-county-health", COUNTY, Sector.HEALTH),
    "nav-system": system("client-nav-grenland", NAV_GRENLAND, Sector.NAV),
    "health-and-cw-system": system(
        "client-journal-cw", SILJAN, Sector.HEALTH, Sector.CHILD_WELFARE
    ),
}

TEAM: dict[str, TeamMember] = {
    "own-unit-teacher": member("own-unit-teacher", SCHOOL, "write"),
    "nurse": member("nurse", HEALTH, "read"),
    "ppt-adviser": member("ppt-adviser", PPT, "write"),
    "county-teacher": member("county-teacher", VGS, "read"),
}

MAIN_CASE = CaseFacts(
    case_id=CASE_ID,
    org_id=SILJAN,
    unit_id=SCHOOL,
    holder_id="holder",
    team=TEAM,
    sector=Sector.SCHOOL,
    child_id=CHILD_ID,
    child_birth_date=date(2011, 5, 2),  # 15 at NOW
)

CASES: dict[str, CaseFacts | None] = {
    "main": MAIN_CASE,
    "child-14": replace(MAIN_CASE, child_birth_date=date(2012, 5, 2)),
    "child-16": replace(MAIN_CASE, child_birth_date=date(2010, 5, 2)),
    "turns-15-today": replace(MAIN_CASE, child_birth_date=date(2011, 11, 23)),
    "turns-15-tomorrow": replace(MAIN_CASE, child_birth_date=date(2011, 11, 24)),
    "no-birth-date": replace(MAIN_CASE, child_birth_date=None),
    # the case's organisation has set its own youth age (decision 0030)
    "org-youth-age-16": replace(MAIN_CASE, youth_age=16),
    "org-youth-age-12": replace(MAIN_CASE, child_birth_date=date(2012, 5, 2), youth_age=12),
    "unit-sector-unknown": replace(MAIN_CASE, sector=None),
    # the holder asked the receiver at the county school to take over; no answer yet
    "handover-pending": replace(
        MAIN_CASE, pending_handover=PendingHandover("h-1", "receiver", VGS)
    ),
    "handover-pending-to-moved-on": replace(
        MAIN_CASE, pending_handover=PendingHandover("h-2", "receiver-moved-on", VGS)
    ),
    "other-child": CaseFacts(
        case_id=OTHER_CASE_ID,
        org_id=SILJAN,
        unit_id=SCHOOL,
        holder_id="holder-of-case-2",
        child_id=OTHER_CHILD_ID,
        child_birth_date=date(2011, 1, 1),
    ),
    "unknown": None,
}


def consent(
    consent_id: str,
    orgs: set[str],
    sectors: set[Sector],
    *,
    units: frozenset[str] = frozenset(),
    excluded: frozenset[Category] = frozenset(),
    valid_from: datetime = NOW - 30 * DAY,
    valid_until: datetime = NOW + 335 * DAY,
) -> ConsentFacts:
    return ConsentFacts(
        consent_id=consent_id,
        org_ids=frozenset(orgs),
        sectors=frozenset(sectors),
        unit_ids=units,
        excluded_categories=excluded,
        valid_from=valid_from,
        valid_until=valid_until,
    )


HEALTH_4010 = consent("k-health", {SILJAN}, {Sector.HEALTH})

CONSENT_STATES: dict[str, tuple[ConsentFacts, ...]] = {
    "none": (),
    "withdrawn": (),  # the health consent was active, then withdrawn: no longer a fact
    "health-4010": (HEALTH_4010,),
    "school-only-4010": (consent("k-school", {SILJAN}, {Sector.SCHOOL}),),
    "health-4010-expired": (consent("k-old", {SILJAN}, {Sector.HEALTH}, valid_until=NOW - DAY),),
    "health-4010-ends-now": (consent("k-end", {SILJAN}, {Sector.HEALTH}, valid_until=NOW),),
    "health-4010-not-yet": (consent("k-soon", {SILJAN}, {Sector.HEALTH}, valid_from=NOW + DAY),),
    "health-4010-ppt-unit-only": (
        consent("k-unit", {SILJAN}, {Sector.HEALTH, Sector.PPT}, units=frozenset({PPT})),
    ),
    "health-4010-nurse-unit": (
        consent("k-unit2", {SILJAN}, {Sector.HEALTH}, units=frozenset({HEALTH})),
    ),
    "health-4010-excl-health": (
        consent("k-excl", {SILJAN}, {Sector.HEALTH}, excluded=frozenset({Category.HEALTH})),
    ),
    "health-40": (consent("k-h40", {COUNTY}, {Sector.HEALTH}),),
    "health-4010+broad": (
        HEALTH_4010,
        consent("k-broad", {SILJAN, COUNTY}, {Sector.HEALTH, Sector.PPT}),
    ),
    "health-4010+broad-withdrawn": (HEALTH_4010,),
    "ppt-4010": (consent("k-ppt", {SILJAN}, {Sector.PPT}),),
    "upsec-40": (consent("k-vgs", {COUNTY}, {Sector.UPPER_SECONDARY}),),
    "upsec-4010": (consent("k-vgs2", {SILJAN}, {Sector.UPPER_SECONDARY}),),
    "nav-grenland": (consent("k-nav", {NAV_GRENLAND}, {Sector.NAV}),),
    "nav-grenland-expired": (
        consent("k-nav-old", {NAV_GRENLAND}, {Sector.NAV}, valid_until=NOW - DAY),
    ),
    "all-services": (
        consent(
            "k-all",
            {SILJAN, COUNTY},
            {
                Sector.SCHOOL,
                Sector.HEALTH,
                Sector.PPT,
                Sector.UPPER_SECONDARY,
                Sector.CHILD_WELFARE,
            },
        ),
    ),
}


def entry(
    entry_id: str,
    author_id: str,
    category: Category | None = None,
    restricted_until: datetime | None = None,
    case_id: str = CASE_ID,
) -> EntryFacts:
    return EntryFacts(entry_id, case_id, author_id, category, restricted_until)


ENTRIES: dict[str, EntryFacts] = {
    "plain": entry("e-plain", "holder"),
    "health-by-nurse": entry("e-h1", "nurse", Category.HEALTH),
    "health-by-holder": entry("e-h2", "holder", Category.HEALTH),
    "cw-by-cw-worker": entry("e-cw", "cw-worker", Category.CHILD_WELFARE),
    "restricted": entry("e-r1", "holder", restricted_until=NOW + 30 * DAY),
    "restriction-ended": entry("e-r2", "holder", restricted_until=NOW - DAY),
    "restriction-ends-now": entry("e-r3", "holder", restricted_until=NOW),
    "restricted-health": entry("e-r4", "nurse", Category.HEALTH, NOW + 30 * DAY),
    "other-case": entry("e-other", "holder", case_id=OTHER_CASE_ID),
}


def case_for(case_key: str, consent_state: str) -> CaseFacts | None:
    base = CASES[case_key]
    return None if base is None else replace(base, consents=CONSENT_STATES[consent_state])


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    permit: bool
    basis: str | None  # the basis of a permit
    reason: str | None  # the coarse reason of a denial; None: any denial

    def __str__(self) -> str:
        if self.permit:
            return f"permit {self.basis}"
        return "deny" if self.reason is None else f"deny {self.reason}"


def permit(basis: str) -> Outcome:
    return Outcome(True, basis, None)


def deny(reason: str | None) -> Outcome:
    return Outcome(False, None, reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    what: str
    who: str
    action: Action
    then: Outcome
    consent: str = "none"
    entry: str | None = None
    case: str = "main"
    settings: PolicySettings = DEFAULTS
    defect: str | None = None  # the policy contradicts DOMAIN.md here (reported, not bent)

    @property
    def id(self) -> str:
        return f"{self.what} -> {self.then}"


R = Action.CASE_READ
W = Action.CASE_WRITE
MANAGE = Action.CASE_MANAGE
REPORT = Action.CASE_REPORT
REPORT_READ = Action.CASE_REPORT_READ
REPORT_RECEIVE = Action.CASE_REPORT_RECEIVE
LOG_R = Action.LOG_READ
EMERGENCY = Action.CASE_EMERGENCY
APPEND = Action.LOG_APPEND
OWN_VOICE = Action.LOG_APPEND_OWN_VOICE
RESTRICT = Action.LOG_RESTRICT
CONSENT = Action.CONSENT_MANAGE
HANDOVER = Action.CASE_HANDOVER
AUDIT = Action.AUDIT_READ

# Denials where the coarse reason is not part of the rule: a team member who has a covering
# consent but lacks the permission gets "consent_required" today, which a consent would not
# cure (reported). The rows pin only the denial.
WRONG_PERMISSION = "no_basis"

# --- agencies' clients (decision 0039): a consent naming the organisation and a service of
# the client, and the scope of the action; reads only, entries as for a team member --------
CLIENT_ROWS: list[Row] = [
    Row(
        what="health-system-with-consent-reads-case",
        who="health-system",
        consent="health-4010",
        action=R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-with-consent-reads-log",
        who="health-system",
        consent="health-4010",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-without-consent-reads-case",
        who="health-system",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="health-system-after-withdrawal-reads-case",
        who="health-system",
        consent="withdrawn",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="health-system-expired-consent-reads-case",
        who="health-system",
        consent="health-4010-expired",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-system-consent-not-yet-in-force-reads-log",
        who="health-system",
        consent="health-4010-not-yet",
        action=LOG_R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-system-consent-ends-now-reads-case",
        who="health-system",
        consent="health-4010-ends-now",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-system-case-scope-reads-case",
        who="health-system-case-scope",
        consent="health-4010",
        action=R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-case-scope-reads-log",
        who="health-system-case-scope",
        consent="health-4010",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="health-system-no-scope-reads-case",
        who="health-system-no-scope",
        consent="health-4010",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="health-system-serving-no-ground-reads-case",
        who="health-system-no-ground",
        consent="health-4010",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="school-system-with-health-consent-reads-case",
        who="school-system",
        consent="health-4010",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="school-system-with-school-consent-reads-log",
        who="school-system",
        consent="school-only-4010",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="county-health-system-with-municipal-consent-reads-case",
        who="county-health-system",
        consent="health-4010",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="county-health-system-with-county-consent-reads-case",
        who="county-health-system",
        consent="health-40",
        action=R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-consent-narrowed-to-units-reads-case",
        who="health-system",
        consent="health-4010-nurse-unit",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="nav-system-with-nav-consent-reads-case",
        who="nav-system",
        consent="nav-grenland",
        action=R,
        then=permit("client_consent"),
    ),
    Row(
        what="nav-system-with-expired-nav-consent-reads-log",
        who="nav-system",
        consent="nav-grenland-expired",
        action=LOG_R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="nav-system-with-every-municipal-service-consent-reads-case",
        who="nav-system",
        consent="all-services",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="nav-system-reads-unknown-case",
        who="nav-system",
        consent="nav-grenland",
        case="unknown",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="health-system-reads-plain-entry",
        who="health-system",
        consent="health-4010",
        entry="plain",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-reads-health-entry",
        who="health-system",
        consent="health-4010",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-reads-child-welfare-entry",
        who="health-system",
        consent="health-4010",
        entry="cw-by-cw-worker",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="health-and-cw-system-reads-child-welfare-entry",
        who="health-and-cw-system",
        consent="health-4010",
        entry="cw-by-cw-worker",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-reads-health-entry-the-consent-excludes",
        who="health-system",
        consent="health-4010-excl-health",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("category_excluded"),
    ),
    Row(
        what="school-system-reads-health-entry",
        who="school-system",
        consent="school-only-4010",
        entry="health-by-holder",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="health-system-reads-entry-restricted-from-the-family",
        who="health-system",
        consent="health-4010",
        entry="restricted",
        action=LOG_R,
        then=permit("client_consent"),
    ),
    Row(
        what="health-system-reads-entry-of-another-case",
        who="health-system",
        consent="health-4010",
        entry="other-case",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    *(
        Row(
            what=f"health-system-with-every-consent-may-not-{action.value.replace(':', '-')}",
            who="health-and-cw-system",
            consent="all-services",
            action=action,
            then=deny("no_basis"),
        )
        for action in (W, APPEND, MANAGE, CONSENT, RESTRICT, AUDIT, REPORT, HANDOVER, OWN_VOICE)
    ),
]

ROWS: list[Row] = [
    # --- health nurse on the team (read access): consent decides ---------------------------
    Row(
        what="health-nurse-on-team-without-consent-reads-case",
        who="nurse",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-without-consent-reads-log",
        who="nurse",
        action=LOG_R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-consent-health-4010-reads-case",
        who="nurse",
        consent="health-4010",
        action=R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-on-team-consent-health-4010-reads-log",
        who="nurse",
        consent="health-4010",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-on-team-consent-school-sector-only-reads-case",
        who="nurse",
        consent="school-only-4010",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-consent-expired-reads-case",
        who="nurse",
        consent="health-4010-expired",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-nurse-on-team-consent-ends-exactly-now-reads-case",
        who="nurse",
        consent="health-4010-ends-now",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-nurse-on-team-consent-not-yet-valid-reads-case",
        who="nurse",
        consent="health-4010-not-yet",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="health-nurse-on-team-consent-names-only-ppt-unit-reads-case",
        who="nurse",
        consent="health-4010-ppt-unit-only",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-consent-names-her-unit-reads-case",
        who="nurse",
        consent="health-4010-nurse-unit",
        action=R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-on-team-consent-names-county-not-4010-reads-case",
        who="nurse",
        consent="health-40",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-consent-withdrawn-reads-case",
        who="nurse",
        consent="withdrawn",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-consent-withdrawn-reads-log",
        who="nurse",
        consent="withdrawn",
        action=LOG_R,
        then=deny("consent_required"),
    ),
    Row(
        what="health-nurse-on-team-two-covering-consents-reads-case",
        who="nurse",
        consent="health-4010+broad",
        action=R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-on-team-one-of-two-consents-withdrawn-reads-case",
        who="nurse",
        consent="health-4010+broad-withdrawn",
        action=R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-on-team-read-access-with-consent-appends",
        who="nurse",
        consent="health-4010",
        action=APPEND,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="health-nurse-on-team-read-access-with-consent-writes-case",
        who="nurse",
        consent="health-4010",
        action=W,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="health-nurse-on-team-with-consent-manages-case",
        who="nurse",
        consent="health-4010",
        action=MANAGE,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="health-nurse-on-team-with-consent-restricts-entry",
        who="nurse",
        consent="health-4010",
        action=RESTRICT,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="health-nurse-on-team-without-consent-reports-concern",
        who="nurse",
        action=REPORT,
        then=permit("duty_to_report"),
    ),
    Row(
        what="health-nurse-on-team-with-consent-reports-concern",
        who="nurse",
        consent="health-4010",
        action=REPORT,
        then=permit("team"),
    ),
    # --- entry categories: health and child-welfare entries stay in their sector -----------
    Row(
        what="health-nurse-with-consent-reads-health-entry-she-wrote",
        who="nurse",
        consent="health-4010",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-with-consent-reads-health-entry-by-holder",
        who="nurse",
        consent="health-4010",
        entry="health-by-holder",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-consent-excludes-health-reads-health-entry-by-holder",
        who="nurse",
        consent="health-4010-excl-health",
        entry="health-by-holder",
        action=LOG_R,
        then=deny("category_excluded"),
    ),
    Row(
        what="health-nurse-consent-excludes-health-reads-own-health-entry",
        who="nurse",
        consent="health-4010-excl-health",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-consent-excludes-health-reads-uncategorised-entry",
        who="nurse",
        consent="health-4010-excl-health",
        entry="plain",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-with-consent-reads-child-welfare-entry",
        who="nurse",
        consent="health-4010",
        entry="cw-by-cw-worker",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="health-nurse-with-consent-reads-entry-restricted-from-guardians",
        who="nurse",
        consent="health-4010",
        entry="restricted",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="health-nurse-after-withdrawal-reads-own-health-entry",
        who="nurse",
        consent="withdrawn",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("consent_required"),
    ),
    # --- the holder ------------------------------------------------------------------------
    Row(what="holder-reads-case", who="holder", action=R, then=permit("holder")),
    Row(what="holder-reads-log", who="holder", action=LOG_R, then=permit("holder")),
    Row(what="holder-writes-case", who="holder", action=W, then=permit("holder")),
    Row(what="holder-appends-to-log", who="holder", action=APPEND, then=permit("holder")),
    Row(what="holder-manages-case", who="holder", action=MANAGE, then=permit("holder")),
    Row(what="holder-may-not-restrict-entry", who="holder", action=RESTRICT, then=deny("no_basis")),
    Row(what="holder-manages-consent", who="holder", action=CONSENT, then=permit("holder")),
    Row(what="holder-reports-concern", who="holder", action=REPORT, then=permit("holder")),
    Row(what="holder-reads-audit-trail", who="holder", action=AUDIT, then=deny("no_basis")),
    Row(
        what="holder-reads-uncategorised-entry",
        who="holder",
        entry="plain",
        action=LOG_R,
        then=permit("holder"),
    ),
    Row(
        what="holder-reads-health-entry-by-nurse",
        who="holder",
        consent="health-4010",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="holder-reads-child-welfare-entry",
        who="holder",
        entry="cw-by-cw-worker",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="holder-reads-own-health-entry",
        who="holder",
        entry="health-by-holder",
        action=LOG_R,
        then=permit("holder"),
    ),
    Row(
        what="holder-reads-entry-restricted-from-guardians",
        who="holder",
        entry="restricted",
        action=LOG_R,
        then=permit("holder"),
    ),
    Row(
        what="holder-reads-entry-of-another-case",
        who="holder",
        entry="other-case",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="holder-reads-unknown-case",
        who="holder",
        case="unknown",
        action=R,
        then=deny("no_basis"),
    ),
    # --- staff of the owning unit ------------------------------------------------------------
    Row(
        what="own-unit-teacher-on-team-without-consent-reads-case",
        who="own-unit-teacher",
        action=R,
        then=permit("own_unit"),
    ),
    Row(
        what="own-unit-teacher-on-team-without-consent-reads-log",
        who="own-unit-teacher",
        action=LOG_R,
        then=permit("own_unit"),
    ),
    Row(
        what="own-unit-teacher-on-team-without-consent-writes-case",
        who="own-unit-teacher",
        action=W,
        then=permit("own_unit"),
    ),
    Row(
        what="own-unit-teacher-on-team-without-consent-appends",
        who="own-unit-teacher",
        action=APPEND,
        then=permit("own_unit"),
    ),
    Row(
        what="own-unit-teacher-on-team-manages-case",
        who="own-unit-teacher",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="own-unit-teacher-on-team-restricts-entry",
        who="own-unit-teacher",
        action=RESTRICT,
        then=deny("no_basis"),
    ),
    Row(
        what="own-unit-teacher-on-team-reads-health-entry",
        who="own-unit-teacher",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="same-school-teacher-not-on-team-reads-case",
        who="teacher-off-team",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="same-school-teacher-not-on-team-with-broad-consent-reads-case",
        who="teacher-off-team",
        consent="all-services",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="same-school-teacher-not-on-team-appends",
        who="teacher-off-team",
        action=APPEND,
        then=deny("no_basis"),
    ),
    Row(
        what="same-school-teacher-not-on-team-reports-concern",
        who="teacher-off-team",
        action=REPORT,
        then=permit("duty_to_report"),
    ),
    # --- unit leaders ---------------------------------------------------------------------
    Row(what="school-leader-reads-case", who="school-leader", action=R, then=permit("unit_leader")),
    Row(
        what="school-leader-reads-log",
        who="school-leader",
        action=LOG_R,
        then=permit("unit_leader"),
    ),
    Row(
        what="school-leader-manages-case",
        who="school-leader",
        action=MANAGE,
        then=permit("unit_leader"),
    ),
    Row(
        what="school-leader-restricts-entry",
        who="school-leader",
        action=RESTRICT,
        then=permit("unit_leader"),
    ),
    Row(
        what="school-leader-manages-consent",
        who="school-leader",
        action=CONSENT,
        then=permit("unit_leader"),
    ),
    Row(
        what="school-leader-appends-to-log",
        who="school-leader",
        action=APPEND,
        then=deny("no_basis"),
    ),
    Row(what="school-leader-writes-case", who="school-leader", action=W, then=deny("no_basis")),
    Row(
        what="school-leader-reads-health-entry",
        who="school-leader",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="school-leader-reads-entry-restricted-from-guardians",
        who="school-leader",
        entry="restricted",
        action=LOG_R,
        then=permit("unit_leader"),
    ),
    Row(
        what="school-leader-reads-case-of-another-child-of-the-school",
        who="school-leader",
        case="other-child",
        action=R,
        then=permit("unit_leader"),
    ),
    Row(
        what="leader-of-another-unit-reads-case", who="ppt-leader", action=R, then=deny("no_basis")
    ),
    Row(
        what="leader-of-another-unit-manages-case",
        who="ppt-leader",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="leader-of-another-unit-restricts-entry",
        who="ppt-leader",
        action=RESTRICT,
        then=deny("no_basis"),
    ),
    Row(
        what="leader-of-another-unit-reports-concern",
        who="ppt-leader",
        action=REPORT,
        then=permit("duty_to_report"),
    ),
    # --- PPT adviser on the team with write access -----------------------------------------
    Row(
        what="ppt-adviser-on-team-write-access-consent-ppt-appends",
        who="ppt-adviser",
        consent="ppt-4010",
        action=APPEND,
        then=permit("team"),
    ),
    Row(
        what="ppt-adviser-on-team-write-access-consent-ppt-writes-case",
        who="ppt-adviser",
        consent="ppt-4010",
        action=W,
        then=permit("team"),
    ),
    Row(
        what="ppt-adviser-on-team-write-access-consent-ppt-reads-log",
        who="ppt-adviser",
        consent="ppt-4010",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="ppt-adviser-on-team-write-access-without-consent-appends",
        who="ppt-adviser",
        action=APPEND,
        then=deny("consent_required"),
    ),
    Row(
        what="ppt-adviser-on-team-write-access-consent-health-only-appends",
        who="ppt-adviser",
        consent="health-4010",
        action=APPEND,
        then=deny("consent_required"),
    ),
    Row(
        what="ppt-adviser-on-team-consent-names-ppt-unit-appends",
        who="ppt-adviser",
        consent="health-4010-ppt-unit-only",
        action=APPEND,
        then=permit("team"),
    ),
    Row(
        what="ppt-adviser-on-team-write-access-consent-ppt-manages-case",
        who="ppt-adviser",
        consent="ppt-4010",
        action=MANAGE,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="ppt-adviser-on-team-consent-ppt-reads-health-entry",
        who="ppt-adviser",
        consent="ppt-4010",
        entry="health-by-nurse",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    # --- county teacher on the team: crossing organisations -------------------------------
    Row(
        what="county-teacher-on-team-consent-org-40-upper-secondary-reads-case",
        who="county-teacher",
        consent="upsec-40",
        action=R,
        then=permit("team"),
    ),
    Row(
        what="county-teacher-on-team-consent-org-40-upper-secondary-reads-log",
        who="county-teacher",
        consent="upsec-40",
        action=LOG_R,
        then=permit("team"),
    ),
    Row(
        what="county-teacher-on-team-consent-names-only-4010-reads-case",
        who="county-teacher",
        consent="upsec-4010",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="county-teacher-on-team-consent-org-40-health-sector-reads-case",
        who="county-teacher",
        consent="health-40",
        action=R,
        then=deny("consent_required"),
    ),
    Row(
        what="county-teacher-on-team-read-access-consent-org-40-appends",
        who="county-teacher",
        consent="upsec-40",
        action=APPEND,
        then=deny(WRONG_PERMISSION),
    ),
    Row(
        what="county-teacher-on-team-without-consent-reports-concern",
        who="county-teacher",
        action=REPORT,
        then=permit("duty_to_report"),
    ),
    # --- child welfare: gets the report, not the log ---------------------------------------
    Row(
        what="child-welfare-worker-not-on-team-reports-concern-without-consent",
        who="cw-worker",
        action=REPORT,
        then=permit("duty_to_report"),
    ),
    Row(
        what="child-welfare-worker-not-on-team-reads-case",
        who="cw-worker",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="child-welfare-worker-not-on-team-consent-covers-sector-reads-log",
        who="cw-worker",
        consent="all-services",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    # Intake staff of a child welfare unit read and acknowledge reports; the case service
    # serves them only the reports sent to their unit (decision 0026).
    Row(
        what="child-welfare-worker-reads-report-without-consent",
        who="cw-worker",
        action=REPORT_READ,
        then=permit("child_welfare_intake"),
    ),
    Row(
        what="child-welfare-worker-acknowledges-report",
        who="cw-worker",
        action=REPORT_RECEIVE,
        then=permit("child_welfare_intake"),
    ),
    Row(
        what="holder-reads-report-as-intake",
        who="holder",
        action=REPORT_READ,
        then=deny("no_basis"),
    ),
    Row(
        what="school-leader-acknowledges-report",
        who="school-leader",
        action=REPORT_RECEIVE,
        then=deny("no_basis"),
    ),
    Row(
        what="ppt-leader-reads-report-as-intake",
        who="ppt-leader",
        action=REPORT_READ,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-reads-report-as-intake",
        who="guardian",
        action=REPORT_READ,
        then=deny("no_basis"),
    ),
    # --- guardians ------------------------------------------------------------------------
    Row(
        what="guardian-with-parental-responsibility-reads-case",
        who="guardian",
        action=R,
        then=permit("guardian"),
    ),
    Row(
        what="guardian-with-parental-responsibility-reads-log",
        who="guardian",
        action=LOG_R,
        then=permit("guardian"),
    ),
    Row(
        what="guardian-with-parental-responsibility-writes-case",
        who="guardian",
        action=W,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-with-parental-responsibility-appends",
        who="guardian",
        action=APPEND,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-with-parental-responsibility-manages-case",
        who="guardian",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-with-parental-responsibility-reports-concern",
        who="guardian",
        action=REPORT,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-with-parental-responsibility-reads-audit-trail",
        who="guardian",
        action=AUDIT,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-without-parental-responsibility-reads-case",
        who="guardian-no-pr",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-without-parental-responsibility-reads-log",
        who="guardian-no-pr",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-reads-entry-restricted-from-guardians",
        who="guardian",
        entry="restricted",
        action=LOG_R,
        then=deny("entry_restricted"),
    ),
    Row(
        what="guardian-reads-restricted-health-entry",
        who="guardian",
        entry="restricted-health",
        action=LOG_R,
        then=deny("entry_restricted"),
    ),
    Row(
        what="guardian-reads-entry-whose-restriction-ended",
        who="guardian",
        entry="restriction-ended",
        action=LOG_R,
        then=permit("guardian"),
    ),
    Row(
        what="guardian-reads-entry-whose-restriction-ends-exactly-now",
        who="guardian",
        entry="restriction-ends-now",
        action=LOG_R,
        then=permit("guardian"),
    ),
    Row(
        what="guardian-reads-unrestricted-health-entry",
        who="guardian",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("guardian"),
    ),
    Row(
        what="guardian-reads-another-childs-case",
        who="guardian",
        case="other-child",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-reads-unknown-case",
        who="guardian",
        case="unknown",
        action=R,
        then=deny("no_basis"),
    ),
    # --- the youth ------------------------------------------------------------------------
    Row(what="youth-15-reads-own-case", who="youth", action=R, then=permit("self")),
    Row(what="youth-15-reads-own-log", who="youth", action=LOG_R, then=permit("self")),
    Row(
        what="youth-16-reads-own-log",
        who="youth",
        case="child-16",
        action=LOG_R,
        then=permit("self"),
    ),
    Row(
        what="youth-14-reads-own-case",
        who="youth",
        case="child-14",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-14-reads-own-log",
        who="youth",
        case="child-14",
        action=LOG_R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-turning-15-today-reads-own-log",
        who="youth",
        case="turns-15-today",
        action=LOG_R,
        then=permit("self"),
    ),
    Row(
        what="youth-turning-15-tomorrow-reads-own-log",
        who="youth",
        case="turns-15-tomorrow",
        action=LOG_R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-15-self-access-age-16-reads-own-log",
        who="youth",
        settings=AGE_16,
        action=LOG_R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-16-self-access-age-16-reads-own-log",
        who="youth",
        case="child-16",
        settings=AGE_16,
        action=LOG_R,
        then=permit("self"),
    ),
    Row(
        what="youth-without-recorded-birth-date-reads-own-log",
        who="youth",
        case="no-birth-date",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(what="youth-15-appends-to-own-log", who="youth", action=APPEND, then=deny("no_basis")),
    # «Hva er viktig for meg?»: the youth's own words, from the youth age (decision 0033).
    Row(what="youth-15-writes-own-words", who="youth", action=OWN_VOICE, then=permit("youth")),
    Row(
        what="youth-14-writes-own-words",
        who="youth",
        case="child-14",
        action=OWN_VOICE,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-turning-15-today-writes-own-words",
        who="youth",
        case="turns-15-today",
        action=OWN_VOICE,
        then=permit("youth"),
    ),
    Row(
        what="youth-15-region-youth-age-16-writes-own-words",
        who="youth",
        settings=YOUTH_AGE_16,
        action=OWN_VOICE,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-15-organisation-youth-age-16-writes-own-words",
        who="youth",
        case="org-youth-age-16",
        action=OWN_VOICE,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-16-self-access-age-16-writes-own-words",
        who="youth",
        case="child-16",
        settings=AGE_16,
        action=OWN_VOICE,
        then=permit("youth"),
    ),
    Row(
        # Never before the youth reads their own log: they see what they wrote.
        what="youth-14-organisation-youth-age-12-writes-own-words-before-self-access",
        who="youth",
        case="org-youth-age-12",
        action=OWN_VOICE,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="youth-without-recorded-birth-date-writes-own-words",
        who="youth",
        case="no-birth-date",
        action=OWN_VOICE,
        then=deny("no_basis"),
    ),
    Row(
        what="youth-15-writes-own-words-in-another-childs-case",
        who="youth",
        case="other-child",
        action=OWN_VOICE,
        then=deny("no_basis"),
    ),
    Row(what="guardian-writes-youths-words", who="guardian", action=OWN_VOICE, then=deny(None)),
    Row(what="holder-writes-youths-words", who="holder", action=OWN_VOICE, then=deny(None)),
    Row(
        what="client-named-child-writes-own-words",
        who="client-named-child",
        action=OWN_VOICE,
        then=deny("no_basis"),
    ),
    Row(what="youth-15-manages-consent", who="youth", action=CONSENT, then=deny("no_basis")),
    Row(
        what="youth-15-reads-another-childs-case",
        who="youth",
        case="other-child",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="youth-15-reads-entry-restricted-from-guardians",
        who="youth",
        entry="restricted",
        action=LOG_R,
        then=deny("entry_restricted"),
    ),
    Row(
        what="youth-15-reads-entry-whose-restriction-ended",
        who="youth",
        entry="restriction-ended",
        action=LOG_R,
        then=permit("self"),
    ),
    Row(
        what="youth-15-reads-unrestricted-health-entry",
        who="youth",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("self"),
    ),
    # --- auditors -------------------------------------------------------------------------
    Row(what="auditor-scope-4010-reads-case", who="auditor-4010", action=R, then=permit("auditor")),
    Row(
        what="auditor-scope-4010-reads-log",
        who="auditor-4010",
        action=LOG_R,
        then=permit("auditor"),
    ),
    Row(
        what="auditor-scope-4010-reads-audit-trail",
        who="auditor-4010",
        action=AUDIT,
        then=permit("auditor"),
    ),
    Row(what="auditor-scope-4010-writes-case", who="auditor-4010", action=W, then=deny("no_basis")),
    Row(
        what="auditor-scope-4010-appends", who="auditor-4010", action=APPEND, then=deny("no_basis")
    ),
    Row(
        what="auditor-scope-4010-manages-case",
        who="auditor-4010",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="auditor-scope-4010-reads-restricted-entry",
        who="auditor-4010",
        entry="restricted",
        action=LOG_R,
        then=permit("auditor"),
    ),
    Row(
        what="auditor-scope-4010-reads-health-entry",
        who="auditor-4010",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("auditor"),
    ),
    Row(
        what="auditor-scope-4010-reads-another-case-of-4010",
        who="auditor-4010",
        case="other-child",
        action=R,
        then=permit("auditor"),
    ),
    Row(
        what="auditor-scope-4010-reads-entry-of-another-case",
        who="auditor-4010",
        entry="other-case",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="auditor-scoped-to-another-org-reads-case",
        who="auditor-other-org",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="auditor-scoped-to-another-org-reads-audit-trail",
        who="auditor-other-org",
        action=AUDIT,
        then=deny("no_basis"),
    ),
    Row(
        what="auditor-expired-scope-reads-case",
        who="auditor-expired",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="auditor-expired-scope-reads-audit-trail",
        who="auditor-expired",
        action=AUDIT,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="auditor-scoped-to-case-1-reads-case-1",
        who="auditor-case-1",
        action=R,
        then=permit("auditor"),
    ),
    Row(
        what="auditor-scoped-to-case-1-reads-case-2",
        who="auditor-case-1",
        case="other-child",
        action=R,
        then=deny("no_basis"),
    ),
    # --- emergency access -----------------------------------------------------------------
    Row(
        what="staff-with-valid-emergency-grant-reads-case",
        who="emergency",
        action=R,
        then=permit("emergency"),
    ),
    Row(
        what="staff-with-valid-emergency-grant-reads-log",
        who="emergency",
        action=LOG_R,
        then=permit("emergency"),
    ),
    Row(
        what="staff-with-valid-emergency-grant-writes-case",
        who="emergency",
        action=W,
        then=deny("no_basis"),
    ),
    Row(
        what="staff-with-valid-emergency-grant-appends",
        who="emergency",
        action=APPEND,
        then=deny("no_basis"),
    ),
    Row(
        what="health-staff-with-valid-emergency-grant-reads-health-entry",
        who="emergency",
        entry="health-by-nurse",
        action=LOG_R,
        then=permit("emergency"),
    ),
    Row(
        what="health-staff-with-valid-emergency-grant-reads-child-welfare-entry",
        who="emergency",
        entry="cw-by-cw-worker",
        action=LOG_R,
        then=deny("category_restricted"),
    ),
    Row(
        what="staff-with-valid-emergency-grant-reads-another-case",
        who="emergency",
        case="other-child",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="staff-with-expired-emergency-grant-reads-case",
        who="emergency-expired",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    Row(
        what="non-staff-with-emergency-grant-reads-case",
        who="emergency-no-role",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="staff-with-48h-emergency-grant-reads-case-30h-in",
        who="emergency-overlong",
        action=R,
        then=deny("basis_not_in_force"),
    ),
    # --- asking for emergency access: related to the case's organisation or sector --------
    Row(
        what="staff-of-the-cases-municipality-may-ask-for-emergency-access",
        who="nurse",
        action=EMERGENCY,
        then=permit("related_staff"),
    ),
    Row(
        what="staff-of-the-cases-sector-in-another-municipality-may-ask-for-emergency-access",
        who="other-school-teacher",
        action=EMERGENCY,
        then=permit("related_staff"),
    ),
    Row(
        what="staff-of-another-organisation-and-sector-may-not-ask-for-emergency-access",
        who="receiver",
        action=EMERGENCY,
        then=deny("no_basis"),
    ),
    Row(
        what="sector-relation-needs-the-owning-units-sector",
        who="other-school-teacher",
        case="unit-sector-unknown",
        action=EMERGENCY,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-may-not-ask-for-emergency-access",
        who="guardian",
        action=EMERGENCY,
        then=deny("no_basis"),
    ),
    Row(
        what="emergency-access-to-an-unknown-case-is-denied",
        who="nurse",
        case="unknown",
        action=EMERGENCY,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-nurse-may-not-ask-for-emergency-access",
        who="client-named-nurse",
        action=EMERGENCY,
        then=deny("no_basis"),
    ),
    # --- the receiver of a pending handover: its header, nothing more ---------------------
    Row(
        what="receiver-of-pending-handover-sees-its-header",
        who="receiver",
        case="handover-pending",
        action=HANDOVER,
        then=permit("handover_addressee"),
    ),
    Row(
        what="receiver-of-pending-handover-reads-case",
        who="receiver",
        case="handover-pending",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-of-pending-handover-reads-log",
        who="receiver",
        case="handover-pending",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-of-pending-handover-writes",
        who="receiver",
        case="handover-pending",
        action=W,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-of-pending-handover-manages",
        who="receiver",
        case="handover-pending",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-of-pending-handover-with-covering-consent-reads-case",
        who="receiver",
        case="handover-pending",
        consent="upsec-40",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-once-the-handover-is-answered-sees-its-header",
        who="receiver",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    Row(
        what="receiver-without-a-role-at-the-unit-named-sees-the-header",
        who="receiver-moved-on",
        case="handover-pending-to-moved-on",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    Row(
        what="holder-asks-for-the-handover-header-as-receiver",
        who="holder",
        case="handover-pending",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    Row(
        what="another-teacher-sees-someone-elses-handover-header",
        who="teacher-off-team",
        case="handover-pending",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    Row(
        what="guardian-sees-the-handover-header",
        who="guardian",
        case="handover-pending",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    # --- clients and unknown cases ----------------------------------------------------------
    Row(
        what="agency-client-without-relation-reads-case",
        who="client",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="agency-client-without-relation-reports-concern",
        who="client",
        action=REPORT,
        then=deny("no_basis"),
    ),
    Row(
        what="agency-client-with-broad-consent-reads-log",
        who="client",
        consent="all-services",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="agency-client-reads-unknown-case",
        who="client",
        case="unknown",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-holder-reads-case",
        who="client-named-holder",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-holder-writes-case",
        who="client-named-holder",
        action=W,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-holder-manages-case",
        who="client-named-holder",
        action=MANAGE,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-holder-reports-concern",
        who="client-named-holder",
        action=REPORT,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-holder-reads-plain-entry",
        who="client-named-holder",
        entry="plain",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-child-reads-own-log",
        who="client-named-child",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-child-reads-own-case-at-16",
        who="client-named-child",
        case="child-16",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-receiver-sees-handover-header",
        who="client-named-receiver",
        case="handover-pending",
        action=HANDOVER,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-teacher-on-team-writes",
        who="client-named-teacher",
        action=W,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-leader-restricts-entry",
        who="client-named-leader",
        action=RESTRICT,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-guardian-reads-log",
        who="client-named-guardian",
        action=LOG_R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-auditor-reads-audit",
        who="client-named-auditor",
        action=AUDIT,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-emergency-reads-case",
        who="client-named-emergency",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-team-nurse-with-consent-reads-case",
        who="client-named-nurse",
        consent="health-4010",
        action=R,
        then=deny("no_basis"),
    ),
    Row(
        what="client-named-team-nurse-without-consent-is-not-told-consent-required",
        who="client-named-nurse",
        action=R,
        then=deny("no_basis"),
    ),
    *CLIENT_ROWS,
]


def _param(row: Row) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=row.defect)] if row.defect else []
    return pytest.param(row, id=row.id, marks=marks)


def run(row: Row) -> Decision:
    return decide(
        PEOPLE[row.who],
        row.action,
        case_for(row.case, row.consent),
        NOW,
        entry=None if row.entry is None else ENTRIES[row.entry],
        settings=row.settings,
    )


@pytest.mark.parametrize("row", [_param(row) for row in ROWS])
def test_policy_row(row: Row) -> None:
    decision = run(row)
    assert decision.policy_version == POLICY_VERSION
    got = deny(decision.reason) if not decision.permit else permit(decision.basis or "")
    expected = row.then
    if not expected.permit and expected.reason is None:
        got = deny(None)
    assert got == expected, decision.detail
    if decision.permit:
        assert decision.reason == "permitted"
    else:
        assert decision.basis is None


# --- the table itself --------------------------------------------------------------------------


def test_a_client_gets_nothing_from_a_person_rule_whatever_its_facts() -> None:
    # Every rule relates persons or clients, never both; a client with a person's id and
    # that person's facts, but no registration, has no grant on any case, for any action.
    assert all(rule.kinds in ({"person"}, {"client"}) for rule in RULES)
    for who, facts in PEOPLE.items():
        if facts.kind != "client" or facts.client is not None:
            continue
        for case_key, case in _every_case():
            for action in Action:
                assert grants(facts, case, action) == [], (who, case_key, action)


def _every_case() -> list[tuple[str, CaseFacts]]:
    """Every case of the world with every consent state: (case key, facts)."""
    return [
        (case_key, case)
        for case_key in CASES
        for consent_state in CONSENT_STATES
        if (case := case_for(case_key, consent_state)) is not None
    ]


def test_table_is_large_and_ids_are_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ROWS) >= 60
    assert len(set(ids)) == len(ids)
    assert len({row.what for row in ROWS}) == len(ROWS)


def test_table_refers_only_to_the_world() -> None:
    for row in ROWS:
        assert row.who in PEOPLE, row.id
        assert row.case in CASES, row.id
        assert row.consent in CONSENT_STATES, row.id
        assert row.entry is None or row.entry in ENTRIES, row.id


def test_table_permits_on_every_basis_and_denies_for_every_reason() -> None:
    permitted = {row.then.basis for row in ROWS if row.then.permit}
    assert permitted == {rule.basis for rule in RULES}
    reasons = {row.then.reason for row in ROWS if not row.then.permit}
    assert reasons >= {
        "no_basis",
        "consent_required",
        "basis_not_in_force",
        "entry_restricted",
        "category_restricted",
        "category_excluded",
    }
    assert {row.action for row in ROWS} == set(Action)


# --- grants and decisions ------------------------------------------------------------------


def test_grants_windows_end_with_the_consent() -> None:
    case = case_for("main", "health-4010+broad")
    assert case is not None
    got = grants(PEOPLE["nurse"], case, Action.CASE_READ)
    assert [(g.basis, g.consent_id, g.valid_until) for g in got] == [
        ("team", k.consent_id, k.valid_until) for k in case.consents
    ]
    assert all(g.valid_from == k.valid_from for g, k in zip(got, case.consents, strict=True))


def test_permit_on_consent_carries_the_consent_and_its_end() -> None:
    case = case_for("main", "health-4010")
    decision = decide(PEOPLE["nurse"], Action.LOG_READ, case, NOW)
    assert decision.permit
    assert decision.consent_id == HEALTH_4010.consent_id
    assert decision.valid_until == HEALTH_4010.valid_until


def test_grants_for_excluded_categories_carry_the_exclusion() -> None:
    case = case_for("main", "health-4010-excl-health")
    assert case is not None
    (grant,) = grants(PEOPLE["nurse"], case, Action.LOG_READ)
    assert grant.excluded_categories == frozenset({Category.HEALTH})


def test_emergency_and_auditor_windows_are_their_own() -> None:
    main = case_for("main", "none")
    assert main is not None
    (em,) = grants(PEOPLE["emergency"], main, Action.CASE_READ)
    assert (em.basis, em.valid_until) == ("emergency", NOW - 2 * HOUR + EMERGENCY_DURATION)
    (au,) = grants(PEOPLE["auditor-4010"], main, Action.AUDIT_READ)
    assert (au.basis, au.valid_until) == ("auditor", NOW + 90 * DAY)
    (own,) = grants(PEOPLE["youth"], main, Action.LOG_READ)
    assert own.basis == "self"
    # Midnight on the 15th birthday in Norway (CEST): 22:00 UTC the day before.
    assert own.valid_from == datetime(2026, 5, 1, 22, 0, tzinfo=UTC)


def test_withdrawal_takes_effect_on_the_next_decision() -> None:
    nurse = PEOPLE["nurse"]
    with_consent = case_for("main", "health-4010")
    assert with_consent is not None
    first = decide(nurse, Action.LOG_READ, with_consent, NOW)
    assert (first.permit, first.basis) == (True, "team")
    withdrawn = replace(with_consent, consents=())
    second = decide(nurse, Action.LOG_READ, withdrawn, NOW + timedelta(milliseconds=1))
    assert (second.permit, second.reason) == (False, "consent_required")
    assert grants(nurse, withdrawn, Action.LOG_READ) == []


def test_duty_to_report_never_needs_a_consent() -> None:
    for key, person in PEOPLE.items():
        if not person.roles or person.kind != "person":
            continue
        for consent_state in CONSENT_STATES:
            decision = decide(person, Action.CASE_REPORT, case_for("main", consent_state), NOW)
            assert decision.permit, (key, consent_state, decision.detail)


# --- properties over random small worlds ---------------------------------------------------

case_keys = st.sampled_from(sorted(CASES))
entry_keys = st.none() | st.sampled_from(sorted(ENTRIES))
moments = st.integers(min_value=-400 * 24, max_value=400 * 24).map(lambda h: NOW + h * HOUR)


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[PrincipalFacts, Action, CaseFacts | None, EntryFacts | None, datetime, PolicySettings]:
    principal = draw(st.sampled_from(sorted(PEOPLE.items())))[1]
    action = draw(st.sampled_from(sorted(Action)))
    base = CASES[draw(case_keys)]
    all_consents = sorted(
        {k for ks in CONSENT_STATES.values() for k in ks}, key=lambda k: k.consent_id
    )
    chosen = tuple(draw(st.lists(st.sampled_from(all_consents), max_size=3, unique=True)))
    case = None if base is None else replace(base, consents=chosen)
    key = draw(entry_keys)
    age = draw(st.sampled_from([15, 16]))
    return (
        principal,
        action,
        case,
        None if key is None else ENTRIES[key],
        draw(moments),
        PolicySettings(self_access_age=age),
    )


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_decide_never_permits_without_a_grant_that_holds(
    world: tuple[
        PrincipalFacts, Action, CaseFacts | None, EntryFacts | None, datetime, PolicySettings
    ],
) -> None:
    principal, action, case, the_entry, now, policy_settings = world
    decision = decide(principal, action, case, now, entry=the_entry, settings=policy_settings)
    assert decision.policy_version == POLICY_VERSION
    if not decision.permit:
        assert decision.basis is None
        return
    assert case is not None
    holding = [g for g in grants(principal, case, action, policy_settings) if g.holds_at(now)]
    assert holding, decision.detail
    assert decision.basis in {g.basis for g in holding}


# --- team rights hold inside the owning unit too (issue 17, item 4) ----------------------------


@pytest.mark.parametrize("access", ["read", "write"])
def test_a_colleague_of_the_owning_unit_on_the_team_writes_only_with_write_access(
    access: str,
) -> None:
    case = replace(
        MAIN_CASE,
        team={**TEAM, "own-unit-teacher": member("own-unit-teacher", SCHOOL, access)},
    )
    colleague = PEOPLE["own-unit-teacher"]
    for action in (Action.CASE_READ, Action.LOG_READ):
        assert decide(colleague, action, case, NOW).basis == "own_unit"
    for action in (Action.CASE_WRITE, Action.LOG_APPEND):
        decision = decide(colleague, action, case, NOW)
        assert decision.permit is (access == "write"), (action, decision)
    assert not decide(colleague, Action.CASE_MANAGE, case, NOW).permit


@pytest.mark.parametrize(
    ("basis", "reader", "seen"),
    [
        ("holder", "ann", True),
        ("unit_leader", "rektor", True),
        ("team", "hanne", True),
        ("emergency", "hanne", True),
        ("auditor", "randi", True),
        ("guardian", "mor", True),  # named a grantor
        ("guardian", "stefar", False),  # responsible, but not named by this consent
        ("self", "barn", False),  # reads their own case; the consent is the guardians'
        ("self", "ungdom", True),  # named a grantor by the youth rule
        (None, "mor", False),  # no basis: no read at all
    ],
)
def test_the_purpose_is_for_staff_who_read_the_case_and_the_grantors_it_names(
    basis: str | None, reader: str, seen: bool
) -> None:
    assert sees_consent_purpose(basis, reader, frozenset({"mor", "far", "ungdom"})) is seen


def test_every_family_basis_is_held_to_the_grantors() -> None:
    family = {rule.basis for rule in RULES if rule.gate == "family"}
    assert family == {"guardian", "self", "youth"}
    for basis in family:
        assert not sees_consent_purpose(basis, "someone", frozenset({"mor"}))


def test_a_registered_client_is_given_reads_on_a_consent_only() -> None:
    # Whatever the case and its consents, a registered client's grants are reads on the
    # client rule alone, each with the consent that gives it; a person never gets it.
    for who, facts in PEOPLE.items():
        for _case_key, case in _every_case():
            for action in Action:
                got = grants(facts, case, action)
                if facts.client is None:
                    assert all(g.basis != "client_consent" for g in got), (who, action)
                    continue
                assert all(g.basis == "client_consent" for g in got), (who, action)
                assert all(g.consent_id is not None for g in got), (who, action)
                if got:
                    assert action in {Action.CASE_READ, Action.LOG_READ}, (who, action)
