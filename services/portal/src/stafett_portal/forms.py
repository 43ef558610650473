"""Forms that forgive: each field is read and checked here, before any service is asked, so
a person gets every message at once, beside the field, with what they wrote kept."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.datastructures import FormData

__all__ = ["Field", "FormResult", "national_id_field", "read_form"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, textarea, select, radio, checkbox, checkboxes, date, datetime-local
    required: bool = True
    options: Sequence[tuple[str, str]] = ()
    hint: str | None = None
    default: str | None = None
    max_length: int = 4000
    inputmode: str | None = None
    autocomplete: str | None = None
    missing: str | None = None  # the message when a required field is empty
    needed_when: str | None = None  # said instead of «valgfritt» when another answer decides


def national_id_field(
    name: str, label: str, *, required: bool = True, hint: str = "11 siffer."
) -> Field:
    """A national id: eleven digits, typed on a number pad, never remembered by the browser."""
    return Field(
        name,
        label,
        required=required,
        max_length=11,
        inputmode="numeric",
        autocomplete="off",
        hint=hint,
    )


@dataclass
class FormResult:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _missing(f: Field) -> str:
    if f.missing:
        return f.missing
    if f.kind in ("select", "radio", "checkboxes"):
        return f"Velg {f.label.lower()}."
    return f"Fyll ut «{f.label}»."


def read_form(
    fields: Sequence[Field],
    form: FormData,
    *,
    extra: Callable[[FormResult], None] | None = None,
) -> FormResult:
    result = FormResult()
    for f in fields:
        if f.kind == "checkboxes":
            chosen = [str(v) for v in form.getlist(f.name)][:200]
            allowed = {value for value, _ in f.options}
            result.values[f.name] = [v for v in chosen if v in allowed]
            if f.required and not result.values[f.name]:
                result.errors[f.name] = _missing(f)
            continue
        raw = form.get(f.name)
        value = raw.strip() if isinstance(raw, str) else ""
        if f.kind == "checkbox":
            result.values[f.name] = bool(value)
            continue
        result.values[f.name] = value
        if not value:
            if f.required:
                result.errors[f.name] = _missing(f)
            continue
        if len(value) > f.max_length:
            result.errors[f.name] = f"«{f.label}» kan ha høyst {f.max_length} tegn."
        elif f.kind in ("select", "radio") and value not in {str(v) for v, _ in f.options}:
            result.errors[f.name] = _missing(f)
        elif f.kind == "date" and not _valid_date(value):
            result.errors[f.name] = f"«{f.label}» må være en dato, for eksempel 2027-03-01."
        elif f.kind == "datetime-local" and not _valid_datetime(value):
            result.errors[f.name] = f"«{f.label}» må være en dato og et klokkeslett."
    if extra is not None:
        extra(result)
    return result


def _valid_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid_datetime(value: str) -> bool:
    if not _DATETIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
