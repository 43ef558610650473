"""Disclosure control for the indicators: fixed periods and complementary suppression.

Pure: no I/O, no clock.

Indicators are counts of cases, measures and handovers per organisation. A count below
:data:`SMALL` could single out a child, so it is never shown ("<5", *primary*
suppression). Hiding it is not enough when other published figures add up to it: a total
and all but one of its parts give the last part; a year and eleven of its months give the
twelfth; a total and a share give both parts. So the figures are published only together
with every figure they can be combined with, and more are hidden until nothing small can
be worked out (*complementary* suppression):

* Figures are **cells** (a key in a period). **Relations** say which cells add up:
  a total and its parts within one period (cases by level, cases with and without the
  child's voice, evaluations by outcome and by whether they were on time, accepted
  handovers with and without a gap), and a period and its sub-periods (a year is its two
  terms, a term is its six months).
* From what is published, everything that can be worked out is worked out: a relation with
  one unknown cell gives that cell, repeatedly. If that uncovers a small count (1–4), or a
  relation's unknown parts add up to a small count, the smallest published cell of that
  relation is hidden as well, and the check starts again. It ends: each round hides one
  more cell.
* Periods are fixed (a calendar month, a term of six months, a calendar year, in
  Europe/Oslo): any other span would let two overlapping queries be subtracted. The
  suppression is always made over the whole year the period lies in, so a month, its term
  and its year are hidden consistently, whichever is asked first.

A zero is published as "<5" like any small count, but a zero that can be worked out
singles nobody out, so it is no reason to hide more.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

__all__ = [
    "SMALL",
    "Cell",
    "PeriodKind",
    "Relation",
    "fixed_period",
    "period_of",
    "relations_for_year",
    "suppress",
    "year_periods",
]

SMALL = 5
"""Counts below this are never published, nor anything that reveals them."""

PeriodKind = Literal["month", "term", "year"]
Cell = tuple[str, str]
"""(period id, key): ``("2026-03", "cases_opened")``, ``("2026-T1", …)``, ``("2026", …)``."""


@dataclass(frozen=True)
class Relation:
    """``total`` is the sum of ``parts``."""

    total: Cell
    parts: tuple[Cell, ...]

    @property
    def members(self) -> tuple[Cell, ...]:
        return (self.total, *self.parts)


def fixed_period(start: date, end: date) -> PeriodKind | None:
    """Which fixed period ``start``–``end`` (inclusive) is, or None for any other span."""
    if start.day != 1:
        return None
    if start.month == 1 and end == date(start.year, 12, 31):
        return "year"
    if start.month in (1, 7) and end == date(start.year, start.month + 5, 30 + (start.month == 7)):
        return "term"
    if end == date(start.year, start.month, calendar.monthrange(start.year, start.month)[1]):
        return "month"
    return None


def period_of(kind: PeriodKind, start: date) -> str:
    """The period id of the fixed period of ``kind`` that begins on ``start``."""
    if kind == "year":
        return f"{start.year}"
    if kind == "term":
        return f"{start.year}-T{1 if start.month <= 6 else 2}"
    return f"{start.year}-{start.month:02d}"


def year_periods(year: int) -> dict[str, tuple[date, date]]:
    """Every fixed period of ``year``: its twelve months, two terms and the year itself."""
    periods = {
        f"{year}-{month:02d}": (
            date(year, month, 1),
            date(year, month, calendar.monthrange(year, month)[1]),
        )
        for month in range(1, 13)
    }
    periods[f"{year}-T1"] = (date(year, 1, 1), date(year, 6, 30))
    periods[f"{year}-T2"] = (date(year, 7, 1), date(year, 12, 31))
    periods[f"{year}"] = (date(year, 1, 1), date(year, 12, 31))
    return periods


def relations_for_year(
    year: int, keys: Iterable[str], within: Sequence[tuple[str, Sequence[str]]]
) -> list[Relation]:
    """The relations of ``keys`` over ``year``'s periods: each ``within`` (a total key and
    its part keys) in every period, and every key over the periods' nesting."""
    keys = list(keys)
    periods = list(year_periods(year))
    relations = [
        Relation((period, total), tuple((period, part) for part in parts))
        for period in periods
        for total, parts in within
    ]
    terms = {
        f"{year}-T1": [f"{year}-{m:02d}" for m in range(1, 7)],
        f"{year}-T2": [f"{year}-{m:02d}" for m in range(7, 13)],
    }
    for key in keys:
        relations.append(Relation((f"{year}", key), tuple((t, key) for t in terms)))
        for term, months in terms.items():
            relations.append(Relation((term, key), tuple((m, key) for m in months)))
    return relations


def _small(value: int) -> bool:
    return 0 < value < SMALL


_PRIME = (1 << 61) - 1
"""Linear algebra over GF(p): the relations' coefficients are 0 and ±1, so what is
determined over the integers is determined here too, barring a prime this large dividing
a minor of a 0/±1 matrix of a few hundred rows, which it cannot for these sizes."""

Vector = dict[Cell, int]


def _reduce(vector: Vector, rows: Mapping[Cell, Vector]) -> Vector:
    """``vector`` less what the reduced ``rows`` (keyed by their pivot) span."""
    for pivot in [cell for cell in vector if cell in rows]:
        factor = vector.get(pivot, 0)
        if factor:
            for cell, value in rows[pivot].items():
                updated = (vector.get(cell, 0) - factor * value) % _PRIME
                if updated:
                    vector[cell] = updated
                else:
                    vector.pop(cell, None)
    return vector


def _span(equations: Iterable[Vector]) -> dict[Cell, Vector]:
    """The reduced row echelon form of ``equations``: each row keyed by its pivot, and no
    pivot in any other row."""
    rows: dict[Cell, Vector] = {}
    for equation in equations:
        row = _reduce(dict(equation), rows)
        if not row:
            continue
        pivot = min(row)
        inverse = pow(row[pivot], _PRIME - 2, _PRIME)
        row = {cell: value * inverse % _PRIME for cell, value in row.items()}
        for other in rows.values():
            factor = other.get(pivot, 0)
            if factor:
                for cell, value in row.items():
                    updated = (other.get(cell, 0) - factor * value) % _PRIME
                    if updated:
                        other[cell] = updated
                    else:
                        other.pop(cell, None)
        rows[pivot] = row
    return rows


def _leak(
    values: Mapping[Cell, int], hidden: set[Cell], relations: Sequence[Relation]
) -> tuple[Cell, Relation | None] | None:
    """What can still be worked out: a hidden cell whose small count follows from what is
    published (by any sum and difference of the relations), or a relation whose hidden
    parts add up to a small count beside a published total; None when nothing can be."""
    equations = []
    for relation in relations:
        equation = {relation.total: 1} if relation.total in hidden else {}
        for part in relation.parts:
            if part in hidden:
                equation[part] = (equation.get(part, 0) - 1) % _PRIME
        if equation:
            equations.append(equation)
    rows = _span(equations)
    for cell in sorted(hidden):
        if _small(values.get(cell, 0)) and not _reduce({cell: 1}, rows):
            return cell, None
    for relation in relations:
        unknown = [part for part in relation.parts if part in hidden]
        if (
            relation.total not in hidden
            and len(unknown) > 1
            and _small(sum(values.get(part, 0) for part in unknown))
        ):
            return unknown[0], relation
    return None


def suppress(values: Mapping[Cell, int], relations: Sequence[Relation]) -> set[Cell]:
    """The cells to hide: every count below :data:`SMALL`, and then, one at a time, the
    smallest published cell related to a small count that could be worked out, until none
    can be."""
    hidden = {cell for cell, value in values.items() if value < SMALL}
    around: dict[Cell, list[Relation]] = {}
    for relation in relations:
        for cell in relation.members:
            around.setdefault(cell, []).append(relation)

    def smallest(cells: set[Cell]) -> Cell | None:
        published = sorted(cells - hidden, key=lambda c: (values.get(c, 0), c))
        return published[0] if published else None

    while (found := _leak(values, hidden, relations)) is not None:
        exposed, through = found
        near = set(through.members) if through else set()
        if through is None or smallest(near) is None:
            near = {cell for relation in around.get(exposed, []) for cell in relation.members}
        choice = smallest(near)
        if choice is None:
            # Everything beside it is hidden and still it shows: widen to their relations.
            near = {c for cell in near for r in around.get(cell, []) for c in r.members}
            choice = smallest(near)
        if choice is None:
            return set(values)  # nothing left to hide with
        hidden.add(choice)
    return hidden
