"""Application layer of the consent service: load, decide, publish, apply.

Every handler that touches a case asks the decision point first. Personal data is encrypted
here, before the pure domain decides, so no event ever carries it in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_consent import domain
from stafett_consent.decisions import DecisionPoint
from stafett_consent.policy import (
    EMERGENCY_DURATION,
    EMERGENCY_REPEAT_WINDOW,
    EMERGENCY_REQUEST_LAPSES,
    Action,
)
from stafett_consent.projections import (
    cases,
    children,
    client_key,
    clients,
    consents,
    emergency_grants,
    emergency_requests,
    guardians,
    login_key,
    logins,
    organisations,
    roles,
    staff,
    units,
)
from stafett_shared.access import record_access
from stafett_shared.auth import Principal
from stafett_shared.canonical import canonical_json
from stafett_shared.contracts.consent import (
    AuditScopeGranted,
    ConsentRequested,
    ConsentScope,
    EmergencyAccessApproved,
    EmergencyAccessGranted,
    EmergencyAccessRequested,
    EmergencyGround,
    Evidence,
    EvidenceMethod,
    GrantorGroup,
)
from stafett_shared.contracts.directory import (
    MAX_REMINDER_DAYS,
    CatalogueMeasure,
    ChildRegistered,
    GuardianRecord,
    Guide,
    OrganisationSettings,
    OrgKind,
    Sector,
    StaffRole,
)
from stafett_shared.crypto import BlindIndex, CryptoError, FieldCipher
from stafett_shared.db import as_utc
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import ConcurrencyConflict, DuplicateAppend, EventStore
from stafett_shared.ids import new_id, new_untimed_id
from stafett_shared.logging import get_logger
from stafett_shared.lookups import LookupLimit, record_lookup
from stafett_shared.msgid import ClientKey
from stafett_shared.nationalid import InvalidNationalId, NationalId, parse_national_id
from stafett_shared.problems import Problem, not_visible
from stafett_shared.projector import Projector
from stafett_shared.settings import ReminderTimes, admin_logins, org_admin_logins
from stafett_shared.telemetry import current_traceparent

_log = get_logger("stafett.consent")

MAX_RETRIES = 5
NAME_BATCH = 64  # staff names decrypted at a time
REMINDER_BATCH = 500  # consents looked at per run of the expiry loop


# Refusals are problem documents; the API renders them as they are.
HandlerError = Problem


def _grantor_command(  # noqa: PLR0917 - the fields of the three commands
    kind: Literal["sign", "refuse", "withdraw"],
    grantor_person_id: str,
    method: EvidenceMethod,
    reference: str | None,
    reason: str | None,
    actor: str,
) -> domain.ConsentCommand:
    if kind == "sign":
        return domain.SignConsent(grantor_person_id, method, reference, actor)
    if kind == "refuse":
        return domain.RefuseConsent(grantor_person_id, reason, actor)
    return domain.WithdrawConsent(grantor_person_id, reason, actor)


def _forbidden() -> Problem:
    # 404, not 403: a refusal must not reveal that the case exists (CONTRACT.md).
    return not_visible()


@dataclass(frozen=True, slots=True)
class Written:
    """What a write answers with: the resource id, the aggregate version and the stream seq."""

    id: str
    version: int
    seq: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _CaseForConsent:
    case_id: str
    org_id: str
    child_id: str
    known_orgs: frozenset[str]
    unit_orgs: Mapping[str, str]
    policy: domain.GrantorPolicy
    birth: date | None
    responsible: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GuardianInput:
    national_id: str
    name: str
    parental_responsibility: bool


class ConsentService:
    def __init__(
        self,
        *,
        store: EventStore,
        cipher: FieldCipher,
        index: BlindIndex,
        sessions: async_sessionmaker[AsyncSession],
        projector: Projector,
        decisions: DecisionPoint,
        admins: Sequence[str],
        org_admins: Mapping[str, Sequence[str]] | None = None,
        guardian_changes: bool = True,
        grantor_policy: domain.GrantorPolicy | None = None,
        reminders: ReminderTimes | None = None,
        lookups: LookupLimit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.lookups = lookups
        self.cipher = cipher
        self.index = index
        self.sessions = sessions
        self.projector = projector
        self.decisions = decisions
        self.admins = admin_logins(admins)
        self.org_admins = org_admin_logins(org_admins or {})
        self.guardian_changes = guardian_changes
        self.grantor_policy = grantor_policy or domain.GrantorPolicy()
        self.reminders = reminders or ReminderTimes()  # the region's, shown beside the org's
        self.clock = clock

    # --- helpers ------------------------------------------------------------------------

    def _is_admin(self, principal: Principal) -> bool:
        """A region administrator is a login, (issuer, subject), never a bare id."""
        return (
            principal.kind == "person"
            and principal.subject is not None
            and (principal.issuer, principal.subject) in self.admins
        )

    def _admin_of(self, principal: Principal) -> frozenset[str]:
        """The organisations the principal administers (not the region's administrators)."""
        if principal.kind != "person" or principal.subject is None:
            return frozenset()
        return self.org_admins.get((principal.issuer, principal.subject), frozenset())

    def _any_admin(self, principal: Principal) -> bool:
        return self._is_admin(principal) or bool(self._admin_of(principal))

    async def _require_org_admin(
        self, principal: Principal, org_id: str | None, case_ids: Sequence[str]
    ) -> None:
        """An organisation's administrator grants audit scopes within it only: the scope's
        organisation and every case named must be theirs."""
        orgs = self._admin_of(principal)
        refused = HandlerError(
            403, "forbidden", "Bare administratorer av virksomheten kan gi tilsynstilgang der."
        )
        if not orgs or (org_id is not None and org_id not in orgs):
            raise refused
        if case_ids:
            async with self.sessions() as session:
                owners = dict(
                    (
                        await session.execute(
                            select(cases.c.case_id, cases.c.org_id).where(
                                cases.c.case_id.in_(list(case_ids))
                            )
                        )
                    ).all()
                )
            if any(owners.get(case_id) not in orgs for case_id in case_ids):
                raise refused

    def _envelope(
        self, payload: EventData, *, subject: str, tenant: str, actor: Principal, now: datetime
    ) -> CloudEvent:
        return registry.envelope(
            payload,
            subject=subject,
            source="stafett/consent",
            tenant=tenant,
            actor=actor.id,
            time=now,
            traceparent=current_traceparent(),
        )

    async def _publish(
        self,
        aggregate_id: str,
        context: str,
        events: Sequence[CloudEvent],
        *,
        expected: int,
        key: str | ClientKey | None,
    ) -> int:
        """Append one commit and apply it to the read models before answering."""
        subject = self.store.subject(context, aggregate_id)
        try:
            result = await self.store.append(
                subject, events, expected_version=expected, idempotency_key=key
            )
            seq = result.seq
            await self.projector.apply_own(subject, seq, events)
        except DuplicateAppend as repeat:
            seq = repeat.seq
            await self.projector.catch_up()
        return seq

    async def _publish_new(
        self, aggregate_id: str, events: Sequence[CloudEvent], key: str | ClientKey | None
    ) -> tuple[str, int, Sequence[CloudEvent]]:
        """Append the first commit of a consent aggregate whose id the command made, and
        apply it. Answers its id, sequence and events: for a repeated request (same caller
        and key), those stored the first time, under the id made then."""
        subject = self.store.subject("consent", aggregate_id)
        try:
            result = await self.store.append(
                subject, events, expected_version=0, idempotency_key=key, creates=True
            )
        except DuplicateAppend as repeat:
            await self.projector.catch_up()
            stored = await self.store.get(repeat.seq)
            if stored is None or not stored.events:
                raise HandlerError(
                    503, "unavailable", "Svaret kunne ikke leses; prøv igjen."
                ) from None
            return stored.subject.rsplit(".", 1)[-1], repeat.seq, stored.events
        await self.projector.apply_own(subject, result.seq, events)
        return aggregate_id, result.seq, events

    async def _require(
        self, principal: Principal, action: Action, case_id: str, min_seq: int | None = None
    ) -> None:
        decision = await self.decisions.check(
            principal.id, action, case_id, principal_kind=principal.kind, min_seq=min_seq
        )
        if decision.reason == "not_recorded":
            raise HandlerError(503, "unavailable", "Tilgangen kunne ikke registreres; prøv igjen.")
        if decision.permitted:
            return
        if action != Action.CASE_READ:
            reader = await self.decisions.check(
                principal.id, Action.CASE_READ, case_id, principal_kind=principal.kind
            )
            if reader.permitted:
                # They may read the case and so know it exists: say what is refused.
                raise HandlerError(
                    403, "forbidden", "Du kan lese saken, men ikke gjøre dette i den."
                )
        raise _forbidden()

    async def _is_staff(self, person_id: str) -> bool:
        async with self.sessions() as session:
            return (
                await session.scalar(
                    select(roles.c.person_id).where(roles.c.person_id == person_id)
                )
            ) is not None

    # --- directory ----------------------------------------------------------------------

    async def load_region(
        self, principal: Principal, document: domain.RegionDocument
    ) -> dict[str, Any]:
        if not self._is_admin(principal):
            raise HandlerError(403, "forbidden", "Bare administratorer kan laste katalogen.")
        now = self.clock()
        async with self.sessions() as session:
            current = await self._directory_state(session)
        names = await self._names_for_events(current, document.staff)
        changes = domain.diff_directory(current, document, names)
        digest = hashlib.sha256(canonical_json(document.model_dump(mode="json"))).hexdigest()
        return {
            "region": document.region,
            **await self._apply_directory(principal, changes, f"region-{digest[:32]}", now),
        }

    async def _managed_organisation(
        self, principal: Principal, org_id: str
    ) -> tuple[domain.DirectoryState, str]:
        """The directory and region, when ``principal`` may manage ``org_id``'s part: the
        region's administrators every organisation's, an organisation's administrators
        their own municipality's only; shared organisations (a county, a state agency) are
        the region's. Decided before anything is looked up."""
        region_admin = self._is_admin(principal)
        if not region_admin and org_id not in self._admin_of(principal):
            raise HandlerError(
                403,
                "forbidden",
                "Bare virksomhetens administratorer kan endre dens del av katalogen.",
            )
        async with self.sessions() as session:
            current = await self._directory_state(session)
            region = await session.scalar(select(organisations.c.region).limit(1))
        found = current.organisations.get(org_id)
        if found is None or region is None:
            raise HandlerError(404, "not_found", "Virksomheten finnes ikke i katalogen.")
        if not region_admin and found[1] is not OrgKind.MUNICIPALITY:
            raise HandlerError(
                403,
                "forbidden",
                "Felles virksomheter, som fylkeskommunen og statlige etater, endres av regionens "
                "administrator.",
            )
        return current, region

    async def read_organisation(self, principal: Principal, org_id: str) -> dict[str, Any]:
        """An organisation's part of the region document, as ``load_organisation`` takes it,
        with the settings in force. A staff member with roles in other organisations too
        (``shared_staff``) is listed with the roles here only and without logins."""
        current, _region = await self._managed_organisation(principal, org_id)
        own = domain.own_staff(current, org_id)
        async with self.sessions() as session:
            org = (
                await session.execute(select(organisations).where(organisations.c.org_id == org_id))
            ).one()
            staff_rows = (
                await session.execute(
                    select(staff.c.person_id, staff.c.name)
                    .where(
                        staff.c.person_id.in_(
                            select(roles.c.person_id)
                            .join(units, units.c.unit_id == roles.c.unit_id)
                            .where(units.c.org_id == org_id, units.c.closed.is_(False))
                        )
                    )
                    .order_by(staff.c.person_id)
                    .limit(domain.MAX_STAFF)
                )
            ).all()
        ours = {u: unit for u, unit in current.units.items() if unit[0] == org_id}
        names = await self._staff_names([(row.person_id, row.name) for row in staff_rows])
        settings = current.settings.get(org_id, OrganisationSettings())
        policy = self.grantor_policy.for_organisation(settings)
        part = {
            "units": [
                {"id": u, "name": name, "sector": sector.value}
                | _contact(*current.unit_contacts.get(u, (None, None)))
                for u, (_org, name, sector) in sorted(ours.items(), key=lambda i: (i[1][1], i[0]))
            ],
            "guide": dict(zip(domain.BTI_LEVELS, _guide(org.guide), strict=True)),
            "measure_catalogue": [
                m.model_dump(mode="json") for m in _catalogue(org.measure_catalogue)
            ],
            "settings": settings.model_dump(mode="json"),
            "child_welfare_unit_id": current.child_welfare.get(org_id),
            "staff": [
                {
                    "id": person_id,
                    "name": name,
                    "roles": [
                        {"unit_id": unit_id, "role": role.value}
                        for p, unit_id, role in sorted(current.roles)
                        if p == person_id and unit_id in ours
                    ],
                    "logins": [
                        {"issuer": issuer, "subject": subject}
                        for p, issuer, subject in sorted(current.logins)
                        if p == person_id and person_id in own
                    ],
                }
                for person_id, name in names.items()
            ],
            "clients": [
                {
                    "id": cid,
                    "name": name,
                    "org_id": client_org,
                    "issuer": issuer,
                    "client_id": client_id,
                    "consumer_org": consumer,
                }
                for cid, (client_org, name, issuer, client_id, consumer) in sorted(
                    current.clients.items()
                )
                if client_org == org_id
            ],
        }
        return {
            "id": org_id,
            "name": org.name,
            "kind": org.kind,
            "part": part,
            "shared_staff": sorted(set(names) - own),
            "settings_in_force": {
                "youth_consent_age": policy.youth_age,
                "health_youth_consent_age": policy.health_youth_age,
                "consent_default_days": policy.default_validity.days,
                "consent_max_days": policy.max_validity.days,
                "consent_reminder_days": policy.reminder.days,
                **self.reminders.in_force(settings.model_dump()).model_dump(),
            },
        }

    async def load_organisation(
        self, principal: Principal, org_id: str, part: domain.OrganisationPart
    ) -> dict[str, Any]:
        """Apply ``org_id``'s part as the region document's events do: only what that
        organisation holds changes (its units, guide, catalogue, settings and clients, the
        roles in its units, the names and logins of staff it has to itself)."""
        current, region = await self._managed_organisation(principal, org_id)
        if not self._is_admin(principal):
            admins = set(self.admins) | set(self.org_admins)
            if any(login.key in admins for person in part.staff for login in person.logins):
                raise HandlerError(
                    403,
                    "forbidden",
                    "En administrators innlogging knyttes til en ansatt av regionens "
                    "administrator.",
                )
        indexes = {
            person.id: self.index(person.name, context=f"staff-name:{person.id}")
            for person in part.staff
        }
        try:
            state, document = domain.organisation_scope(current, region, org_id, part, indexes)
        except domain.NotYours as exc:
            raise HandlerError(exc.status, exc.code, str(exc)) from None
        except ValidationError:
            raise  # the API answers it as it answers a bad body
        except ValueError as exc:
            raise HandlerError(422, "validation_error", str(exc)) from None
        names = await self._names_for_events(state, document.staff)
        changes = domain.diff_directory(state, document, names)
        payload = {"org_id": org_id, "part": part.model_dump(mode="json")}
        digest = hashlib.sha256(canonical_json(payload)).hexdigest()
        applied = await self._apply_directory(
            principal, changes, f"org-{org_id}-{digest[:32]}", self.clock()
        )
        return {"org_id": org_id, **applied}

    async def _names_for_events(
        self, current: domain.DirectoryState, people: Sequence[domain.StaffDoc]
    ) -> dict[str, domain.StaffName]:
        """Each staff member's name as the events carry it: encrypted only when it is new
        or changed (its blind index differs from the one the directory holds)."""
        names: dict[str, domain.StaffName] = {}
        for person in people:
            index = self.index(person.name, context=f"staff-name:{person.id}")
            if current.staff.get(person.id) == index:
                names[person.id] = domain.StaffName("", index)
            else:
                encrypted = await self.cipher.encrypt(
                    person.id, person.name, aggregate=f"person-{person.id}", context="name"
                )
                names[person.id] = domain.StaffName(encrypted, index)
        return names

    async def _apply_directory(
        self,
        principal: Principal,
        changes: Mapping[str, Sequence[EventData]],
        key: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Append each aggregate's changes (at most 100 events a commit) and wait for the
        read models: what was loaded decides access at once."""
        counts: dict[str, int] = {}
        last_seq = 0
        for aggregate, events in changes.items():
            subject = self.store.subject("directory", aggregate)
            tenant = _tenant_of(aggregate, events)
            envelopes = [
                self._envelope(e, subject=aggregate, tenant=tenant, actor=principal, now=now)
                for e in events
            ]
            for chunk_no, start in enumerate(range(0, len(envelopes), 100)):
                chunk = envelopes[start : start + 100]
                version = await self.store.version(subject)
                # The version is part of the key: a document loaded again after another one
                # changed the aggregate is a new change, not a repeat inside the duplicate window.
                try:
                    result = await self.store.append(
                        subject,
                        chunk,
                        expected_version=version,
                        idempotency_key=f"{key}-{aggregate}-{version}-{chunk_no}",
                    )
                    last_seq = max(last_seq, result.seq)
                except DuplicateAppend as repeat:
                    last_seq = max(last_seq, repeat.seq)
                except ConcurrencyConflict:
                    # Another load changed this aggregate in between: what was appended
                    # stands, and loading again applies the rest (decision 0009).
                    await self.projector.catch_up()
                    raise HandlerError(
                        409,
                        "version_conflict",
                        "Katalogen ble endret samtidig av noen andre; les den og last på nytt.",
                    ) from None
            for event in events:
                kind = event.event_type.split(".")[3]
                counts[kind] = counts.get(kind, 0) + 1
        await self.projector.catch_up()
        return {"changes": counts, "seq": last_seq}

    async def _directory_state(self, session: AsyncSession) -> domain.DirectoryState:
        orgs = (await session.execute(select(organisations))).all()
        unit_rows = (await session.execute(select(units).where(units.c.closed.is_(False)))).all()
        closed_rows = (
            await session.execute(
                select(units.c.unit_id, units.c.org_id).where(units.c.closed.is_(True))
            )
        ).all()
        staff_rows = (await session.execute(select(staff))).all()
        role_rows = (await session.execute(select(roles))).all()
        login_rows = (await session.execute(select(logins))).all()
        client_rows = (await session.execute(select(clients))).all()
        return domain.DirectoryState(
            organisations={o.org_id: (o.name, OrgKind(o.kind)) for o in orgs},
            guides={o.org_id: _guide(o.guide) for o in orgs},
            catalogues={o.org_id: _catalogue(o.measure_catalogue) for o in orgs},
            child_welfare={
                o.org_id: o.child_welfare_unit_id
                for o in orgs
                if o.child_welfare_unit_id is not None
            },
            settings={o.org_id: _settings(o.settings) for o in orgs},
            units={u.unit_id: (u.org_id, u.name, Sector(u.sector)) for u in unit_rows},
            unit_contacts={
                u.unit_id: (u.phone, u.email)
                for u in unit_rows
                if u.phone is not None or u.email is not None
            },
            closed_units={u.unit_id: u.org_id for u in closed_rows},
            staff={s.person_id: s.name_index for s in staff_rows},
            roles=frozenset((r.person_id, r.unit_id, StaffRole(r.role)) for r in role_rows),
            logins=frozenset((b.person_id, b.issuer, b.subject) for b in login_rows),
            clients={
                c.client: (c.org_id, c.name, c.issuer, c.client_id, c.consumer_org)
                for c in client_rows
            },
        )

    async def login_of(self, issuer: str, subject: str) -> str | None:
        """The staff member the directory binds (issuer, subject) to, or None: this
        service's own token verifier's logins, and the answer to
        ``stafett.rpc.consent.login``. Neither value is logged."""
        async with self.sessions() as session:
            person_id: str | None = await session.scalar(
                select(logins.c.person_id).where(logins.c.login == login_key(issuer, subject))
            )
        return person_id

    async def citizen_of(self, national_id_index: str) -> str | None:
        """The person a citizen issuer's ``pid`` is, by its blind index (the verifier made
        it; the number itself never reaches this service): the guardian, or the registered
        child or youth, of that national id. None for nobody, and None, fail closed, when
        the index is both a child and a guardian or more than one guardian person id: the
        directory cannot tell which person the login is. Nothing of it is logged."""
        async with self.sessions() as session:
            child_ids = (
                await session.scalars(
                    select(children.c.child_id)
                    .where(children.c.national_id_index == national_id_index)
                    .limit(2)
                )
            ).all()
            guardian_ids = (
                await session.scalars(
                    select(guardians.c.person_id)
                    .where(guardians.c.national_id_index == national_id_index)
                    .distinct()
                    .limit(2)
                )
            ).all()
        found = [*child_ids, *guardian_ids]
        if len(found) > 1:
            # Counts only: which person ids they are would link a login to them.
            _log.warning(
                "citizen_login_ambiguous", children=len(child_ids), guardians=len(guardian_ids)
            )
            return None
        return found[0] if found else None

    async def client_of(self, issuer: str, client_id: str, consumer_org: str | None) -> str | None:
        """The client the directory registers for a client issuer's ``client_id`` and the
        consumer's organisation number, or None. A token that names no consumer is the
        client only when one registration alone has that issuer and client id. Nothing of
        it is logged."""
        async with self.sessions() as session:
            if consumer_org is not None:
                found: str | None = await session.scalar(
                    select(clients.c.client).where(
                        clients.c.registration == client_key(issuer, client_id, consumer_org)
                    )
                )
                return found
            rows = (
                await session.scalars(
                    select(clients.c.client)
                    .where(clients.c.issued_as == login_key(issuer, client_id))
                    .limit(2)
                )
            ).all()
        return rows[0] if len(rows) == 1 else None

    async def read_directory(self, principal: Principal) -> dict[str, Any]:
        """Organisations with their open units, guide and measure catalogue, and the staff
        with a role, for pickers and names in the portal. The staff directory is no case
        data, so no decision is asked; only staff and administrators may read it."""
        if principal.kind != "person" or not (
            self._any_admin(principal) or await self._is_staff(principal.id)
        ):
            raise HandlerError(
                403, "forbidden", "Bare ansatte og administratorer kan lese katalogen."
            )
        async with self.sessions() as session:
            orgs, units_of = await _organisations_and_units(session)
            current_roles = (
                select(roles.c.person_id, roles.c.unit_id, roles.c.role)
                .join(units, units.c.unit_id == roles.c.unit_id)
                .where(units.c.closed.is_(False))
            )
            role_rows = (
                await session.execute(
                    current_roles.order_by(roles.c.person_id, roles.c.unit_id, roles.c.role).limit(
                        domain.MAX_STAFF * domain.MAX_ROLES
                    )
                )
            ).all()
            staff_rows = (
                await session.execute(
                    select(staff.c.person_id, staff.c.name)
                    .where(
                        staff.c.person_id.in_(current_roles.with_only_columns(roles.c.person_id))
                    )
                    .order_by(staff.c.person_id)
                    .limit(domain.MAX_STAFF)
                )
            ).all()
        roles_of: dict[str, list[dict[str, str]]] = {}
        for role in role_rows:
            roles_of.setdefault(role.person_id, []).append(
                {"unit_id": role.unit_id, "role": role.role}
            )
        names = await self._staff_names([(row.person_id, row.name) for row in staff_rows])
        return {
            "region": orgs[0].region if orgs else None,
            "organisations": [
                {
                    "id": org.org_id,
                    "name": org.name,
                    "kind": org.kind,
                    "units": units_of.get(org.org_id, []),
                    "guide": dict(zip(domain.BTI_LEVELS, _guide(org.guide), strict=True)),
                    "measure_catalogue": [
                        m.model_dump(mode="json") for m in _catalogue(org.measure_catalogue)
                    ],
                    "child_welfare_unit_id": org.child_welfare_unit_id,
                }
                for org in orgs
            ],
            "staff": [
                {"id": person_id, "name": name, "roles": roles_of.get(person_id, [])}
                for person_id, name in names.items()
            ],
        }

    async def read_organisations(self, principal: Principal) -> list[dict[str, Any]]:
        """The region's organisations and their open units, by name: what a family needs to
        read a consent's services in words (decision 0031). No case data and no staff; only
        persons may ask."""
        if principal.kind != "person":
            raise HandlerError(403, "forbidden", "Bare personer kan lese virksomhetene.")
        async with self.sessions() as session:
            orgs, units_of = await _organisations_and_units(session)
        return [
            {
                "id": org.org_id,
                "name": org.name,
                "kind": org.kind,
                "units": units_of.get(org.org_id, []),
            }
            for org in orgs
        ]

    async def staff_cards(
        self, principal: Principal, person_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Name, roles, units and organisations of the staff named, for a family that wants
        to know who holds the baton and who read the log (decision 0031). Staff are named in
        the directory, not in a case, so no decision is asked; any person may look up at most
        ``domain.MAX_STAFF_CARDS`` at a time, and a person who is not staff is simply left
        out (guardians and children are never named here)."""
        if principal.kind != "person":
            raise HandlerError(403, "forbidden", "Bare personer kan slå opp ansatte.")
        wanted = sorted(set(person_ids))[: domain.MAX_STAFF_CARDS]
        if not wanted:
            return []
        async with self.sessions() as session:
            role_rows = (
                await session.execute(
                    select(
                        roles.c.person_id,
                        roles.c.role,
                        units.c.unit_id,
                        units.c.name.label("unit_name"),
                        units.c.sector,
                        organisations.c.org_id,
                        organisations.c.name.label("org_name"),
                    )
                    .join(units, units.c.unit_id == roles.c.unit_id)
                    .join(organisations, organisations.c.org_id == units.c.org_id)
                    .where(roles.c.person_id.in_(wanted), units.c.closed.is_(False))
                    .order_by(roles.c.person_id, units.c.unit_id, roles.c.role)
                )
            ).all()
            staff_rows = (
                await session.execute(
                    select(staff.c.person_id, staff.c.name)
                    .where(staff.c.person_id.in_({r.person_id for r in role_rows}))
                    .order_by(staff.c.person_id)
                )
            ).all()
        roles_of: dict[str, list[dict[str, str]]] = {}
        for row in role_rows:
            roles_of.setdefault(row.person_id, []).append(
                {
                    "role": row.role,
                    "unit_id": row.unit_id,
                    "unit_name": row.unit_name,
                    "sector": row.sector,
                    "org_id": row.org_id,
                    "org_name": row.org_name,
                }
            )
        names = await self._staff_names([(row.person_id, row.name) for row in staff_rows])
        return [
            {"id": person_id, "name": name, "roles": roles_of.get(person_id, [])}
            for person_id, name in names.items()
        ]

    async def _staff_names(self, people: Sequence[tuple[str, str | None]]) -> dict[str, str | None]:
        """Decrypt staff names, a bounded number at a time; a name that cannot be read (its
        key shredded) is ``None``. The names are answered, never logged."""

        async def one(person_id: str, token: str | None) -> str | None:
            if token is None:
                return None
            try:
                return await self.cipher.decrypt(
                    person_id, token, aggregate=f"person-{person_id}", context="name"
                )
            except CryptoError:
                return None

        names: dict[str, str | None] = {}
        for start in range(0, len(people), NAME_BATCH):
            batch = people[start : start + NAME_BATCH]
            decrypted = await asyncio.gather(*(one(p, token) for p, token in batch))
            names.update(zip((p for p, _ in batch), decrypted, strict=True))
        return names

    async def register_child(
        self,
        principal: Principal,
        *,
        national_id: str,
        name: str,
        guardian_inputs: Sequence[GuardianInput],
    ) -> Written:
        if principal.kind != "person" or not (
            self._any_admin(principal) or await self._is_staff(principal.id)
        ):
            raise HandlerError(403, "forbidden", "Bare ansatte kan registrere barn.")
        try:
            child_nid = parse_national_id(national_id)
            guardian_nids = [parse_national_id(g.national_id) for g in guardian_inputs]
        except InvalidNationalId as exc:
            raise HandlerError(
                422, "invalid_national_id", f"Ugyldig fødselsnummer: {exc}"
            ) from None
        if len({g.value for g in guardian_nids}) != len(guardian_nids) or child_nid.value in {
            g.value for g in guardian_nids
        }:
            raise HandlerError(422, "duplicate_person", "Samme person er oppgitt flere ganger.")
        child_index = self.index(child_nid.value, context="national_id")
        # Decision 0029: a look-up by national id is limited, recorded before it is answered,
        # and answered alike whether or not the child was registered before.
        if self.lookups is not None:
            self.lookups.take(principal)
        looked_up = await record_lookup(
            self.store,
            principal=principal,
            national_id_index=child_index,
            purpose="register_child",
            service="consent",
        )
        async with self.sessions() as session:
            existing = await session.scalar(
                select(children.c.child_id).where(children.c.national_id_index == child_index)
            )
            if existing is not None:
                return await self._known_child(
                    session, existing, guardian_nids, max(looked_up, self.projector.known_position)
                )
            known_guardians = {
                row.national_id_index: row.person_id
                for row in (await session.execute(select(guardians))).all()
            }
        child_id = new_untimed_id()
        now = self.clock()
        records = []
        for guardian, nid in zip(guardian_inputs, guardian_nids, strict=True):
            index = self.index(nid.value, context="national_id")
            records.append(
                await self._guardian_record(
                    child_id,
                    known_guardians.get(index) or new_untimed_id(),
                    index,
                    nid.value,
                    guardian,
                )
            )
        event = ChildRegistered(
            child_id=child_id,
            national_id=await self.cipher.encrypt(
                child_id, child_nid.value, aggregate=child_id, context="national_id"
            ),
            national_id_index=child_index,
            name=await self.cipher.encrypt(child_id, name, aggregate=child_id, context="name"),
            birth_date=await self.cipher.encrypt(
                child_id,
                child_nid.birth_date.isoformat(),
                aggregate=child_id,
                context="birth_date",
            ),
            guardians=tuple(records),
            registered_by=principal.id,
        )
        # One subject per national id: two registrations of one child cannot both win.
        aggregate = f"nid-{child_index[:40]}"
        envelope = self._envelope(
            event, subject=aggregate, tenant="region", actor=principal, now=now
        )
        try:
            seq = await self._publish(aggregate, "directory", [envelope], expected=0, key=None)
        except ConcurrencyConflict:
            await self.projector.catch_up()
            async with self.sessions() as session:
                winner = await session.scalar(
                    select(children.c.child_id).where(children.c.national_id_index == child_index)
                )
            if winner is None:
                raise
            async with self.sessions() as session:
                return await self._known_child(
                    session, winner, guardian_nids, self.projector.known_position
                )
        return Written(
            child_id,
            seq,
            seq,
            {
                "id": child_id,
                "guardians": [
                    {"id": r.person_id, "parental_responsibility": r.parental_responsibility}
                    for r in records
                ],
            },
        )

    # --- a child's guardians --------------------------------------------------------------

    async def add_guardian(
        self, principal: Principal, child_id: str, *, guardian: GuardianInput, reason: str
    ) -> Written:
        """A guardian added to a registered child, by an administrator with a reason. A
        person already known as a guardian (by national id) keeps their person id."""
        self._require_guardian_changer(principal)
        try:
            nid = parse_national_id(guardian.national_id)
        except InvalidNationalId as exc:
            raise HandlerError(
                422, "invalid_national_id", f"Ugyldig fødselsnummer: {exc}"
            ) from None
        index = self.index(nid.value, context="national_id")
        async with self.sessions() as session:
            known: str | None = await session.scalar(
                select(guardians.c.person_id)
                .where(guardians.c.national_id_index == index)
                .order_by(guardians.c.person_id)
                .limit(1)
            )
        record = await self._guardian_record(
            child_id, known or new_untimed_id(), index, nid.value, guardian
        )
        return await self._change_guardians(
            principal,
            child_id,
            reason,
            lambda why: domain.AddGuardian(record, why, principal.id),
            {
                "id": record.person_id,
                "child_id": child_id,
                "parental_responsibility": record.parental_responsibility,
            },
        )

    async def remove_guardian(
        self, principal: Principal, child_id: str, person_id: str, *, reason: str
    ) -> Written:
        """A guardian removed from a child: they lose at once what being one gave them."""
        self._require_guardian_changer(principal)
        return await self._change_guardians(
            principal,
            child_id,
            reason,
            lambda why: domain.RemoveGuardian(person_id, why, principal.id),
            {"id": person_id, "child_id": child_id, "status": "removed"},
        )

    async def set_parental_responsibility(
        self,
        principal: Principal,
        child_id: str,
        person_id: str,
        *,
        parental_responsibility: bool,
        reason: str,
    ) -> Written:
        """A guardian's parental responsibility for a child, as an administrator records it."""
        self._require_guardian_changer(principal)
        return await self._change_guardians(
            principal,
            child_id,
            reason,
            lambda why: domain.SetParentalResponsibility(
                person_id, parental_responsibility, why, principal.id
            ),
            {
                "id": person_id,
                "child_id": child_id,
                "parental_responsibility": parental_responsibility,
            },
        )

    async def _guardian_record(
        self, child_id: str, person_id: str, index: str, national_id: str, guardian: GuardianInput
    ) -> GuardianRecord:
        """A guardian as the child's events carry them: name and national id encrypted with
        the child's key (shredding it shreds what Stafett knows of them in that context)."""
        return GuardianRecord(
            person_id=person_id,
            national_id=await self.cipher.encrypt(
                child_id, national_id, aggregate=child_id, context="guardian_national_id"
            ),
            national_id_index=index,
            name=await self.cipher.encrypt(
                child_id, guardian.name, aggregate=child_id, context="guardian_name"
            ),
            parental_responsibility=guardian.parental_responsibility,
        )

    def _require_guardian_changer(self, principal: Principal) -> None:
        # Decided before anything is looked up: who may change guardians does not depend
        # on the child (docs/decisions/0028-guardians-change.md).
        if not self.guardian_changes:
            raise HandlerError(
                403,
                "guardians_from_register",
                "Foresatte og foreldreansvar hentes fra Folkeregisteret og endres ikke her.",
            )
        if not self._is_admin(principal):
            raise HandlerError(
                403, "forbidden", "Bare administratorer kan endre et barns foresatte."
            )

    async def _change_guardians(
        self,
        principal: Principal,
        child_id: str,
        reason: str,
        command: Callable[[str], domain.GuardianCommand],
        body: dict[str, Any],
    ) -> Written:
        """Load the child's aggregate, decide the change, publish it and apply it before
        answering, so the access index already follows when the caller hears back."""
        async with self.sessions() as session:
            child_index: str | None = await session.scalar(
                select(children.c.national_id_index).where(children.c.child_id == child_id)
            )
        if child_index is None:
            raise HandlerError(404, "unknown_child", _NORWEGIAN["unknown_child"])
        why = await self.cipher.encrypt(
            child_id, reason, aggregate=child_id, context="guardian_change_reason"
        )
        aggregate = f"nid-{child_index[:40]}"
        subject = self.store.subject("directory", aggregate)
        for _attempt in range(MAX_RETRIES):
            commits = await self.store.load(subject)
            version = commits[-1].seq if commits else 0
            state = domain.replay_guardians(registry.payload(e) for c in commits for e in c.events)
            if state is None or state.child_id != child_id:
                raise HandlerError(404, "unknown_child", _NORWEGIAN["unknown_child"])
            try:
                events = domain.decide_guardians(state, command(why))
            except domain.ConsentError as exc:
                raise HandlerError(
                    exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))
                ) from None
            if not events:
                return Written(child_id, version, version, body)
            now = self.clock()
            envelopes = [
                self._envelope(e, subject=aggregate, tenant="region", actor=principal, now=now)
                for e in events
            ]
            try:
                seq = await self._publish(
                    aggregate, "directory", envelopes, expected=version, key=None
                )
            except ConcurrencyConflict:
                continue
            _log.info("guardians_changed", child_id=child_id, changes=len(events))
            return Written(child_id, seq, seq, body)
        raise HandlerError(
            409, "conflict", "Barnets foresatte endres av mange samtidig; prøv igjen."
        )

    async def _known_child(
        self, session: AsyncSession, child_id: str, given: Sequence[NationalId], seq: int
    ) -> Written:
        """The answer to registering a child registered before: the same status and shape
        as for a new child (decision 0029), naming the guardians on record whose national
        ids the caller gave, in the order given. Nothing of the record changes."""
        on_record = {
            row.national_id_index: row
            for row in (
                await session.execute(select(guardians).where(guardians.c.child_id == child_id))
            ).all()
        }
        named = [on_record.get(self.index(nid.value, context="national_id")) for nid in given]
        return Written(
            child_id,
            seq,
            seq,
            {
                "id": child_id,
                "guardians": [
                    {"id": g.person_id, "parental_responsibility": g.parental_responsibility}
                    for g in named
                    if g is not None
                ],
            },
        )

    # --- consents -----------------------------------------------------------------------

    async def request_consent(
        self,
        principal: Principal,
        *,
        case_id: str,
        scope: dict[str, Any],
        valid_until: datetime | None,
        evidence_method: EvidenceMethod,
        evidence_reference: str | None,
        idempotency_key: ClientKey | None,
        min_seq: int | None = None,
    ) -> Written:
        await self._require(principal, Action.CONSENT_MANAGE, case_id, min_seq)
        facts = await self._consent_facts(case_id)
        self._check_scope(facts, scope)
        if valid_until is not None and valid_until <= self.clock():
            raise HandlerError(422, "validity_in_past", "Gyldig til må ligge fram i tid.")
        return await self._request(
            principal,
            facts,
            scope,
            valid_until=valid_until,
            evidence_method=evidence_method,
            evidence_reference=evidence_reference,
            idempotency_key=idempotency_key,
        )

    async def _consent_facts(self, case_id: str) -> _CaseForConsent:
        """What asking for a consent on the case needs: its child, the organisations and
        units a scope may name, the organisation's settings and the child's guardians."""
        async with self.sessions() as session:
            case = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
            if case is None:
                raise _forbidden()
            if case.child_id is None:
                raise HandlerError(
                    422,
                    "child_not_identified",
                    "Barnet må identifiseres før det kan gis samtykke.",
                )
            known_orgs = set((await session.scalars(select(organisations.c.org_id))).all())
            # The case's organisation's own settings: its youth ages and consent lengths.
            own_settings = await session.scalar(
                select(organisations.c.settings).where(organisations.c.org_id == case.org_id)
            )
            unit_rows = {
                u.unit_id: u.org_id
                for u in (await session.execute(select(units.c.unit_id, units.c.org_id))).all()
            }
            birth = await session.scalar(
                select(children.c.birth_date).where(children.c.child_id == case.child_id)
            )
            responsible = (
                await session.scalars(
                    select(guardians.c.person_id).where(
                        guardians.c.child_id == case.child_id,
                        guardians.c.parental_responsibility.is_(True),
                    )
                )
            ).all()
        return _CaseForConsent(
            case_id=case_id,
            org_id=case.org_id,
            child_id=case.child_id,
            known_orgs=frozenset(known_orgs),
            unit_orgs=unit_rows,
            policy=self.grantor_policy.for_organisation(_settings(own_settings)),
            birth=birth,
            responsible=tuple(sorted(responsible)),
        )

    @staticmethod
    def _check_scope(facts: _CaseForConsent, scope: Mapping[str, Any]) -> None:
        if set(scope["org_ids"]) - facts.known_orgs:
            raise HandlerError(
                422, "unknown_organisation", "Samtykket nevner en ukjent virksomhet."
            )
        for unit_id in scope.get("unit_ids", ()):
            if facts.unit_orgs.get(unit_id) not in set(scope["org_ids"]):
                raise HandlerError(422, "unknown_unit", "Samtykket nevner en ukjent enhet.")

    async def _request(
        self,
        principal: Principal,
        facts: _CaseForConsent,
        scope: Mapping[str, Any],
        *,
        valid_until: datetime | None,
        evidence_method: EvidenceMethod,
        evidence_reference: str | None,
        idempotency_key: ClientKey | None,
        valid_from: datetime | None = None,
        renews: str | None = None,
    ) -> Written:
        now = self.clock()
        covers_health = Sector.HEALTH.value in scope["sectors"]
        policy = facts.policy
        try:
            rule = domain.required_grantors(
                child_id=facts.child_id,
                birth_date=facts.birth,
                guardians_with_responsibility=list(facts.responsible),
                covers_health=covers_health,
                today=now.date(),
                policy=policy,
            )
        except domain.ConsentError as exc:
            raise HandlerError(exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))) from None
        consent_id = new_id()
        purpose = await self.cipher.encrypt(
            facts.child_id, scope["purpose"], aggregate=consent_id, context="purpose"
        )
        reference = (
            await self.cipher.encrypt(
                facts.child_id, evidence_reference, aggregate=consent_id, context="evidence"
            )
            if evidence_reference
            else None
        )
        command = domain.RequestConsent(
            consent_id=consent_id,
            case_id=facts.case_id,
            child_id=facts.child_id,
            scope=ConsentScope(**{**scope, "purpose": purpose}),
            valid_until=valid_until,
            evidence=Evidence(method=evidence_method, reference=reference),
            grantors=rule,
            requested_by=principal.id,
            default_validity=policy.default_validity,
            max_validity=policy.max_validity,
            valid_from=valid_from,
            renews=renews,
        )
        events = self._decide(domain.ConsentState(), command, now)
        envelopes = [
            self._envelope(e, subject=consent_id, tenant=facts.org_id, actor=principal, now=now)
            for e in events
        ]
        consent_id, seq, stored = await self._publish_new(consent_id, envelopes, idempotency_key)
        requested = next(
            (p for p in map(registry.payload, stored) if isinstance(p, ConsentRequested)), None
        )
        body: dict[str, Any] = {
            "id": consent_id,
            "status": "pending",
            "grantors": [g.model_dump() for g in rule.groups],
            "rule": rule.rule,
            "age_applied": rule.age,
        }
        if renews is not None and requested is not None:
            body |= {
                "renews": renews,
                "valid_from": requested.valid_from,
                "valid_until": requested.valid_until,
            }
        return Written(consent_id, seq, seq, body)

    async def renew_consent(
        self, principal: Principal, consent_id: str, *, idempotency_key: ClientKey | None
    ) -> Written:
        """Ask anew for an active or expired consent, with the same scope, starting when the
        old one ends (or now, if it has ended), so that once signed no day falls between
        (decision 0032). A grantor of the old consent renews it themselves; staff who may
        manage the case's consents renew it for the family."""
        case_id, child_id, _tenant = await self._consent_case(consent_id)
        async with self.sessions() as session:
            old = (
                await session.execute(select(consents).where(consents.c.consent_id == consent_id))
            ).one()
            renewed = await self._live_renewals(session, [consent_id])
        grantors = tuple(GrantorGroup.model_validate(g) for g in old.grantors)
        state = domain.ConsentState(consent_id=consent_id, case_id=case_id, grantors=grantors)
        if principal.kind == "person" and principal.id in state.all_grantors:
            await self._still_guardian(state, child_id, principal.id)
        else:
            await self._require(principal, Action.CONSENT_MANAGE, case_id)
        if old.status not in {"active", "expired"}:
            raise HandlerError(409, "not_renewable", _NORWEGIAN["not_renewable"])
        if consent_id in renewed:
            raise HandlerError(409, "already_renewed", _NORWEGIAN["already_renewed"])
        scope = dict(old.scope)
        try:
            scope["purpose"] = await self.cipher.decrypt(
                child_id, scope["purpose"], aggregate=consent_id, context="purpose"
            )
        except CryptoError:
            # The child's key is gone (erased): nothing can be asked for in the child's name.
            raise HandlerError(409, "not_renewable", _NORWEGIAN["not_renewable"]) from None
        facts = await self._consent_facts(case_id)
        self._check_scope(facts, scope)
        return await self._request(
            principal,
            facts,
            scope,
            valid_until=None,
            evidence_method=EvidenceMethod.DIGITAL_SIGNATURE,
            evidence_reference=None,
            idempotency_key=idempotency_key,
            valid_from=as_utc(old.valid_until),
            renews=consent_id,
        )

    @staticmethod
    async def _live_renewals(session: AsyncSession, consent_ids: Sequence[str]) -> dict[str, str]:
        """The renewal waiting or in force for each of ``consent_ids`` that has one."""
        if not consent_ids:
            return {}
        rows = await session.execute(
            select(consents.c.renews, consents.c.consent_id).where(
                consents.c.renews.in_(list(consent_ids)),
                consents.c.status.in_(("pending", "active")),
            )
        )
        return {row.renews: row.consent_id for row in rows}

    def _decide(
        self, state: domain.ConsentState, command: domain.ConsentCommand, now: datetime
    ) -> list[EventData]:
        try:
            return domain.decide_consent(state, command, now)
        except domain.ConsentError as exc:
            raise HandlerError(exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))) from None

    async def _consent_case(self, consent_id: str) -> tuple[str, str, str]:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(consents.c.case_id, consents.c.child_id, cases.c.org_id)
                    .join(cases, cases.c.case_id == consents.c.case_id)
                    .where(consents.c.consent_id == consent_id)
                )
            ).first()
        if row is None:
            raise _forbidden()
        return row.case_id, row.child_id, row.org_id

    async def act_on_consent(
        self,
        principal: Principal,
        consent_id: str,
        *,
        kind: Literal["sign", "refuse", "withdraw"],
        grantor_person_id: str,
        method: EvidenceMethod = EvidenceMethod.DIGITAL_SIGNATURE,
        reference: str | None = None,
        reason: str | None = None,
        if_match: int | None = None,
        idempotency_key: ClientKey | None = None,
    ) -> Written:
        """A grantor signs, refuses or withdraws with their own token; staff who may manage the
        case's consents record it on paper or as documented verbal consent."""
        case_id, child_id, tenant = await self._consent_case(consent_id)
        acting_for_self = principal.kind == "person" and principal.id == grantor_person_id
        if not acting_for_self:
            await self._require(principal, Action.CONSENT_MANAGE, case_id)
            if kind == "sign" and method is EvidenceMethod.DIGITAL_SIGNATURE:
                raise HandlerError(
                    422,
                    "signature_needs_grantor",
                    "En digital signatur gis av samtykkegiveren selv.",
                )
        elif kind == "sign" and method is not EvidenceMethod.DIGITAL_SIGNATURE:
            raise HandlerError(
                422, "method_needs_staff", "Papir og muntlig samtykke registreres av ansatte."
            )
        if kind == "sign" and method is not EvidenceMethod.DIGITAL_SIGNATURE and not reference:
            raise HandlerError(422, "reference_required", "Oppgi referanse til dokumentasjonen.")
        enc_reference = (
            await self.cipher.encrypt(child_id, reference, aggregate=consent_id, context="evidence")
            if reference
            else None
        )
        enc_reason = (
            await self.cipher.encrypt(child_id, reason, aggregate=consent_id, context="reason")
            if reason
            else None
        )
        subject = self.store.subject("consent", consent_id)
        for _attempt in range(MAX_RETRIES):
            commits = await self.store.load(subject)
            version = commits[-1].seq if commits else 0
            if if_match is not None and if_match != version:
                raise HandlerError(409, "version_conflict", "Samtykket er endret av noen andre.")
            state = domain.replay_consent(registry.payload(e) for c in commits for e in c.events)
            command = _grantor_command(
                kind, grantor_person_id, method, enc_reference, enc_reason, principal.id
            )
            now = self.clock()
            try:
                await self._still_guardian(state, child_id, grantor_person_id)
                events = self._decide(state, command, now)
            except Problem as refused:
                if acting_for_self and refused.code == "not_a_grantor":
                    # Someone naming themselves who is no grantor: the same answer as for
                    # a consent that does not exist, unless they may read the case anyway.
                    await self._require(principal, Action.CASE_READ, case_id)
                raise
            envelopes = [
                self._envelope(e, subject=consent_id, tenant=tenant, actor=principal, now=now)
                for e in events
            ]
            try:
                seq = await self._publish(
                    consent_id, "consent", envelopes, expected=version, key=idempotency_key
                )
            except ConcurrencyConflict:
                if if_match is not None:
                    raise HandlerError(
                        409, "version_conflict", "Samtykket er endret av noen andre."
                    ) from None
                continue
            final = domain.replay_consent(
                [*(registry.payload(e) for c in commits for e in c.events), *events]
            )
            status = final.status.value if final.status else "pending"
            return Written(consent_id, seq, seq, {"id": consent_id, "status": status})
        raise HandlerError(409, "conflict", "Samtykket endres av mange samtidig; prøv igjen.")

    async def _still_guardian(
        self, state: domain.ConsentState, child_id: str, grantor_person_id: str
    ) -> None:
        """A guardian named a grantor acts on the consent only while they hold parental
        responsibility for the child: one removed, or who lost it, can no longer sign,
        refuse or withdraw it (docs/decisions/0028-guardians-change.md)."""
        as_guardian = any(
            group.kind == "guardians" and grantor_person_id in group.members
            for group in state.grantors
        )
        if not as_guardian:
            return
        async with self.sessions() as session:
            responsible = await session.scalar(
                select(guardians.c.parental_responsibility).where(
                    guardians.c.child_id == child_id,
                    guardians.c.person_id == grantor_person_id,
                )
            )
        if responsible is not True:
            raise HandlerError(422, "not_a_grantor", _NORWEGIAN["no_longer_guardian"])

    async def list_consents(
        self,
        principal: Principal,
        case_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        expiring_within_days: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of the case's consents, oldest first: at most ``limit`` after the first
        ``offset``, and whether more follow. Consents only ever join the end of the list.
        With ``expiring_within_days``, only the active consents that end within so many
        days. ``expires_soon`` marks an active consent within the organisation's reminder
        time that no renewal waits for or follows (decision 0032)."""
        decision = await self.decisions.check(
            principal.id, Action.CASE_READ, case_id, principal_kind=principal.kind
        )
        if not decision.permitted:
            raise _forbidden()
        async with self.sessions() as session:
            case = (
                await session.execute(
                    select(cases.c.org_id, organisations.c.settings)
                    .select_from(
                        cases.outerjoin(organisations, organisations.c.org_id == cases.c.org_id)
                    )
                    .where(cases.c.case_id == case_id)
                )
            ).first()
        tenant = case.org_id if case is not None else None
        reminder = self.grantor_policy.for_organisation(
            _settings(case.settings if case is not None else None)
        ).reminder
        try:
            await record_access(
                self.store,
                case_id=case_id,
                tenant=tenant or "region",
                principal=principal,
                basis=decision.basis,
                decision_id=decision.decision_id,
                what="consents",
                service="consent",
            )
        except Exception:  # noqa: BLE001 - a read that is not recorded is not served
            raise HandlerError(503, "unavailable", "Lesingen kunne ikke registreres.") from None
        now = self.clock()
        query = select(consents).where(consents.c.case_id == case_id)
        if expiring_within_days is not None:
            query = query.where(
                consents.c.status == "active",
                consents.c.valid_until <= now + timedelta(days=expiring_within_days),
            )
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    query.order_by(consents.c.consent_id).offset(offset).limit(limit + 1)
                )
            ).all()
            renewals = await self._live_renewals(session, [r.consent_id for r in rows[:limit]])
        more = len(rows) > limit
        return [
            {
                "id": r.consent_id,
                "case_id": r.case_id,
                "status": r.status,
                "scope": {k: v for k, v in r.scope.items() if k != "purpose"},
                "grantors": r.grantors,
                "signed": r.signed,
                "rule": r.rule,
                "age_applied": r.age_applied,
                "valid_from": r.valid_from,
                "valid_until": r.valid_until,
                "evidence": {"method": r.evidence_method},
                "version": r.version,
                "renews": r.renews,
                "renewed_by": renewals.get(r.consent_id),
                "expires_soon": r.status == "active"
                and r.consent_id not in renewals
                and as_utc(r.valid_until) - now <= reminder,
            }
            for r in rows[:limit]
        ], more

    async def remind_due(self) -> int:
        """Emit ``consent.expiry_reminder_due`` once for every active consent that ends
        within its organisation's reminder time, unless a renewal already waits or holds."""
        now = self.clock()
        renewal = consents.alias("renewal")
        renewed = (
            select(renewal.c.consent_id)
            .where(
                renewal.c.renews == consents.c.consent_id,
                renewal.c.status.in_(("pending", "active")),
            )
            .exists()
        )
        async with self.sessions() as session:
            candidates = (
                await session.execute(
                    select(consents.c.consent_id, consents.c.valid_until, organisations.c.settings)
                    .select_from(
                        consents.join(cases, cases.c.case_id == consents.c.case_id).outerjoin(
                            organisations, organisations.c.org_id == cases.c.org_id
                        )
                    )
                    .where(
                        consents.c.status == "active",
                        consents.c.reminded.is_(False),
                        consents.c.valid_until > now,
                        consents.c.valid_until <= now + timedelta(days=MAX_REMINDER_DAYS),
                        ~renewed,
                    )
                    .order_by(consents.c.valid_until)
                    .limit(REMINDER_BATCH)
                )
            ).all()
        system = Principal(kind="client", id="stafett-consent", issuer="stafett")
        reminded = 0
        for row in candidates:
            ahead = self.grantor_policy.for_organisation(_settings(row.settings)).reminder
            if as_utc(row.valid_until) - now > ahead:
                continue
            subject = self.store.subject("consent", row.consent_id)
            commits = await self.store.load(subject)
            state = domain.replay_consent(registry.payload(e) for c in commits for e in c.events)
            events = domain.decide_consent(state, domain.RemindOfExpiry(ahead), now)
            if not events:
                continue
            _case_id, _child, tenant = await self._consent_case(row.consent_id)
            envelopes = [
                self._envelope(e, subject=row.consent_id, tenant=tenant, actor=system, now=now)
                for e in events
            ]
            try:
                await self._publish(
                    row.consent_id,
                    "consent",
                    envelopes,
                    expected=commits[-1].seq,
                    key=f"remind-{row.consent_id}",
                )
                reminded += 1
            except ConcurrencyConflict:
                continue  # changed meanwhile; the next run looks again
        return reminded

    async def expire_due(self) -> int:
        """Emit ``consent.expired`` for every consent past its end (a scheduled check)."""
        now = self.clock()
        async with self.sessions() as session:
            due = (
                await session.scalars(
                    select(consents.c.consent_id).where(
                        consents.c.status.in_(("pending", "active")), consents.c.valid_until <= now
                    )
                )
            ).all()
        system = Principal(kind="client", id="stafett-consent", issuer="stafett")
        expired = 0
        for consent_id in due:
            subject = self.store.subject("consent", consent_id)
            commits = await self.store.load(subject)
            state = domain.replay_consent(registry.payload(e) for c in commits for e in c.events)
            events = domain.decide_consent(state, domain.ExpireConsent(), now)
            if not events or state.case_id is None:
                continue
            _case_id, _child, tenant = await self._consent_case(consent_id)
            envelopes = [
                self._envelope(e, subject=consent_id, tenant=tenant, actor=system, now=now)
                for e in events
            ]
            try:
                await self._publish(
                    consent_id,
                    "consent",
                    envelopes,
                    expected=commits[-1].seq,
                    key=f"expire-{consent_id}",
                )
                expired += 1
            except ConcurrencyConflict:
                continue  # changed meanwhile; the next run looks again
        return expired

    # --- emergency access and audit scopes -------------------------------------------------

    async def grant_emergency_access(
        self,
        principal: Principal,
        *,
        case_id: str,
        ground: EmergencyGround,
        reason: str,
        min_seq: int | None = None,
    ) -> Written:
        """Emergency access (DOMAIN.md, docs/decisions/0027): staff related to the case's
        organisation or its unit's sector, with a ground from the fixed list and a written
        reason, read the case for 24 hours; one grant at a time per person and case; a
        repeat within 30 days of the last grant waits for a leader of the case's unit. The
        holder, the leaders and the guardians are told."""
        # Decided before anything is looked up: unknown and unrelated are the same 404.
        await self._require(principal, Action.CASE_EMERGENCY, case_id, min_seq)
        now = self.clock()
        async with self.sessions() as session:
            case = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
            if case is None:
                raise _forbidden()
            facts = await self._emergency_facts(session, principal.id, case, now)
        if facts.active:
            raise HandlerError(
                409, "emergency_access_active", "Du har allerede nødtilgang til saken."
            )
        if facts.pending:
            raise HandlerError(
                409,
                "emergency_access_pending",
                "Du har allerede bedt om nødtilgang til saken, og den venter på godkjenning.",
            )
        reader = await self.decisions.check(
            principal.id, Action.CASE_READ, case_id, principal_kind=principal.kind
        )
        if reader.permitted:
            raise HandlerError(409, "access_exists", "Du har allerede tilgang til å lese saken.")
        if facts.previous is not None and not facts.leaders - {principal.id}:
            raise HandlerError(
                409,
                "no_approver",
                "Ny nødtilgang innen 30 dager må godkjennes av en leder ved enheten som eier "
                "saken, og enheten har ingen leder.",
            )
        grant_id = new_id()
        encrypted = await self.cipher.encrypt(
            case.child_id or case_id, reason, aggregate=grant_id, context="reason"
        )
        event: EventData
        if facts.previous is None:
            event = EmergencyAccessGranted(
                grant_id=grant_id,
                case_id=case_id,
                person_id=principal.id,
                reason=encrypted,
                valid_from=now,
                valid_until=now + EMERGENCY_DURATION,
                notify_person_ids=tuple(
                    p for p in facts.told(case.holder_id, besides=frozenset()) if p != principal.id
                ),
                ground=ground,
            )
        else:
            event = EmergencyAccessRequested(
                grant_id=grant_id,
                case_id=case_id,
                person_id=principal.id,
                ground=ground,
                reason=encrypted,
                requested_at=now,
                previous_grant_id=facts.previous,
                notify_person_ids=tuple(sorted(facts.leaders - {principal.id})),
            )
        envelope = self._envelope(
            event, subject=grant_id, tenant=case.org_id, actor=principal, now=now
        )
        # One grant or request per person, case and place in their history: two requests
        # sent at once are one message on the stream, and both get its answer. (A client's
        # Idempotency-Key is answered by the route, before this.)
        pair = hashlib.sha256(f"{principal.id}\n{case_id}".encode()).hexdigest()[:32]
        key = f"emergency-{pair}-{facts.earlier}"
        grant_id, seq, stored = await self._publish_new(grant_id, [envelope], key)
        return Written(grant_id, seq, seq, _emergency_body(registry.payload(stored[0])))

    async def _emergency_facts(
        self, session: AsyncSession, person_id: str, case: Any, now: datetime
    ) -> _EmergencyFacts:
        mine = (
            emergency_grants.c.person_id == person_id,
            emergency_grants.c.case_id == case.case_id,
        )
        asked = (
            emergency_requests.c.person_id == person_id,
            emergency_requests.c.case_id == case.case_id,
        )
        active = await session.scalar(
            select(emergency_grants.c.grant_id)
            .where(
                *mine, emergency_grants.c.valid_from <= now, emergency_grants.c.valid_until > now
            )
            .limit(1)
        )
        pending = await session.scalar(
            select(emergency_requests.c.grant_id)
            .where(
                *asked,
                emergency_requests.c.status == "pending",
                emergency_requests.c.requested_at > now - EMERGENCY_REQUEST_LAPSES,
            )
            .limit(1)
        )
        previous = await session.scalar(
            select(emergency_grants.c.grant_id)
            .where(*mine, emergency_grants.c.valid_from > now - EMERGENCY_REPEAT_WINDOW)
            .order_by(emergency_grants.c.valid_from.desc())
            .limit(1)
        )
        earlier = (
            await session.scalar(select(func.count()).select_from(emergency_grants).where(*mine))
            or 0
        ) + (
            await session.scalar(select(func.count()).select_from(emergency_requests).where(*asked))
            or 0
        )
        leaders = (
            await session.scalars(
                select(roles.c.person_id).where(
                    roles.c.unit_id == case.unit_id, roles.c.role == StaffRole.LEADER.value
                )
            )
        ).all()
        family: Sequence[str] = ()
        if case.child_id is not None:
            family = (
                await session.scalars(
                    select(guardians.c.person_id).where(
                        guardians.c.child_id == case.child_id,
                        guardians.c.parental_responsibility.is_(True),
                    )
                )
            ).all()
        return _EmergencyFacts(
            active=active is not None,
            pending=pending is not None,
            previous=previous,
            earlier=earlier,
            leaders=frozenset(leaders),
            guardians=frozenset(family),
        )

    async def waiting_emergency_requests(
        self, principal: Principal, *, limit: int
    ) -> list[dict[str, Any]]:
        """The emergency requests that wait for this person's approval: of cases whose
        owning unit they lead, not their own, not lapsed, newest first. The decision point
        is asked whether they may manage each case; nothing of the case is read."""
        if principal.kind != "person":
            return []
        now = self.clock()
        async with self.sessions() as session:
            led = select(roles.c.unit_id).where(
                roles.c.person_id == principal.id, roles.c.role == StaffRole.LEADER.value
            )
            rows = (
                await session.execute(
                    select(
                        emergency_requests.c.grant_id,
                        emergency_requests.c.case_id,
                        emergency_requests.c.person_id,
                    )
                    .join(cases, cases.c.case_id == emergency_requests.c.case_id)
                    .where(
                        cases.c.unit_id.in_(led),
                        emergency_requests.c.status == "pending",
                        emergency_requests.c.requested_at > now - EMERGENCY_REQUEST_LAPSES,
                        emergency_requests.c.person_id != principal.id,
                    )
                    .order_by(
                        emergency_requests.c.requested_at.desc(), emergency_requests.c.grant_id
                    )
                    .limit(limit)
                )
            ).all()
        if not rows:
            return []
        permitted = set(
            await self.decisions.filter(principal.id, Action.CASE_MANAGE, [r.case_id for r in rows])
        )
        items: list[dict[str, Any]] = []
        for row in rows:
            if row.case_id not in permitted:
                continue
            commits = await self.store.load(self.store.subject("consent", row.grant_id))
            requested = next(
                (
                    p
                    for c in commits
                    for p in (registry.payload(e) for e in c.events)
                    if isinstance(p, EmergencyAccessRequested)
                ),
                None,
            )
            if requested is None:  # the read model ran ahead of the stream: not yet
                continue
            items.append(
                {
                    "id": row.grant_id,
                    "case_id": row.case_id,
                    "person_id": row.person_id,
                    "ground": requested.ground.value,
                    "requested_at": requested.requested_at.isoformat(),
                }
            )
        return items

    async def approve_emergency_access(
        self, principal: Principal, grant_id: str, *, idempotency_key: ClientKey | None
    ) -> Written:
        """A leader of the case's unit approves a waiting request: the grant holds for 24
        hours from now. The requester, the holder, the other leaders and the guardians are
        told."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(emergency_requests, cases.c.org_id, cases.c.unit_id, cases.c.holder_id)
                    .add_columns(cases.c.child_id)
                    .join(cases, cases.c.case_id == emergency_requests.c.case_id)
                    .where(emergency_requests.c.grant_id == grant_id)
                )
            ).first()
        if row is None:
            raise _forbidden()
        await self._require(principal, Action.CASE_MANAGE, row.case_id)
        now = self.clock()
        async with self.sessions() as session:
            facts = await self._emergency_facts(session, row.person_id, row, now)
        if principal.id not in facts.leaders or principal.id == row.person_id:
            raise HandlerError(
                403,
                "not_unit_leader",
                "Bare en leder ved enheten som eier saken kan godkjenne nødtilgang.",
            )
        subject = self.store.subject("consent", grant_id)
        commits = await self.store.load(subject)
        payloads = [registry.payload(e) for c in commits for e in c.events]
        version = commits[-1].seq if commits else 0
        requested = next((p for p in payloads if isinstance(p, EmergencyAccessRequested)), None)
        if requested is None or any(isinstance(p, EmergencyAccessApproved) for p in payloads):
            raise HandlerError(409, "not_pending", "Forespørselen venter ikke på godkjenning.")
        if now - requested.requested_at >= EMERGENCY_REQUEST_LAPSES:
            raise HandlerError(
                409,
                "request_lapsed",
                "Forespørselen er eldre enn et døgn og kan ikke godkjennes; "
                "be om nødtilgang på nytt.",
            )
        told = facts.told(row.holder_id, besides=frozenset({row.person_id}))
        event = EmergencyAccessApproved(
            grant_id=grant_id,
            case_id=row.case_id,
            person_id=row.person_id,
            approved_by=principal.id,
            valid_from=now,
            valid_until=now + EMERGENCY_DURATION,
            notify_person_ids=tuple(p for p in told if p != principal.id),
        )
        envelope = self._envelope(
            event, subject=grant_id, tenant=row.org_id, actor=principal, now=now
        )
        try:
            seq = await self._publish(
                grant_id, "consent", [envelope], expected=version, key=idempotency_key
            )
        except ConcurrencyConflict:
            raise HandlerError(
                409, "not_pending", "Forespørselen venter ikke på godkjenning."
            ) from None
        return Written(grant_id, seq, seq, _emergency_body(event, requested.ground))

    async def grant_audit_scope(
        self,
        principal: Principal,
        *,
        auditor_person_id: str,
        org_id: str | None,
        case_ids: Sequence[str],
        until: datetime,
        reason: str,
        idempotency_key: ClientKey | None,
    ) -> Written:
        if not self._is_admin(principal):
            await self._require_org_admin(principal, org_id, case_ids)
        now = self.clock()
        if until <= now:
            raise HandlerError(422, "validity_in_past", "Gyldig til må ligge fram i tid.")
        if until - now > timedelta(days=366):
            raise HandlerError(422, "validity_too_long", "Tilsynstilgang gis for høyst ett år.")
        if org_id is None and not case_ids:
            raise HandlerError(422, "empty_scope", "Oppgi en virksomhet eller saker.")
        if org_id is not None:
            async with self.sessions() as session:
                if (
                    await session.scalar(
                        select(organisations.c.org_id).where(organisations.c.org_id == org_id)
                    )
                    is None
                ):
                    raise HandlerError(422, "unknown_organisation", "Ukjent virksomhet.")
        scope_id = new_id()
        event = AuditScopeGranted(
            scope_id=scope_id,
            auditor_person_id=auditor_person_id,
            org_id=org_id,
            case_ids=tuple(dict.fromkeys(case_ids)),
            valid_until=until,
            reason=reason,
            granted_by=principal.id,
        )
        envelope = self._envelope(
            event, subject=scope_id, tenant=org_id or "region", actor=principal, now=now
        )
        scope_id, seq, _stored = await self._publish_new(scope_id, [envelope], idempotency_key)
        return Written(scope_id, seq, seq, {"id": scope_id})


@dataclass(frozen=True, slots=True)
class _EmergencyFacts:
    """What an emergency request is decided on, for one person and case."""

    active: bool  # a grant holds now
    pending: bool  # a request waits for approval (and has not lapsed)
    previous: str | None  # a grant that began within the last 30 days
    earlier: int  # grants and requests so far
    leaders: frozenset[str]  # of the case's unit
    guardians: frozenset[str]  # with parental responsibility

    def told(self, holder_id: str, *, besides: frozenset[str]) -> tuple[str, ...]:
        """Who is told of a grant: the holder, the unit's leaders and the guardians, and
        ``besides`` (the requester of an approved grant), except the one who acted."""
        return tuple(sorted({holder_id, *self.leaders, *self.guardians, *besides}))


def _emergency_body(event: EventData, ground: EmergencyGround | None = None) -> dict[str, Any]:
    """The answer to a grant, a request or an approval (``ground``: the request's)."""
    if isinstance(event, EmergencyAccessRequested):
        return {
            "id": event.grant_id,
            "case_id": event.case_id,
            "status": "pending",
            "ground": event.ground.value,
            "valid_until": None,
        }
    if not isinstance(event, EmergencyAccessGranted | EmergencyAccessApproved):
        raise HandlerError(503, "unavailable", "Svaret kunne ikke leses; prøv igjen.")
    if isinstance(event, EmergencyAccessGranted):
        ground = event.ground
    return {
        "id": event.grant_id,
        "case_id": event.case_id,
        "status": "active",
        "ground": ground.value if ground is not None else None,
        "valid_until": event.valid_until.isoformat(),
    }


def _guide(stored: Any) -> Guide:
    """An organisation's guide as the read model stores it (``None`` before the first)."""
    levels = [tuple(str(step) for step in steps) for steps in (stored or ())]
    levels += [()] * (len(domain.BTI_LEVELS) - len(levels))
    return (levels[0], levels[1], levels[2], levels[3])


def _catalogue(stored: Any) -> tuple[CatalogueMeasure, ...]:
    return tuple(CatalogueMeasure.model_validate(m) for m in (stored or ()))


def _settings(stored: Any) -> OrganisationSettings:
    """An organisation's own settings as the read model stores them (``None``: none)."""
    return OrganisationSettings.model_validate(stored or {})


def _tenant_of(aggregate: str, events: Sequence[EventData]) -> str:
    for event in events:
        org_id = getattr(event, "org_id", None)
        if isinstance(org_id, str):
            return org_id
    return "region" if not aggregate.startswith("org-") else aggregate.removeprefix("org-")


_NORWEGIAN = {
    "no_grantor": "Ingen foresatt med foreldreansvar er registrert, så ingen kan gi samtykke.",
    "validity_in_past": "Gyldig til må ligge fram i tid.",
    "validity_too_long": (
        "Samtykket gjelder for lenge: høyst tre år, eller kortere om virksomheten har satt det."
    ),
    "unknown_birth_date": "Barnets fødselsdato er ukjent.",
    "not_a_grantor": "Personen er ikke blant dem som skal gi samtykke.",
    "already_signed": "Personen har allerede signert.",
    "not_pending": "Samtykket venter ikke på signatur.",
    "not_in_force": "Samtykket gjelder ikke lenger.",
    "unknown_consent": "Samtykket finnes ikke.",
    "unknown_child": "Barnet er ikke registrert.",
    "unknown_guardian": "Personen er ikke foresatt for barnet.",
    "already_guardian": "Personen er allerede foresatt for barnet.",
    "too_many_guardians": "Et barn kan ha høyst 10 foresatte registrert.",
    "child_is_guardian": "Barnet kan ikke være sin egen foresatte.",
    "no_longer_guardian": "Personen har ikke lenger foreldreansvar for barnet, og kan ikke "
    "gi eller trekke samtykke på vegne av barnet.",
    "not_renewable": "Bare et samtykke som gjelder eller har utløpt, kan fornyes.",
    "already_renewed": "Samtykket er allerede fornyet; det nye venter på signatur eller gjelder.",
}


async def _organisations_and_units(
    session: AsyncSession,
) -> tuple[Sequence[Any], dict[str, list[dict[str, str]]]]:
    """The region's organisations, and each one's open units (id, name, sector, and the
    contact details it has) by name."""
    orgs = (
        await session.execute(
            select(organisations).order_by(organisations.c.org_id).limit(domain.MAX_ORGANISATIONS)
        )
    ).all()
    unit_rows = (
        await session.execute(
            select(
                units.c.unit_id,
                units.c.org_id,
                units.c.name,
                units.c.sector,
                units.c.phone,
                units.c.email,
            )
            .where(units.c.closed.is_(False))
            .order_by(units.c.org_id, units.c.name, units.c.unit_id)
            .limit(domain.MAX_ORGANISATIONS * domain.MAX_UNITS)
        )
    ).all()
    units_of: dict[str, list[dict[str, str]]] = {}
    for unit in unit_rows:
        units_of.setdefault(unit.org_id, []).append(
            {"id": unit.unit_id, "name": unit.name, "sector": unit.sector}
            | _contact(unit.phone, unit.email)
        )
    return orgs, units_of


def _contact(phone: str | None, email: str | None) -> dict[str, str]:
    """A unit's contact details as the reads show them: only those it has."""
    return {k: v for k, v in (("phone", phone), ("email", email)) if v is not None}
