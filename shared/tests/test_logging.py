"""JSON logs with trace ids and without personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from stafett_shared.logging import REDACTED, configure_logging, get_logger, redact

NATIONAL_ID = "01010012345"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    access_disabled = access.disabled
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.disabled = access_disabled
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def _one_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0], json.loads(lines[0])


def test_a_log_line_is_json_with_event_level_time_and_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case")

    get_logger("test").info("case_opened", case_id="01JABCDEFGHJKMNPQRSTVWXYZ0", events=2)

    _, record = _one_line(capsys)
    assert record["event"] == "case_opened"
    assert record["level"] == "info"
    assert record["service"] == "case"
    assert record["case_id"] == "01JABCDEFGHJKMNPQRSTVWXYZ0"
    assert record["events"] == 2
    assert record["timestamp"].endswith("Z")


def test_content_fields_are_removed_from_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("log")

    get_logger("test").info(
        "entry_appended",
        name="Kari Nordmann",
        national_id=NATIONAL_ID,
        text="Eleven virker lei seg",
        Reason="flyttet",
        entry_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
    )

    line, record = _one_line(capsys)
    for secret in ("Kari Nordmann", NATIONAL_ID, "Eleven virker lei seg", "flyttet"):
        assert secret not in line
    assert record["name"] == REDACTED
    assert record["national_id"] == REDACTED
    assert record["text"] == REDACTED
    assert record["Reason"] == REDACTED
    assert record["entry_id"] == "01JABCDEFGHJKMNPQRSTVWXYZ0"


def test_national_ids_and_bearer_tokens_in_free_text_are_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case")

    get_logger("test").warning(
        "upstream_failed",
        detail=f"ringte om {NATIONAL_ID} med header Authorization: Bearer abc.def",
    )

    line, record = _one_line(capsys)
    assert NATIONAL_ID not in line
    assert "abc.def" not in line
    assert record["detail"] == (f"ringte om {REDACTED} med header Authorization: Bearer {REDACTED}")


def test_content_inside_nested_values_is_removed(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("consent")

    get_logger("test").info(
        "child_registered",
        child={"fnr": NATIONAL_ID, "guardians": 2},
        notes=[f"id {NATIONAL_ID}", {"email": "kari@example.no"}],
    )

    line, record = _one_line(capsys)
    assert NATIONAL_ID not in line
    assert "kari@example.no" not in line
    assert record["child"] == {"fnr": REDACTED, "guardians": 2}
    assert record["notes"] == [f"id {REDACTED}", {"email": REDACTED}]


def test_numbers_that_are_not_national_ids_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("log")

    get_logger("test").info("batch", detail="seq 1234567890 and 123456789012")

    _, record = _one_line(capsys)
    assert record["detail"] == "seq 1234567890 and 123456789012"


def test_the_event_message_itself_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("log")

    get_logger("test").info(f"lookup of {NATIONAL_ID}")

    line, record = _one_line(capsys)
    assert NATIONAL_ID not in line
    assert record["event"] == f"lookup of {REDACTED}"


def test_standard_library_log_records_are_json_and_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("notify")

    logging.getLogger("some.library").warning("sending to %s with Bearer x.y.z", NATIONAL_ID)

    line, record = _one_line(capsys)
    assert NATIONAL_ID not in line
    assert "x.y.z" not in line
    assert record["level"] == "warning"
    assert record["service"] == "notify"


def test_a_logged_exception_does_not_reveal_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case")
    log = get_logger("test")

    try:
        raise ValueError(f"unknown child {NATIONAL_ID} for Bearer abc.def")
    except ValueError:
        log.exception("lookup_failed")

    line, record = _one_line(capsys)
    assert NATIONAL_ID not in line
    assert "abc.def" not in line
    assert "ValueError" in record["exception"]


def test_lines_below_the_configured_level_are_not_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case", "warning")
    log = get_logger("test")

    log.info("quiet")
    log.warning("loud")

    assert [record["event"] for record in _lines(capsys.readouterr().err)] == ["loud"]


def test_uvicorn_access_log_is_turned_off() -> None:
    configure_logging("case")

    assert logging.getLogger("uvicorn.access").disabled


def test_trace_and_span_ids_appear_inside_an_active_span(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case")
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("handle_command") as span:
        get_logger("test").info("inside")
    context = span.get_span_context()

    _, record = _one_line(capsys)
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    assert len(record["trace_id"]) == 32
    assert len(record["span_id"]) == 16


def test_a_span_id_with_eleven_digits_in_a_row_is_not_taken_for_a_national_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("case")
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x77053396021C8549,  # "77053396021": eleven digits
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with use_span(NonRecordingSpan(context)):
        get_logger("test").info("inside", case="fnr 01017012345 i teksten")
    _, record = _one_line(capsys)
    assert record["span_id"] == "77053396021c8549"
    assert record["case"] == "fnr [fjernet] i teksten"


def test_no_trace_ids_are_written_outside_a_span(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("case")

    get_logger("test").info("outside")

    _, record = _one_line(capsys)
    assert "trace_id" not in record
    assert "span_id" not in record


def test_redact_can_be_used_as_a_processor_on_its_own() -> None:
    event_dict: dict[str, Any] = {
        "event": "x",
        "token": "secret-token",
        "Password": "hunter2",
        "count": 3,
        "ok": True,
        "detail": ("a", NATIONAL_ID),
    }

    result = redact(None, "info", event_dict)

    assert result == {
        "event": "x",
        "token": REDACTED,
        "Password": REDACTED,
        "count": 3,
        "ok": True,
        "detail": ["a", REDACTED],
    }
