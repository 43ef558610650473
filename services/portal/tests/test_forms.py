"""Forms that forgive: every problem named at once, what the person wrote kept."""

from __future__ import annotations

from starlette.datastructures import FormData

from stafett_portal.forms import Field, read_form

FIELDS = [
    Field("text", "Tekst", "textarea", max_length=10),
    Field("kind", "Type", "select", options=[("a", "A"), ("b", "B")]),
    Field("when", "Dato", "date"),
    Field("note", "Notat", required=False),
    Field("units", "Tjenester", "checkboxes", options=[("x", "X"), ("y", "Y")]),
]


def test_every_missing_field_is_named_and_the_input_is_kept() -> None:
    result = read_form(FIELDS, FormData([("note", "beholdt")]))
    assert set(result.errors) == {"text", "kind", "when", "units"}
    assert result.errors["text"] == "Fyll ut «Tekst»."
    assert result.errors["kind"] == "Velg type."
    assert result.values["note"] == "beholdt"


def test_values_outside_the_choices_and_malformed_dates_are_refused() -> None:
    form = FormData(
        [("text", "ok"), ("kind", "z"), ("when", "2026-02-30"), ("units", "x"), ("units", "q")]
    )
    result = read_form(FIELDS, form)
    assert "kind" in result.errors
    assert "when" in result.errors
    assert result.values["units"] == ["x"]


def test_too_long_text_is_refused_with_the_limit() -> None:
    form = FormData([("text", "x" * 11), ("kind", "a"), ("when", "2026-01-31"), ("units", "y")])
    result = read_form(FIELDS, form)
    assert result.errors == {"text": "«Tekst» kan ha høyst 10 tegn."}


def test_a_complete_form_is_ok() -> None:
    form = FormData([("text", " hei "), ("kind", "b"), ("when", "2026-01-31"), ("units", "y")])
    result = read_form(FIELDS, form)
    assert result.ok
    assert result.values["text"] == "hei"
