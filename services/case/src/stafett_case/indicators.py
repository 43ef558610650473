"""Indicators for the 0–24 cooperation (DOMAIN.md "Indicators"), from read models only, never
from text. Counts below 5 are shown as "<5" so that no child can be singled out, and a share
is given only when both its parts are at least 5."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from stafett_case.projections import cases, entries, evaluations, handovers, roles, units

if TYPE_CHECKING:
    from stafett_case.handlers import CaseService
    from stafett_shared.auth import Principal

SMALL = 5
SUPPRESSED = "<5"


def count(value: int) -> int | str:
    return value if value >= SMALL else SUPPRESSED


def share(part: int, whole: int) -> float | str:
    if whole < SMALL or (part < SMALL and part != 0):
        return SUPPRESSED
    return round(part / whole, 3)


async def indicators(
    service: CaseService, principal: Principal, org_id: str, start: date, end: date
) -> dict[str, Any]:
    """Indicators of one organisation for cases opened from ``start`` to ``end`` inclusive."""
    from stafett_case.handlers import HandlerError

    begin = datetime.combine(start, time.min, tzinfo=UTC)
    finish = datetime.combine(end, time.max, tzinfo=UTC)
    async with service.sessions() as session:
        may = await session.scalar(
            select(roles.c.person_id)
            .join(units, units.c.unit_id == roles.c.unit_id)
            .where(
                roles.c.person_id == principal.id,
                units.c.org_id == org_id,
                roles.c.role.in_(("leader", "coordinator")),
            )
        )
        if may is None or principal.kind != "person":
            raise HandlerError(
                403, "forbidden", "Indikatorer er for ledere og koordinatorer i virksomheten."
            )
        opened = (
            await session.execute(
                select(
                    cases.c.case_id,
                    cases.c.opened_level,
                    cases.c.opened_at,
                    cases.c.first_measure_at,
                ).where(
                    cases.c.org_id == org_id,
                    cases.c.opened_at >= begin,
                    cases.c.opened_at <= finish,
                )
            )
        ).all()
        case_ids = [row.case_id for row in opened]
        with_voice = (
            set(
                (
                    await session.scalars(
                        select(entries.c.case_id).where(
                            entries.c.case_id.in_(case_ids), entries.c.kind == "child_voice"
                        )
                    )
                ).all()
            )
            if case_ids
            else set()
        )
        evaluated = (
            await session.execute(
                select(evaluations.c.outcome, evaluations.c.evaluated_on, evaluations.c.due)
                .join(cases, cases.c.case_id == evaluations.c.case_id)
                .where(
                    cases.c.org_id == org_id,
                    evaluations.c.evaluated_on >= start,
                    evaluations.c.evaluated_on <= end,
                )
            )
        ).all()
        answered: dict[str, int] = dict(
            (
                await session.execute(
                    select(handovers.c.status, func.count())
                    .join(cases, cases.c.case_id == handovers.c.case_id)
                    .where(
                        cases.c.org_id == org_id,
                        handovers.c.requested_at >= begin,
                        handovers.c.requested_at <= finish,
                    )
                    .group_by(handovers.c.status)
                )
            ).all()
        )
    by_level: dict[str, int | str] = {}
    for level in range(4):
        by_level[str(level)] = count(sum(1 for row in opened if row.opened_level == level))
    days = [
        (row.first_measure_at - row.opened_at).total_seconds() / 86400
        for row in opened
        if row.first_measure_at is not None
    ]
    on_time = sum(1 for e in evaluated if e.due is None or e.evaluated_on <= e.due)
    outcomes = {
        outcome: count(sum(1 for e in evaluated if e.outcome == outcome))
        for outcome in ("not_achieved", "partly", "achieved")
    }
    return {
        "org_id": org_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "cases_opened": count(len(opened)),
        "cases_opened_by_level": by_level,
        "median_days_concern_to_first_measure": (
            round(statistics.median(days), 1) if len(days) >= SMALL else SUPPRESSED
        ),
        "measures_evaluated": count(len(evaluated)),
        "share_evaluated_by_due_date": share(on_time, len(evaluated)),
        "outcomes": outcomes,
        "handovers_accepted": count(int(answered.get("accepted", 0))),
        "handovers_declined_or_cancelled": count(
            int(answered.get("declined", 0)) + int(answered.get("cancelled", 0))
        ),
        "share_with_child_voice": share(len(with_voice), len(opened)),
    }
