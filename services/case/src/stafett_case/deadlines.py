"""Deadlines the case service watches and publishes for notify (DOMAIN.md: the holder's duties
have deadlines the system watches). Each deadline is published once per due date, as
``no.stafett.case.deadline_due.v1`` on the subject ``<case id>-deadlines``, so that it does
not move the case's version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, select

from stafett_case.projections import (
    cases,
    deadlines_sent,
    handovers,
    measures,
    organisation_reminders,
    roles,
)
from stafett_shared.contracts.case import DeadlineDue
from stafett_shared.db import sessionmaker, upsert, writer
from stafett_shared.envelope import registry
from stafett_shared.eventstore import DuplicateAppend
from stafett_shared.settings import REMINDER_FIELDS

if TYPE_CHECKING:
    from stafett_case.handlers import CaseService


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """The region's reminder times; an organisation's own settings replace each."""

    level0_days: int = 14
    evaluation_warning_days: int = 7
    handover_days: int = 3
    inactive_days: int = 60


class _Policies:
    """The policy of each organisation: the region's, with the times it set in their place."""

    def __init__(self, region: DeadlinePolicy, own: dict[str, DeadlinePolicy]) -> None:
        self.region = region
        self.own = own

    def of(self, org_id: str | None) -> DeadlinePolicy:
        return self.own.get(org_id or "", self.region)

    def widest(self) -> DeadlinePolicy:
        """The longest warning and the shortest handover wait of them all: what the queries
        fetch before each row is held against its own organisation's policy."""
        every = [self.region, *self.own.values()]
        return replace(
            self.region,
            evaluation_warning_days=max(p.evaluation_warning_days for p in every),
            handover_days=min(p.handover_days for p in every),
        )


async def _policies(session: Any, region: DeadlinePolicy) -> _Policies:
    rows = (await session.execute(select(organisation_reminders))).mappings().all()
    return _Policies(
        region,
        {
            row["org_id"]: replace(
                region, **{name: row[name] for name in REMINDER_FIELDS if row[name] is not None}
            )
            for row in rows
        },
    )


async def _leaders(session: Any, unit_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(roles.c.person_id).where(
                    roles.c.unit_id == unit_id, roles.c.role == "leader"
                )
            )
        ).all()
    )


async def due_deadlines(
    service: CaseService, region: DeadlinePolicy, now: datetime
) -> list[DeadlineDue]:
    """Every deadline that is due at ``now``, whether or not it was published already, each
    by the reminder times of its case's organisation."""
    today = now.date()
    found: list[DeadlineDue] = []
    async with service.sessions() as session:
        policies = await _policies(session, region)
        widest = policies.widest()
        open_cases = (await session.execute(select(cases).where(cases.c.status == "open"))).all()
        for case in open_cases:
            policy = policies.of(case.org_id)
            holder = (case.holder_id,)
            if case.level == 0:
                due = (case.level_changed_at + timedelta(days=policy.level0_days)).date()
                if today >= due:
                    found.append(
                        DeadlineDue(
                            case_id=case.case_id,
                            kind="level0_unresolved",
                            due_on=due,
                            notify_person_ids=holder,
                        )
                    )
            last = case.last_entry_at or case.opened_at
            inactive_due = (last + timedelta(days=policy.inactive_days)).date()
            if today >= inactive_due:
                found.append(
                    DeadlineDue(
                        case_id=case.case_id,
                        kind="inactive",
                        due_on=inactive_due,
                        notify_person_ids=holder,
                    )
                )
            still_there = await session.scalar(
                select(roles.c.person_id).where(
                    roles.c.person_id == case.holder_id, roles.c.unit_id == case.holder_unit_id
                )
            )
            if still_there is None:
                found.append(
                    DeadlineDue(
                        case_id=case.case_id,
                        kind="holder_left_unit",
                        due_on=today,
                        notify_person_ids=tuple(await _leaders(session, case.unit_id)),
                    )
                )
        due_measures = (
            await session.execute(
                select(measures, cases.c.holder_id, cases.c.org_id)
                .join(cases, cases.c.case_id == measures.c.case_id)
                .where(
                    cases.c.status == "open",
                    measures.c.evaluate_by.is_not(None),
                    measures.c.evaluate_by
                    <= today + timedelta(days=widest.evaluation_warning_days),
                )
            )
        ).all()
        for m in due_measures:
            warning = timedelta(days=policies.of(m.org_id).evaluation_warning_days)
            if m.evaluate_by > today + warning:
                continue
            kind: Literal["measure_evaluation_due", "measure_evaluation_soon"] = (
                "measure_evaluation_due" if today >= m.evaluate_by else "measure_evaluation_soon"
            )
            found.append(
                DeadlineDue(
                    case_id=m.case_id,
                    kind=kind,
                    due_on=m.evaluate_by,
                    ref_id=m.measure_id,
                    notify_person_ids=tuple(dict.fromkeys((m.holder_id, m.responsible_person_id))),
                )
            )
        waiting = (
            await session.execute(
                select(handovers, cases.c.org_id)
                .outerjoin(cases, cases.c.case_id == handovers.c.case_id)
                .where(
                    handovers.c.status == "pending",
                    handovers.c.requested_at <= now - timedelta(days=widest.handover_days),
                )
            )
        ).all()
        for h in waiting:
            wait = timedelta(days=policies.of(h.org_id).handover_days)
            if h.requested_at > now - wait:
                continue
            found.append(
                DeadlineDue(
                    case_id=h.case_id,
                    kind="handover_unanswered",
                    due_on=(h.requested_at + wait).date(),
                    ref_id=h.handover_id,
                    notify_person_ids=tuple(dict.fromkeys((h.to_person_id, h.from_person_id))),
                )
            )
    return found


async def publish_due(
    service: CaseService,
    policy: DeadlinePolicy,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish the deadlines not published before; returns how many were published."""
    now = clock()
    published = 0
    writes = sessionmaker(writer(service.projector.engine))
    for deadline in await due_deadlines(service, policy, now):
        ref = deadline.ref_id or "-"
        async with service.sessions() as session:
            seen = await session.scalar(
                select(deadlines_sent.c.seq).where(
                    and_(
                        deadlines_sent.c.case_id == deadline.case_id,
                        deadlines_sent.c.kind == deadline.kind,
                        deadlines_sent.c.ref_id == ref,
                        deadlines_sent.c.due_on == deadline.due_on,
                    )
                )
            )
        if seen is not None:
            continue
        aggregate = f"{deadline.case_id}-deadlines"
        tenant = await _tenant(service, deadline.case_id)
        event = registry.envelope(
            deadline,
            subject=aggregate,
            source="stafett/case",
            tenant=tenant,
            actor="stafett-case",
            time=now,
        )
        key = f"deadline-{deadline.case_id}-{deadline.kind}-{ref}-{deadline.due_on.isoformat()}"
        try:
            result = await service.store.append(
                service.store.subject("case", aggregate),
                [event],
                expected_version=None,
                idempotency_key=key,
            )
            seq = result.seq
        except DuplicateAppend as repeat:
            seq = repeat.seq
        async with writes() as session, session.begin():
            await upsert(
                session,
                deadlines_sent,
                {
                    "case_id": deadline.case_id,
                    "kind": deadline.kind,
                    "ref_id": ref,
                    "due_on": deadline.due_on,
                    "seq": seq,
                },
                update=False,
            )
        published += 1
    return published


async def _tenant(service: CaseService, case_id: str) -> str:
    async with service.sessions() as session:
        org = await session.scalar(select(cases.c.org_id).where(cases.c.case_id == case_id))
    return str(org or "region")


__all__ = ["DeadlinePolicy", "due_deadlines", "publish_due"]
