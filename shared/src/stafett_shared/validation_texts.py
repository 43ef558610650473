"""Validation messages in bokmål: what a refused field was missing or got wrong.

Pydantic explains a refused field in English (``msg``). The people who read Stafett's
answers (a municipality's developer, an agency's, a support desk) read Norwegian, and the
portal shows these messages as they are. So every message a 422 carries is made here from
the error's ``type`` and its context (a limit, the allowed values), never from the input,
which may be personal data. A validator of Stafett's own raises ``ValueError`` with a
message in bokmål; that message is used as it is.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TEMPLATES", "bokmal_message"]

TEMPLATES: Mapping[str, str] = {
    "missing": "Feltet mangler.",
    "extra_forbidden": "Feltet er ukjent.",
    "json_invalid": "Forespørselen er ikke gyldig JSON.",
    "json_type": "Verdien må være JSON-tekst.",
    "model_type": "Verdien må være et objekt.",
    "model_attributes_type": "Verdien må være et objekt.",
    "dict_type": "Verdien må være et objekt.",
    "list_type": "Verdien må være en liste.",
    "tuple_type": "Verdien må være en liste.",
    "set_type": "Verdien må være en liste uten gjentakelser.",
    "frozen_set_type": "Verdien må være en liste uten gjentakelser.",
    "string_type": "Verdien må være tekst.",
    "string_unicode": "Teksten må være gyldig Unicode.",
    "string_too_short": "Teksten må ha minst {min_length} tegn.",
    "string_too_long": "Teksten kan ha høyst {max_length} tegn.",
    "string_pattern_mismatch": "Teksten har ikke riktig form.",
    "string_not_ascii": "Teksten kan bare ha ASCII-tegn.",
    "too_short": "Listen må ha minst {min_length} elementer.",
    "too_long": "Listen kan ha høyst {max_length} elementer.",
    "bool_type": "Verdien må være true eller false.",
    "bool_parsing": "Verdien må være true eller false.",
    "int_type": "Verdien må være et heltall.",
    "int_parsing": "Verdien må være et heltall.",
    "int_parsing_size": "Tallet er for stort.",
    "int_from_float": "Verdien må være et heltall.",
    "float_type": "Verdien må være et tall.",
    "float_parsing": "Verdien må være et tall.",
    "finite_number": "Tallet må være endelig.",
    "greater_than": "Tallet må være større enn {gt}.",
    "greater_than_equal": "Tallet må være minst {ge}.",
    "less_than": "Tallet må være mindre enn {lt}.",
    "less_than_equal": "Tallet kan være høyst {le}.",
    "multiple_of": "Tallet må være et multiplum av {multiple_of}.",
    "literal_error": "Verdien må være en av: {expected}.",
    "enum": "Verdien må være en av: {expected}.",
    "union_tag_invalid": "Typen er ukjent; gyldige typer er {expected_tags}.",
    "union_tag_not_found": "Feltet {discriminator} mangler.",
    "date_type": "Verdien må være en dato (ÅÅÅÅ-MM-DD).",
    "date_parsing": "Verdien må være en dato (ÅÅÅÅ-MM-DD).",
    "date_from_datetime_parsing": "Verdien må være en dato (ÅÅÅÅ-MM-DD).",
    "date_from_datetime_inexact": "Verdien må være en dato uten klokkeslett.",
    "date_past": "Datoen må ligge tilbake i tid.",
    "date_future": "Datoen må ligge fram i tid.",
    "time_type": "Verdien må være et klokkeslett.",
    "time_parsing": "Verdien må være et klokkeslett.",
    "datetime_type": "Verdien må være et tidspunkt (RFC 3339).",
    "datetime_parsing": "Verdien må være et tidspunkt (RFC 3339).",
    "datetime_object_invalid": "Verdien må være et tidspunkt (RFC 3339).",
    "datetime_from_date_parsing": "Verdien må være et tidspunkt (RFC 3339) eller en dato.",
    "datetime_past": "Tidspunktet må ligge tilbake i tid.",
    "datetime_future": "Tidspunktet må ligge fram i tid.",
    "timezone_naive": "Tidspunktet kan ikke ha tidssone.",
    "timezone_aware": "Tidspunktet må ha tidssone, for eksempel +01:00 eller Z.",
    "timezone_offset": "Tidspunktet har feil tidssone.",
    "time_delta_type": "Verdien må være en varighet.",
    "time_delta_parsing": "Verdien må være en varighet.",
    "url_type": "Verdien må være en adresse (URL).",
    "url_parsing": "Verdien må være en gyldig adresse (URL).",
    "url_syntax_violation": "Verdien må være en gyldig adresse (URL).",
    "url_too_long": "Adressen kan ha høyst {max_length} tegn.",
    "url_scheme": "Adressen må begynne med {expected_schemes}.",
    "uuid_type": "Verdien må være en UUID.",
    "uuid_parsing": "Verdien må være en UUID.",
    "uuid_version": "UUID-en har feil versjon.",
    "decimal_type": "Verdien må være et desimaltall.",
    "decimal_parsing": "Verdien må være et desimaltall.",
    "bytes_type": "Verdien må være tekst.",
    "bytes_too_short": "Verdien må ha minst {min_length} byte.",
    "bytes_too_long": "Verdien kan ha høyst {max_length} byte.",
    "none_required": "Verdien må være null.",
    "frozen_field": "Feltet kan ikke endres.",
    "recursion_loop": "Verdien refererer til seg selv.",
    "recursion_depth_exceeded": "Verdien er nøstet for dypt.",
}
FALLBACK = "Verdien er ugyldig."
_MAX_CONTEXT_CHARS = 200


def _context_value(value: Any) -> str:
    """A context value as it is shown: limits and allowed values, never the input."""
    text = str(value)
    return text if len(text) <= _MAX_CONTEXT_CHARS else text[:_MAX_CONTEXT_CHARS] + "…"


def bokmal_message(error_type: str, context: Mapping[str, Any] | None) -> str:
    """The bokmål message for one validation error of ``error_type`` with ``context``."""
    context = context or {}
    if error_type in ("value_error", "assertion_error"):
        # Stafett's own validators: their message is written in bokmål.
        own = context.get("error")
        return _context_value(own) if own is not None and str(own) else FALLBACK
    template = TEMPLATES.get(error_type)
    if template is None:
        return FALLBACK
    try:
        return template.format_map({k: _context_value(v) for k, v in context.items()})
    except (KeyError, IndexError, ValueError):
        return FALLBACK  # a context without the limit the template names
