"""Read models of the consent service: the directory, case facts learnt from ``case.*`` and
``log.*`` events, consents, grants, and the access index that answers list filters."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    false,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from stafett_consent.policy import (
    INDEXED_ACTIONS,
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
    grants,
)
from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseEvent,
    CaseOpened,
    CaseReopened,
    ChildIdentified,
    HandoverAccepted,
    HandoverCancelled,
    HandoverDeclined,
    HandoverRequested,
    LevelChanged,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.consent import (
    AuditScopeGranted,
    ConsentActivated,
    ConsentEvent,
    ConsentExpired,
    ConsentExpiryReminderDue,
    ConsentRefused,
    ConsentRequested,
    ConsentSigned,
    ConsentWithdrawn,
    EmergencyAccessApproved,
    EmergencyAccessGranted,
    EmergencyAccessRequested,
)
from stafett_shared.contracts.directory import (
    ChildRegistered,
    ClientPurpose,
    ClientRegistered,
    ClientScope,
    ClientUnregistered,
    DirectoryEvent,
    GuardianAdded,
    GuardianRemoved,
    LoginBound,
    LoginUnbound,
    OrganisationChanged,
    OrganisationChildWelfareServiceSet,
    OrganisationGuideSet,
    OrganisationMeasureCatalogueSet,
    OrganisationRegistered,
    OrganisationSettingsSet,
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
from stafett_shared.contracts.log import (
    Category,
    EntryAppended,
    EntryCorrected,
    EntryRestricted,
    LogEvent,
)
from stafett_shared.crypto import CryptoError, FieldCipher
from stafett_shared.db import UtcDateTime, as_utc, upsert_sync
from stafett_shared.envelope import CloudEvent
from stafett_shared.eventstore import StoredCommit
from stafett_shared.facts import apply_role, apply_team_change, case_status, placement
from stafett_shared.logging import get_logger
from stafett_shared.projector import BlockingProjection

_log = get_logger("stafett.consent.projections")

metadata = MetaData()

organisations = Table(
    "organisations",
    metadata,
    Column("org_id", String(32), primary_key=True),
    Column("region", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("guide", JSON, nullable=True),  # steps of levels 0 to 3: [[...], [...], ...]
    Column("measure_catalogue", JSON, nullable=True),  # [{"title", "goal"}, ...]
    # The child welfare unit named for reports of concern; None: the organisation's own.
    Column("child_welfare_unit_id", String(64), nullable=True),
    Column("settings", JSON, nullable=True),  # the organisation's own; None: the region's
)
units = Table(
    "units",
    metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("org_id", String(32), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("sector", String(32), nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Column("phone", String(16), nullable=True),
    Column("email", String(254), nullable=True),
)
staff = Table(
    "staff",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("name_index", String(64), nullable=False),
    Column("name", Text, nullable=True),  # encrypted with the staff member's own key
)
roles = Table(
    "roles",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("org_id", String(32), nullable=False),
    Index("ix_roles_unit", "unit_id", "role"),
)
logins = Table(
    "logins",
    metadata,
    Column("login", String(64), primary_key=True),
    Column("issuer", String(500), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("person_id", String(64), nullable=False, index=True),
)
"""The logins the directory binds: a staff issuer's (issuer, subject) to the staff member it
names, keyed by :func:`login_key` (docs/decisions/0022-identity-issuer-subject.md)."""
clients = Table(
    "clients",
    metadata,
    Column("registration", String(64), primary_key=True),
    Column("issued_as", String(64), nullable=False, index=True),
    Column("client", String(64), nullable=False, index=True),
    Column("org_id", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("issuer", String(500), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("consumer_org", String(9), nullable=False),
    Column("scopes", JSON, nullable=True),  # [ClientScope]; None: none
    Column("sectors", JSON, nullable=True),  # [Sector]
    Column("purposes", JSON, nullable=True),  # [ClientPurpose]
)
"""The agency clients the directory registers: a client issuer's (issuer, client id,
consumer organisation) to the client's directory id (``client``), keyed by
:func:`client_key`; ``issued_as`` (:func:`login_key` of issuer and client id) finds a token
that names no consumer (docs/decisions/0023-citizens-and-clients.md). ``scopes``,
``sectors`` and ``purposes`` are what the access policy may give it (decision 0039)."""
children = Table(
    "children",
    metadata,
    Column("child_id", String(26), primary_key=True),
    Column("national_id_index", String(64), nullable=False, unique=True),
    Column("birth_date", Date, nullable=True),  # None once the child's key is shredded
)
guardians = Table(
    "guardians",
    metadata,
    Column("child_id", String(26), primary_key=True),
    Column("person_id", String(26), primary_key=True),
    Column("national_id_index", String(64), nullable=False, index=True),
    Column("parental_responsibility", Boolean, nullable=False),
    Index("ix_guardians_person", "person_id"),
)
cases = Table(
    "cases",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("org_id", String(32), nullable=False, index=True),
    Column("unit_id", String(64), nullable=False, index=True),
    Column("holder_id", String(64), nullable=False, index=True),
    Column("child_id", String(26), nullable=True, index=True),
    Column("level", Integer, nullable=False),
    Column("status", String(16), nullable=False),
)
team = Table(
    "team",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), nullable=False, index=True),
    Column("access", String(8), nullable=False),
    Index("ix_team_person", "person_id"),
)
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("child_id", String(26), nullable=False),
    Column("status", String(16), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("grantors", JSON, nullable=False),
    Column("signed", JSON, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("age_applied", Integer, nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
    Column("evidence_method", String(32), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("renews", String(26), nullable=True, index=True),
    Column("reminded", Boolean, nullable=False, default=False, server_default=false()),
    # The staff member (or, for a renewal, the grantor) who asked; None until a replay for
    # consents the read model learnt before it kept this (migration 0018).
    Column("requested_by", String(64), nullable=True),
)
pending_handovers = Table(
    "pending_handovers",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("handover_id", String(26), nullable=False),
    Column("to_person_id", String(64), nullable=False, index=True),
    Column("to_unit_id", String(64), nullable=False),
)
"""The handover waiting for its receiver's answer, per case (docs/decisions/0018)."""
entries = Table(
    "entries",
    metadata,
    Column("entry_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("author_id", String(64), nullable=False),
    Column("category", String(32), nullable=True),
    Column("restricted_until", UtcDateTime(), nullable=True),
)
emergency_grants = Table(
    "emergency_grants",
    metadata,
    Column("grant_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False, index=True),
    Column("person_id", String(64), nullable=False, index=True),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
)
emergency_requests = Table(
    "emergency_requests",
    metadata,
    Column("grant_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved
    Index("ix_emergency_requests_person_case", "person_id", "case_id"),
)
"""Emergency grants that wait for a leader's approval (a repeat within 30 days), and
whether they were approved; an approved one is in ``emergency_grants`` from then on."""
audit_scopes = Table(
    "audit_scopes",
    metadata,
    Column("scope_id", String(26), primary_key=True),
    Column("auditor_id", String(64), nullable=False, index=True),
    Column("org_id", String(32), nullable=True),
    Column("case_ids", JSON, nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
)
access_index = Table(
    "access_index",
    metadata,
    Column("principal_id", String(64), nullable=False),
    Column("case_id", String(26), nullable=False),
    Column("action", String(32), nullable=False),
    Column("basis", String(32), nullable=False),
    Column("consent_id", String(26), nullable=True),
    Column("valid_from", UtcDateTime(), nullable=True),
    Column("valid_until", UtcDateTime(), nullable=True),
    Column("seq", BigInteger, nullable=False),
    Index("ix_access_lookup", "principal_id", "action", "case_id"),
    Index("ix_access_case", "case_id"),
)
"""Who may do what with which case, on which basis, from when to when: the Leopard-style
index that lets a list screen ask one query instead of one check per case."""


def login_key(issuer: str, subject: str) -> str:
    """The key of a login in the ``logins`` table: hex SHA-256 of issuer and subject (an
    index on the two as they stand could outgrow a database's key length)."""
    return hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def client_key(issuer: str, client_id: str, consumer_org: str) -> str:
    """The key of a client in the ``clients`` table: hex SHA-256 of what names it."""
    return hashlib.sha256(f"{issuer}\n{client_id}\n{consumer_org}".encode()).hexdigest()


# --- loading facts ---------------------------------------------------------------------------

# Statements built once: building one anew for every decision costs more than running it.
_CASE = (
    select(cases, units.c.sector, organisations.c.settings.label("org_settings"))
    .select_from(
        cases.outerjoin(units, units.c.unit_id == cases.c.unit_id).outerjoin(
            organisations, organisations.c.org_id == cases.c.org_id
        )
    )
    .where(cases.c.case_id == bindparam("case_id"))
)
_TEAM = (
    select(team.c.person_id, team.c.unit_id, team.c.access, units.c.org_id, units.c.sector)
    .join(units, units.c.unit_id == team.c.unit_id)
    .where(team.c.case_id == bindparam("case_id"))
)
_ACTIVE_CONSENTS = select(consents).where(
    consents.c.case_id == bindparam("case_id"), consents.c.status == "active"
)
_PENDING_HANDOVER = select(pending_handovers).where(
    pending_handovers.c.case_id == bindparam("case_id")
)
_BIRTH_DATE = select(children.c.birth_date).where(children.c.child_id == bindparam("child_id"))
_ROLES = (
    select(roles.c.org_id, roles.c.unit_id, roles.c.role, units.c.sector)
    .join(units, units.c.unit_id == roles.c.unit_id)
    .where(roles.c.person_id == bindparam("principal_id"), units.c.closed.is_(False))
)
_GUARDIAN_OF = select(guardians.c.child_id, guardians.c.parental_responsibility).where(
    guardians.c.person_id == bindparam("principal_id")
)
_AUDIT_SCOPES = select(audit_scopes).where(audit_scopes.c.auditor_id == bindparam("principal_id"))
_ENTRY = select(entries).where(entries.c.entry_id == bindparam("entry_id"))
_EMERGENCY = select(emergency_grants).where(
    emergency_grants.c.person_id == bindparam("principal_id")
)


def load_case_facts(conn: Connection, case_id: str) -> CaseFacts | None:
    row = conn.execute(_CASE, {"case_id": case_id}).first()
    if row is None:
        return None
    members = conn.execute(_TEAM, {"case_id": case_id}).all()
    active = conn.execute(_ACTIVE_CONSENTS, {"case_id": case_id}).all()
    pending = conn.execute(_PENDING_HANDOVER, {"case_id": case_id}).first()
    birth: date | None = None
    if row.child_id is not None:
        birth = conn.scalar(_BIRTH_DATE, {"child_id": row.child_id})
    return CaseFacts(
        case_id=row.case_id,
        org_id=row.org_id,
        unit_id=row.unit_id,
        holder_id=row.holder_id,
        sector=Sector(row.sector) if row.sector else None,
        child_id=row.child_id,
        child_birth_date=birth,
        status="closed" if row.status == "closed" else "open",
        youth_age=_youth_age(row.org_settings),
        pending_handover=(
            PendingHandover(pending.handover_id, pending.to_person_id, pending.to_unit_id)
            if pending is not None
            else None
        ),
        team={
            m.person_id: TeamMember(
                m.person_id,
                m.unit_id,
                m.org_id,
                Sector(m.sector),
                "write" if m.access == "write" else "read",
            )
            for m in members
        },
        consents=tuple(
            ConsentFacts(
                consent_id=k.consent_id,
                org_ids=frozenset(k.scope["org_ids"]),
                sectors=frozenset(Sector(s) for s in k.scope["sectors"]),
                unit_ids=frozenset(k.scope.get("unit_ids", ())),
                excluded_categories=frozenset(
                    Category(c) for c in k.scope.get("excluded_categories", ())
                ),
                valid_from=as_utc(k.valid_from) or datetime.min.replace(tzinfo=UTC),
                valid_until=as_utc(k.valid_until) or datetime.max.replace(tzinfo=UTC),
            )
            for k in active
        ),
    )


def _youth_age(settings: object) -> int | None:
    """The organisation's own youth age from its settings (None: the region's)."""
    age = settings.get("youth_consent_age") if isinstance(settings, dict) else None
    return age if isinstance(age, int) and not isinstance(age, bool) else None


def load_principal_facts(
    conn: Connection,
    principal_id: str,
    kind: str = "person",
    token_scopes: Iterable[str] = (),
) -> PrincipalFacts:
    """What the read models know of a person, or of a client: a client's facts are its
    registration, with only the scopes both registered and in its token
    (``token_scopes``; decision 0039)."""
    if kind == "client":
        return PrincipalFacts(
            id=principal_id, kind="client", client=_client_facts(conn, principal_id, token_scopes)
        )
    who = {"principal_id": principal_id}
    role_rows = conn.execute(_ROLES, who).all()
    guardian_rows = conn.execute(_GUARDIAN_OF, who).all()
    scope_rows = conn.execute(_AUDIT_SCOPES, who).all()
    grant_rows = conn.execute(_EMERGENCY, who).all()
    return PrincipalFacts(
        id=principal_id,
        roles=tuple(
            Role(r.org_id, r.unit_id, Sector(r.sector), StaffRole(r.role)) for r in role_rows
        ),
        guardian_of={g.child_id: bool(g.parental_responsibility) for g in guardian_rows},
        audit_scopes=tuple(
            AuditScope(
                s.scope_id,
                s.org_id,
                frozenset(s.case_ids),
                as_utc(s.valid_until) or datetime.max.replace(tzinfo=UTC),
            )
            for s in scope_rows
        ),
        emergency=tuple(
            EmergencyGrant(
                g.grant_id,
                g.case_id,
                as_utc(g.valid_from) or datetime.min.replace(tzinfo=UTC),
                as_utc(g.valid_until) or datetime.min.replace(tzinfo=UTC),
            )
            for g in grant_rows
        ),
    )


def _client_facts(
    conn: Connection, client_id: str, token_scopes: Iterable[str]
) -> ClientFacts | None:
    row = conn.execute(
        select(clients.c.org_id, clients.c.scopes, clients.c.sectors, clients.c.purposes)
        .where(clients.c.client == client_id)
        .order_by(clients.c.registration)
        .limit(1)
    ).first()
    if row is None:
        return None
    asked = set(token_scopes)
    return ClientFacts(
        org_id=row.org_id,
        sectors=frozenset(Sector(v) for v in row.sectors or () if v in _SECTORS),
        scopes=frozenset(ClientScope(v) for v in row.scopes or () if v in _SCOPES and v in asked),
        purposes=frozenset(ClientPurpose(v) for v in row.purposes or () if v in _PURPOSES),
    )


_SECTORS = frozenset(Sector)
_SCOPES = frozenset(ClientScope)
_PURPOSES = frozenset(ClientPurpose)


def load_entry_facts(conn: Connection, entry_id: str) -> EntryFacts | None:
    row = conn.execute(_ENTRY, {"entry_id": entry_id}).first()
    if row is None:
        return None
    return EntryFacts(
        entry_id=row.entry_id,
        case_id=row.case_id,
        author_id=row.author_id,
        category=Category(row.category) if row.category else None,
        restricted_until=as_utc(row.restricted_until),
    )


# --- the access index ------------------------------------------------------------------------


def _candidates(conn: Connection, case: CaseFacts) -> set[str]:
    people = {case.holder_id, *case.team}
    if case.pending_handover is not None:
        people.add(case.pending_handover.to_person_id)
    people.update(
        (
            conn.scalars(
                select(roles.c.person_id).where(
                    roles.c.unit_id == case.unit_id, roles.c.role == StaffRole.LEADER.value
                )
            )
        ).all()
    )
    if case.child_id is not None:
        people.add(case.child_id)
        people.update(
            (
                conn.scalars(
                    select(guardians.c.person_id).where(guardians.c.child_id == case.child_id)
                )
            ).all()
        )
    people.update(
        (
            conn.scalars(
                select(emergency_grants.c.person_id).where(
                    emergency_grants.c.case_id == case.case_id
                )
            )
        ).all()
    )
    for scope in (conn.execute(select(audit_scopes))).all():
        if scope.org_id == case.org_id or case.case_id in scope.case_ids:
            people.add(scope.auditor_id)
    return people


def reindex_case(conn: Connection, case_id: str, seq: int, settings: PolicySettings) -> None:
    """Recompute every grant on one case from the facts the read models hold now."""
    conn.execute(delete(access_index).where(access_index.c.case_id == case_id))
    case = load_case_facts(conn, case_id)
    if case is None:
        return
    rows: list[dict[str, Any]] = []
    for person_id in sorted(_candidates(conn, case)):
        principal = load_principal_facts(conn, person_id)
        for action in sorted(INDEXED_ACTIONS):
            for grant in grants(principal, case, action, settings):
                rows.append(
                    {
                        "principal_id": person_id,
                        "case_id": case_id,
                        "action": action.value,
                        "basis": grant.basis,
                        "consent_id": grant.consent_id,
                        "valid_from": grant.valid_from,
                        "valid_until": grant.valid_until,
                        "seq": seq,
                    }
                )
    if rows:
        conn.execute(access_index.insert(), rows)


# Built once, like the permit query below: a statement made anew for every list costs more
# than running it (the case ids are an expanding parameter).
_FILTER_QUERY = (
    select(access_index.c.case_id)
    .where(
        access_index.c.principal_id == bindparam("principal_id"),
        access_index.c.action == bindparam("action"),
        access_index.c.case_id.in_(bindparam("case_ids", expanding=True)),
        or_(access_index.c.valid_from.is_(None), access_index.c.valid_from <= bindparam("now")),
        or_(access_index.c.valid_until.is_(None), access_index.c.valid_until > bindparam("now")),
    )
    .distinct()
)


def filter_cases(
    conn: Connection, principal_id: str, action: str, case_ids: Iterable[str], now: datetime
) -> list[str]:
    """The cases among ``case_ids`` on which some grant of ``action`` holds at ``now``."""
    wanted = list(dict.fromkeys(case_ids))
    if not wanted:
        return []
    rows = conn.scalars(
        _FILTER_QUERY,
        {"principal_id": principal_id, "action": action, "case_ids": wanted, "now": now},
    )
    permitted = set(rows.all())
    return [case_id for case_id in wanted if case_id in permitted]


_BASIS_ORDER = {rule.basis: i for i, rule in reversed(list(enumerate(RULES)))}


# Built once: a statement made anew for every check costs more than running it.
_PERMIT_QUERY = (
    select(
        access_index.c.basis,
        access_index.c.consent_id,
        access_index.c.valid_until,
        cases.c.org_id,
    )
    .join(cases, cases.c.case_id == access_index.c.case_id)
    .where(
        access_index.c.principal_id == bindparam("principal_id"),
        access_index.c.action == bindparam("action"),
        access_index.c.case_id == bindparam("case_id"),
        or_(access_index.c.valid_from.is_(None), access_index.c.valid_from <= bindparam("now")),
        or_(access_index.c.valid_until.is_(None), access_index.c.valid_until > bindparam("now")),
    )
)


def indexed_permit(
    conn: Connection, principal_id: str, action: Action, case_id: str, now: datetime
) -> tuple[Decision | None, str | None]:
    """A permit from the access index (the first basis in rule order), or None."""
    rows = conn.execute(
        _PERMIT_QUERY,
        {"principal_id": principal_id, "action": action.value, "case_id": case_id, "now": now},
    ).all()
    if not rows:
        return None, None
    best = min(rows, key=lambda r: _BASIS_ORDER.get(r.basis, len(_BASIS_ORDER)))
    why = next(rule.why for rule in RULES if rule.basis == best.basis)
    decision = Decision(
        True,
        best.basis,
        "permitted",
        f"{best.basis}: {why}",
        consent_id=best.consent_id,
        valid_until=as_utc(best.valid_until),
    )
    return decision, best.org_id


# --- the projection --------------------------------------------------------------------------


class ConsentProjection(BlockingProjection):
    """Applies directory, consent, case, log and grant events to the read models, then
    recomputes the access index of every case whose facts changed. Written against a
    blocking connection (docs/decisions/0016-blocking-projections.md); the one thing it
    needs from beyond the database, a child's decrypted birth date, is fetched in
    :meth:`prepare`. Each event is decoded into its contract model (upcast when it was
    written by an old one) and matched on its class."""

    name = "consent"
    contexts = frozenset({"case", "consent", "directory", "log"})
    tables = tuple(metadata.sorted_tables)

    def __init__(
        self, cipher: FieldCipher | None = None, settings: PolicySettings | None = None
    ) -> None:
        self.cipher = cipher
        self.settings = settings or PolicySettings()
        self._births: dict[tuple[str, str], date | None] = {}
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Set by the service: tells the other services that who may read has changed."""
        self._reindexed = False

    async def prepare(self, commits: Sequence[StoredCommit]) -> None:
        """Decrypt the birth dates the commits register (the key bucket is over NATS), before
        the blocking transaction that applies them. Only this batch's are kept."""
        wanted: dict[tuple[str, str], date | None] = {}
        for commit in commits:
            for event in commit.events:
                if event.context != DirectoryEvent.context:
                    continue  # only the directory registers children: no need to decode
                registered = self.event_registry.payload(event)
                if not isinstance(registered, ChildRegistered):
                    continue
                key = (registered.child_id, registered.birth_date)
                if key in wanted:
                    continue
                if key in self._births:
                    wanted[key] = self._births[key]
                else:
                    wanted[key] = await self._birth_date(*key)
        self._births = wanted

    def _prepared_birth(self, child_id: str, token: str) -> date | None:
        key = (child_id, token)
        if key not in self._births:
            raise RuntimeError("a birth date was applied without being prepared")
        return self._births[key]

    def apply_sync(self, conn: Connection, commit: StoredCommit) -> None:
        touched: set[str] = set()
        for event in commit.events:
            touched |= self._apply_event(conn, event, commit.seq)
        for case_id in sorted(touched):
            reindex_case(conn, case_id, commit.seq, self.settings)
        if touched:
            self._reindexed = True

    async def committed(self) -> None:
        """Once a batch that indexed a case again has committed, every service forgets the
        permits it cached (:data:`~stafett_shared.access.ACCESS_CHANGED_SUBJECT`): a guardian
        removed, a role ended or a consent withdrawn is refused at the very next read. A
        failed announcement is not the projection's failure: the caches then end within
        their second."""
        if not self._reindexed or self.announce is None:
            return
        self._reindexed = False
        try:
            await self.announce()
        except Exception as exc:  # noqa: BLE001 - NATS down: the caches still expire
            _log.warning("access_changed_not_announced", error_type=type(exc).__name__)

    def _cases_of(self, conn: Connection, *conditions: Any) -> set[str]:
        return set(conn.scalars(select(cases.c.case_id).where(or_(*conditions))).all())

    def _apply_event(self, conn: Connection, event: CloudEvent, seq: int) -> set[str]:
        """Apply one event; the cases whose access it may change, to be indexed again."""
        payload = self.event_registry.payload(event)
        match payload:
            case DirectoryEvent():
                return self._apply_directory(conn, payload)
            case CaseEvent():
                return self._apply_case(conn, event.subject, payload)
            case LogEvent():
                self._apply_log(conn, event.subject, payload)
                return set()
            case ConsentEvent():
                return self._apply_consent(conn, payload, seq)
        return set()

    def _apply_directory(self, conn: Connection, payload: DirectoryEvent) -> set[str]:
        match payload:
            case OrganisationRegistered():
                upsert_sync(
                    conn,
                    organisations,
                    {
                        "org_id": payload.org_id,
                        "region": payload.region,
                        "name": payload.name,
                        "kind": payload.kind.value,
                    },
                )
            case OrganisationSettingsSet():
                self._update_organisation(conn, payload.org_id, **_organisation_values(payload))
                # The youth age decides from when the youth writes their own words.
                return self._cases_of(conn, cases.c.org_id == payload.org_id)
            case (
                OrganisationChanged()
                | OrganisationGuideSet()
                | OrganisationChildWelfareServiceSet()
                | OrganisationMeasureCatalogueSet()
            ):
                self._update_organisation(conn, payload.org_id, **_organisation_values(payload))
            case UnitRegistered() | UnitChanged():
                upsert_sync(
                    conn,
                    units,
                    {
                        "unit_id": payload.unit_id,
                        "org_id": payload.org_id,
                        "name": payload.name,
                        "sector": payload.sector.value,
                        "closed": False,
                        "phone": payload.phone,
                        "email": payload.email,
                    },
                )
                return self._unit_cases(conn, payload.unit_id)
            case UnitClosed():
                conn.execute(
                    update(units).where(units.c.unit_id == payload.unit_id).values(closed=True)
                )
                return self._unit_cases(conn, payload.unit_id)
            case StaffRegistered() | StaffRenamed():
                upsert_sync(
                    conn,
                    staff,
                    {
                        "person_id": payload.person_id,
                        "name_index": payload.name_index,
                        "name": payload.name,  # ciphertext, under the staff member's own key
                    },
                )
            case RoleGranted() | RoleEnded():
                apply_role(conn, roles, payload)
                return self._person_cases(conn, payload.person_id, payload.unit_id)
            case LoginBound():
                upsert_sync(
                    conn,
                    logins,
                    {
                        "login": login_key(payload.issuer, payload.sub),
                        "issuer": payload.issuer,
                        "subject": payload.sub,
                        "person_id": payload.person_id,
                    },
                )
            case LoginUnbound():
                # Only this person's binding: the login may already name someone else.
                conn.execute(
                    delete(logins).where(
                        logins.c.login == login_key(payload.issuer, payload.sub),
                        logins.c.person_id == payload.person_id,
                    )
                )
            case ClientRegistered() | ClientUnregistered():
                _apply_client(conn, payload)
            case (
                ChildRegistered()
                | GuardianAdded()
                | GuardianRemoved()
                | ParentalResponsibilityChanged()
            ):
                return self._apply_child(conn, payload)
        return set()

    def _apply_child(
        self,
        conn: Connection,
        payload: ChildRegistered | GuardianAdded | GuardianRemoved | ParentalResponsibilityChanged,
    ) -> set[str]:
        """A child registered or their guardians changed: the child's cases to index again,
        so a former guardian loses access, and a new one gains it, in this transaction."""
        match payload:
            case ChildRegistered():
                return self._register_child(conn, payload)
            case GuardianAdded():
                upsert_sync(
                    conn,
                    guardians,
                    {
                        "child_id": payload.child_id,
                        "person_id": payload.guardian.person_id,
                        "national_id_index": payload.guardian.national_id_index,
                        "parental_responsibility": payload.guardian.parental_responsibility,
                    },
                )
            case GuardianRemoved():
                conn.execute(
                    delete(guardians).where(
                        guardians.c.child_id == payload.child_id,
                        guardians.c.person_id == payload.person_id,
                    )
                )
            case ParentalResponsibilityChanged():
                conn.execute(
                    update(guardians)
                    .where(
                        guardians.c.child_id == payload.child_id,
                        guardians.c.person_id == payload.person_id,
                    )
                    .values(parental_responsibility=payload.parental_responsibility)
                )
        return self._cases_of(conn, cases.c.child_id == payload.child_id)

    def _register_child(self, conn: Connection, registered: ChildRegistered) -> set[str]:
        upsert_sync(
            conn,
            children,
            {
                "child_id": registered.child_id,
                "national_id_index": registered.national_id_index,
                "birth_date": self._prepared_birth(registered.child_id, registered.birth_date),
            },
        )
        for guardian in registered.guardians:
            upsert_sync(
                conn,
                guardians,
                {
                    "child_id": registered.child_id,
                    "person_id": guardian.person_id,
                    "national_id_index": guardian.national_id_index,
                    "parental_responsibility": guardian.parental_responsibility,
                },
            )
        return self._cases_of(conn, cases.c.child_id == registered.child_id)

    def _apply_case(self, conn: Connection, case_id: str, payload: CaseEvent) -> set[str]:
        match payload:
            case CaseOpened():
                upsert_sync(
                    conn,
                    cases,
                    {
                        "case_id": case_id,
                        **placement(cases, payload),
                        "child_id": payload.child_id,
                        "level": payload.level,
                        "status": "open",
                    },
                )
            case ChildIdentified():
                self._update_case(conn, case_id, child_id=payload.child_id)
            case LevelChanged():
                self._update_case(conn, case_id, level=payload.level)
                return set()  # no rule reads the level
            case TeamMemberAdded() | TeamMemberRemoved():
                apply_team_change(conn, team, case_id, payload)
            case HandoverRequested():
                upsert_sync(
                    conn,
                    pending_handovers,
                    {
                        "case_id": case_id,
                        "handover_id": payload.handover_id,
                        "to_person_id": payload.to_person_id,
                        "to_unit_id": payload.to_unit_id,
                    },
                )
            case HandoverDeclined() | HandoverCancelled():
                self._answered(conn, case_id, payload.handover_id)
            case HandoverAccepted():
                self._answered(conn, case_id, payload.handover_id)
                self._update_case(conn, case_id, **placement(cases, payload))
            case CaseClosedEvent() | CaseReopened():
                self._update_case(conn, case_id, status=case_status(payload))
            case _:
                return set()  # measures, reports, deadlines: no rule reads them
        return {case_id}

    def _apply_log(self, conn: Connection, case_id: str, payload: LogEvent) -> None:
        match payload:
            case EntryAppended() | EntryCorrected():
                upsert_sync(
                    conn,
                    entries,
                    {
                        "entry_id": payload.entry_id,
                        "case_id": case_id,
                        "author_id": payload.author.person_id,
                        "category": None if payload.category is None else payload.category.value,
                        "restricted_until": None,
                    },
                )
            case EntryRestricted():
                conn.execute(
                    update(entries)
                    .where(entries.c.entry_id == payload.entry_id)
                    .values(restricted_until=as_utc(payload.until))
                )

    def _apply_consent(self, conn: Connection, payload: ConsentEvent, seq: int) -> set[str]:
        match payload:
            case ConsentRequested():
                upsert_sync(
                    conn,
                    consents,
                    {
                        "consent_id": payload.consent_id,
                        "case_id": payload.case_id,
                        "child_id": payload.child_id,
                        "status": payload.consent_status,
                        "scope": payload.scope.model_dump(mode="json"),
                        "grantors": [g.model_dump(mode="json") for g in payload.grantors],
                        "signed": [],
                        "rule": payload.rule,
                        "age_applied": payload.age_applied,
                        "valid_from": as_utc(payload.valid_from),
                        "valid_until": as_utc(payload.valid_until),
                        "evidence_method": payload.evidence.method.value,
                        "version": seq,
                        "renews": payload.renews,
                        "reminded": False,
                        "requested_by": payload.requested_by,
                    },
                )
            case ConsentExpiryReminderDue():
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == payload.consent_id)
                    .values(reminded=True, version=seq)
                )
            case ConsentSigned():
                signed = conn.scalar(
                    select(consents.c.signed).where(consents.c.consent_id == payload.consent_id)
                )
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == payload.consent_id)
                    .values(signed=[*(signed or []), payload.grantor_person_id], version=seq)
                )
            case ConsentActivated() | ConsentRefused() | ConsentWithdrawn() | ConsentExpired():
                conn.execute(
                    update(consents)
                    .where(consents.c.consent_id == payload.consent_id)
                    .values(status=payload.consent_status, version=seq)
                )
                return {payload.case_id}
            case EmergencyAccessGranted() | EmergencyAccessApproved():
                if isinstance(payload, EmergencyAccessApproved):
                    conn.execute(
                        update(emergency_requests)
                        .where(emergency_requests.c.grant_id == payload.grant_id)
                        .values(status="approved")
                    )
                upsert_sync(
                    conn,
                    emergency_grants,
                    {
                        "grant_id": payload.grant_id,
                        "case_id": payload.case_id,
                        "person_id": payload.person_id,
                        "valid_from": as_utc(payload.valid_from),
                        "valid_until": as_utc(payload.valid_until),
                    },
                )
                return {payload.case_id}
            case EmergencyAccessRequested():
                upsert_sync(
                    conn,
                    emergency_requests,
                    {
                        "grant_id": payload.grant_id,
                        "case_id": payload.case_id,
                        "person_id": payload.person_id,
                        "requested_at": as_utc(payload.requested_at),
                        "status": "pending",
                    },
                )
            case AuditScopeGranted():
                return self._grant_audit_scope(conn, payload)
        return set()

    def _grant_audit_scope(self, conn: Connection, granted: AuditScopeGranted) -> set[str]:
        # A scope granted again under its id replaces the old one: the cases it named are
        # indexed again too.
        before = conn.execute(
            select(audit_scopes.c.case_ids, audit_scopes.c.org_id).where(
                audit_scopes.c.scope_id == granted.scope_id
            )
        ).first()
        upsert_sync(
            conn,
            audit_scopes,
            {
                "scope_id": granted.scope_id,
                "auditor_id": granted.auditor_person_id,
                "org_id": granted.org_id,
                "case_ids": list(granted.case_ids),
                "valid_until": as_utc(granted.valid_until),
            },
        )
        named = list(granted.case_ids)
        orgs = [granted.org_id]
        if before is not None:
            named += list(before.case_ids or ())
            orgs.append(before.org_id)
        conditions: list[ColumnElement[bool]] = [cases.c.case_id.in_(named)]
        conditions += [cases.c.org_id == org for org in orgs if org]
        return self._cases_of(conn, *conditions)

    def _update_organisation(self, conn: Connection, org_id: str, **values: Any) -> None:
        conn.execute(update(organisations).where(organisations.c.org_id == org_id).values(**values))

    def _answered(self, conn: Connection, case_id: str, handover_id: str) -> None:
        conn.execute(
            delete(pending_handovers).where(
                pending_handovers.c.case_id == case_id,
                pending_handovers.c.handover_id == handover_id,
            )
        )

    def _update_case(self, conn: Connection, case_id: str, **values: Any) -> None:
        conn.execute(update(cases).where(cases.c.case_id == case_id).values(**values))

    def _unit_cases(self, conn: Connection, unit_id: str) -> set[str]:
        """The cases whose access a change of the unit may change: at the unit, with a team
        member from it, handed over to it and waiting, and under an emergency grant to anyone
        with a role there (closing a unit ends its roles, and a grant holds only while its
        person has a role somewhere; reopening it gives them back)."""
        in_team = select(team.c.case_id).where(team.c.unit_id == unit_id)
        addressed = select(pending_handovers.c.case_id).where(
            pending_handovers.c.to_unit_id == unit_id
        )
        staff_there = select(roles.c.person_id).where(roles.c.unit_id == unit_id)
        in_emergency = select(emergency_grants.c.case_id).where(
            emergency_grants.c.person_id.in_(staff_there)
        )
        return self._cases_of(
            conn,
            cases.c.unit_id == unit_id,
            cases.c.case_id.in_(in_team),
            cases.c.case_id.in_(addressed),
            cases.c.case_id.in_(in_emergency),
        )

    def _person_cases(self, conn: Connection, person_id: str, unit_id: str) -> set[str]:
        """The cases whose access a change of the person's roles at the unit may change: as
        holder, in the team, at the unit, as the receiver of a pending handover, and under
        an emergency grant (which holds only while the person has a role somewhere)."""
        in_team = select(team.c.case_id).where(team.c.person_id == person_id)
        addressed = select(pending_handovers.c.case_id).where(
            pending_handovers.c.to_person_id == person_id
        )
        in_emergency = select(emergency_grants.c.case_id).where(
            emergency_grants.c.person_id == person_id
        )
        return self._cases_of(
            conn,
            cases.c.holder_id == person_id,
            cases.c.case_id.in_(in_team),
            cases.c.case_id.in_(in_emergency),
            cases.c.case_id.in_(addressed),
            and_(cases.c.unit_id == unit_id),
        )

    async def _birth_date(self, child_id: str, token: str) -> date | None:
        if self.cipher is None:
            return None
        with contextlib.suppress(CryptoError, ValueError):
            return date.fromisoformat(
                await self.cipher.decrypt(child_id, token, aggregate=child_id, context="birth_date")
            )
        return None


def _apply_client(conn: Connection, payload: ClientRegistered | ClientUnregistered) -> None:
    registration = client_key(payload.issuer, payload.client_id, payload.consumer_org)
    if isinstance(payload, ClientRegistered):
        upsert_sync(
            conn,
            clients,
            {
                "registration": registration,
                "issued_as": login_key(payload.issuer, payload.client_id),
                "client": payload.client,
                "org_id": payload.org_id,
                "name": payload.name,
                "issuer": payload.issuer,
                "client_id": payload.client_id,
                "consumer_org": payload.consumer_org,
                "scopes": [scope.value for scope in payload.scopes],
                "sectors": [sector.value for sector in payload.sectors],
                "purposes": [purpose.value for purpose in payload.purposes],
            },
        )
        return
    # Only this client's registration: another may have taken it over already.
    conn.execute(
        delete(clients).where(
            clients.c.registration == registration, clients.c.client == payload.client
        )
    )


def _organisation_values(
    payload: OrganisationChanged
    | OrganisationGuideSet
    | OrganisationChildWelfareServiceSet
    | OrganisationSettingsSet
    | OrganisationMeasureCatalogueSet,
) -> dict[str, Any]:
    """The columns of ``organisations`` an event of an organisation sets."""
    match payload:
        case OrganisationChanged():
            return {"name": payload.name, "kind": payload.kind.value}
        case OrganisationGuideSet():
            return {"guide": [list(steps) for steps in payload.levels]}
        case OrganisationChildWelfareServiceSet():
            return {"child_welfare_unit_id": payload.unit_id}
        case OrganisationSettingsSet():
            # What the organisation set itself; a setting left out is the region's.
            return {"settings": payload.settings.model_dump(mode="json", exclude_none=True)}
        case OrganisationMeasureCatalogueSet():
            return {
                "measure_catalogue": [{"title": m.title, "goal": m.goal} for m in payload.measures]
            }
