"""Application layer of the consent service: load, decide, publish, apply.

Every handler that touches a case asks the decision point first. Personal data is encrypted
here, before the pure domain decides, so no event ever carries it in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_consent import domain
from stafett_consent.decisions import DecisionPoint
from stafett_consent.policy import EMERGENCY_DURATION, Action
from stafett_consent.projections import (
    cases,
    children,
    client_key,
    clients,
    consents,
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
    ConsentScope,
    EmergencyAccessGranted,
    Evidence,
    EvidenceMethod,
)
from stafett_shared.contracts.directory import (
    CatalogueMeasure,
    ChildRegistered,
    GuardianRecord,
    Guide,
    OrgKind,
    Sector,
    StaffRole,
)
from stafett_shared.crypto import BlindIndex, CryptoError, FieldCipher
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import ConcurrencyConflict, DuplicateAppend, EventStore
from stafett_shared.ids import new_id
from stafett_shared.logging import get_logger
from stafett_shared.msgid import ClientKey
from stafett_shared.nationalid import InvalidNationalId, parse_national_id
from stafett_shared.problems import Problem, not_visible
from stafett_shared.projector import Projector
from stafett_shared.settings import admin_logins, org_admin_logins
from stafett_shared.telemetry import current_traceparent

_log = get_logger("stafett.consent")

MAX_RETRIES = 5
NAME_BATCH = 64  # staff names decrypted at a time


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
        grantor_policy: domain.GrantorPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.index = index
        self.sessions = sessions
        self.projector = projector
        self.decisions = decisions
        self.admins = admin_logins(admins)
        self.org_admins = org_admin_logins(org_admins or {})
        self.grantor_policy = grantor_policy or domain.GrantorPolicy()
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
        self, aggregate_id: str, events: Sequence[CloudEvent], key: ClientKey | None
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
        names: dict[str, domain.StaffName] = {}
        async with self.sessions() as session:
            current = await self._directory_state(session)
        for person in document.staff:
            index = self.index(person.name, context=f"staff-name:{person.id}")
            if current.staff.get(person.id) == index:
                names[person.id] = domain.StaffName("", index)
            else:
                encrypted = await self.cipher.encrypt(
                    person.id, person.name, aggregate=f"person-{person.id}", context="name"
                )
                names[person.id] = domain.StaffName(encrypted, index)
        changes = domain.diff_directory(current, document, names)
        digest = hashlib.sha256(canonical_json(document.model_dump(mode="json"))).hexdigest()
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
                        idempotency_key=f"region-{digest[:32]}-{aggregate}-{version}-{chunk_no}",
                    )
                    last_seq = max(last_seq, result.seq)
                except DuplicateAppend as repeat:
                    last_seq = max(last_seq, repeat.seq)
            for event in events:
                kind = event.event_type.split(".")[3]
                counts[kind] = counts.get(kind, 0) + 1
        await self.projector.catch_up()
        return {"region": document.region, "changes": counts, "seq": last_seq}

    async def _directory_state(self, session: AsyncSession) -> domain.DirectoryState:
        orgs = (await session.execute(select(organisations))).all()
        unit_rows = (await session.execute(select(units).where(units.c.closed.is_(False)))).all()
        staff_rows = (await session.execute(select(staff))).all()
        role_rows = (await session.execute(select(roles))).all()
        login_rows = (await session.execute(select(logins))).all()
        client_rows = (await session.execute(select(clients))).all()
        return domain.DirectoryState(
            organisations={o.org_id: (o.name, OrgKind(o.kind)) for o in orgs},
            guides={o.org_id: _guide(o.guide) for o in orgs},
            catalogues={o.org_id: _catalogue(o.measure_catalogue) for o in orgs},
            units={u.unit_id: (u.org_id, u.name, Sector(u.sector)) for u in unit_rows},
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
        async with self.sessions() as session:
            existing = await session.scalar(
                select(children.c.child_id).where(children.c.national_id_index == child_index)
            )
            if existing is not None:
                return Written(
                    existing,
                    0,
                    self.projector.known_position,
                    {"id": existing, "status": "registered"},
                )
            known_guardians = {
                row.national_id_index: row.person_id
                for row in (await session.execute(select(guardians))).all()
            }
        child_id = new_id()
        now = self.clock()
        records = []
        for guardian, nid in zip(guardian_inputs, guardian_nids, strict=True):
            index = self.index(nid.value, context="national_id")
            records.append(
                GuardianRecord(
                    person_id=known_guardians.get(index) or new_id(),
                    national_id=await self.cipher.encrypt(
                        child_id, nid.value, aggregate=child_id, context="guardian_national_id"
                    ),
                    national_id_index=index,
                    name=await self.cipher.encrypt(
                        child_id, guardian.name, aggregate=child_id, context="guardian_name"
                    ),
                    parental_responsibility=guardian.parental_responsibility,
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
            return Written(
                winner, 0, self.projector.known_position, {"id": winner, "status": "registered"}
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
        unknown_orgs = set(scope["org_ids"]) - known_orgs
        if unknown_orgs:
            raise HandlerError(
                422, "unknown_organisation", "Samtykket nevner en ukjent virksomhet."
            )
        for unit_id in scope.get("unit_ids", ()):
            if unit_rows.get(unit_id) not in set(scope["org_ids"]):
                raise HandlerError(422, "unknown_unit", "Samtykket nevner en ukjent enhet.")
        now = self.clock()
        if valid_until is not None and valid_until <= now:
            raise HandlerError(422, "validity_in_past", "Gyldig til må ligge fram i tid.")
        covers_health = Sector.HEALTH.value in scope["sectors"]
        try:
            rule = domain.required_grantors(
                child_id=case.child_id,
                birth_date=birth,
                guardians_with_responsibility=sorted(responsible),
                covers_health=covers_health,
                today=now.date(),
                policy=self.grantor_policy,
            )
        except domain.ConsentError as exc:
            raise HandlerError(exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))) from None
        consent_id = new_id()
        purpose = await self.cipher.encrypt(
            case.child_id, scope["purpose"], aggregate=consent_id, context="purpose"
        )
        reference = (
            await self.cipher.encrypt(
                case.child_id, evidence_reference, aggregate=consent_id, context="evidence"
            )
            if evidence_reference
            else None
        )
        command = domain.RequestConsent(
            consent_id=consent_id,
            case_id=case_id,
            child_id=case.child_id,
            scope=ConsentScope(**{**scope, "purpose": purpose}),
            valid_until=valid_until,
            evidence=Evidence(method=evidence_method, reference=reference),
            grantors=rule,
            requested_by=principal.id,
        )
        events = self._decide(domain.ConsentState(), command, now)
        envelopes = [
            self._envelope(e, subject=consent_id, tenant=case.org_id, actor=principal, now=now)
            for e in events
        ]
        consent_id, seq, _stored = await self._publish_new(consent_id, envelopes, idempotency_key)
        return Written(
            consent_id,
            seq,
            seq,
            {
                "id": consent_id,
                "status": "pending",
                "grantors": [g.model_dump() for g in rule.groups],
                "rule": rule.rule,
                "age_applied": rule.age,
            },
        )

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

    async def list_consents(
        self, principal: Principal, case_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of the case's consents, oldest first: at most ``limit`` after the first
        ``offset``, and whether more follow. Consents only ever join the end of the list."""
        decision = await self.decisions.check(
            principal.id, Action.CASE_READ, case_id, principal_kind=principal.kind
        )
        if not decision.permitted:
            raise _forbidden()
        async with self.sessions() as session:
            tenant = await session.scalar(select(cases.c.org_id).where(cases.c.case_id == case_id))
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
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(consents)
                    .where(consents.c.case_id == case_id)
                    .order_by(consents.c.consent_id)
                    .offset(offset)
                    .limit(limit + 1)
                )
            ).all()
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
            }
            for r in rows[:limit]
        ], more

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
        self, principal: Principal, *, case_id: str, reason: str, idempotency_key: ClientKey | None
    ) -> Written:
        if principal.kind != "person" or not await self._is_staff(principal.id):
            raise _forbidden()
        async with self.sessions() as session:
            case = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
            if case is None:
                raise _forbidden()
            leaders = (
                await session.scalars(
                    select(roles.c.person_id).where(
                        roles.c.unit_id == case.unit_id,
                        roles.c.role == StaffRole.LEADER.value,
                    )
                )
            ).all()
        now = self.clock()
        grant_id = new_id()
        event = EmergencyAccessGranted(
            grant_id=grant_id,
            case_id=case_id,
            person_id=principal.id,
            reason=await self.cipher.encrypt(
                case.child_id or case_id, reason, aggregate=grant_id, context="reason"
            )
            if case.child_id
            else await self.cipher.encrypt(case_id, reason, aggregate=grant_id, context="reason"),
            valid_from=now,
            valid_until=now + EMERGENCY_DURATION,
            notify_person_ids=tuple(sorted({*leaders, case.holder_id})),
        )
        envelope = self._envelope(
            event, subject=grant_id, tenant=case.org_id, actor=principal, now=now
        )
        grant_id, seq, stored = await self._publish_new(grant_id, [envelope], idempotency_key)
        granted = registry.payload(stored[0])
        valid_until = getattr(granted, "valid_until", event.valid_until)
        return Written(
            grant_id,
            seq,
            seq,
            {"id": grant_id, "case_id": case_id, "valid_until": valid_until.isoformat()},
        )

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


def _guide(stored: Any) -> Guide:
    """An organisation's guide as the read model stores it (``None`` before the first)."""
    levels = [tuple(str(step) for step in steps) for steps in (stored or ())]
    levels += [()] * (len(domain.BTI_LEVELS) - len(levels))
    return (levels[0], levels[1], levels[2], levels[3])


def _catalogue(stored: Any) -> tuple[CatalogueMeasure, ...]:
    return tuple(CatalogueMeasure.model_validate(m) for m in (stored or ()))


def _tenant_of(aggregate: str, events: Sequence[EventData]) -> str:
    for event in events:
        org_id = getattr(event, "org_id", None)
        if isinstance(org_id, str):
            return org_id
    return "region" if not aggregate.startswith("org-") else aggregate.removeprefix("org-")


_NORWEGIAN = {
    "no_grantor": "Ingen foresatt med foreldreansvar er registrert, så ingen kan gi samtykke.",
    "validity_in_past": "Gyldig til må ligge fram i tid.",
    "validity_too_long": "Et samtykke kan gjelde i høyst tre år.",
    "unknown_birth_date": "Barnets fødselsdato er ukjent.",
    "not_a_grantor": "Personen er ikke blant dem som skal gi samtykke.",
    "already_signed": "Personen har allerede signert.",
    "not_pending": "Samtykket venter ikke på signatur.",
    "not_in_force": "Samtykket gjelder ikke lenger.",
    "unknown_consent": "Samtykket finnes ikke.",
}


async def _organisations_and_units(
    session: AsyncSession,
) -> tuple[Sequence[Any], dict[str, list[dict[str, str]]]]:
    """The region's organisations, and each one's open units (id, name, sector) by name."""
    orgs = (
        await session.execute(
            select(organisations).order_by(organisations.c.org_id).limit(domain.MAX_ORGANISATIONS)
        )
    ).all()
    unit_rows = (
        await session.execute(
            select(units.c.unit_id, units.c.org_id, units.c.name, units.c.sector)
            .where(units.c.closed.is_(False))
            .order_by(units.c.org_id, units.c.name, units.c.unit_id)
            .limit(domain.MAX_ORGANISATIONS * domain.MAX_UNITS)
        )
    ).all()
    units_of: dict[str, list[dict[str, str]]] = {}
    for unit in unit_rows:
        units_of.setdefault(unit.org_id, []).append(
            {"id": unit.unit_id, "name": unit.name, "sector": unit.sector}
        )
    return orgs, units_of
