"""The event feed for agencies' clients (issue 20 item 3, decision 0041).

``GET /api/v1/feed`` reads the stream itself from a position and translates the stream's
events of a small fixed set (:mod:`stafett_shared.contracts.feed`) into integration events.
The consent service hosts it because the decision is its own: a case's events are given to a
client only where a consent in force now names the client's organisation and one of its
sectors (the rule ``client_consent``, decision 0039) **and** was in force when the event
happened (its ``valid_from`` is not after the event's time), and only the types whose scope
the client holds. Every batch records one read per case it serves (``access.recorded``,
``reader_kind`` client), before it is answered.

The position is the stream's own: a cursor holds the sequence of the next commit to read and
how many of its events were served already, bound to the client, so it survives any restart
of any service. Delivery is at least once; each integration event's ``id`` is the stream
event's id, the same every time it is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from stafett_consent.handlers import ConsentService, HandlerError
from stafett_consent.policy import Action
from stafett_consent.projections import cases, clients, consents
from stafett_shared import contracts
from stafett_shared.access import record_access
from stafett_shared.auth import Principal
from stafett_shared.contracts import case as case_events
from stafett_shared.contracts import consent as consent_events
from stafett_shared.contracts import feed
from stafett_shared.contracts import log as log_events
from stafett_shared.contracts.access import AccessDecision, ReadWhat
from stafett_shared.crypto import CryptoError
from stafett_shared.db import as_utc
from stafett_shared.envelope import CloudEvent, EnvelopeError, EventData, decode_commit, registry
from stafett_shared.eventstore import StoredCommit
from stafett_shared.logging import get_logger
from stafett_shared.paging import decode_key_cursor, encode_key_cursor
from stafett_shared.problems import Problem
from stafett_shared.projector import ProjectionBehind

__all__ = ["MAX_FEED_LIMIT", "MAX_SCAN", "MAX_TYPES", "MAX_WAIT", "Batch", "Feed", "Position"]

log = get_logger(__name__)

MAX_WAIT = 30
"""The longest ``wait`` (seconds) a request may hold."""
MAX_TYPES = len(feed.FEED_TYPES)
MAX_FEED_LIMIT = 500
"""The most events one batch holds."""
MAX_SCAN = 2000
"""The most commits one pass reads; a batch that finds nothing in them answers at once, with
the cursor after them."""
_CURSOR = "feed"
_POSITION = re.compile(r"^(?P<seq>[1-9][0-9]{0,18})-(?P<skip>0|[1-9][0-9]{0,2})$")


@dataclass(frozen=True, slots=True)
class Position:
    """The next event to read: commit ``seq``, after its first ``skip`` events."""

    seq: int = 1
    skip: int = 0

    def cursor(self, client_id: str) -> str:
        return encode_key_cursor(_CURSOR, client_id, f"{self.seq}-{self.skip}")

    @classmethod
    def of(cls, cursor: str | None, client_id: str) -> Position:
        if cursor is None:
            return cls()
        found = _POSITION.fullmatch(decode_key_cursor(cursor, _CURSOR, client_id))
        if found is None or int(found["seq"]) > 2**63 - 1:
            raise Problem(422, "invalid_cursor", "Markøren er ugyldig.")
        return cls(int(found["seq"]), int(found["skip"]))


@dataclass(slots=True)
class Batch:
    events: list[dict[str, Any]] = field(default_factory=list)
    next: Position = field(default_factory=Position)


@dataclass(frozen=True, slots=True)
class _Registration:
    org_id: str
    scopes: frozenset[str]
    sectors: frozenset[str]


@dataclass(slots=True)
class _Pass:
    """What one request has decided so far: a case is asked about once per action."""

    decisions: dict[tuple[str, str], AccessDecision | None] = field(default_factory=dict)
    naming: dict[str, dict[str, datetime] | None] = field(default_factory=dict)
    """Per case: its active consents that name the client's organisation and a sector of
    its, with when each began (None: no consent of the case names them)."""
    served: dict[tuple[str, ReadWhat], tuple[AccessDecision, list[str]]] = field(
        default_factory=dict
    )
    """Per case and what was served of it: the decision and the entries."""


def translate(payload: EventData) -> feed.FeedEvent | None:  # noqa: PLR0911 - one per type
    """The integration event a stream event becomes, or None for one the feed does not
    carry. Pure: the entry's text is filled in later, where the client may read it."""
    match payload:
        case case_events.CaseOpened():
            return feed.CaseOpened(
                case_id=payload.case_id, org_id=payload.org_id, level=payload.level
            )
        case case_events.LevelChanged():
            return feed.LevelChanged(
                case_id=payload.case_id, from_level=payload.from_level, level=payload.level
            )
        case case_events.HandoverRequested():
            return feed.HandoverRequested(
                case_id=payload.case_id,
                handover_id=payload.handover_id,
                to_unit_id=payload.to_unit_id,
                to_org_id=payload.to_org_id,
            )
        case case_events.HandoverAccepted():
            return feed.HolderChanged(
                case_id=payload.case_id,
                handover_id=payload.handover_id,
                unit_id=payload.to_unit_id,
                org_id=payload.to_org_id,
            )
        case case_events.MeasureAdded():
            return feed.MeasureAdded(
                case_id=payload.case_id,
                measure_id=payload.measure_id,
                start=payload.start,
                evaluate_by=payload.evaluate_by,
            )
        case case_events.MeasureEvaluated():
            return feed.MeasureEvaluated(
                case_id=payload.case_id,
                measure_id=payload.measure_id,
                outcome=payload.outcome,
                evaluated_on=payload.evaluated_on,
                next_evaluate_by=payload.next_evaluate_by,
            )
        case case_events.CaseClosedEvent():
            return feed.CaseClosed(case_id=payload.case_id, reason=payload.reason)
        case case_events.CaseReopened():
            return feed.CaseReopened(case_id=payload.case_id)
        case (
            consent_events.ConsentActivated()
            | consent_events.ConsentRefused()
            | consent_events.ConsentWithdrawn()
            | consent_events.ConsentExpired()
        ):
            return feed.ConsentChanged(
                case_id=payload.case_id,
                consent_id=payload.consent_id,
                status=payload.consent_status,
            )
        case log_events.EntryAppended():
            return feed.EntryAppended(
                case_id=payload.case_id,
                entry_id=payload.entry_id,
                kind=payload.kind,
                occurred_at=payload.occurred_at,
                category=payload.category,
            )
    return None


class Feed:
    """Batches of integration events for one client at a time."""

    def __init__(self, service: ConsentService, *, prefix: str) -> None:
        self._service = service
        self._prefix = prefix

    async def batch(
        self,
        principal: Principal,
        after: Position,
        *,
        types: frozenset[str] | None,
        limit: int,
        wait: float,
    ) -> Batch:
        """Up to ``limit`` events of ``types`` (None: those its scopes cover) after ``after``;
        when there are none yet, wait up to ``wait`` seconds for the stream to grow, and
        answer as soon as some arrive."""
        registration = await self._registration(principal)
        if types is None:
            # The types its scopes cover. Types it names beyond them are asked about (once
            # a case), so that an attempt without the scope is recorded as a refusal.
            scopes = registration.scopes & principal.scopes if registration else frozenset()
            types = frozenset(n for n, model in feed.FEED_TYPES.items() if model.scope in scopes)
        wanted = types
        deadline = asyncio.get_running_loop().time() + wait
        wake = asyncio.Event()
        store = self._service.store

        async def woken(_msg: object) -> None:
            wake.set()

        subscription = await store.nc.subscribe(f"{self._prefix}.>", cb=woken) if wait else None
        try:
            while True:
                wake.clear()
                # Decided afresh each pass: a consent withdrawn while a request waits holds
                # for nothing that comes after.
                state = _Pass()
                out, at_end = await self._pass(principal, registration, after, wanted, limit, state)
                remaining = deadline - asyncio.get_running_loop().time()
                if out.events or not at_end or remaining <= 0 or registration is None:
                    await self._record(principal, state)
                    return out
                after = out.next
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await wake.wait()
                await asyncio.sleep(0.002)  # the store has it a moment after the news
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def _registration(self, principal: Principal) -> _Registration | None:
        if principal.kind != "client":
            return None
        async with self._service.sessions() as session:
            row = (
                await session.execute(
                    select(clients.c.org_id, clients.c.scopes, clients.c.sectors).where(
                        clients.c.client == principal.id
                    )
                )
            ).first()
        if row is None:
            return None
        return _Registration(row.org_id, frozenset(row.scopes or ()), frozenset(row.sectors or ()))

    async def _pass(  # noqa: PLR0917 - the one reading loop's state
        self,
        principal: Principal,
        registration: _Registration | None,
        after: Position,
        wanted: frozenset[str],
        limit: int,
        state: _Pass,
    ) -> tuple[Batch, bool]:
        """One read of the stream from ``after``: the batch, and whether it reached the
        stream's end."""
        commits = await self._service.store.read(after.seq, limit=MAX_SCAN, decode=False)
        out = Batch(next=after)
        for commit in commits:
            events = self._events(commit)
            skip = after.skip if commit.seq == after.seq else 0
            for index, event in enumerate(events):
                if index < skip:
                    continue
                if len(out.events) >= limit:
                    out.next = Position(commit.seq, index)
                    return out, False
                if registration is None or not wanted:
                    continue
                served = await self._serve(principal, registration, commit, event, wanted, state)
                if served is not None:
                    out.events.append(served)
            out.next = Position(commit.seq + 1, 0)
        return out, len(commits) < MAX_SCAN

    def _events(self, commit: StoredCommit) -> tuple[CloudEvent, ...]:
        """A commit's events, or none when it is not one the read side would apply (it is
        quarantined there; the feed passes it by)."""
        try:
            events = decode_commit(commit.data)
        except EnvelopeError:
            return ()
        if contracts.check_commit(commit.subject, events, prefix=self._prefix) is not None:
            return ()
        return events

    async def _serve(  # noqa: PLR0917
        self,
        principal: Principal,
        registration: _Registration,
        commit: StoredCommit,
        event: CloudEvent,
        wanted: frozenset[str],
        state: _Pass,
    ) -> dict[str, Any] | None:
        if event.context not in {"case", "log", "consent"}:
            return None
        payload = registry.payload(event)
        integration = translate(payload)
        if integration is None or integration.feed_type not in wanted:
            return None
        case_id = integration.case_id
        entry = isinstance(integration, feed.EntryAppended)
        action = Action.LOG_READ if entry else Action.CASE_READ
        entry_id = payload.entry_id if isinstance(payload, log_events.EntryAppended) else None
        basis = await self._basis(
            principal, registration, case_id, action, entry_id, commit.seq, state
        )
        if basis is None:
            return None
        decision, began = basis
        if event.time < began and not isinstance(integration, feed.ConsentChanged):
            return None  # before the consent that gives the basis
        what: ReadWhat = "entries" if entry else "case"
        _decision, entry_ids = state.served.setdefault((case_id, what), (decision, []))
        if isinstance(payload, log_events.EntryAppended):
            integration = integration.model_copy(
                update={"text": await self._text(case_id, payload)}
            )
            entry_ids.append(payload.entry_id)
        return feed.FeedCloudEvent(
            id=event.id,
            type=integration.feed_type,
            subject=case_id,
            time=event.time,
            data=integration.model_dump(mode="json"),
        ).model_dump(mode="json")

    async def _basis(  # noqa: PLR0917
        self,
        principal: Principal,
        registration: _Registration,
        case_id: str,
        action: Action,
        entry_id: str | None,
        seq: int,
        state: _Pass,
    ) -> tuple[AccessDecision, datetime] | None:
        """The decision that lets the client be given the case's event now, and since when
        the consent it rests on holds; None when it may not.

        The decision point is asked only about a case where a consent (in any state) names
        the client's organisation and one of its sectors: no other case is any of its business,
        and asking about every case in the region would fill the records with refusals that
        mean nothing. Each question is asked once per request."""
        if case_id not in state.naming:
            state.naming[case_id] = await self._consents_naming(registration, case_id)
        names = state.naming[case_id]
        if names is None:
            return None
        decision = await self._decide(principal, action, case_id, None, seq, state)
        if decision is not None and entry_id is not None:
            decision = await self._decide(principal, action, case_id, entry_id, seq, state)
        if decision is None or decision.consent_id not in names:
            return None
        return decision, names[decision.consent_id]

    async def _consents_naming(
        self, registration: _Registration, case_id: str
    ) -> dict[str, datetime] | None:
        """The case's active consents that name the client's organisation and one of its
        sectors, with when each began; None when no consent of the case, in any state,
        names them (the case is none of the client's business)."""
        async with self._service.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        consents.c.consent_id,
                        consents.c.status,
                        consents.c.scope,
                        consents.c.valid_from,
                    ).where(consents.c.case_id == case_id)
                )
            ).all()
        naming = [
            row
            for row in rows
            if registration.org_id in (row.scope.get("org_ids") or ())
            and registration.sectors & set(row.scope.get("sectors") or ())
        ]
        if not naming:
            return None
        return {row.consent_id: as_utc(row.valid_from) for row in naming if row.status == "active"}

    async def _decide(  # noqa: PLR0917
        self,
        principal: Principal,
        action: Action,
        case_id: str,
        entry_id: str | None,
        seq: int,
        state: _Pass,
    ) -> AccessDecision | None:
        key = (case_id, f"{action}:{entry_id}")
        if key in state.decisions:
            return state.decisions[key]
        try:
            decision = await self._service.decisions.check(
                principal.id,
                action,
                case_id,
                principal_kind="client",
                entry_id=entry_id,
                min_seq=seq,
                scopes=principal.scopes,
            )
        except ProjectionBehind:
            raise Problem(
                503,
                "unavailable",
                "Lesemodellen har ikke nådd hendelsene ennå. Prøv igjen om litt.",
                headers={"Retry-After": "1"},
            ) from None
        state.decisions[key] = decision if decision.permitted else None
        return state.decisions[key]

    async def _text(self, case_id: str, payload: EventData) -> str | None:
        assert isinstance(payload, log_events.EntryAppended)
        async with self._service.sessions() as session:
            child_id = await session.scalar(
                select(cases.c.child_id).where(cases.c.case_id == case_id)
            )
        for owner in dict.fromkeys((child_id or case_id, case_id)):
            with contextlib.suppress(CryptoError):
                return await self._service.cipher.decrypt(
                    owner, payload.text, aggregate=case_id, context="entry_text"
                )
        return None

    async def _record(self, principal: Principal, state: _Pass) -> None:
        """One read per case and kind the batch serves (``case``, ``entries``), before it
        is answered (a read that is not recorded is not served)."""
        if not state.served:
            return
        tenants = await self._tenants({case_id for case_id, _ in state.served})
        try:
            for (case_id, what), (decision, entry_ids) in state.served.items():
                await record_access(
                    self._service.store,
                    case_id=case_id,
                    tenant=tenants.get(case_id) or "region",
                    principal=principal,
                    basis=decision.basis,
                    decision_id=decision.decision_id,
                    what=what,
                    service="consent",
                    entry_ids=entry_ids,
                )
        except Exception:  # noqa: BLE001 - a read that is not recorded is not served
            raise HandlerError(503, "unavailable", "Lesingen kunne ikke registreres.") from None
        log.info("feed.served", client=principal.id, reads=len(state.served))

    async def _tenants(self, case_ids: Iterable[str]) -> Mapping[str, str]:
        async with self._service.sessions() as session:
            rows = (
                await session.execute(
                    select(cases.c.case_id, cases.c.org_id).where(
                        cases.c.case_id.in_(list(case_ids))
                    )
                )
            ).all()
        return {row.case_id: row.org_id for row in rows}
