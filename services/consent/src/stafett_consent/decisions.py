"""The policy decision point: answers ``(principal, action, resource, min_seq)`` and records
every answer. Permits are kept in the service's database; denials and auditors' permits are
also published as ``access.decision_recorded`` events. A decision that cannot be recorded is
a denial (fail closed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_consent.policy import (
    INDEXED_ACTIONS,
    POLICY_VERSION,
    Action,
    Decision,
    PolicySettings,
    decide,
)
from stafett_consent.projections import (
    filter_cases,
    indexed_permit,
    load_case_facts,
    load_entry_facts,
    load_principal_facts,
)
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.logging import get_logger
from stafett_shared.projector import Projector

audit_metadata = MetaData()
decision_records = Table(
    "decision_records",
    audit_metadata,
    Column("decision_id", String(26), primary_key=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("principal_kind", String(8), nullable=False),
    Column("action", String(32), nullable=False),
    Column("case_id", String(64), nullable=True),
    Column("entry_id", String(64), nullable=True),
    Column("decision", String(8), nullable=False),
    Column("basis", String(32), nullable=True),
    Column("consent_id", String(26), nullable=True),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("policy_version", String(32), nullable=False),
    Index("ix_decisions_case", "case_id", "decided_at"),
    Index("ix_decisions_principal", "principal_id", "decided_at"),
)
"""Not a projection: decisions are recorded as they are made, and a rebuild keeps them."""

_log = get_logger("stafett.consent.decisions")


@registry.register
class DecisionRecorded(EventData):
    event_type = "no.stafett.access.decision_recorded.v1"
    decision_id: str
    principal_id: str
    principal_kind: Literal["person", "client"]
    action: str
    case_id: str
    entry_id: str | None = None
    decision: Literal["permit", "deny"]
    basis: str | None = None
    consent_id: str | None = None
    reason: str
    detail: str
    policy_version: str


@dataclass(frozen=True, slots=True)
class DecisionOut:
    decision: Literal["permit", "deny"]
    basis: str | None
    consent_id: str | None
    reason: str
    decision_id: str
    policy_version: str

    @property
    def permitted(self) -> bool:
        return self.decision == "permit"


class DecisionPoint:
    """Decides and records. Callers may cache a permit for at most one second."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        writer_sessions: async_sessionmaker[AsyncSession],
        projector: Projector,
        store: EventStore,
        settings: PolicySettings | None = None,
        min_seq_wait_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._writer = writer_sessions
        self._projector = projector
        self._store = store
        self._settings = settings or PolicySettings()
        self._wait = min_seq_wait_s
        self._clock = clock

    async def check(
        self,
        principal_id: str,
        action: Action,
        case_id: str,
        *,
        principal_kind: Literal["person", "client"] = "person",
        entry_id: str | None = None,
        min_seq: int | None = None,
    ) -> DecisionOut:
        if min_seq:
            await self._projector.wait_for(min_seq, self._wait)
        now = self._clock()
        decision: Decision | None = None
        case_org: str | None = None
        async with self._sessions() as session:
            if entry_id is None and action in INDEXED_ACTIONS and principal_kind == "person":
                # Fast path: the access index holds exactly the grants the rules give (the
                # property test keeps the two equal), so a permit is one indexed query.
                decision, case_org = await indexed_permit(
                    session, principal_id, action, case_id, now
                )
            if decision is None:
                case = await load_case_facts(session, case_id)
                principal = await load_principal_facts(session, principal_id, principal_kind)
                entry = await load_entry_facts(session, entry_id) if entry_id else None
                case_org = case.org_id if case else None
                if entry_id and entry is None:
                    decision = Decision(False, None, "no_basis", "unknown entry")
                else:
                    decision = decide(
                        principal, action, case, now, entry=entry, settings=self._settings
                    )
        decision_id = new_id()
        try:
            await self._record(
                decision_id=decision_id,
                now=now,
                principal_id=principal_id,
                principal_kind=principal_kind,
                action=action,
                case_id=case_id,
                entry_id=entry_id,
                decision=decision,
                publish=case_org is not None,
                tenant=case_org,
            )
        except Exception as exc:  # noqa: BLE001 - an unrecorded decision is a denial
            _log.error("decision_not_recorded", error_type=type(exc).__name__)
            return DecisionOut("deny", None, None, "not_recorded", decision_id, POLICY_VERSION)
        return DecisionOut(
            "permit" if decision.permit else "deny",
            decision.basis,
            decision.consent_id,
            decision.reason,
            decision_id,
            decision.policy_version,
        )

    async def filter(
        self,
        principal_id: str,
        action: Action,
        case_ids: Sequence[str],
        *,
        principal_kind: Literal["person", "client"] = "person",
        min_seq: int | None = None,
    ) -> list[str]:
        """Which of ``case_ids`` the principal may ``action``: one query on the access index."""
        if min_seq:
            await self._projector.wait_for(min_seq, self._wait)
        now = self._clock()
        if principal_kind == "client":
            return []
        async with self._sessions() as session:
            if action in INDEXED_ACTIONS:
                return await filter_cases(session, principal_id, action.value, case_ids, now)
            principal = await load_principal_facts(session, principal_id)
            permitted = []
            for case_id in dict.fromkeys(case_ids):
                case = await load_case_facts(session, case_id)
                if decide(principal, action, case, now, settings=self._settings).permit:
                    permitted.append(case_id)
            return permitted

    async def _record(
        self,
        *,
        decision_id: str,
        now: datetime,
        principal_id: str,
        principal_kind: Literal["person", "client"],
        action: Action,
        case_id: str,
        entry_id: str | None,
        decision: Decision,
        publish: bool,
        tenant: str | None,
    ) -> None:
        async with self._writer() as session, session.begin():
            await session.execute(
                decision_records.insert().values(
                    decision_id=decision_id,
                    decided_at=now,
                    principal_id=principal_id,
                    principal_kind=principal_kind,
                    action=action.value,
                    case_id=case_id,
                    entry_id=entry_id,
                    decision="permit" if decision.permit else "deny",
                    basis=decision.basis,
                    consent_id=decision.consent_id,
                    reason=decision.reason,
                    detail=decision.detail,
                    policy_version=decision.policy_version,
                )
            )
        # Denials and auditors' reads become part of the audited history.
        if publish and tenant and (not decision.permit or decision.basis == "auditor"):
            payload = DecisionRecorded(
                decision_id=decision_id,
                principal_id=principal_id,
                principal_kind=principal_kind,
                action=action.value,
                case_id=case_id,
                entry_id=entry_id,
                decision="permit" if decision.permit else "deny",
                basis=decision.basis,
                consent_id=decision.consent_id,
                reason=decision.reason,
                detail=decision.detail,
                policy_version=decision.policy_version,
            )
            event: CloudEvent = registry.envelope(
                payload,
                subject=case_id,
                source="stafett/consent",
                tenant=tenant,
                actor=principal_id,
                time=now,
                event_id=decision_id,
            )
            await self._store.append(
                self._store.subject("access", case_id),
                [event],
                expected_version=None,
                idempotency_key=f"decision-{decision_id}",
            )

    async def records(
        self,
        *,
        case_id: str | None = None,
        principal_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[dict[str, object]]:
        """Recorded decisions, newest first (for auditors)."""
        stmt = select(decision_records).order_by(decision_records.c.decision_id.desc())
        if case_id:
            stmt = stmt.where(decision_records.c.case_id == case_id)
        if principal_id:
            stmt = stmt.where(decision_records.c.principal_id == principal_id)
        if since:
            stmt = stmt.where(decision_records.c.decided_at >= since)
        if before_id:
            stmt = stmt.where(decision_records.c.decision_id < before_id)
        async with self._sessions() as session:
            rows = (await session.execute(stmt.limit(limit))).mappings().all()
        return [dict(row) for row in rows]
