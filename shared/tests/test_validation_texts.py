"""Every validation message is in bokmål, made from the error's type and limits, never from
the input."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

import pytest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core._pydantic_core import list_all_errors

from stafett_shared.validation_texts import FALLBACK, TEMPLATES, bokmal_message

# Words that give an English message away; none is a bokmål word.
_ENGLISH = re.compile(r"\b(field|required|should|must|valid|input|value|string|least|most)\b")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=2, max_length=5, pattern=r"^[a-z]+$")]
    level: Annotated[int, Field(ge=0, le=3)]
    kind: Literal["observation", "meeting"]
    when: AwareDatetime
    day: date
    tags: Annotated[list[str], Field(max_length=2)]
    url: Annotated[str, Field(max_length=10)] = "x"

    @field_validator("url")
    @classmethod
    def _own(cls, value: str) -> str:
        if value == "bad":
            raise ValueError("Adressen må være http eller https.")
        return value


_SECRET = "12345678901"
_BAD_BODIES = [
    {},
    {"name": _SECRET, "level": 9, "kind": "x", "when": "2026-01-01T00:00:00", "day": "31.12"},
    {"name": "a", "level": "to", "kind": 7, "when": _SECRET, "day": _SECRET, "tags": [1, 2, 3]},
    {"name": "abc", "level": -1, "kind": "meeting", "when": "i går", "day": "x", "tags": "x"},
    {"name": "abc", "level": 1, "kind": "meeting", "when": "2026-03-01T08:00:00", "day": "x"},
    {"name": "abc", "level": 1, "kind": "meeting", "day": "2026-01-01", "tags": [], "url": "bad"},
    {"name": "abc", "level": 1, "extra": _SECRET, "tags": [], "url": _SECRET},
]


@pytest.mark.parametrize("body", _BAD_BODIES, ids=range(len(_BAD_BODIES)))
def test_each_message_is_bokmal_and_never_echoes_the_input(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        _Body.model_validate(body)
    for error in refused.value.errors():
        message = bokmal_message(error["type"], error.get("ctx"))
        assert message, error["type"]
        assert not _ENGLISH.search(message.lower()), (error["type"], message)
        assert _SECRET not in message
        assert message != FALLBACK or error["type"] not in TEMPLATES, error["type"]


def test_limits_are_named_in_the_message() -> None:
    assert bokmal_message("string_too_long", {"max_length": 5}) == "Teksten kan ha høyst 5 tegn."
    assert bokmal_message("greater_than_equal", {"ge": 0}) == "Tallet må være minst 0."
    assert bokmal_message("literal_error", {"expected": "'a' or 'b'"}).endswith("'a' or 'b'.")


def test_a_template_without_its_limit_falls_back_rather_than_failing() -> None:
    assert bokmal_message("string_too_long", {}) == FALLBACK
    assert bokmal_message("no_such_type", None) == FALLBACK


def test_every_template_is_for_an_error_pydantic_knows() -> None:
    known = {error["type"] for error in list_all_errors()}
    assert set(TEMPLATES) <= known, set(TEMPLATES) - known


def test_a_stafett_validator_speaks_for_itself() -> None:
    assert (
        bokmal_message("value_error", {"error": ValueError("Oppgi enten fødselsnummer.")})
        == "Oppgi enten fødselsnummer."
    )
    assert bokmal_message("value_error", {}) == FALLBACK
