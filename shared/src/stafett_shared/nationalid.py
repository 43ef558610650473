"""Norwegian national identity numbers: validation and birth dates (Skatteetaten / folkeregisteret).

Pure: standard library only, no I/O and no clock (dates are passed in).

An identity number has 11 digits, ``DDMMYY III KK``:

* ``DDMMYY`` is the birth date. A D-number adds 4 to the first digit of the day (day 41–71); a
  number from the synthetic test population (Tenor) adds 80 to the month (month 81–92). A number
  can be both. The older test convention of adding 40 to the month is *not* accepted.
* ``III`` is the individual number, which together with ``YY`` gives the century.
* ``KK`` are two mod-11 control digits.

From 2032 the Norwegian Tax Administration changes the control-digit rules (K1 may then take any
value, only K2 is checked). This module implements the current rules only: a number issued under
the new rules whose K1 does not follow the old formula is refused.

The number itself is personal data. Nothing here puts it in an exception message or in ``repr``;
only :attr:`NationalId.value` holds it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "InvalidNationalId",
    "NationalId",
    "NationalIdKind",
    "control_digits",
    "is_valid_national_id",
    "parse_national_id",
]

NationalIdKind = Literal["fnr", "dnr", "synthetic"]

_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

_D_NUMBER_DAY_OFFSET = 40  # 4 added to the first digit of the day
_SYNTHETIC_MONTH_OFFSET = 80


class InvalidNationalId(ValueError):
    """The text is not a valid national identity number.

    The message says what is wrong and never contains the number.
    """


def _is_ascii_digits(text: str, length: int) -> bool:
    # str.isdigit alone accepts other scripts' digits and superscripts ("²", "٣").
    return len(text) == length and text.isascii() and text.isdigit()


def _control_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    result = 11 - sum(w * int(d) for w, d in zip(weights, digits, strict=True)) % 11
    if result == 11:
        return 0
    if result == 10:
        return None
    return result


def control_digits(first_nine: str) -> str | None:
    """The control digits K1 and K2 for the first nine digits, or None when no valid pair exists.

    Only the mod-11 arithmetic is applied: the date and the individual number are not checked.
    Raises ValueError when ``first_nine`` is not exactly nine ASCII digits.
    """
    if not _is_ascii_digits(first_nine, 9):
        raise ValueError("first_nine must be 9 digits")
    k1 = _control_digit(first_nine, _K1_WEIGHTS)
    if k1 is None:
        return None
    k2 = _control_digit(first_nine + str(k1), _K2_WEIGHTS)
    if k2 is None:
        return None
    return f"{k1}{k2}"


def _century_year(two_digit_year: int, individual: int) -> int | None:
    """The year from YY and the individual number, or None for a combination not in use."""
    if individual <= 499:
        return 1900 + two_digit_year
    if individual <= 749 and two_digit_year >= 54:
        return 1800 + two_digit_year
    if two_digit_year <= 39:  # individual 500–999
        return 2000 + two_digit_year
    if individual >= 900:  # year 40–99
        return 1900 + two_digit_year
    return None


def _decode(value: str) -> tuple[NationalIdKind, datetime.date]:
    """Kind and birth date of an 11-character string; raises InvalidNationalId."""
    if not _is_ascii_digits(value, 11):
        raise InvalidNationalId("a national identity number must be 11 digits")

    expected = control_digits(value[:9])
    if expected is None:
        raise InvalidNationalId(
            "national identity number has no valid control digit: "
            "its first nine digits give a control digit of 10"
        )
    if value[9:] != expected:
        raise InvalidNationalId("national identity number has a wrong control digit")

    day = int(value[0:2])
    month = int(value[2:4])
    two_digit_year = int(value[4:6])
    individual = int(value[6:9])

    is_d_number = day > _D_NUMBER_DAY_OFFSET
    if is_d_number:
        day -= _D_NUMBER_DAY_OFFSET
    is_synthetic = month > _SYNTHETIC_MONTH_OFFSET
    if is_synthetic:
        month -= _SYNTHETIC_MONTH_OFFSET
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise InvalidNationalId(
            "national identity number has an invalid date "
            "(day 01–31, or 41–71 for a D-number; month 01–12, or 81–92 for a synthetic number)"
        )

    year = _century_year(two_digit_year, individual)
    if year is None:
        raise InvalidNationalId(
            "national identity number has an individual number that does not fit its year"
        )

    try:
        birth_date = datetime.date(year, month, day)
    except ValueError:
        raise InvalidNationalId(
            "national identity number has a date that is not a real calendar date"
        ) from None

    kind: NationalIdKind = "synthetic" if is_synthetic else "dnr" if is_d_number else "fnr"
    return kind, birth_date


@dataclass(frozen=True, slots=True, repr=False)
class NationalId:
    """A valid national identity number.

    ``kind`` is ``"synthetic"`` for a number from the synthetic population (month + 80), whether or
    not it is also a D-number; :attr:`is_d_number` tells the latter. Construct it with
    :func:`parse_national_id`; direct construction checks that the fields agree with ``value``.
    """

    value: str
    kind: NationalIdKind
    birth_date: datetime.date

    def __post_init__(self) -> None:
        if _decode(self.value) != (self.kind, self.birth_date):
            raise InvalidNationalId("kind and birth date must be those the number gives")

    def __repr__(self) -> str:
        return f"NationalId(kind={self.kind!r}, ****)"

    @property
    def is_d_number(self) -> bool:
        """True when 4 is added to the first digit of the day (also for synthetic D-numbers)."""
        return int(self.value[0:2]) > _D_NUMBER_DAY_OFFSET

    @property
    def is_synthetic(self) -> bool:
        """True for a number from the synthetic population (80 added to the month)."""
        return self.kind == "synthetic"

    def age_on(self, day: datetime.date) -> int:
        """Completed years on ``day``.

        Someone born on 29 February completes a year on 1 March in years that are not leap years.
        Raises ValueError when ``day`` is before the birth date.
        """
        born = self.birth_date
        if day < born:
            raise ValueError("day is before the birth date")
        not_yet = (day.month, day.day) < (born.month, born.day)
        return day.year - born.year - int(not_yet)


def parse_national_id(text: str) -> NationalId:
    """Parse a national identity number; surrounding white space is ignored, nothing else is.

    Raises InvalidNationalId, with a message that does not contain the number.
    """
    value = text.strip()
    kind, birth_date = _decode(value)
    return NationalId(value=value, kind=kind, birth_date=birth_date)


def is_valid_national_id(text: str) -> bool:
    """Whether :func:`parse_national_id` accepts ``text``."""
    try:
        parse_national_id(text)
    except InvalidNationalId:
        return False
    return True
