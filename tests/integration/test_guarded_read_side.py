"""No forged or broken message on the stream steers or stalls a read model.

Any service's NATS user can publish on any ``stafett.ev.*`` subject. These tests publish
straight into JetStream, as such a user could, beside the consent, case and log services
running in-process: a forged event of another context, source or aggregate changes no read
model and is quarantined; garbage and a payload its model refuses are quarantined while
later events keep flowing, and a service started on such a stream starts; decisions fail
closed while the consent projection lags.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy import select

from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness
from stafett_shared.envelope import CloudEvent, encode_commit, registry
from stafett_shared.ids import new_id
from stafett_shared.rpc import RpcRemoteError, request
from stafett_shared.service import Runtime
from stafett_shared.testing.plugin import create_database, drop_database

OUTSIDER = "ute-ulrik"  # in no organisation of the region
UNIT = "siljan-ungdomsskole"
NOT_READ_MODELS = {"merkle_leaves", "merkle_tiles"}  # the log's tree takes every message


def _commit(
    aggregate: str,
    event_type: str,
    data: dict[str, Any],
    *,
    source: str,
    event_subject: str | None = None,
) -> bytes:
    """One event as a service would store it; its payload is one its model accepts, so a
    refusal is for where and by whom it was published."""
    event = CloudEvent(
        source=source,
        type=event_type,
        subject=event_subject or aggregate,
        time=datetime.now(UTC),
        tenant="4010",
        actor=OUTSIDER,
        data=data,
    )
    registry.payload(event)  # valid as a payload
    return encode_commit([event])


@dataclass(frozen=True)
class Forgery:
    subject: str  # the NATS subject, ``stafett.ev.<context>.<aggregate>``
    contexts: frozenset[str]  # the subject's and the event's
    message: bytes
    reason: str


def _forgeries(case_id: str) -> list[Forgery]:
    """A forged event on a subject of every context, each refused for its place or source."""
    now = datetime.now(UTC)
    role = {"person_id": OUTSIDER, "org_id": "4010", "unit_id": UNIT, "role": "leader"}
    entry = {
        "entry_id": new_id(),
        "case_id": case_id,
        "kind": "note",
        "text": "enc:v1:forged",
        "occurred_at": now.isoformat(),
        "author": {"person_id": OUTSIDER},
        "regime": "forvaltningsloven",
    }
    scope_id = new_id()
    scope = {
        "scope_id": scope_id,
        "auditor_person_id": OUTSIDER,
        "case_ids": [case_id],
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "reason": "enc:v1:forged",
        "granted_by": "admin",
    }
    read = {
        "case_id": case_id,
        "reader_id": OUTSIDER,
        "reader_kind": "person",
        "what": "case",
        "service": "log",
    }
    unit = new_id()
    role_type = "no.stafett.directory.role_granted.v1"
    entry_type = "no.stafett.log.entry_appended.v1"
    scope_type = "no.stafett.consent.audit_scope_granted.v1"
    read_type = "no.stafett.access.recorded.v1"

    def forged(
        context: str,
        aggregate: str,
        event_type: str,
        data: dict[str, Any],
        source: str,
        reason: str,
        *,
        event_subject: str | None = None,
    ) -> Forgery:
        message = _commit(aggregate, event_type, data, source=source, event_subject=event_subject)
        contexts = frozenset({context, event_type.split(".")[2]})
        return Forgery(f"stafett.ev.{context}.{aggregate}", contexts, message, reason)

    return [
        # An outsider made a unit leader by a grant on an access subject (the attack).
        forged("access", case_id, role_type, role, "stafett/consent", "wrong_context"),
        forged("access", case_id, entry_type, entry, "stafett/log", "wrong_context"),
        forged("access", case_id, read_type, read, "stafett/portal", "wrong_source"),
        forged("case", case_id, role_type, role, "stafett/consent", "wrong_context"),
        forged("log", case_id, read_type, read, "stafett/log", "wrong_context"),
        forged("consent", scope_id, scope_type, scope, "stafett/log", "wrong_source"),
        forged("directory", unit, role_type, role, "stafett/case", "wrong_source"),
        forged(
            "directory",
            unit,
            role_type,
            role,
            "stafett/consent",
            "wrong_aggregate",
            event_subject=new_id(),
        ),
    ]


async def _read_models(runtime: Runtime) -> dict[str, list[str]]:
    """Every row of the service's read models."""
    rows: dict[str, list[str]] = {}
    async with runtime.sessions() as session:
        for table in runtime.projector.projection.tables:
            if table.name not in NOT_READ_MODELS:
                result = await session.execute(select(table))
                rows[table.name] = sorted(repr(tuple(row)) for row in result)
    return rows


def _reads(runtime: Runtime, contexts: frozenset[str]) -> bool:
    wanted = runtime.projector.projection.contexts
    return wanted is None or bool(wanted & contexts)


async def _quarantined(runtime: Runtime) -> dict[int, str]:
    return {q.seq: q.reason for q in await runtime.projector.quarantine()}


async def test_a_forged_event_on_any_contexts_subject_changes_no_read_model_and_is_quarantined(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    services = {
        "consent": consent.runtime,
        "case": case_service.runtime,
        "log": log_service.runtime,
    }
    case_id, opened = await consent.open_case(holder="rektor-siljan", unit_id=UNIT)
    for runtime in services.values():
        await runtime.projector.wait_for(opened, 10)
    before = {name: await _read_models(runtime) for name, runtime in services.items()}
    nc = await nats.connect(consent.runtime.settings.nats_url)
    js = nc.jetstream()
    published: list[tuple[int, Forgery]] = []
    try:
        for forgery in _forgeries(case_id):
            ack = await js.publish(forgery.subject, forgery.message)
            published.append((ack.seq, forgery))
    finally:
        await nc.close()
    last = published[-1][0]
    for runtime in services.values():
        assert await runtime.projector.wait_for(last, 10) >= last

    for name, runtime in services.items():
        assert await _read_models(runtime) == before[name], name
        quarantined = await _quarantined(runtime)
        for seq, forgery in published:
            if _reads(runtime, forgery.contexts):
                assert quarantined.get(seq) == forgery.reason, (name, forgery.subject)
            else:
                assert seq not in quarantined, (name, forgery.subject)
    # The outsider is no unit leader and no auditor: the unit's case stays closed to them.
    for action in ("case:read", "log:read", "audit:read"):
        decision = await consent.decide(OUTSIDER, action, case_id)
        assert decision["decision"] == "deny", action


@contextlib.asynccontextmanager
async def _database(
    request: pytest.FixtureRequest, database_url: str, path: Path
) -> AsyncIterator[str]:
    """A database of its own for another service instance, of the kind under test."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    assert admin is not None
    name, url = await create_database(admin)
    try:
        yield url
    finally:
        await drop_database(admin, name)


async def test_garbage_and_a_missing_field_are_quarantined_while_later_events_flow(
    request: pytest.FixtureRequest,
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    database_url: str,
    tmp_path: Path,
) -> None:
    nats_url = consent.runtime.settings.nats_url
    known, _ = await consent.open_case(holder="ann-kristin-allum", unit_id=UNIT)
    missing_reason = {"case_id": known, "from_level": 1, "level": 2}  # no "reason"
    level_changed = CloudEvent(
        source="stafett/case",
        type="no.stafett.case.level_changed.v1",
        subject=known,
        time=datetime.now(UTC),
        tenant="4010",
        actor="ann-kristin-allum",
        data=missing_reason,
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        bad = {
            (await js.publish(f"stafett.ev.access.{known}", b"\x00\xff garbage")).seq: (
                "access",
                "undecodable",
            ),
            (await js.publish(f"stafett.ev.case.{new_id()}", b"[]")).seq: ("case", "undecodable"),
            (await js.publish(f"stafett.ev.log.{known}", b'{"specversion":"1.0"}')).seq: (
                "log",
                "undecodable",
            ),
            (await js.publish(f"stafett.ev.case.{known}", encode_commit([level_changed]))).seq: (
                "case",
                "invalid_payload",
            ),
        }
    finally:
        await nc.close()

    # The next case opened answers 201, and every service follows it and what comes after.
    opened = await case_service.open_case(national_id=None)
    for runtime in (consent.runtime, log_service.runtime):
        await runtime.projector.wait_for(opened["seq"], 10)
    appended = await log_service.append(opened["id"])
    assert appended.status_code == 201, appended.text
    entry_seq = int(appended.headers["Stafett-Seq"])
    for runtime in (consent.runtime, case_service.runtime, log_service.runtime):
        assert await runtime.projector.wait_for(entry_seq, 10) >= entry_seq
        assert runtime.projector.running
        quarantined = await _quarantined(runtime)
        for seq, (context, reason) in bad.items():
            if _reads(runtime, frozenset({context})):
                assert quarantined.get(seq) == reason, (runtime.spec.name, seq)
            else:
                assert seq not in quarantined
    read = await case_service.client.get(
        f"/api/v1/cases/{opened['id']}", headers=case_service.auth("ann-kristin-allum")
    )
    assert read.status_code == 200, read.text

    # A case service started on this stream replays it from the start, through the garbage.
    async with _database(request, database_url, tmp_path / "case-again.db") as url:
        async with running_case(nats_url, url, tmp_path) as again:
            assert again.runtime.projector.known_position >= entry_seq
            assert await _quarantined(again.runtime) == await _quarantined(case_service.runtime)
            read = await again.client.get(
                f"/api/v1/cases/{opened['id']}", headers=again.auth("ann-kristin-allum")
            )
            assert read.status_code == 200, read.text
            # And so does it after a restart on the same database.
        async with running_case(nats_url, url, tmp_path) as restarted:
            assert restarted.runtime.projector.known_position >= entry_seq

        # `stafett projections quarantine case` lists them.
        env = {
            **os.environ,
            "STAFETT_NATS_URL": nats_url,
            "STAFETT_DATA_DIR": str(tmp_path),
            "STAFETT_CASE_DATABASE_URL": url,
        }
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stafett_shared.cli", "projections", "quarantine", "case"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert {(int(seq), reason) for _, seq, _, reason, _, _ in lines} == {
        (seq, reason)
        for seq, (context, reason) in bad.items()
        if _reads(case_service.runtime, frozenset({context}))
    }
    assert all(name == "case" for name, *_ in lines)
    assert "garbage" not in listed.stdout


async def test_decisions_fail_closed_while_the_consent_projection_lags_beyond_its_bound(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await consent.open_case(holder="ann-kristin-allum", unit_id=UNIT)
    decisions = consent.runtime.extras["decisions"]
    decisions.max_lag_s = 0.5
    principal = "ann-kristin-allum"
    body = {"principal": principal, "action": "case:read", "resource": {"case_id": case_id}}
    headers = consent.auth("stafett-case", client=True, scopes=("stafett.decisions",))
    answer = await consent.client.post("/api/v1/decisions", json=body, headers=headers)
    assert answer.json()["decision"] == "permit"

    projector = consent.runtime.projector
    await projector.stop()  # the projection stops following the stream
    try:
        seq = await consent.publish_case_event(
            case_id, "team_member_removed", {"case_id": case_id, "person_id": "nobody"}
        )
        for _ in range(100):  # the decision point looks at the stream's end every second
            answer = await consent.client.post("/api/v1/decisions", json=body, headers=headers)
            if answer.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        with pytest.raises(RpcRemoteError) as refused:
            await request(
                consent.runtime.nc,
                "stafett.rpc.consent.check",
                {
                    "principal": {"id": principal, "kind": "person"},
                    "action": "case:read",
                    "resource": {"case_id": case_id},
                    "asked_by": "case",
                },
                timeout=5,
            )
        assert refused.value.code == "unavailable"
    finally:
        projector.start()
    await projector.wait_for(seq, 10)
    answer = await consent.client.post("/api/v1/decisions", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "permit"
