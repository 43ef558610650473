"""An auditor's replay of an export: each case as the record showed it at a moment."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stafett_shared import replay as replay_module
from stafett_shared.cli import app
from stafett_shared.contracts.case import CaseOpened, LevelChanged
from stafett_shared.envelope import EventRegistry, encode_commit
from stafett_shared.eventstore import parse_stream_time
from stafett_shared.replay import ReplayError, replay
from stafett_shared.testing.events import make_event

CASE = "01JCASE0000000000000000001"
OTHER = "01JCASE0000000000000000002"
CONSENT = "01JCONS0000000000000000001"
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _history() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, subject, data) in stream order; message n is stored at START + n hours. Every
    payload is one its contract accepts."""
    at = START.isoformat()
    entry = {
        "case_id": CASE,
        "kind": "note",
        "text": "enc:v1:kryptert",
        "author": {"person_id": "ann"},
        "regime": "forvaltningsloven",
    }
    consent = {"consent_id": CONSENT, "case_id": CASE}
    return [
        (
            "directory.role_granted",
            "person-ann",
            {"person_id": "ann", "org_id": "4010", "unit_id": "skole", "role": "teacher"},
        ),
        (
            "case.opened",
            CASE,
            {
                "case_id": CASE,
                "org_id": "4010",
                "unit_id": "skole",
                "level": 1,
                "holder": {"person_id": "ann", "unit_id": "skole"},
                "concern": "enc:v1:kryptert",
            },
        ),
        (
            "case.team_member_added",
            CASE,
            {
                "case_id": CASE,
                "person_id": "bjorn",
                "unit_id": "skole",
                "org_id": "4010",
                "access": "read",
            },
        ),
        ("log.entry_appended", CASE, {**entry, "entry_id": "e1", "occurred_at": at}),
        (
            "access.recorded",
            CASE,
            {
                "case_id": CASE,
                "reader_id": "mor",
                "reader_kind": "person",
                "basis": "guardian",
                "what": "entries",
                "service": "log",
            },
        ),
        ("consent.requested", CONSENT, _requested()),
        ("consent.activated", CONSENT, consent),
        (
            "case.level_changed",
            CASE,
            {"case_id": CASE, "from_level": 1, "level": 2, "reason": "enc:v1:kryptert"},
        ),
        (
            "access.decision_recorded",
            CASE,
            {
                "decision_id": "d1",
                "principal_id": "vidar",
                "principal_kind": "person",
                "action": "case:read",
                "case_id": CASE,
                "decision": "deny",
                "reason": "no_basis",
                "detail": "",
                "policy_version": "1",
            },
        ),
        (
            "log.entry_corrected",
            CASE,
            {
                **{k: v for k, v in entry.items() if k != "kind"},
                "entry_id": "e2",
                "corrects_entry_id": "e1",
                "reason": "enc:v1:kryptert",
            },
        ),
        ("case.team_member_removed", CASE, {"case_id": CASE, "person_id": "bjorn"}),
        (
            "case.handover_accepted",
            CASE,
            {
                "case_id": CASE,
                "handover_id": "h1",
                "from_person_id": "ann",
                "to_person_id": "cecilie",
                "to_unit_id": "vgs",
                "to_org_id": "40",
                "history_travels": True,
            },
        ),
        (
            "consent.withdrawn",
            CONSENT,
            {**consent, "grantor_person_id": "mor", "recorded_by": "ann"},
        ),
        ("case.closed", CASE, {"case_id": CASE, "reason": "resolved"}),
        (
            "case.opened",
            OTHER,
            {
                "case_id": OTHER,
                "org_id": "4010",
                "unit_id": "skole",
                "level": 0,
                "holder": {"person_id": "ann", "unit_id": "skole"},
                "concern": "enc:v1:kryptert",
            },
        ),
    ]


def _requested() -> dict[str, Any]:
    scope = {"org_ids": ["4010"], "sectors": ["school"], "purpose": "enc:v1:kryptert"}
    return {
        "consent_id": CONSENT,
        "case_id": CASE,
        "child_id": "barn",
        "scope": scope,
        "valid_from": START.isoformat(),
        "valid_until": (START + timedelta(days=365)).isoformat(),
        "evidence": {"method": "paper"},
        "grantors": [{"kind": "guardians", "members": ["mor"]}],
        "rule": "guardians",
        "age_applied": 9,
        "threshold_age": 15,
        "requested_by": "ann",
    }


_SOURCES = {"case": "case", "log": "log", "consent": "consent", "directory": "consent"}


def _lines(history: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Export lines as ``stafett audit export`` writes them: the stream's subject, each event
    published by the service that owns its context."""
    lines = []
    for n, (kind, aggregate, data) in enumerate(history, 1):
        stored = (START + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
        context = kind.split(".")[0]
        owner = _SOURCES.get(context, "consent" if kind.endswith("decision_recorded") else "log")
        event = make_event(aggregate, f"no.stafett.{kind}.v1", data, source=f"stafett/{owner}")
        encoded = base64.b64encode(encode_commit([event])).decode()
        subject = f"stafett.ev.{context}.{aggregate}"
        lines.append(json.dumps({"seq": n, "subject": subject, "time": stored, "data": encoded}))
    return lines


def test_the_whole_export_shows_each_case_as_it_ends() -> None:
    result = replay(_lines(_history()))
    assert (result.messages, result.last_seq) == (15, 15)
    case = result.cases[CASE].as_json()
    assert (case["status"], case["level"], case["holder_id"], case["unit_id"]) == (
        "closed",
        2,
        "cecilie",
        "vgs",
    )
    assert case["org_id"] == "40"
    assert case["team"] == []
    assert case["consents"] == {CONSENT: "withdrawn"}
    assert case["entries"] == {"appended": 1, "corrected": 1, "retracted": 0, "restricted": 0}
    assert (case["reads"], case["denials_published"]) == ({"guardian": 1}, 1)
    assert set(result.cases) == {CASE, OTHER}  # no "case" for the directory event
    assert "kryptert" not in json.dumps(result.as_json())  # no content, not even encrypted


def test_as_of_a_moment_the_case_is_as_it_stood_then() -> None:
    # Message 8 (the level change) is stored at START + 8 h; stop just before it.
    moment = START + timedelta(hours=7, minutes=30)
    result = replay(_lines(_history()), moment)
    assert (result.messages, result.last_seq) == (7, 7)
    case = result.cases[CASE].as_json()
    assert (case["status"], case["level"], case["holder_id"]) == ("open", 1, "ann")
    assert case["team"] == ["bjorn"]
    assert case["consents"] == {CONSENT: "active"}
    assert case["denials_published"] == 0
    assert OTHER not in result.cases


def test_a_line_that_is_no_export_record_names_its_line() -> None:
    lines = _lines(_history()[:2])
    lines.insert(1, '{"seq": 2, "time": "i går"}')
    with pytest.raises(ReplayError, match="linje 2"):
        replay(lines)


def _refused(lines: list[str]) -> list[dict[str, Any]]:
    result = replay(lines)
    assert CASE in result.cases  # what came before and after is folded as usual
    return result.refused


def test_a_message_that_is_no_batch_of_events_is_skipped_and_listed() -> None:
    lines = _lines(_history()[:3])
    broken = json.loads(lines[1])
    broken["data"] = base64.b64encode(b'{"ikke": "en hendelse"}').decode()
    lines[1] = json.dumps(broken)
    lines.insert(1, _lines(_history()[1:2])[0])  # the case is still opened once
    assert _refused(lines) == [
        {"seq": 2, "subject": f"stafett.ev.case.{CASE}", "reason": "undecodable"}
    ]


def test_an_event_its_contract_refuses_is_skipped_and_listed() -> None:
    history = _history()[:3]
    kind, subject, data = history[2]
    history[2] = (kind, subject, {k: v for k, v in data.items() if k != "person_id"})
    result = replay(_lines(history))
    assert [r["reason"] for r in result.refused] == ["invalid_payload"]
    assert result.cases[CASE].as_json()["team"] == []
    assert "kryptert" not in json.dumps(result.as_json())


def test_an_event_of_an_unknown_type_is_skipped_and_listed() -> None:
    history = [*_history()[:2], ("case.renamed_long_ago", CASE, {"case_id": CASE})]
    assert [r["reason"] for r in _refused(_lines(history))] == ["unknown_type"]


def test_a_forged_event_does_not_stop_the_replay_nor_count() -> None:
    forged = (
        "directory.role_granted",
        CASE,
        {"person_id": "ann", "org_id": "4010", "unit_id": "skole", "role": "leader"},
    )
    lines = _lines([*_history()[:2], forged])
    moved = json.loads(lines[2])
    moved["subject"] = f"stafett.ev.access.{CASE}"  # another context's event on a subject
    lines[2] = json.dumps(moved)
    result = replay(lines)
    assert [r["reason"] for r in result.refused] == ["wrong_context"]
    assert result.cases[CASE].as_json()["events"] == {"case.opened": 1}


def test_a_damaged_export_line_still_stops_the_replay() -> None:
    with pytest.raises(ReplayError, match="linje 2"):
        replay([_lines(_history()[:1])[0], "ikke json"])


def test_an_export_of_a_retired_version_is_read_through_its_upcaster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = EventRegistry()
    for model in (CaseOpened, LevelChanged):
        events.register(model)

    def upcast(data: dict[str, Any]) -> dict[str, Any]:  # v0 named the level "new_level"
        rest = {k: v for k, v in data.items() if k != "new_level"}
        return {**rest, "level": data["new_level"], "reason": "enc:v1:ukjent"}

    events.register_upcaster("no.stafett.case.level_set.v1", LevelChanged.event_type, upcast)
    monkeypatch.setattr(replay_module, "registry", events)
    old = ("case.level_set", CASE, {"case_id": CASE, "from_level": 1, "new_level": 3})

    result = replay(_lines([_history()[1], old]))

    case = result.cases[CASE].as_json()
    assert case["level"] == 3
    assert case["events"] == {"case.opened": 1, "case.level_changed": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T12:00:00.123456789Z", datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-03-01T13:00:00+01:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
    ],
)
def test_times_are_rfc_3339_with_a_zone(text: str, expected: datetime) -> None:
    assert parse_stream_time(text) == expected


@pytest.mark.parametrize("text", ["2026-03-01", "2026-03-01T12:00:00", "i går"])
def test_a_time_without_a_zone_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_stream_time(text)


def test_the_command_prints_a_table_or_json_and_refuses_a_bad_moment(tmp_path: Path) -> None:
    export = tmp_path / "eksport.jsonl"
    export.write_text("\n".join(_lines(_history())) + "\n", encoding="utf-8")
    runner = CliRunner(env={"COLUMNS": "200"})

    shown = runner.invoke(app, ["audit", "replay", str(export), "--as-of", "2026-03-01T15:30:00Z"])
    assert shown.exit_code == 0, shown.output
    assert "7 meldinger" in shown.output
    assert "Stafettholder" in shown.output

    as_json = runner.invoke(app, ["audit", "replay", str(export), "--json", "--case", OTHER])
    assert as_json.exit_code == 0, as_json.output
    assert [c["case_id"] for c in json.loads(as_json.output)["cases"]] == [OTHER]

    bad = runner.invoke(app, ["audit", "replay", str(export), "--as-of", "i går"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["audit", "replay", str(tmp_path / "finnes-ikke.jsonl")])
    assert missing.exit_code == 1
