"""Application layer of the case service: ask, load, decide, publish, apply.

Every read and write asks the consent service first; a caller without a basis gets 404,
never a hint that the case exists. Personal data is encrypted before the domain decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_case import domain
from stafett_case.projections import (
    cases,
    child_registrants,
    child_welfare_services,
    children,
    consents,
    handovers,
    level_history,
    measures,
    reports,
    roles,
    team,
    units,
)
from stafett_shared.access import AccessClient, AccessDecision, AccessUnavailable, record_access
from stafett_shared.auth import Principal
from stafett_shared.contracts.access import LookupPurpose, ReadWhat
from stafett_shared.contracts.case import ChildWelfareReported, CloseReason, Outcome
from stafett_shared.crypto import BlindIndex, CryptoError, FieldCipher
from stafett_shared.db import as_utc
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import ConcurrencyConflict, DuplicateAppend, EventStore
from stafett_shared.ids import new_id
from stafett_shared.lookups import LookupLimit, record_lookup
from stafett_shared.msgid import ClientKey
from stafett_shared.nationalid import InvalidNationalId, parse_national_id
from stafett_shared.problems import Problem, not_visible
from stafett_shared.problems import unavailable as unavailable_problem
from stafett_shared.projector import Projector
from stafett_shared.telemetry import current_traceparent

MAX_RETRIES = 5
# Who takes in reports of concern at a child welfare unit (decision 0026).
INTAKE_ROLES = ("child_welfare_worker", "leader")


# Refusals are problem documents; the API renders them as they are.
HandlerError = Problem


def not_found() -> Problem:
    return not_visible()


def forbidden() -> Problem:
    """403 for someone who may read the case but not do what they ask: they know the case
    exists, so a 404 would only mislead them."""
    return Problem(403, "forbidden", "Du kan lese saken, men ikke gjøre dette i den.")


def unavailable() -> Problem:
    return unavailable_problem("Tilgangskontrollen svarer ikke; prøv igjen.")


@dataclass(frozen=True, slots=True)
class Written:
    id: str
    version: int
    seq: int
    body: dict[str, Any]


_NORWEGIAN = {
    "case_closed": "Saken er avsluttet; gjenåpne den først.",
    "case_exists": "Saken finnes allerede.",
    "invalid_level": "Ugyldig nivå.",
    "identification_required": "Barnet må identifiseres før nivå 1.",
    "already_identified": "Barnet er allerede identifisert.",
    "same_level": "Saken er allerede på dette nivået.",
    "consent_missing_for_team": (
        "Alle tjenester utenfor enheten i teamet må være dekket av samtykke eller annet grunnlag."
    ),
    "already_on_team": "Personen er allerede med i teamet.",
    "not_on_team": "Personen er ikke med i teamet.",
    "handover_pending": "Det finnes allerede en overføring som venter på svar.",
    "no_such_handover": "Overføringen finnes ikke eller venter ikke på svar.",
    "not_addressee": "Bare mottakeren kan svare på overføringen.",
    "handover_to_holder": "Mottakeren er allerede stafettholder.",
    "consent_required_for_handover": (
        "Overføring til en annen virksomhet krever samtykke som nevner den."
    ),
    "no_such_measure": "Tiltaket finnes ikke.",
    "invalid_dates": "Datoene henger ikke sammen.",
    "not_closed": "Bare en avsluttet sak kan gjenåpnes.",
    "not_found": "Finnes ikke, eller du har ikke tilgang.",
    "report_received": "Meldingen er allerede mottatt.",
}


class CaseService:
    def __init__(
        self,
        *,
        store: EventStore,
        cipher: FieldCipher,
        index: BlindIndex,
        sessions: async_sessionmaker[AsyncSession],
        projector: Projector,
        access: AccessClient,
        lookups: LookupLimit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.lookups = lookups
        self.cipher = cipher
        self.index = index
        self.sessions = sessions
        self.projector = projector
        self.access = access
        self.clock = clock

    # --- access ---------------------------------------------------------------------------

    async def decision(
        self, principal: Principal, action: str, case_id: str, min_seq: int | None = None
    ) -> AccessDecision:
        try:
            return await self.access.check(principal, action, case_id, min_seq=min_seq)
        except AccessUnavailable:
            raise unavailable() from None

    async def allowed(
        self, principal: Principal, action: str, case_id: str, min_seq: int | None = None
    ) -> bool:
        return (await self.decision(principal, action, case_id, min_seq)).permitted

    async def require(
        self, principal: Principal, action: str, case_id: str, min_seq: int | None = None
    ) -> None:
        """Refuse unless the principal may ``action`` the case: 404 for whoever may not read
        it (whether or not it exists), 403 for a reader asking for more than reading."""
        if await self.allowed(principal, action, case_id, min_seq):
            return
        if action != "case:read" and await self.allowed(principal, "case:read", case_id, min_seq):
            raise forbidden()
        raise not_found()

    # --- writing ----------------------------------------------------------------------------

    async def _commit(
        self,
        principal: Principal,
        case_id: str,
        make: Callable[[domain.CaseState], Any],
        *,
        if_match: int | None = None,
        idempotency_key: ClientKey | None = None,
        tenant: str | None = None,
    ) -> tuple[str, int, list[EventData], domain.CaseState]:
        """Load, decide, publish with optimistic concurrency, apply; retry on a conflict
        unless the caller sent If-Match. Answers the case id, the commit's sequence, its
        events and the case's state after it: for a repeated request (same caller and key),
        those of the commit stored the first time. ``tenant`` is given when opening a case."""
        subject = self.store.subject("case", case_id)
        for _attempt in range(MAX_RETRIES):
            commits = await self.store.load(subject)
            version = commits[-1].seq if commits else 0
            if if_match is not None and if_match != version:
                raise HandlerError(409, "version_conflict", "Saken er endret av noen andre.")
            state = domain.replay(registry.payload(e) for c in commits for e in c.events)
            command = await make(state)
            now = self.clock()
            try:
                events = domain.decide(state, command, now)
            except domain.CaseError as exc:
                raise HandlerError(
                    exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))
                ) from None
            owner = tenant or state.org_id
            envelopes = [self._envelope(e, case_id, owner, principal, now) for e in events]
            try:
                result = await self.store.append(
                    subject,
                    envelopes,
                    expected_version=version,
                    idempotency_key=idempotency_key,
                    creates=tenant is not None,
                )
                seq = result.seq
                await self.projector.apply_own(subject, seq, envelopes)
            except DuplicateAppend as repeat:
                await self.projector.catch_up()
                return await self._stored(repeat.seq)
            except ConcurrencyConflict:
                if if_match is not None:
                    raise HandlerError(
                        409, "version_conflict", "Saken er endret av noen andre."
                    ) from None
                continue
            after = state
            for event in events:
                after = domain.evolve(after, event)
            return case_id, seq, events, after
        raise HandlerError(409, "conflict", "Saken endres av mange samtidig; prøv igjen.")

    async def _stored(self, seq: int) -> tuple[str, int, list[EventData], domain.CaseState]:
        """The commit a repeated request stored the first time, and the case after it."""
        stored = await self.store.get(seq)
        if stored is None or not stored.subject.startswith(f"{self.store.prefix}.case."):
            raise unavailable_problem("Saken kunne ikke leses; prøv igjen.")
        case_id = stored.subject.rsplit(".", 1)[-1]
        commits = [c for c in await self.store.load(stored.subject) if c.seq <= seq]
        state = domain.replay(registry.payload(e) for c in commits for e in c.events)
        return case_id, seq, [registry.payload(e) for e in stored.events], state

    def _envelope(
        self, payload: EventData, case_id: str, tenant: str, actor: Principal, now: datetime
    ) -> CloudEvent:
        return registry.envelope(
            payload,
            subject=case_id,
            source="stafett/case",
            tenant=tenant or "region",
            actor=actor.id,
            time=now,
            traceparent=current_traceparent(),
        )

    async def _owner(self, state: domain.CaseState, case_id: str) -> str:
        """Whose key protects the case's text: the child's once known, else the case's own."""
        return state.child_id or case_id

    async def _encrypt(
        self, owner: str, case_id: str, text: str | None, context: str
    ) -> str | None:
        """Seal a field of an event of ``case_id`` (None stays None)."""
        if text is None:
            return None
        return await self.cipher.encrypt(owner, text, aggregate=case_id, context=context)

    # --- open and identify -------------------------------------------------------------------

    async def _child_by_national_id(
        self,
        principal: Principal,
        national_id: str,
        *,
        purpose: LookupPurpose,
        case_id: str | None = None,
    ) -> str:
        """The child with this national id, if the caller registered it (decision 0029).

        Whether nobody registered the child or only someone else did, the answer is the same
        422 ``unknown_child``: a look-up is no oracle for "is this child known". Each look-up
        is limited per person and recorded (the blind index, never the national id) before
        it is answered."""
        try:
            parsed = parse_national_id(national_id)
        except InvalidNationalId as exc:
            raise HandlerError(
                422, "invalid_national_id", f"Ugyldig fødselsnummer: {exc}"
            ) from None
        if self.lookups is not None:
            self.lookups.take(principal)
        index = self.index(parsed.value, context="national_id")
        await record_lookup(
            self.store,
            principal=principal,
            national_id_index=index,
            purpose=purpose,
            service="case",
            case_id=case_id,
        )
        async with self.sessions() as session:
            child_id = await session.scalar(
                select(children.c.child_id)
                .join(
                    child_registrants,
                    child_registrants.c.national_id_index == children.c.national_id_index,
                )
                .where(
                    children.c.national_id_index == index,
                    child_registrants.c.person_id == principal.id,
                )
            )
        if child_id is None:
            raise HandlerError(
                422,
                "unknown_child",
                "Du har ikke registrert barnet; registrer barnet med foresatte først.",
            )
        return str(child_id)

    async def open_case(
        self,
        principal: Principal,
        *,
        unit_id: str,
        level: int,
        national_id: str | None,
        pseudonym: str | None,
        concern: str,
        idempotency_key: ClientKey | None,
    ) -> Written:
        async with self.sessions() as session:
            unit = (await session.execute(select(units).where(units.c.unit_id == unit_id))).first()
            works_there = await session.scalar(
                select(roles.c.person_id).where(
                    roles.c.person_id == principal.id, roles.c.unit_id == unit_id
                )
            )
        if unit is None or unit.closed:
            raise HandlerError(422, "unknown_unit", "Ukjent enhet.")
        if principal.kind != "person" or works_there is None:
            raise HandlerError(403, "forbidden", "Bare ansatte ved enheten kan opprette sak her.")
        case_id = new_id()
        child_id = (
            await self._child_by_national_id(
                principal, national_id, purpose="open_case", case_id=case_id
            )
            if national_id
            else None
        )
        owner = child_id or case_id
        concern_enc = await self.cipher.encrypt(
            owner, concern, aggregate=case_id, context="concern"
        )
        pseudonym_enc = await self._encrypt(owner, case_id, pseudonym, "pseudonym")

        async def make(_state: domain.CaseState) -> domain.Command:
            return domain.OpenCase(
                case_id=case_id,
                org_id=unit.org_id,
                unit_id=unit_id,
                level=level,
                holder_id=principal.id,
                concern=concern_enc,
                child_id=child_id,
                pseudonym=pseudonym_enc,
            )

        case_id, seq, _events, state = await self._commit(
            principal, case_id, make, idempotency_key=idempotency_key, tenant=unit.org_id
        )
        return Written(
            case_id,
            seq,
            seq,
            {
                "id": case_id,
                "level": state.level,
                "status": state.status,
                "holder": {"person_id": principal.id, "unit_id": unit_id},
                "version": seq,
            },
        )

    async def identify(
        self,
        principal: Principal,
        case_id: str,
        national_id: str,
        *,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:write", case_id)
        child_id = await self._child_by_national_id(
            principal, national_id, purpose="identify_child", case_id=case_id
        )

        async def make(_state: domain.CaseState) -> domain.Command:
            return domain.IdentifyChild(child_id)

        return await self._written(principal, case_id, make, if_match, idempotency_key)

    async def _written(
        self,
        principal: Principal,
        case_id: str,
        make: Callable[[domain.CaseState], Any],
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        _case, seq, _events, state = await self._commit(
            principal, case_id, make, if_match=if_match, idempotency_key=idempotency_key
        )
        body = {"id": case_id, "level": state.level, "status": state.status, "version": seq}
        return Written(case_id, seq, seq, body)

    async def _made(  # noqa: PLR0917 - the write handlers' five and what they made
        self,
        principal: Principal,
        case_id: str,
        make: Callable[[domain.CaseState], Any],
        if_match: int | None,
        idempotency_key: ClientKey | None,
        made: str,
    ) -> tuple[str, int]:
        """Commit a command that makes a thing in the case (a handover, a measure, a
        report); answers the id of the thing as stored, and the case's version."""
        _case, seq, events, _state = await self._commit(
            principal, case_id, make, if_match=if_match, idempotency_key=idempotency_key
        )
        made_id = next((getattr(e, made) for e in events if hasattr(e, made)), None)
        if not isinstance(made_id, str):
            raise unavailable_problem("Saken kunne ikke leses; prøv igjen.")
        return made_id, seq

    # --- level and team -------------------------------------------------------------------------

    async def change_level(
        self,
        principal: Principal,
        case_id: str,
        level: int,
        reason: str,
        *,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)

        async def make(state: domain.CaseState) -> domain.Command:
            uncovered = await self._uncovered_team(state) if level >= 2 else frozenset()
            owner = await self._owner(state, case_id)
            return domain.ChangeLevel(
                level,
                await self.cipher.encrypt(owner, reason, aggregate=case_id, context="reason"),
                uncovered,
            )

        return await self._written(principal, case_id, make, if_match, idempotency_key)

    async def _active_consents(self, case_id: str) -> list[Any]:
        now = self.clock()
        async with self.sessions() as session:
            return list(
                (
                    await session.execute(
                        select(consents).where(
                            consents.c.case_id == case_id,
                            consents.c.status == "active",
                            consents.c.valid_from <= now,
                            consents.c.valid_until > now,
                        )
                    )
                ).all()
            )

    async def _uncovered_team(self, state: domain.CaseState) -> frozenset[str]:
        """Team members outside the owning unit that no active consent covers."""
        assert state.case_id is not None
        active = await self._active_consents(state.case_id)
        async with self.sessions() as session:
            sectors = {
                u.unit_id: u.sector
                for u in (await session.execute(select(units.c.unit_id, units.c.sector))).all()
            }
        uncovered = set()
        for person_id, entry in state.team.items():
            if entry.unit_id == state.unit_id:
                continue
            covered = any(
                entry.org_id in k.scope["org_ids"]
                and sectors.get(entry.unit_id) in k.scope["sectors"]
                and (not k.scope.get("unit_ids") or entry.unit_id in k.scope["unit_ids"])
                for k in active
            )
            if not covered:
                uncovered.add(person_id)
        return frozenset(uncovered)

    async def _unit(self, unit_id: str) -> Any:
        async with self.sessions() as session:
            unit = (await session.execute(select(units).where(units.c.unit_id == unit_id))).first()
        if unit is None or unit.closed:
            raise HandlerError(422, "unknown_unit", "Ukjent enhet.")
        return unit

    async def _has_role(self, person_id: str, unit_id: str) -> bool:
        async with self.sessions() as session:
            return (
                await session.scalar(
                    select(roles.c.person_id).where(
                        roles.c.person_id == person_id, roles.c.unit_id == unit_id
                    )
                )
            ) is not None

    async def add_team_member(
        self,
        principal: Principal,
        case_id: str,
        *,
        person_id: str,
        unit_id: str,
        access: str,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)
        unit = await self._unit(unit_id)
        if not await self._has_role(person_id, unit_id):
            raise HandlerError(422, "not_at_unit", "Personen har ingen rolle ved enheten.")

        async def make(state: domain.CaseState) -> domain.Command:
            covered = True
            if state.level >= domain.Level.ONE_SERVICE and unit_id != state.unit_id:
                probe = domain.CaseState(
                    case_id=case_id,
                    status=state.status,
                    unit_id=state.unit_id,
                    team={person_id: domain.TeamEntry(unit_id, unit.org_id, "read")},
                )
                covered = not await self._uncovered_team(probe)
            return domain.AddTeamMember(
                person_id,
                unit_id,
                unit.org_id,
                "write" if access == "write" else "read",
                covered,
            )

        return await self._written(principal, case_id, make, if_match, idempotency_key)

    async def remove_team_member(
        self,
        principal: Principal,
        case_id: str,
        person_id: str,
        *,
        if_match: int | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)

        async def make(_state: domain.CaseState) -> domain.Command:
            return domain.RemoveTeamMember(person_id)

        return await self._written(principal, case_id, make, if_match, None)

    # --- handovers ------------------------------------------------------------------------------

    async def _cross_org_consent(
        self, case_id: str, to_org_id: str, owning_org: str
    ) -> domain.CrossOrgConsent | None:
        if to_org_id == owning_org:
            return None
        for consent in sorted(
            await self._active_consents(case_id), key=lambda k: k.valid_until, reverse=True
        ):
            if to_org_id in consent.scope["org_ids"]:
                return domain.CrossOrgConsent(
                    consent.consent_id, bool(consent.scope.get("history_travels", False))
                )
        return None

    async def request_handover(
        self,
        principal: Principal,
        case_id: str,
        *,
        to_person_id: str,
        to_unit_id: str,
        note: str | None,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)
        unit = await self._unit(to_unit_id)
        if not await self._has_role(to_person_id, to_unit_id):
            raise HandlerError(422, "not_at_unit", "Mottakeren har ingen rolle ved enheten.")
        handover_id = new_id()

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.RequestHandover(
                handover_id=handover_id,
                to_person_id=to_person_id,
                to_unit_id=to_unit_id,
                to_org_id=unit.org_id,
                requested_by=principal.id,
                note=await self._encrypt(owner, case_id, note, "handover_note"),
                consent=await self._cross_org_consent(case_id, unit.org_id, state.org_id),
            )

        made_id, seq = await self._made(
            principal, case_id, make, if_match, idempotency_key, "handover_id"
        )
        return Written(made_id, seq, seq, {"id": made_id, "status": "pending", "case_version": seq})

    async def answer_handover(
        self,
        principal: Principal,
        case_id: str,
        handover_id: str,
        *,
        answer: str,
        reason: str | None,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        async with self.sessions() as session:
            pending = (
                await session.execute(
                    select(handovers).where(
                        handovers.c.handover_id == handover_id, handovers.c.case_id == case_id
                    )
                )
            ).first()
        # The receiver named is a person: a client whose id is the same is nobody here.
        addressee = (
            principal.kind == "person"
            and pending is not None
            and pending.to_person_id == principal.id
        )
        if answer == "cancel":
            await self.require(principal, "case:manage", case_id)
        elif not addressee and not await self.allowed(principal, "case:read", case_id):
            raise not_found()

        async def make(state: domain.CaseState) -> domain.Command:
            if answer == "accept":
                target = state.pending
                consent = (
                    await self._cross_org_consent(case_id, target.to_org_id, state.org_id)
                    if target is not None
                    else None
                )
                return domain.AcceptHandover(handover_id, principal.id, consent)
            if answer == "decline":
                owner = await self._owner(state, case_id)
                text = await self.cipher.encrypt(
                    owner, reason or "", aggregate=case_id, context="reason"
                )
                return domain.DeclineHandover(handover_id, principal.id, text)
            return domain.CancelHandover(handover_id, principal.id)

        written = await self._written(principal, case_id, make, if_match, idempotency_key)
        status = {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}[answer]
        return Written(
            handover_id,
            written.version,
            written.seq,
            {"id": handover_id, "status": status, "case_version": written.seq},
        )

    # --- measures, reports, close ---------------------------------------------------------

    async def add_measure(
        self,
        principal: Principal,
        case_id: str,
        *,
        title: str,
        goal: str,
        responsible_person_id: str,
        start: date,
        evaluate_by: date,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:write", case_id)
        measure_id = new_id()

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.AddMeasure(
                measure_id=measure_id,
                title=await self.cipher.encrypt(
                    owner, title, aggregate=case_id, context="measure_title"
                ),
                goal=await self.cipher.encrypt(
                    owner, goal, aggregate=case_id, context="measure_goal"
                ),
                responsible_person_id=responsible_person_id,
                start=start,
                evaluate_by=evaluate_by,
            )

        made_id, seq = await self._made(
            principal, case_id, make, if_match, idempotency_key, "measure_id"
        )
        return Written(made_id, seq, seq, {"id": made_id, "case_version": seq})

    async def evaluate_measure(
        self,
        principal: Principal,
        case_id: str,
        measure_id: str,
        *,
        outcome: Outcome,
        note: str | None,
        next_evaluate_by: date | None,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:write", case_id)

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.EvaluateMeasure(
                measure_id,
                outcome,
                await self._encrypt(owner, case_id, note, "evaluation_note"),
                next_evaluate_by,
            )

        written = await self._written(principal, case_id, make, if_match, idempotency_key)
        return Written(
            measure_id,
            written.version,
            written.seq,
            {"id": measure_id, "outcome": outcome.value, "case_version": written.seq},
        )

    async def report_to_child_welfare(
        self,
        principal: Principal,
        case_id: str,
        *,
        text: str,
        unit_id: str | None = None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        """Send a report of concern to the child welfare service of the case's organisation
        (the one it names in the region document, else its own), or to ``unit_id``."""
        # Opplysningsplikt: never blocked for lack of consent; any staff may report.
        await self.require(principal, "case:report", case_id)
        if unit_id is not None:
            await self._child_welfare_unit(unit_id)
        report_id = new_id()

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.ReportToChildWelfare(
                report_id,
                await self.cipher.encrypt(owner, text, aggregate=case_id, context="report"),
                principal.id,
                unit_id or await self._child_welfare_service(state.org_id),
            )

        _case, seq, events, _state = await self._commit(
            principal, case_id, make, idempotency_key=idempotency_key
        )
        sent = next((e for e in events if isinstance(e, ChildWelfareReported)), None)
        if sent is None:
            raise unavailable_problem("Saken kunne ikke leses; prøv igjen.")
        body = {
            "id": sent.report_id,
            "unit_id": sent.unit_id,
            "status": "sent",
            "case_version": seq,
        }
        return Written(sent.report_id, seq, seq, body)

    async def _child_welfare_unit(self, unit_id: str) -> str:
        """``unit_id`` when it is an open child welfare unit, else 422."""
        async with self.sessions() as session:
            unit = (await session.execute(select(units).where(units.c.unit_id == unit_id))).first()
        if unit is None or unit.closed or unit.sector != "child_welfare":
            raise HandlerError(
                422, "not_child_welfare", "Enheten er ikke en barneverntjeneste i katalogen."
            )
        return unit_id

    async def _child_welfare_service(self, org_id: str) -> str:
        """The child welfare unit that receives the organisation's reports: the one the
        region document names for it (an inter-municipal service), else its own."""
        async with self.sessions() as session:
            named = await session.scalar(
                select(child_welfare_services.c.unit_id).where(
                    child_welfare_services.c.org_id == org_id
                )
            )
            if named is None:
                named = await session.scalar(
                    select(units.c.unit_id)
                    .where(
                        units.c.org_id == org_id,
                        units.c.sector == "child_welfare",
                        units.c.closed.is_(False),
                    )
                    .order_by(units.c.unit_id)
                    .limit(1)
                )
        if named is None:
            raise HandlerError(
                422,
                "no_child_welfare_service",
                "Virksomheten har ingen barneverntjeneste i katalogen; oppgi hvilken "
                "barneverntjeneste meldingen skal til (unit_id).",
            )
        return await self._child_welfare_unit(str(named))

    async def _intake_units(self, principal: Principal) -> list[str]:
        """The child welfare units where the principal takes in reports (decision 0026)."""
        if principal.kind != "person":
            return []
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(roles.c.unit_id)
                        .join(units, units.c.unit_id == roles.c.unit_id)
                        .where(
                            roles.c.person_id == principal.id,
                            roles.c.role.in_(INTAKE_ROLES),
                            units.c.sector == "child_welfare",
                            units.c.closed.is_(False),
                        )
                        .distinct()
                    )
                ).all()
            )

    async def _report_row(self, report_id: str) -> Any:
        async with self.sessions() as session:
            return (
                await session.execute(select(reports).where(reports.c.report_id == report_id))
            ).first()

    async def _report_reader(
        self, principal: Principal, row: Any, intake_action: str
    ) -> tuple[AccessDecision, bool]:
        """The decision that lets the principal see the report, and whether they see it as
        its intake (else as its reporter); 404 for everyone else, as for an unknown report.
        The reporter sees what they sent and its status; the intake staff of the service it
        was sent to see it with the child, never the rest of the case."""
        if row is None:
            raise not_found()
        if intake_action == "case:report_read" and principal.id == row.reported_by:
            decision = await self.decision(principal, "case:report", row.case_id)
            if decision.permitted and principal.kind == "person":
                return decision, False
        decision = await self.decision(principal, intake_action, row.case_id)
        if not decision.permitted or row.unit_id not in await self._intake_units(principal):
            raise not_found()
        return decision, True

    async def child_welfare_report(self, principal: Principal, report_id: str) -> dict[str, Any]:
        row = await self._report_row(report_id)
        decision, intake = await self._report_reader(principal, row, "case:report_read")
        async with self.sessions() as session:
            case = (
                await session.execute(
                    select(cases.c.org_id, cases.c.child_id).where(cases.c.case_id == row.case_id)
                )
            ).first()
            child = (
                (
                    await session.execute(
                        select(children).where(children.c.child_id == case.child_id)
                    )
                ).first()
                if intake and case is not None and case.child_id
                else None
            )
        if case is None:
            raise not_found()
        await self._record_read(principal, row.case_id, case.org_id, decision, what="report")
        body = _report_summary(row)
        # Text written before the child was identified is under the case's own key.
        body["text"] = await self._decrypt_first(
            (case.child_id or row.case_id, row.case_id), row.text, "report", aggregate=row.case_id
        )
        if intake:
            body["child"] = await self._child(child) if child is not None else None
            body["received_by"] = row.received_by
        return body

    async def child_welfare_inbox(
        self, principal: Principal, *, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The reports sent to the child welfare units where the principal takes in reports,
        oldest first, without their text: each case asked of the consent service."""
        mine = await self._intake_units(principal)
        if not mine:
            return [], None
        stmt = select(reports).where(reports.c.unit_id.in_(mine)).order_by(reports.c.report_id)
        if status is not None:
            stmt = stmt.where(reports.c.status == status)
        if cursor is not None:
            stmt = stmt.where(reports.c.report_id > cursor)
        async with self.sessions() as session:
            rows = (await session.execute(stmt.limit(limit + 1))).all()
        page, more = rows[:limit], len(rows) > limit
        try:
            permitted = set(
                await self.access.filter(
                    principal, "case:report_read", list(dict.fromkeys(r.case_id for r in page))
                )
            )
        except AccessUnavailable:
            raise unavailable() from None
        items = [_report_summary(r) for r in page if r.case_id in permitted]
        return items, page[-1].report_id if more and page else None

    async def case_reports(
        self, principal: Principal, case_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The reports the caller sent in the case, oldest first, with their status: what the
        reporter needs to see that the report arrived, nothing about anyone else's."""
        await self.require(principal, "case:report", case_id)
        stmt = (
            select(reports)
            .where(reports.c.case_id == case_id, reports.c.reported_by == principal.id)
            .order_by(reports.c.report_id)
        )
        if cursor is not None:
            stmt = stmt.where(reports.c.report_id > cursor)
        async with self.sessions() as session:
            rows = (await session.execute(stmt.limit(limit + 1))).all()
        page = rows[:limit]
        return [_report_summary(r) for r in page], (
            page[-1].report_id if len(rows) > limit else None
        )

    async def receive_report(
        self,
        principal: Principal,
        report_id: str,
        *,
        idempotency_key: ClientKey | None,
    ) -> Written:
        """The intake of the child welfare service a report was sent to acknowledges it."""
        row = await self._report_row(report_id)
        await self._report_reader(principal, row, "case:report_receive")

        async def make(_state: domain.CaseState) -> domain.Command:
            return domain.ReceiveReport(report_id, str(row.unit_id), principal.id)

        _case, seq, _events, _state = await self._commit(
            principal, row.case_id, make, idempotency_key=idempotency_key
        )
        body = {"id": report_id, "status": "received", "case_version": seq}
        return Written(report_id, seq, seq, body)

    async def close(
        self,
        principal: Principal,
        case_id: str,
        reason: CloseReason,
        note: str | None,
        *,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.CloseCase(reason, await self._encrypt(owner, case_id, note, "close_note"))

        return await self._written(principal, case_id, make, if_match, idempotency_key)

    async def reopen(
        self,
        principal: Principal,
        case_id: str,
        reason: str,
        *,
        if_match: int | None,
        idempotency_key: ClientKey | None,
    ) -> Written:
        await self.require(principal, "case:manage", case_id)

        async def make(state: domain.CaseState) -> domain.Command:
            owner = await self._owner(state, case_id)
            return domain.ReopenCase(
                await self.cipher.encrypt(owner, reason, aggregate=case_id, context="reason")
            )

        return await self._written(principal, case_id, make, if_match, idempotency_key)

    # --- reading --------------------------------------------------------------------------

    async def _decrypt(
        self, owner: str, token: str | None, context: str, *, aggregate: str
    ) -> str | None:
        """A field of an event of ``aggregate``; None when it cannot be read: shredded at the
        end of retention (gone for good), or not written for this aggregate and field."""
        if token is None:
            return None
        try:
            return await self.cipher.decrypt(owner, token, aggregate=aggregate, context=context)
        except CryptoError:
            return None

    async def _decrypt_first(
        self, owners: Sequence[str], token: str | None, context: str, *, aggregate: str
    ) -> str | None:
        for owner in dict.fromkeys(owners):
            text = await self._decrypt(owner, token, context, aggregate=aggregate)
            if text is not None:
                return text
        return None

    async def view(
        self, principal: Principal, case_id: str, min_seq: int | None = None
    ) -> dict[str, Any]:
        # A Stafett-Min-Seq was waited for before the request was served (MinSeqMiddleware).
        decision = await self.decision(principal, "case:read", case_id, min_seq)
        if not decision.permitted:
            raise not_found()
        async with self.sessions() as session:
            row = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
            if row is None:
                raise not_found()
            members = (await session.execute(select(team).where(team.c.case_id == case_id))).all()
            measure_rows = (
                await session.execute(
                    select(measures)
                    .where(measures.c.case_id == case_id)
                    .order_by(measures.c.measure_id)
                )
            ).all()
            level_rows = (
                await session.execute(
                    select(level_history)
                    .where(level_history.c.case_id == case_id)
                    .order_by(level_history.c.seq)
                )
            ).all()
            handover_rows = (
                await session.execute(
                    select(handovers)
                    .where(handovers.c.case_id == case_id)
                    .order_by(handovers.c.requested_at, handovers.c.handover_id)
                )
            ).all()
            child = (
                (
                    await session.execute(
                        select(children).where(children.c.child_id == row.child_id)
                    )
                ).first()
                if row.child_id
                else None
            )
        await self._record_read(principal, case_id, row.org_id, decision)
        owner = row.child_id or case_id
        history_from = as_utc(row.history_from)
        visible_measures = [
            m for m in measure_rows if history_from is None or as_utc(m.added_at) >= history_from
        ]
        pending = next((h for h in handover_rows if h.status == "pending"), None)
        accepted = [as_utc(h.answered_at) for h in handover_rows if h.status == "accepted"]
        return {
            "id": row.case_id,
            "org_id": row.org_id,
            "unit_id": row.unit_id,
            "level": row.level,
            "status": row.status,
            "holder": {"person_id": row.holder_id, "unit_id": row.holder_unit_id},
            "child": (
                await self._child(child)
                if child is not None
                else {
                    "pseudonym": await self._decrypt(
                        owner, row.pseudonym, "pseudonym", aggregate=case_id
                    )
                }
            ),
            # Text written before the child was identified is under the case's own key.
            "concern": (
                await self._decrypt_first(
                    (owner, case_id), row.concern, "concern", aggregate=case_id
                )
                if history_from is None
                else None
            ),
            "opened_at": row.opened_at,
            "closed_at": row.closed_at,
            "close_reason": row.close_reason,
            "history_from": history_from,
            "team": [
                {
                    "person_id": m.person_id,
                    "unit_id": m.unit_id,
                    "org_id": m.org_id,
                    "access": m.access,
                }
                for m in members
            ],
            "measures": [
                {
                    "id": m.measure_id,
                    "title": await self._decrypt(
                        owner, m.title, "measure_title", aggregate=case_id
                    ),
                    "goal": await self._decrypt(owner, m.goal, "measure_goal", aggregate=case_id),
                    "responsible_person_id": m.responsible_person_id,
                    "start": m.start,
                    "evaluate_by": m.evaluate_by,
                    "last_outcome": m.last_outcome,
                }
                for m in visible_measures
            ],
            "pending_handover": (
                {
                    "id": pending.handover_id,
                    "to_person_id": pending.to_person_id,
                    "to_unit_id": pending.to_unit_id,
                    "to_org_id": pending.to_org_id,
                    "requested_at": pending.requested_at,
                }
                if pending is not None
                else None
            ),
            "level_history": [
                {
                    "level": lv.level,
                    "previous_level": lv.previous_level,
                    # A reason given before the history stopped travelling stays behind.
                    "reason": (
                        await self._decrypt_first(
                            (owner, case_id), lv.reason, "reason", aggregate=case_id
                        )
                        if history_from is None or as_utc(lv.changed_at) >= history_from
                        else None
                    ),
                    "changed_at": as_utc(lv.changed_at),
                    "by_person_id": lv.by_person_id,
                }
                for lv in level_rows
            ],
            "handovers": [
                await self._handover_item(h, owner, case_id)
                for h in handover_rows
                if _handover_visible(h, history_from)
            ],
            "holder_since": max(accepted, default=None) or as_utc(row.opened_at),
            "version": row.version,
        }

    async def _child(self, child: Any) -> dict[str, Any]:
        """The child's identity as the reader sees it (a shredded name or id is None)."""
        return {
            "id": child.child_id,
            "name": await self._decrypt(
                child.child_id, child.name, "name", aggregate=child.child_id
            ),
            "national_id": await self._decrypt(
                child.child_id, child.national_id, "national_id", aggregate=child.child_id
            ),
        }

    async def _record_read(
        self,
        principal: Principal,
        case_id: str,
        tenant: str,
        decision: AccessDecision,
        *,
        what: ReadWhat = "case",
    ) -> None:
        try:
            await record_access(
                self.store,
                case_id=case_id,
                tenant=tenant,
                principal=principal,
                basis=decision.basis,
                decision_id=decision.decision_id,
                what=what,
                service="case",
            )
        except Exception:  # noqa: BLE001 - a read that is not recorded is not served
            raise unavailable() from None

    async def _handover_item(self, h: Any, owner: str, case_id: str) -> dict[str, Any]:
        return {
            "id": h.handover_id,
            "from_person_id": h.from_person_id,
            "from_unit_id": h.from_unit_id,
            "to_person_id": h.to_person_id,
            "to_unit_id": h.to_unit_id,
            "to_org_id": h.to_org_id,
            "status": h.status,
            "requested_at": as_utc(h.requested_at),
            "answered_at": as_utc(h.answered_at),
            # Text written before the child was identified is under the case's own key.
            "note": await self._decrypt_first(
                (owner, case_id), h.note, "handover_note", aggregate=case_id
            ),
            "decline_reason": await self._decrypt_first(
                (owner, case_id), h.decline_reason, "reason", aggregate=case_id
            ),
        }

    async def handover(
        self, principal: Principal, case_id: str, handover_id: str, min_seq: int | None = None
    ) -> dict[str, Any]:
        """The header a receiver needs to decide on a handover: who asks, to whom, the
        case's level and unit, the note; never the log or the child. Anyone who may read the
        case sees it; the receiver named sees it while it waits for their answer."""
        decision = await self.decision(principal, "case:read", case_id, min_seq)
        reader = decision.permitted
        if not reader:
            decision = await self.decision(principal, "case:handover", case_id, min_seq)
            if not decision.permitted:
                raise not_found()
        async with self.sessions() as session:
            row = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
            h = (
                await session.execute(
                    select(handovers).where(
                        handovers.c.handover_id == handover_id, handovers.c.case_id == case_id
                    )
                )
            ).first()
        if row is None or h is None:
            raise not_found()
        if reader:
            visible = _handover_visible(h, as_utc(row.history_from))
        else:
            visible = (
                principal.kind == "person"
                and h.status == "pending"
                and h.to_person_id == principal.id
            )
        if not visible:
            raise not_found()
        await self._record_read(principal, case_id, row.org_id, decision)
        owner = row.child_id or case_id
        return {
            "id": h.handover_id,
            "case_id": case_id,
            "status": h.status,
            "level": row.level,
            "unit_id": row.unit_id,
            "org_id": row.org_id,
            "from_person_id": h.from_person_id,
            "from_unit_id": h.from_unit_id,
            "to_person_id": h.to_person_id,
            "to_unit_id": h.to_unit_id,
            "to_org_id": h.to_org_id,
            "requested_at": as_utc(h.requested_at),
            "note": await self._decrypt_first(
                (owner, case_id), h.note, "handover_note", aggregate=case_id
            ),
        }

    async def waiting_for(self, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
        """The handovers waiting for this person's answer, each as its header: every one is
        decided and recorded through :meth:`handover`, one that is not permitted is left out."""
        if principal.kind != "person":
            return []
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(handovers.c.case_id, handovers.c.handover_id)
                    .where(
                        handovers.c.to_person_id == principal.id,
                        handovers.c.status == "pending",
                    )
                    .order_by(handovers.c.requested_at)
                    .limit(limit)
                )
            ).all()
        headers: list[dict[str, Any]] = []
        for row in rows:
            try:
                headers.append(await self.handover(principal, row.case_id, row.handover_id))
            except HandlerError as exc:
                if exc.status != 404:
                    raise
        return headers

    async def list_cases(  # noqa: PLR0912 - one branch per filter
        self,
        principal: Principal,
        *,
        unit_id: str | None,
        level: int | None,
        status: str | None,
        holder_me: bool,
        limit: int,
        cursor: str | None,
        member_me: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        conditions: list[Any] = []
        if unit_id:
            conditions.append(cases.c.unit_id == unit_id)
        if level is not None:
            conditions.append(cases.c.level == level)
        if status:
            conditions.append(cases.c.status == status)
        if holder_me:
            conditions.append(cases.c.holder_id == principal.id)
        if member_me:
            on_team = select(team.c.case_id).where(team.c.person_id == principal.id)
            conditions.append(or_(cases.c.holder_id == principal.id, cases.c.case_id.in_(on_team)))
        visible: list[Any] = []
        after = cursor
        for _round in range(20):  # bounded: at most 20 × 500 candidates per page
            stmt = select(cases).order_by(cases.c.case_id).limit(500)
            if conditions:
                stmt = stmt.where(and_(*conditions))
            if after:
                stmt = stmt.where(cases.c.case_id > after)
            async with self.sessions() as session:
                rows = (await session.execute(stmt)).all()
            if not rows:
                after = None
                break
            try:
                permitted = set(
                    await self.access.filter(principal, "case:read", [r.case_id for r in rows])
                )
            except AccessUnavailable:
                raise unavailable() from None
            for row in rows:
                if row.case_id in permitted:
                    visible.append(row)
                    if len(visible) == limit:
                        return await self._summaries(visible), row.case_id
            after = rows[-1].case_id
            if len(rows) < 500:
                after = None
                break
        return await self._summaries(visible), after

    async def _summaries(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """The list's items, with each case's next evaluation date (of the measures its
        reader sees) and its pending handover: two queries for the page."""
        ids = [r.case_id for r in rows]
        if not ids:
            return []
        async with self.sessions() as session:
            due: dict[str, date] = dict(
                (
                    await session.execute(
                        select(measures.c.case_id, func.min(measures.c.evaluate_by))
                        .join(cases, cases.c.case_id == measures.c.case_id)
                        .where(
                            measures.c.case_id.in_(ids),
                            or_(
                                cases.c.history_from.is_(None),
                                measures.c.added_at >= cases.c.history_from,
                            ),
                        )
                        .group_by(measures.c.case_id)
                    )
                ).all()
            )
            pending = {
                h.case_id: h
                for h in (
                    await session.execute(
                        select(handovers).where(
                            handovers.c.case_id.in_(ids), handovers.c.status == "pending"
                        )
                    )
                ).all()
            }
        return [_summary(r, due.get(r.case_id), pending.get(r.case_id)) for r in rows]


def _report_summary(row: Any) -> dict[str, Any]:
    """A report of concern without its text: where it comes from, where it went, its status."""
    return {
        "id": row.report_id,
        "case_id": row.case_id,
        "unit_id": row.unit_id,
        "from_org_id": row.from_org_id,
        "from_unit_id": row.from_unit_id,
        "reported_by": row.reported_by,
        "reported_at": as_utc(row.reported_at),
        "status": row.status,
        "received_at": as_utc(row.received_at),
    }


def _handover_visible(h: Any, history_from: datetime | None) -> bool:
    """Whether a handover is part of the history its reader sees: when the history did not
    travel to a new organisation, the handovers from that moment on, and the one that brought
    the case over (its note is meant for the receiver; DOMAIN.md)."""
    if history_from is None:
        return True
    answered = as_utc(h.answered_at)
    return as_utc(h.requested_at) >= history_from or (
        answered is not None and answered >= history_from
    )


def _summary(row: Any, next_evaluate_by: date | None, pending: Any) -> dict[str, Any]:
    return {
        "id": row.case_id,
        "org_id": row.org_id,
        "unit_id": row.unit_id,
        "level": row.level,
        "status": row.status,
        "holder": {"person_id": row.holder_id, "unit_id": row.holder_unit_id},
        "opened_at": row.opened_at,
        "next_evaluate_by": next_evaluate_by,
        "pending_handover": (
            {
                "id": pending.handover_id,
                "to_person_id": pending.to_person_id,
                "to_unit_id": pending.to_unit_id,
            }
            if pending is not None
            else None
        ),
        "version": row.version,
    }


__all__ = ["CaseService", "HandlerError", "Written", "not_found"]
