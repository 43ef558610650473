"""structlog JSON logs with trace ids and without personal data.

Logs carry ids (case, entry, person ULIDs), event types, counts and timings. A processor
removes fields whose names denote content and masks anything shaped like a national id, as a
second line of defence behind the rule that code never logs content.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact"]

REDACTED = "[fjernet]"
_CONTENT_KEYS = frozenset(
    {
        "name",
        "national_id",
        "nationalid",
        "fnr",
        "text",
        "concern",
        "note",
        "reason",
        "email",
        "phone",
        "address",
        "participants",
        "password",
        "secret",
        "token",
        "authorization",
    }
)
_SAFE_KEYS = frozenset({"trace_id", "span_id"})
"""Fields Stafett fills itself with random hex, where eleven digits in a row are no
national id."""
_NATIONAL_ID = re.compile(r"(?<!\d)\d{11}(?!\d)")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _BEARER.sub("Bearer " + REDACTED, _NATIONAL_ID.sub(REDACTED, value))
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _CONTENT_KEYS else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop content fields, mask national ids and bearer tokens."""
    for key in list(event_dict):
        if key.lower() in _CONTENT_KEYS:
            event_dict[key] = REDACTED
        elif key not in _SAFE_KEYS:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _add_trace(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route structlog and the standard library's logging through one JSON renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,  # again: a traceback's text can hold what the fields above did not
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    # uvicorn's access log prints raw paths and queries; Stafett logs requests itself.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
