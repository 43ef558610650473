"""National identity numbers: control digits, kinds, centuries, dates, ages and privacy.

The numbers here are built from chosen dates and individual numbers with `control_digits`;
none is taken from a real person.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stafett_shared import nationalid
from stafett_shared.nationalid import (
    InvalidNationalId,
    NationalId,
    NationalIdKind,
    control_digits,
    is_valid_national_id,
    parse_national_id,
)

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# Worked by hand from the published formula (see test_the_worked_example_matches_the_formula).
WORKED_EXAMPLE = "15038512363"  # 15 March 1985, individual number 123
K1_IS_TEN = "150385106"  # 3*1+7*5+6*0+1*3+8*8+9*5+4*1+5*0+2*6 = 166; 166 mod 11 = 1; 11-1 = 10
K2_IS_TEN = "150385115"  # K1 = 7; K2 sum = 155; 155 mod 11 = 1; 11-1 = 10
K1_IS_ELEVEN = "150385126"  # K1 sum = 176 = 16*11, so K1 = 11 -> 0
K2_IS_ELEVEN = "150385101"  # K1 = 9; K2 sum = 143 = 13*11, so K2 = 11 -> 0


# --- builders ---------------------------------------------------------------------------------


def complete(first_nine: str) -> str:
    digits = control_digits(first_nine)
    assert digits is not None, "test data: choose a prefix that has control digits"
    return first_nine + digits


def raw_number(ddmmyy: str, individual: int) -> str:
    """A number with valid control digits for a raw DDMMYY, trying individual numbers upward."""
    for candidate in range(individual, individual + 20):
        digits = control_digits(f"{ddmmyy}{candidate:03d}")
        if digits is not None:
            return f"{ddmmyy}{candidate:03d}{digits}"
    raise AssertionError("test data: no individual number gives control digits")


def first_nine_for(
    born: date, individual: int, *, d_number: bool = False, synthetic: bool = False
) -> str:
    day = born.day + (40 if d_number else 0)
    month = born.month + (80 if synthetic else 0)
    return f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}"


def number_with_individual(
    individual: int, two_digit_year: int, *, month: int = 6, d_number: bool = False
) -> str:
    """A number with exactly this individual number and YY; the day is one giving control digits."""
    for day in range(1, 29):
        day_digits = day + (40 if d_number else 0)
        first_nine = f"{day_digits:02d}{month:02d}{two_digit_year:02d}{individual:03d}"
        digits = control_digits(first_nine)
        if digits is not None:
            return first_nine + digits
    raise AssertionError("test data: no day gives control digits")


def number_for(
    born: date, individual: int, *, d_number: bool = False, synthetic: bool = False
) -> str:
    """A number for this birth date, with the first workable individual number from `individual`."""
    ddmmyy = first_nine_for(born, 0, d_number=d_number, synthetic=synthetic)[:6]
    return raw_number(ddmmyy, individual)


def weighted_remainders(number: str) -> tuple[int, int]:
    digits = [int(c) for c in number]
    k1_sum = sum(w * d for w, d in zip(K1_WEIGHTS, digits[:9], strict=True)) + digits[9]
    k2_sum = sum(w * d for w, d in zip(K2_WEIGHTS, digits[:10], strict=True)) + digits[10]
    return k1_sum % 11, k2_sum % 11


def assert_refused(text: str, reason: str) -> InvalidNationalId:
    with pytest.raises(InvalidNationalId, match=reason) as caught:
        parse_national_id(text)
    assert not is_valid_national_id(text)
    return caught.value


# --- control digits ---------------------------------------------------------------------------


def test_the_worked_example_matches_the_formula() -> None:
    # K1: 3*1+7*5+6*0+1*3+8*8+9*5+4*1+5*2+2*3 = 170; 170 mod 11 = 5; 11-5 = 6
    # K2: 5*1+4*5+3*0+2*3+7*8+6*5+5*1+4*2+3*3+2*6 = 151; 151 mod 11 = 8; 11-8 = 3
    assert control_digits("150385123") == "63"
    assert parse_national_id(WORKED_EXAMPLE).birth_date == date(1985, 3, 15)


def test_a_valid_number_has_both_weighted_sums_divisible_by_11() -> None:
    assert weighted_remainders(WORKED_EXAMPLE) == (0, 0)


def test_a_control_digit_of_11_becomes_0() -> None:
    assert control_digits(K1_IS_ELEVEN) == "06"
    assert control_digits(K2_IS_ELEVEN) == "90"
    assert is_valid_national_id(K1_IS_ELEVEN + "06")
    assert is_valid_national_id(K2_IS_ELEVEN + "90")


def test_there_are_no_control_digits_when_k1_would_be_10() -> None:
    assert control_digits(K1_IS_TEN) is None


def test_there_are_no_control_digits_when_k2_would_be_10() -> None:
    assert control_digits(K2_IS_TEN) is None


@pytest.mark.parametrize("ending", [f"{k1}{k2}" for k1 in range(10) for k2 in range(10)])
def test_a_prefix_whose_k1_would_be_10_is_refused_with_any_ending(ending: str) -> None:
    assert_refused(K1_IS_TEN + ending, "control digit")


def test_a_prefix_whose_k2_would_be_10_is_refused_whatever_k2_is() -> None:
    for k2 in range(10):
        assert_refused(f"{K2_IS_TEN}7{k2}", "control digit")


@pytest.mark.parametrize("wrong_k1", [d for d in range(10) if d != 6])
def test_a_wrong_first_control_digit_is_refused(wrong_k1: int) -> None:
    assert_refused(f"{WORKED_EXAMPLE[:9]}{wrong_k1}{WORKED_EXAMPLE[10]}", "control digit")


@pytest.mark.parametrize("wrong_k2", [d for d in range(10) if d != 3])
def test_a_wrong_second_control_digit_is_refused(wrong_k2: int) -> None:
    assert_refused(f"{WORKED_EXAMPLE[:10]}{wrong_k2}", "control digit")


def test_swapped_control_digits_are_refused() -> None:
    assert_refused(f"{WORKED_EXAMPLE[:9]}36", "control digit")


@pytest.mark.parametrize(
    "bad", ["", "12345678", "1234567890", "15038512a", "١٥٠٣٨٥١٢٣", " 150385123"]
)
def test_control_digits_wants_exactly_nine_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="9 digits"):
        control_digits(bad)


# --- kinds ------------------------------------------------------------------------------------


def test_an_ordinary_number_is_a_fodselsnummer() -> None:
    parsed = parse_national_id(WORKED_EXAMPLE)

    assert parsed.value == WORKED_EXAMPLE
    assert parsed.kind == "fnr"
    assert not parsed.is_d_number
    assert not parsed.is_synthetic


@pytest.mark.parametrize(
    ("born", "day_digits"),
    [(date(1985, 3, 1), "41"), (date(1985, 3, 15), "55"), (date(1985, 3, 31), "71")],
)
def test_a_d_number_adds_4_to_the_first_digit_of_the_day(born: date, day_digits: str) -> None:
    number = number_for(born, 100, d_number=True)
    assert number.startswith(day_digits)

    parsed = parse_national_id(number)

    assert parsed.kind == "dnr"
    assert parsed.is_d_number
    assert parsed.birth_date == born


@pytest.mark.parametrize(
    ("born", "month_digits"),
    [(date(1985, 1, 15), "81"), (date(1985, 6, 15), "86"), (date(1985, 12, 15), "92")],
)
def test_a_synthetic_number_adds_80_to_the_month(born: date, month_digits: str) -> None:
    number = number_for(born, 100, synthetic=True)
    assert number[2:4] == month_digits

    parsed = parse_national_id(number)

    assert parsed.kind == "synthetic"
    assert parsed.is_synthetic
    assert not parsed.is_d_number
    assert parsed.birth_date == born


def test_a_synthetic_d_number_is_synthetic_and_a_d_number() -> None:
    number = number_for(date(2001, 12, 31), 600, d_number=True, synthetic=True)
    assert number[:4] == "7192"

    parsed = parse_national_id(number)

    assert parsed.kind == "synthetic"
    assert parsed.is_synthetic
    assert parsed.is_d_number
    assert parsed.birth_date == date(2001, 12, 31)


@pytest.mark.parametrize("month_digits", ["41", "46", "52"])
def test_the_old_month_plus_40_test_convention_is_refused(month_digits: str) -> None:
    assert_refused(raw_number(f"15{month_digits}85", 100), "date")


def test_a_d_number_with_month_plus_40_is_refused() -> None:
    assert_refused(raw_number("5546" + "85", 100), "date")


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ddmmyy",
    [
        pytest.param("001085", id="day 00"),
        pytest.param("321085", id="day 32"),
        pytest.param("401085", id="D-number day 40 (day 00)"),
        pytest.param("721085", id="D-number day 72 (day 32)"),
        pytest.param("990185", id="day 99"),
        pytest.param("150085", id="month 00"),
        pytest.param("151385", id="month 13"),
        pytest.param("152085", id="month 20"),
        pytest.param("158085", id="synthetic month 80 (month 00)"),
        pytest.param("159385", id="synthetic month 93 (month 13)"),
        pytest.param("159985", id="month 99"),
        pytest.param("310485", id="31 April"),
        pytest.param("300285", id="30 February"),
        pytest.param("710485", id="D-number 31 April"),
        pytest.param("318485", id="synthetic 31 April"),
    ],
)
def test_a_date_that_does_not_exist_is_refused(ddmmyy: str) -> None:
    assert_refused(raw_number(ddmmyy, 100), "date")


@pytest.mark.parametrize(
    ("ddmmyy", "individual", "born"),
    [
        ("290296", 100, date(1996, 2, 29)),
        ("290200", 500, date(2000, 2, 29)),  # divisible by 400: leap year
        ("290256", 500, date(1856, 2, 29)),
        ("290204", 500, date(2004, 2, 29)),
        ("690204", 100, date(1904, 2, 29)),  # D-number
        ("298296", 100, date(1996, 2, 29)),  # synthetic
    ],
)
def test_29_february_is_valid_in_a_leap_year(ddmmyy: str, individual: int, born: date) -> None:
    number = raw_number(ddmmyy, individual)

    assert parse_national_id(number).birth_date == born


@pytest.mark.parametrize(
    ("ddmmyy", "individual"),
    [
        ("290297", 100),  # 1997
        ("290200", 100),  # 1900: divisible by 100, not by 400
        ("290201", 500),  # 2001
        ("690297", 100),  # D-number, 1997
        ("298297", 100),  # synthetic, 1997
    ],
)
def test_29_february_is_refused_outside_a_leap_year(ddmmyy: str, individual: int) -> None:
    assert_refused(raw_number(ddmmyy, individual), "date")


# --- centuries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("individual", "two_digit_year", "year"),
    [
        (0, 0, 1900),
        (0, 99, 1999),
        (499, 0, 1900),
        (499, 39, 1939),
        (499, 54, 1954),
        (499, 99, 1999),
        (500, 54, 1854),
        (600, 75, 1875),
        (749, 99, 1899),
        (500, 0, 2000),
        (749, 39, 2039),
        (750, 0, 2000),
        (899, 20, 2020),
        (999, 39, 2039),
        (900, 40, 1940),
        (950, 70, 1970),
        (999, 99, 1999),
    ],
)
def test_the_individual_number_and_year_give_the_century(
    individual: int, two_digit_year: int, year: int
) -> None:
    number = number_with_individual(individual, two_digit_year)
    assert number[6:9] == f"{individual:03d}"

    assert parse_national_id(number).birth_date.year == year


@pytest.mark.parametrize(
    ("individual", "two_digit_year"),
    [
        (500, 40),  # 500–749 is 1854–1899 only from year 54
        (749, 53),
        (750, 40),  # 750–899 is 2000–2039 only
        (750, 54),
        (899, 99),
        (600, 45),
        (800, 45),
        (899, 40),
    ],
)
def test_an_individual_number_outside_the_century_rules_is_refused(
    individual: int, two_digit_year: int
) -> None:
    assert_refused(number_with_individual(individual, two_digit_year), "individual number")


def test_a_d_number_follows_the_same_century_rules() -> None:
    assert_refused(number_with_individual(600, 45, d_number=True), "individual number")

    parsed = parse_national_id(number_with_individual(600, 20, d_number=True))

    assert parsed.kind == "dnr"
    assert parsed.birth_date.year == 2020


# --- format -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="only white space"),
        pytest.param(WORKED_EXAMPLE[:10], id="10 digits"),
        pytest.param(WORKED_EXAMPLE + "0", id="12 digits"),
        pytest.param(WORKED_EXAMPLE[:9], id="9 digits"),
        pytest.param(WORKED_EXAMPLE[:6] + " " + WORKED_EXAMPLE[6:], id="space inside"),
        pytest.param(WORKED_EXAMPLE[:6] + "-" + WORKED_EXAMPLE[6:], id="hyphen inside"),
        pytest.param(WORKED_EXAMPLE[:10] + "a", id="letter"),
        pytest.param("1503851236O", id="letter O for zero"),
        pytest.param("+" + WORKED_EXAMPLE[1:], id="plus sign"),
        pytest.param(WORKED_EXAMPLE[:10] + "³", id="superscript digit"),
        pytest.param("١٥٠٣٨٥١٢٣٦٣", id="Arabic-Indic digits"),
        pytest.param("１５０３８５１２３６３", id="full-width digits"),
    ],
)
def test_anything_but_11_ascii_digits_is_refused(text: str) -> None:
    assert_refused(text, "must be 11 digits")


@pytest.mark.parametrize("padding", [" ", "\t", "\n", "\r\n", " \t ", "\u00a0"])
def test_surrounding_white_space_is_ignored(padding: str) -> None:
    parsed = parse_national_id(padding + WORKED_EXAMPLE + padding)

    assert parsed.value == WORKED_EXAMPLE
    assert is_valid_national_id(WORKED_EXAMPLE + padding)
    assert is_valid_national_id(padding + WORKED_EXAMPLE)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(InvalidNationalId, ValueError)


def test_an_impossible_date_does_not_chain_the_standard_library_error() -> None:
    error = assert_refused(raw_number("300285", 100), "date")

    assert error.__cause__ is None
    assert error.__suppress_context__


# --- ages -------------------------------------------------------------------------------------


def fnr_born(born: date) -> NationalId:
    individual = 100 if born.year < 2000 else 500
    return parse_national_id(number_for(born, individual))


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (date(2000, 6, 15), 0),
        (date(2001, 6, 14), 0),
        (date(2001, 6, 15), 1),
        (date(2010, 6, 14), 9),
        (date(2010, 6, 15), 10),
        (date(2010, 6, 16), 10),
        (date(2010, 5, 31), 9),
        (date(2010, 7, 1), 10),
        (date(2011, 1, 1), 10),
        (date(2039, 12, 31), 39),
    ],
)
def test_the_age_is_the_completed_years_on_the_day(day: date, age: int) -> None:
    assert fnr_born(date(2000, 6, 15)).age_on(day) == age


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (date(2005, 2, 28), 0),
        (date(2005, 3, 1), 1),
        (date(2007, 2, 28), 2),
        (date(2007, 3, 1), 3),
        (date(2008, 2, 28), 3),
        (date(2008, 2, 29), 4),
        (date(2008, 3, 1), 4),
        (date(2100, 2, 28), 95),  # 2100 is not a leap year
        (date(2100, 3, 1), 96),
    ],
)
def test_a_29_february_birthday_is_completed_on_1_march_in_other_years(day: date, age: int) -> None:
    born = fnr_born(date(2004, 2, 29))
    assert born.birth_date == date(2004, 2, 29)

    assert born.age_on(day) == age


def test_a_31_december_birthday_is_completed_at_the_end_of_the_year() -> None:
    born = fnr_born(date(1999, 12, 31))

    assert born.age_on(date(2000, 12, 30)) == 0
    assert born.age_on(date(2000, 12, 31)) == 1
    assert born.age_on(date(2001, 1, 1)) == 1


def test_the_age_of_a_d_number_and_a_synthetic_number_uses_the_real_birth_date() -> None:
    d_number = parse_national_id(number_for(date(1990, 4, 20), 100, d_number=True))
    synthetic = parse_national_id(number_for(date(1990, 4, 20), 100, synthetic=True))

    assert d_number.age_on(date(2020, 4, 19)) == 29
    assert d_number.age_on(date(2020, 4, 20)) == 30
    assert synthetic.age_on(date(2020, 4, 19)) == 29
    assert synthetic.age_on(date(2020, 4, 20)) == 30


def test_there_is_no_age_before_the_birth_date() -> None:
    born = fnr_born(date(2000, 6, 15))

    with pytest.raises(ValueError, match="before the birth date") as caught:
        born.age_on(date(2000, 6, 14))
    assert "2000" not in str(caught.value)


# --- the value object -------------------------------------------------------------------------


def test_a_national_id_is_immutable() -> None:
    parsed = parse_national_id(WORKED_EXAMPLE)

    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.value = "0" * 11  # type: ignore[misc]
    assert not hasattr(parsed, "__dict__")


def test_parsing_the_same_number_twice_gives_equal_values() -> None:
    assert parse_national_id(WORKED_EXAMPLE) == parse_national_id(f" {WORKED_EXAMPLE} ")
    assert hash(parse_national_id(WORKED_EXAMPLE)) == hash(parse_national_id(WORKED_EXAMPLE))


def test_a_national_id_can_be_built_directly_when_the_fields_agree() -> None:
    built = NationalId(value=WORKED_EXAMPLE, kind="fnr", birth_date=date(1985, 3, 15))

    assert built == parse_national_id(WORKED_EXAMPLE)


@pytest.mark.parametrize(
    ("value", "kind", "born"),
    [
        (WORKED_EXAMPLE, "dnr", date(1985, 3, 15)),
        (WORKED_EXAMPLE, "fnr", date(1985, 3, 16)),
        (WORKED_EXAMPLE[:10] + "0", "fnr", date(1985, 3, 15)),
    ],
)
def test_a_national_id_cannot_be_built_with_fields_that_disagree(
    value: str, kind: NationalIdKind, born: date
) -> None:
    with pytest.raises(InvalidNationalId):
        NationalId(value=value, kind=kind, birth_date=born)


# --- privacy ----------------------------------------------------------------------------------

DIGIT_RUN = re.compile(r"\d{4,}")


@pytest.mark.parametrize(
    "number",
    [
        WORKED_EXAMPLE,
        number_for(date(1985, 3, 15), 100, d_number=True),
        number_for(date(1985, 3, 15), 100, synthetic=True),
    ],
)
def test_repr_and_str_do_not_show_the_digits(number: str) -> None:
    parsed = parse_national_id(number)

    for shown in (repr(parsed), str(parsed), f"{parsed}", f"{parsed!r}", repr([parsed])):
        assert number not in shown
        assert number[:6] not in shown
        assert DIGIT_RUN.search(shown) is None
    assert repr(parsed) == f"NationalId(kind={parsed.kind!r}, ****)"


def test_repr_of_an_fnr_reads_as_documented() -> None:
    assert repr(parse_national_id(WORKED_EXAMPLE)) == "NationalId(kind='fnr', ****)"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(WORKED_EXAMPLE[:10], id="10 digits"),
        pytest.param(WORKED_EXAMPLE + "1", id="12 digits"),
        pytest.param(WORKED_EXAMPLE[:10] + "x", id="letter"),
        pytest.param(WORKED_EXAMPLE[:10] + "4", id="wrong K2"),
        pytest.param(WORKED_EXAMPLE[:9] + "73", id="wrong K1"),
        pytest.param(K1_IS_TEN + "00", id="K1 would be 10"),
        pytest.param(raw_number("151385", 100), id="month 13"),
        pytest.param(raw_number("001085", 100), id="day 00"),
        pytest.param(raw_number("300285", 100), id="30 February"),
        pytest.param(number_with_individual(750, 60), id="individual number"),
    ],
)
def test_error_messages_do_not_contain_the_digits(text: str) -> None:
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id(f" {text} ")

    message = str(caught.value)
    assert text not in message
    assert text[:6] not in message
    assert DIGIT_RUN.search(message) is None
    assert DIGIT_RUN.search(repr(caught.value)) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (WORKED_EXAMPLE[:10], "must be 11 digits"),
        (WORKED_EXAMPLE[:10] + "4", "control digit"),
        (raw_number("151385", 100), "date"),
        (number_with_individual(750, 60), "individual number"),
    ],
)
def test_error_messages_say_what_is_wrong(text: str, reason: str) -> None:
    assert reason in str(assert_refused(text, reason))


def test_the_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(nationalid.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            assert node.module is not None
            imported.add(node.module.split(".")[0])

    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# --- properties -------------------------------------------------------------------------------


@st.composite
def individual_for_year(draw: st.DrawFn, year: int) -> int:
    if 1854 <= year <= 1899:
        return draw(st.integers(500, 749))
    if 1900 <= year <= 1939:
        return draw(st.integers(0, 499))
    if 1940 <= year <= 1999:
        return draw(st.one_of(st.integers(0, 499), st.integers(900, 999)))
    assert 2000 <= year <= 2039
    return draw(st.integers(500, 999))


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, NationalIdKind, date]:
    born = draw(st.dates(date(1854, 1, 1), date(2039, 12, 31)))
    individual = draw(individual_for_year(born.year))
    d_number = draw(st.booleans())
    synthetic = draw(st.booleans())
    first_nine = first_nine_for(born, individual, d_number=d_number, synthetic=synthetic)
    digits = control_digits(first_nine)
    assume(digits is not None)
    assert digits is not None
    kind: NationalIdKind = "synthetic" if synthetic else "dnr" if d_number else "fnr"
    return first_nine + digits, kind, born


@given(valid_numbers())
def test_a_number_built_from_a_date_and_an_individual_number_round_trips(
    case: tuple[str, NationalIdKind, date],
) -> None:
    number, kind, born = case

    parsed = parse_national_id(number)

    assert parsed.value == number
    assert parsed.kind == kind
    assert parsed.birth_date == born
    assert parsed.is_d_number == (int(number[:2]) > 40)
    assert weighted_remainders(number) == (0, 0)


@given(valid_numbers(), st.integers(0, 10), st.integers(1, 9))
def test_any_single_digit_change_of_a_valid_number_is_refused(
    case: tuple[str, NationalIdKind, date], position: int, shift: int
) -> None:
    number = case[0]
    changed_digit = (int(number[position]) + shift) % 10
    changed = number[:position] + str(changed_digit) + number[position + 1 :]
    assert changed != number

    assert not is_valid_national_id(changed)


@given(valid_numbers(), st.integers(0, 9))
def test_swapping_two_different_adjacent_digits_is_refused(
    case: tuple[str, NationalIdKind, date], position: int
) -> None:
    number = case[0]
    assume(number[position] != number[position + 1])
    swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]

    assert not is_valid_national_id(swapped)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_control_digits_are_the_only_pair_that_satisfies_both_sums(first_nine: str) -> None:
    satisfying = [
        f"{k1}{k2}"
        for k1 in range(10)
        for k2 in range(10)
        if weighted_remainders(f"{first_nine}{k1}{k2}") == (0, 0)
    ]

    assert control_digits(first_nine) == (satisfying[0] if satisfying else None)
    assert len(satisfying) <= 1


@given(st.text(max_size=14))
def test_validity_and_parsing_agree_for_any_text(text: str) -> None:
    if is_valid_national_id(text):
        assert parse_national_id(text).value == text.strip()
    else:
        with pytest.raises(InvalidNationalId) as caught:
            parse_national_id(text)
        assert DIGIT_RUN.search(str(caught.value)) is None
