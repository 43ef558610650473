"""An organisation's administrator sets its own reminder times (issue 17, item 10): the case
service's deadlines of its cases follow them, while another organisation's cases keep the
region's (``STAFETT_CASE_*``). Over HTTP on real NATS and both databases; the deadline
check is run with a clock moved forward, as the deadline tests do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy import select

from stafett_case.app import deadline_policy
from stafett_case.deadlines import publish_due
from stafett_case.projections import cases, organisation_reminders
from stafett_case.settings import CaseSettings
from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness, fresh_consent, region_with_porsgrunn
from stafett_shared.envelope import CloudEvent, encode_commit
from stafett_shared.testing import NatsHandle

SILJAN_ADMIN = "siljan-admin"  # administers Siljan kommune (4010)
PORSGRUNN_ADMIN = "porsgrunn-admin"  # administers Porsgrunn kommune (3806)
SILJAN = "/api/v1/directory/orgs/4010"
PORSGRUNN = "/api/v1/directory/orgs/3806"
PORSGRUNN_TEACHER = "laerer-lise"
PORSGRUNN_NURSE = "helse-hilde"
REGION_TIMES = {
    "level0_days": 14,
    "evaluation_warning_days": 7,
    "handover_days": 3,
    "inactive_days": 60,
}


@pytest.fixture
async def consent(
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ConsentHarness]:
    admins = {"4010": [SILJAN_ADMIN], "3806": [PORSGRUNN_ADMIN]}
    monkeypatch.setenv("STAFETT_ORG_ADMINS", json.dumps(admins))
    region = region_with_porsgrunn(
        {
            "id": PORSGRUNN_TEACHER,
            "name": "Lise Lærer",
            "roles": [{"unit_id": "porsgrunn-ungdomsskole", "role": "teacher"}],
        },
        {
            "id": PORSGRUNN_NURSE,
            "name": "Hilde Helse",
            "roles": [{"unit_id": "porsgrunn-ungdomsskole", "role": "health_nurse"}],
        },
    )
    async with fresh_consent(nats_server.url, database_url, tmp_path) as harness:
        loaded = await harness.client.put(
            "/api/v1/directory", json=region, headers=harness.auth("admin")
        )
        assert loaded.status_code == 200, loaded.text
        yield harness


async def _in_force(consent: ConsentHarness, path: str, who: str) -> dict[str, Any]:
    response = await consent.client.get(path, headers=consent.auth(who))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["settings_in_force"]
    return answer


async def _times(consent: ConsentHarness, path: str, who: str) -> dict[str, Any]:
    """The reminder times in force for the organisation at ``path``."""
    in_force = await _in_force(consent, path, who)
    return {name: in_force[name] for name in REGION_TIMES}


async def _set_siljans(consent: ConsentHarness, settings: dict[str, Any]) -> int:
    response = await consent.client.get(SILJAN, headers=consent.auth(SILJAN_ADMIN))
    part = response.json()["part"]
    changed = await consent.client.put(
        SILJAN, json={**part, "settings": settings}, headers=consent.auth(SILJAN_ADMIN)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == {"organisation_settings_set": 1}
    return int(changed.headers["Stafett-Seq"])


async def _due(
    consent: ConsentHarness, case: CaseHarness, at: datetime
) -> set[tuple[str, str, str]]:
    """Publish what is due ``at`` by the region's settings; the (case, kind, due date) of
    every deadline published so far."""
    await publish_due(case.runtime.extras["case"], deadline_policy(CaseSettings()), lambda: at)
    return {
        (e.data["case_id"], e.data["kind"], e.data["due_on"])
        for c in await consent.store.read(1, limit=10_000)
        for e in c.events
        if e.type == "no.stafett.case.deadline_due.v1"
    }


async def _opened_on(case: CaseHarness, case_id: str) -> date:
    async with case.runtime.sessions() as session:
        opened = await session.scalar(select(cases.c.opened_at).where(cases.c.case_id == case_id))
    assert isinstance(opened, datetime)
    return opened.date()


async def _handover(case: CaseHarness, case_id: str, by: str, to: str, unit_id: str) -> None:
    response = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers",
        json={"to_person_id": to, "to_unit_id": unit_id},
        headers=case.auth(by),
    )
    assert response.status_code == 201, response.text


async def test_siljans_shorter_reminder_times_remind_its_cases_while_porsgrunn_keeps_the_regions(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    assert await _times(consent, SILJAN, SILJAN_ADMIN) == REGION_TIMES
    seq = await _set_siljans(consent, {"level0_days": 5, "handover_days": 1})
    assert await _times(consent, SILJAN, SILJAN_ADMIN) == {
        **REGION_TIMES,
        "level0_days": 5,
        "handover_days": 1,
    }
    assert await _times(consent, PORSGRUNN, PORSGRUNN_ADMIN) == REGION_TIMES
    await case.settle(seq)

    siljan = await case.open_case()  # level 0, Siljan ungdomsskole (4010)
    porsgrunn = await case.open_case(PORSGRUNN_TEACHER, unit_id="porsgrunn-ungdomsskole")
    await _handover(case, siljan["id"], "ann-kristin-allum", "helse-hanne", "siljan-helsestasjon")
    await _handover(
        case, porsgrunn["id"], PORSGRUNN_TEACHER, PORSGRUNN_NURSE, "porsgrunn-ungdomsskole"
    )
    await case.runtime.projector.catch_up()
    opened = await _opened_on(case, siljan["id"])

    # Two days on: Siljan's handover has waited past its day, Porsgrunn's not its three.
    two_days = await _due(consent, case, datetime.now(UTC) + timedelta(days=2))
    assert {(c, k) for c, k, _ in two_days} == {(siljan["id"], "handover_unanswered")}

    # Six days on: Siljan's case has been at level 0 past its five days, Porsgrunn's not.
    six_days = await _due(consent, case, datetime.now(UTC) + timedelta(days=6))
    assert {(c, k) for c, k, _ in six_days} == {
        (siljan["id"], "handover_unanswered"),
        (siljan["id"], "level0_unresolved"),
        (porsgrunn["id"], "handover_unanswered"),
    }
    assert (siljan["id"], "level0_unresolved", str(opened + timedelta(days=5))) in six_days

    # Fifteen days on, Porsgrunn's case is reminded by the region's fourteen days.
    later = await _due(consent, case, datetime.now(UTC) + timedelta(days=15))
    porsgrunn_opened = await _opened_on(case, porsgrunn["id"])
    assert (
        porsgrunn["id"],
        "level0_unresolved",
        str(porsgrunn_opened + timedelta(days=14)),
    ) in later
    assert all("Eleven" not in str(row) for row in later)

    # Siljan's administrator leaves the times out again: the region's apply to its cases.
    seq = await _set_siljans(consent, {})
    assert await _times(consent, SILJAN, SILJAN_ADMIN) == REGION_TIMES
    await case.settle(seq)
    async with case.runtime.sessions() as session:
        row = (
            await session.execute(
                select(organisation_reminders).where(organisation_reminders.c.org_id == "4010")
            )
        ).one()
    assert (row.level0_days, row.handover_days) == (None, None)


@pytest.mark.parametrize(
    "settings",
    [
        {"level0_days": 0},
        {"level0_days": 366},
        {"evaluation_warning_days": -1},
        {"evaluation_warning_days": 61},
        {"handover_days": 0},
        {"inactive_days": 400},
        {"handover_days": "tre"},
    ],
)
async def test_reminder_times_out_of_range_are_refused_in_bokmal_and_write_nothing(
    consent: ConsentHarness, settings: dict[str, Any]
) -> None:
    part = (await consent.client.get(SILJAN, headers=consent.auth(SILJAN_ADMIN))).json()["part"]
    before = await consent.store.last_seq()
    response = await consent.client.put(
        SILJAN, json={**part, "settings": settings}, headers=consent.auth(SILJAN_ADMIN)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [e["loc"][:2] for e in errors] == [["settings", next(iter(settings))]]
    assert errors[0]["msg"].startswith(("Tallet må være", "Tallet kan være", "Verdien må"))
    assert await consent.store.last_seq() == before


async def test_the_region_document_sets_reminder_times_too(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    region = region_with_porsgrunn()
    region["organisations"][0]["settings"] = {"inactive_days": 30, "evaluation_warning_days": 0}
    loaded = await consent.client.put(
        "/api/v1/directory", json=region, headers=consent.auth("admin")
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"]["organisation_settings_set"] == 1
    in_force = await _in_force(consent, SILJAN, SILJAN_ADMIN)
    assert (in_force["inactive_days"], in_force["evaluation_warning_days"]) == (30, 0)
    await case_service.settle(int(loaded.headers["Stafett-Seq"]))
    async with case_service.runtime.sessions() as session:
        row = (
            await session.execute(
                select(organisation_reminders).where(organisation_reminders.c.org_id == "4010")
            )
        ).one()
    assert (row.inactive_days, row.evaluation_warning_days, row.level0_days) == (30, 0, None)


async def test_a_broken_settings_message_is_quarantined_by_the_case_projection(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    seq = await _set_siljans(consent, {"level0_days": 5})
    await case_service.settle(seq)
    broken = CloudEvent(
        source="stafett/consent",
        type="no.stafett.directory.organisation_settings_set.v1",
        subject="org-4010",
        time=datetime.now(UTC),
        tenant="4010",
        actor="admin",
        data={"org_id": "4010", "settings": {"level0_days": 0}},
    )
    nc = await nats.connect(consent.runtime.settings.nats_url)
    try:
        bad = (
            await nc.jetstream().publish("stafett.ev.directory.org-4010", encode_commit([broken]))
        ).seq
    finally:
        await nc.close()
    opened = await case_service.open_case()  # later events flow past it
    await case_service.settle(opened["seq"])
    quarantined = {q.seq: q.reason for q in await case_service.runtime.projector.quarantine()}
    assert quarantined.get(bad) == "invalid_payload"
    async with case_service.runtime.sessions() as session:
        kept = await session.scalar(
            select(organisation_reminders.c.level0_days).where(
                organisation_reminders.c.org_id == "4010"
            )
        )
    assert kept == 5
