"""Indicators for the 0–24 cooperation (DOMAIN.md "Indicators"), from read models only, never
from text, over fixed periods only (a month, a term, a year), with complementary suppression
(:mod:`stafett_case.disclosure`): no count below 5 is shown, nor can one be worked out from
what is shown, within a period or by subtracting one period from another."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from stafett_case.disclosure import (
    SMALL,
    Cell,
    PeriodKind,
    period_of,
    relations_for_year,
    suppress,
    year_periods,
)
from stafett_case.projections import cases, entries, evaluations, handovers, roles, units

if TYPE_CHECKING:
    from stafett_case.handlers import CaseService
    from stafett_shared.auth import Principal

SUPPRESSED = "<5"
OSLO = ZoneInfo("Europe/Oslo")
OUTCOMES = ("not_achieved", "partly", "achieved")
LEVELS = tuple(f"level_{level}" for level in range(4))
WITHIN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cases_opened", LEVELS),
    ("cases_opened", ("with_voice", "without_voice")),
    ("measures_evaluated", (*(f"outcome_{o}" for o in OUTCOMES), "outcome_other")),
    ("measures_evaluated", ("on_time", "late")),
    ("handovers_accepted", ("without_gap", "with_gap")),
)
KEYS = tuple(
    dict.fromkeys(
        [key for total, parts in WITHIN for key in (total, *parts)]
        + ["handovers_declined_or_cancelled"]
    )
)


def _oslo_day(moment: datetime) -> date:
    return moment.astimezone(OSLO).date()


def _month_of(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def _figures(
    year: int,
    *,
    opened: list[Any],
    with_voice: set[str],
    evaluated: list[Any],
    answered: list[Any],
    handover_days: int,
) -> dict[Cell, int]:
    """Every key's count in every fixed period of ``year``."""
    months: dict[str, dict[str, int]] = {
        _month_of(date(year, m, 1)): dict.fromkeys(KEYS, 0) for m in range(1, 13)
    }

    def add(day: date, *keys: str) -> None:
        if day.year == year:
            for key in keys:
                months[_month_of(day)][key] += 1

    for row in opened:
        voice = "with_voice" if row.case_id in with_voice else "without_voice"
        add(_oslo_day(row.opened_at), "cases_opened", f"level_{row.opened_level}", voice)
    for row in evaluated:
        outcome = f"outcome_{row.outcome}" if row.outcome in OUTCOMES else "outcome_other"
        timely = "on_time" if row.due is None or row.evaluated_on <= row.due else "late"
        add(row.evaluated_on, "measures_evaluated", outcome, timely)
    for row in answered:
        day = _oslo_day(row.requested_at)
        if row.status == "accepted":
            gapless = row.answered_at is not None and row.answered_at - row.requested_at <= (
                timedelta(days=handover_days)
            )
            add(day, "handovers_accepted", "without_gap" if gapless else "with_gap")
        elif row.status in ("declined", "cancelled"):
            add(day, "handovers_declined_or_cancelled")
    values: dict[Cell, int] = {}
    for period, (first, last) in year_periods(year).items():
        inside = [m for m in months if first <= date.fromisoformat(f"{m}-01") <= last]
        for key in KEYS:
            values[(period, key)] = sum(months[m][key] for m in inside)
    return values


class _Published:
    """The figures of one period as they may be shown."""

    def __init__(self, period: str, values: Mapping[Cell, int], hidden: set[Cell]) -> None:
        self._period = period
        self._values = values
        self._hidden = hidden

    def count(self, key: str) -> int | str:
        cell = (self._period, key)
        return SUPPRESSED if cell in self._hidden else self._values[cell]

    def share(self, part: str, rest: str, total: str) -> float | str:
        """``part`` of ``total``: shown only when the total is, and each of the two parts
        is shown or is nothing (a share and a total give both parts)."""
        whole = (self._period, total)
        if whole in self._hidden or self._values[whole] == 0:
            return SUPPRESSED
        for key in (part, rest):
            cell = (self._period, key)
            if cell in self._hidden and self._values[cell] != 0:
                return SUPPRESSED
        return round(self._values[(self._period, part)] / self._values[whole], 3)


async def indicators(
    service: CaseService,
    principal: Principal,
    org_id: str,
    start: date,
    kind: PeriodKind,
    *,
    handover_days: int = 3,
) -> dict[str, Any]:
    """Indicators of one organisation for the fixed period of ``kind`` that begins on
    ``start`` (days in Europe/Oslo), suppressed over the whole year it lies in."""
    from stafett_case.handlers import HandlerError

    year = start.year
    begin = datetime.combine(date(year, 1, 1), time.min, OSLO).astimezone(UTC)
    finish = datetime.combine(date(year + 1, 1, 1), time.min, OSLO).astimezone(UTC)
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
                    cases.c.opened_at < finish,
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
                    evaluations.c.evaluated_on >= date(year, 1, 1),
                    evaluations.c.evaluated_on <= date(year, 12, 31),
                )
            )
        ).all()
        answered = (
            await session.execute(
                select(handovers.c.status, handovers.c.requested_at, handovers.c.answered_at)
                .join(cases, cases.c.case_id == handovers.c.case_id)
                .where(
                    cases.c.org_id == org_id,
                    handovers.c.requested_at >= begin,
                    handovers.c.requested_at < finish,
                )
            )
        ).all()
    values = _figures(
        year,
        opened=list(opened),
        with_voice=with_voice,
        evaluated=list(evaluated),
        answered=list(answered),
        handover_days=handover_days,
    )
    hidden = suppress(values, relations_for_year(year, KEYS, WITHIN))
    period = period_of(kind, start)
    first, last = year_periods(year)[period]
    shown = _Published(period, values, hidden)
    days = [
        (row.first_measure_at - row.opened_at).total_seconds() / 86400
        for row in opened
        if row.first_measure_at is not None and first <= _oslo_day(row.opened_at) <= last
    ]
    return {
        "org_id": org_id,
        "period": kind,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "cases_opened": shown.count("cases_opened"),
        "cases_opened_by_level": {str(i): shown.count(key) for i, key in enumerate(LEVELS)},
        "median_days_concern_to_first_measure": (
            round(statistics.median(days), 1) if len(days) >= SMALL else SUPPRESSED
        ),
        "measures_evaluated": shown.count("measures_evaluated"),
        "share_evaluated_by_due_date": shown.share("on_time", "late", "measures_evaluated"),
        "outcomes": {o: shown.count(f"outcome_{o}") for o in OUTCOMES},
        "handovers_accepted": shown.count("handovers_accepted"),
        "handovers_without_gap": shown.count("without_gap"),
        "handovers_declined_or_cancelled": shown.count("handovers_declined_or_cancelled"),
        "share_with_child_voice": shown.share("with_voice", "without_voice", "cases_opened"),
    }
