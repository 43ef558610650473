"""Complementary suppression of the indicators: no count below 5 is shown, and none can be
worked out from what is shown, within a period or between periods."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stafett_case.disclosure import (
    SMALL,
    Cell,
    Relation,
    fixed_period,
    period_of,
    relations_for_year,
    suppress,
    year_periods,
)
from stafett_case.indicators import KEYS, WITHIN

YEAR = 2026
RELATIONS = relations_for_year(YEAR, KEYS, WITHIN)


@pytest.mark.parametrize(
    ("start", "end", "kind"),
    [
        (date(2026, 3, 1), date(2026, 3, 31), "month"),
        (date(2028, 2, 1), date(2028, 2, 29), "month"),
        (date(2026, 2, 1), date(2026, 2, 28), "month"),
        (date(2026, 1, 1), date(2026, 6, 30), "term"),
        (date(2026, 7, 1), date(2026, 12, 31), "term"),
        (date(2026, 1, 1), date(2026, 12, 31), "year"),
        (date(2026, 3, 2), date(2026, 3, 31), None),
        (date(2026, 3, 1), date(2026, 3, 30), None),
        (date(2026, 3, 1), date(2026, 4, 30), None),
        (date(2026, 2, 1), date(2026, 7, 31), None),
        (date(2026, 1, 1), date(2027, 12, 31), None),
        (date(2026, 12, 1), date(2027, 1, 31), None),
    ],
)
def test_only_a_month_a_term_or_a_year_is_a_period(
    start: date, end: date, kind: str | None
) -> None:
    assert fixed_period(start, end) == kind


def test_period_ids_name_the_year_the_term_or_the_month() -> None:
    assert period_of("year", date(2026, 1, 1)) == "2026"
    assert period_of("term", date(2026, 7, 1)) == "2026-T2"
    assert period_of("month", date(2026, 3, 1)) == "2026-03"
    assert len(year_periods(2026)) == 15


def _year(months: dict[int, dict[str, int]]) -> dict[Cell, int]:
    """Every key in every period of YEAR from the months' counts (absent: zero)."""
    values: dict[Cell, int] = {}
    for period, (first, last) in year_periods(YEAR).items():
        for key in KEYS:
            values[(period, key)] = sum(
                months.get(m, {}).get(key, 0) for m in range(first.month, last.month + 1)
            )
    return values


def _month(**counts: int) -> dict[str, int]:
    """A month's counts, the totals made from their parts."""
    month = dict(counts)
    month["cases_opened"] = sum(month.get(f"level_{i}", 0) for i in range(4))
    month.setdefault("without_voice", month["cases_opened"] - month.get("with_voice", 0))
    return month


def test_a_small_part_beside_a_shown_total_hides_another_part() -> None:
    values = _year({3: _month(level_0=20, level_1=7, level_2=2)})
    hidden = suppress(values, RELATIONS)
    assert ("2026-03", "level_2") in hidden
    # Levels 0, 1 and the total would give level 2: one more of them is hidden.
    assert {("2026-03", "level_1"), ("2026-03", "level_0"), ("2026-03", "cases_opened")} & hidden


def test_a_small_month_is_not_the_year_less_the_other_months() -> None:
    months = {m: _month(level_0=6) for m in range(1, 12)}
    months[12] = _month(level_0=2)
    hidden = suppress(_year(months), RELATIONS)
    assert ("2026-12", "level_0") in hidden
    assert ("2026-12", "cases_opened") in hidden
    # The term, the year or another month of the second term is hidden with it.
    second = {(f"2026-{m:02d}", "level_0") for m in range(7, 12)} | {
        ("2026-T2", "level_0"),
        ("2026", "level_0"),
    }
    assert second & hidden


def test_nothing_is_hidden_beyond_zeros_when_every_count_is_large() -> None:
    months = {
        m: _month(level_0=10, level_1=10, level_2=10, level_3=10, with_voice=20)
        for m in range(1, 13)
    }
    values = _year(months)
    hidden = suppress(values, RELATIONS)
    assert all(values[cell] == 0 for cell in hidden)


# --- an attacker who knows every relation, with exact arithmetic --------------------------


def _determined(
    hidden: set[Cell], relations: list[Relation]
) -> tuple[set[Cell], list[tuple[Cell, ...]]]:
    """By exact elimination over the rationals: the hidden cells whose value follows from
    what is published, and each relation's hidden parts (their sum follows when the total
    is published)."""
    rows: list[dict[Cell, Fraction]] = []
    pivots: list[Cell] = []
    for relation in relations:
        row: dict[Cell, Fraction] = {}
        for cell, sign in [(relation.total, 1), *((p, -1) for p in relation.parts)]:
            if cell in hidden:
                row[cell] = row.get(cell, Fraction(0)) + sign
        row = {c: v for c, v in row.items() if v}
        for pivot, basis in zip(pivots, rows, strict=True):
            if pivot in row:
                factor = row[pivot]
                for c, v in basis.items():
                    row[c] = row.get(c, Fraction(0)) - factor * v
                row = {c: v for c, v in row.items() if v}
        if row:
            pivot = min(row)
            scale = row[pivot]
            row = {c: v / scale for c, v in row.items()}
            for i, basis in enumerate(rows):
                if pivot in basis:
                    factor = basis[pivot]
                    merged = dict(basis)
                    for c, v in row.items():
                        merged[c] = merged.get(c, Fraction(0)) - factor * v
                    rows[i] = {c: v for c, v in merged.items() if v}
            rows.append(row)
            pivots.append(pivot)
    known = {pivot for pivot, basis in zip(pivots, rows, strict=True) if set(basis) == {pivot}}
    sums = [
        tuple(p for p in r.parts if p in hidden)
        for r in relations
        if r.total not in hidden and sum(p in hidden for p in r.parts) > 1
    ]
    return known, sums


month_counts = st.fixed_dictionaries(
    {
        "level_0": st.integers(0, 9),
        "level_1": st.integers(0, 9),
        "level_2": st.integers(0, 4),
        "level_3": st.integers(0, 3),
        "outcome_achieved": st.integers(0, 8),
        "outcome_partly": st.integers(0, 4),
        "on_time_share": st.integers(0, 4),
        "handovers_accepted": st.integers(0, 7),
        "gap": st.integers(0, 3),
        "handovers_declined_or_cancelled": st.integers(0, 6),
        "voice": st.integers(0, 10),
    }
)


def _full_month(drawn: dict[str, int]) -> dict[str, int]:
    month = _month(**{f"level_{i}": drawn[f"level_{i}"] for i in range(4)})
    month["with_voice"] = min(drawn["voice"], month["cases_opened"])
    month["without_voice"] = month["cases_opened"] - month["with_voice"]
    month["outcome_achieved"] = drawn["outcome_achieved"]
    month["outcome_partly"] = drawn["outcome_partly"]
    month["measures_evaluated"] = drawn["outcome_achieved"] + drawn["outcome_partly"]
    month["late"] = min(drawn["on_time_share"], month["measures_evaluated"])
    month["on_time"] = month["measures_evaluated"] - month["late"]
    month["handovers_accepted"] = drawn["handovers_accepted"]
    month["with_gap"] = min(drawn["gap"], drawn["handovers_accepted"])
    month["without_gap"] = drawn["handovers_accepted"] - month["with_gap"]
    month["handovers_declined_or_cancelled"] = drawn["handovers_declined_or_cancelled"]
    return month


@settings(max_examples=60, deadline=None)
@given(st.lists(month_counts, min_size=12, max_size=12))
def test_no_small_count_can_be_worked_out_from_what_is_shown(
    drawn: list[dict[str, int]],
) -> None:
    values = _year({m + 1: _full_month(d) for m, d in enumerate(drawn)})
    hidden = suppress(values, RELATIONS)
    assert {cell for cell, value in values.items() if value < SMALL} <= hidden
    known, sums = _determined(hidden, RELATIONS)
    leaked = sorted(cell for cell in known if 0 < values[cell] < SMALL)
    assert not leaked, leaked
    small_sums = [s for s in sums if 0 < sum(values[c] for c in s) < SMALL]
    assert not small_sums, small_sums
