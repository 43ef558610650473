"""Reports of concern to child welfare arrive (issue 17, item 1), over HTTP on real NATS and
both databases. A report from a Siljan case goes to Skien's child welfare service, which the
region document names as Siljan's inter-municipal service; one from a Porsgrunn case to
Porsgrunn's own. The intake staff get a notice, list and read the report (never the case or
the log) and acknowledge it; the reporter sees it go from sent to received; nobody else,
not the reporter's colleagues nor another child welfare service, sees that it exists."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from stafett_case.testing import CaseHarness
from stafett_consent.testing import REGION, ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.projections import outbox
from stafett_notify.testing import NotifyHarness
from stafett_shared.contracts.access import AccessRecorded
from stafett_shared.envelope import registry

REPORTER = "ann-kristin-allum"  # teacher at Siljan ungdomsskole, holder of the Siljan case
COLLEAGUE = "rektor-siljan"  # the school's leader: reads the case, not the report
SILJAN_INTAKE = "bv-berit"  # Siljan's own child welfare unit, which Siljan does not use
SKIEN_INTAKE = "skien-sigrid"  # intake at Skien's service, which serves Siljan too
PORSGRUNN_INTAKE = "porsgrunn-pia"
PORSGRUNN_TEACHER = "porsgrunn-petter"
TEXT = "Eleven forteller om vold hjemme. Meldes etter opplysningsplikten."


def _region(**siljan: Any) -> dict[str, Any]:
    region = copy.deepcopy(REGION)
    region["organisations"][0].update({"child_welfare_unit_id": "skien-barnevern", **siljan})
    region["organisations"] += [
        {
            "id": "3807",
            "name": "Skien kommune",
            "kind": "municipality",
            "units": [
                {"id": "skien-barnevern", "name": "Barneverntjenesten", "sector": "child_welfare"}
            ],
        },
        {
            "id": "3806",
            "name": "Porsgrunn kommune",
            "kind": "municipality",
            "units": [
                {"id": "porsgrunn-ungdomsskole", "name": "Ungdomsskolen", "sector": "school"},
                {
                    "id": "porsgrunn-barnevern",
                    "name": "Barneverntjenesten",
                    "sector": "child_welfare",
                },
            ],
        },
    ]
    region["staff"] += [
        {
            "id": SKIEN_INTAKE,
            "name": "Sigrid Skien",
            "roles": [{"unit_id": "skien-barnevern", "role": "child_welfare_worker"}],
        },
        {
            "id": PORSGRUNN_INTAKE,
            "name": "Pia Porsgrunn",
            "roles": [{"unit_id": "porsgrunn-barnevern", "role": "child_welfare_worker"}],
        },
        {
            "id": PORSGRUNN_TEACHER,
            "name": "Petter Porsgrunn",
            "roles": [{"unit_id": "porsgrunn-ungdomsskole", "role": "teacher"}],
        },
    ]
    return region


async def _load(consent: ConsentHarness, case: CaseHarness, region: dict[str, Any]) -> None:
    loaded = await consent.load_region(region)
    assert loaded.status_code == 200, loaded.text
    await case.settle(await consent.store.last_seq())


async def _report(case: CaseHarness, case_id: str, person: str, **body: Any) -> httpx.Response:
    return await case.client.post(
        f"/api/v1/cases/{case_id}/child-welfare-reports",
        json={"text": TEXT, **body},
        headers=case.auth(person),
    )


async def _inbox(case: CaseHarness, person: str) -> list[dict[str, Any]]:
    listed = await case.client.get("/api/v1/child-welfare-reports", headers=case.auth(person))
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def _notices(notify: NotifyHarness, person: str) -> list[dict[str, Any]]:
    for _ in range(100):
        inbox = await notify.client.get("/api/v1/notifications", headers=notify.auth(person))
        assert inbox.status_code == 200, inbox.text
        if inbox.json()["items"]:
            break
        await asyncio.sleep(0.1)
    items: list[dict[str, Any]] = inbox.json()["items"]
    return items


async def test_a_report_from_siljan_reaches_skiens_service_which_reads_and_acknowledges_it(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
) -> None:
    case, log, notify = case_service, log_service, notify_service
    await _load(consent, case, _region())
    _child, _guardians, child = await consent.register_child(13, [("Mor", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=child["national_id"])
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 10)

    sent = await _report(case, case_id, REPORTER)

    assert sent.status_code == 201, sent.text
    report_id = sent.json()["id"]
    assert sent.json()["unit_id"] == "skien-barnevern"
    assert sent.json()["status"] == "sent"
    seq = int(sent.headers["Stafett-Seq"])
    await consent.runtime.projector.wait_for(seq, 10)

    # Skien's intake is told that a report arrived, and nothing of it; nobody else is.
    await notify.settle(seq)
    notices = await _notices(notify, SKIEN_INTAKE)
    assert [(n["kind"], n["case_id"]) for n in notices] == [("child_welfare_report", case_id)]
    assert TEXT not in str(notices)
    assert notices[0]["link"].endswith("/barnevern/meldinger")
    async with notify.runtime.sessions() as session:
        told = set(
            (
                await session.scalars(
                    select(outbox.c.recipient).where(outbox.c.kind == "child_welfare_report")
                )
            ).all()
        )
    assert told == {SKIEN_INTAKE}

    # The reporter sees it sent.
    mine = await case.client.get(
        f"/api/v1/cases/{case_id}/child-welfare-reports", headers=case.auth(REPORTER)
    )
    assert mine.status_code == 200, mine.text
    assert [(r["id"], r["status"]) for r in mine.json()["items"]] == [(report_id, "sent")]

    # Skien's intake lists it (without its text) and reads it, with the child.
    listed = await _inbox(case, SKIEN_INTAKE)
    assert [(r["id"], r["case_id"], r["status"]) for r in listed] == [(report_id, case_id, "sent")]
    assert "text" not in listed[0]
    assert listed[0]["from_org_id"] == "4010"
    assert listed[0]["from_unit_id"] == "siljan-ungdomsskole"
    read = await case.client.get(
        f"/api/v1/child-welfare-reports/{report_id}", headers=case.auth(SKIEN_INTAKE)
    )
    assert read.status_code == 200, read.text
    assert read.json()["text"] == TEXT
    assert read.json()["child"]["national_id"] == child["national_id"]
    assert read.json()["reported_by"] == REPORTER
    # ... and never the case or its log.
    whole = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth(SKIEN_INTAKE))
    assert whole.status_code == 404
    entries = await log.client.get(
        f"/api/v1/logs/{case_id}/entries", headers=log.auth(SKIEN_INTAKE)
    )
    assert entries.status_code == 404

    # Nobody else sees that the report exists: the same 404 as for an unknown report.
    unknown = await case.client.get(
        "/api/v1/child-welfare-reports/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=case.auth(COLLEAGUE)
    )
    assert unknown.status_code == 404
    for person in (COLLEAGUE, SILJAN_INTAKE, PORSGRUNN_INTAKE, "helse-hanne"):
        other = await case.client.get(
            f"/api/v1/child-welfare-reports/{report_id}", headers=case.auth(person)
        )
        assert (other.status_code, other.content) == (404, unknown.content), person
        assert await _inbox(case, person) == [], person
        receipt = await case.client.post(
            f"/api/v1/child-welfare-reports/{report_id}/receipt", headers=case.auth(person)
        )
        assert (receipt.status_code, receipt.content) == (404, unknown.content), person
    colleague = await case.client.get(
        f"/api/v1/cases/{case_id}/child-welfare-reports", headers=case.auth(COLLEAGUE)
    )
    assert colleague.status_code == 200
    assert colleague.json()["items"] == []
    # The reporter does not acknowledge their own report.
    own = await case.client.post(
        f"/api/v1/child-welfare-reports/{report_id}/receipt", headers=case.auth(REPORTER)
    )
    assert own.status_code == 404

    # Skien acknowledges it, once; the reporter sees it received.
    received = await case.client.post(
        f"/api/v1/child-welfare-reports/{report_id}/receipt", headers=case.auth(SKIEN_INTAKE)
    )
    assert received.status_code == 200, received.text
    assert received.json()["status"] == "received"
    again = await case.client.post(
        f"/api/v1/child-welfare-reports/{report_id}/receipt", headers=case.auth(SKIEN_INTAKE)
    )
    assert again.status_code == 409
    assert again.json()["code"] == "report_received"
    mine = await case.client.get(
        f"/api/v1/cases/{case_id}/child-welfare-reports", headers=case.auth(REPORTER)
    )
    assert [(r["id"], r["status"]) for r in mine.json()["items"]] == [(report_id, "received")]
    assert mine.json()["items"][0]["received_at"] is not None
    as_sent = await case.client.get(
        f"/api/v1/child-welfare-reports/{report_id}", headers=case.auth(REPORTER)
    )
    assert as_sent.status_code == 200, as_sent.text
    assert (as_sent.json()["status"], as_sent.json()["text"]) == ("received", TEXT)
    assert "child" not in as_sent.json()
    assert [r["status"] for r in await _inbox(case, SKIEN_INTAKE)] == ["received"]

    # Every read of the report is recorded, on its basis; the who-read view of the case,
    # which the family sees too, does not show them (child welfare tells the family).
    assert (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth(REPORTER))
    ).is_success
    reads = [
        registry.payload(e)
        for c in await consent.store.load(consent.store.subject("access", case_id))
        for e in c.events
    ]
    assert {
        (r.reader_id, r.basis)
        for r in reads
        if isinstance(r, AccessRecorded) and r.what == "report"
    } == {(SKIEN_INTAKE, "child_welfare_intake"), (REPORTER, "holder")}
    who_read = await log.client.get(
        f"/api/v1/logs/{case_id}/access",
        headers={**log.auth(REPORTER), "Stafett-Min-Seq": str(await consent.store.last_seq())},
    )
    assert who_read.status_code == 200, who_read.text
    assert [item["what"] for item in who_read.json()["items"]] == ["case"]
    # An auditor of the municipality sees them.
    scope = await consent.client.post(
        "/api/v1/audit-scopes",
        json={
            "auditor_person_id": "statsforvalter-siri",
            "org_id": "4010",
            "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "reason": "Tilsyn med kommunens oppfølging",
        },
        headers=consent.auth("admin"),
    )
    assert scope.status_code == 201, scope.text
    audited = await log.client.get(
        f"/api/v1/logs/{case_id}/access",
        headers={
            **log.auth("statsforvalter-siri"),
            "Stafett-Min-Seq": scope.headers["Stafett-Seq"],
        },
    )
    assert audited.status_code == 200, audited.text
    assert sorted((i["reader_id"], i["what"]) for i in audited.json()["items"]) == [
        (REPORTER, "case"),
        (REPORTER, "report"),
        (SKIEN_INTAKE, "report"),
    ]


async def test_a_report_from_porsgrunn_reaches_porsgrunns_own_service(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _load(consent, case, _region())
    opened = await case.open_case(PORSGRUNN_TEACHER, unit_id="porsgrunn-ungdomsskole")
    await consent.runtime.projector.wait_for(opened["seq"], 10)

    sent = await _report(case, opened["id"], PORSGRUNN_TEACHER)

    assert sent.status_code == 201, sent.text
    assert sent.json()["unit_id"] == "porsgrunn-barnevern"
    report_id = sent.json()["id"]
    await consent.runtime.projector.wait_for(int(sent.headers["Stafett-Seq"]), 10)
    assert [r["id"] for r in await _inbox(case, PORSGRUNN_INTAKE)] == [report_id]
    assert await _inbox(case, SKIEN_INTAKE) == []
    read = await case.client.get(
        f"/api/v1/child-welfare-reports/{report_id}", headers=case.auth(PORSGRUNN_INTAKE)
    )
    assert read.status_code == 200, read.text
    assert read.json()["child"] is None  # an anonymous case: the child is not known yet
    assert read.json()["text"] == TEXT
    skien = await case.client.get(
        f"/api/v1/child-welfare-reports/{report_id}", headers=case.auth(SKIEN_INTAKE)
    )
    assert skien.status_code == 404


async def test_a_report_goes_where_it_is_sent_and_bad_input_writes_nothing(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _load(consent, case, _region())
    # The county names no child welfare service: the reporter names one.
    opened = await case.open_case("vgs-vidar", unit_id="porsgrunn-vgs")
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    before = await consent.store.last_seq()

    nowhere = await _report(case, opened["id"], "vgs-vidar")
    assert nowhere.status_code == 422, nowhere.text
    assert nowhere.json()["code"] == "no_child_welfare_service"
    school = await _report(case, opened["id"], "vgs-vidar", unit_id="porsgrunn-ungdomsskole")
    assert school.status_code == 422
    assert school.json()["code"] == "not_child_welfare"
    empty = await case.client.post(
        f"/api/v1/cases/{opened['id']}/child-welfare-reports",
        json={"text": ""},
        headers=case.auth("vgs-vidar"),
    )
    assert empty.status_code == 422
    assert empty.headers["content-type"].startswith("application/problem+json")
    too_long = await _report(case, opened["id"], "vgs-vidar", text="x" * 4001)
    assert too_long.status_code == 422
    assert await consent.store.last_seq() == before

    sent = await _report(case, opened["id"], "vgs-vidar", unit_id="porsgrunn-barnevern")
    assert sent.status_code == 201, sent.text
    assert sent.json()["unit_id"] == "porsgrunn-barnevern"
    bad_cursor = await case.client.get(
        "/api/v1/child-welfare-reports?cursor=not-a-cursor", headers=case.auth(PORSGRUNN_INTAKE)
    )
    assert bad_cursor.status_code == 422


async def test_the_region_document_names_only_a_child_welfare_unit_for_reports(
    consent: ConsentHarness,
) -> None:
    school = await consent.load_region(_region(child_welfare_unit_id="siljan-ungdomsskole"))
    assert school.status_code == 422, school.text
    unknown = await consent.load_region(_region(child_welfare_unit_id="ingen-slik-enhet"))
    assert unknown.status_code == 422, unknown.text
    two = _region()
    del two["organisations"][0]["child_welfare_unit_id"]
    two["organisations"][0]["units"].append(
        {"id": "siljan-barnevern-2", "name": "Barnevernvakten", "sector": "child_welfare"}
    )
    ambiguous = await consent.load_region(two)
    assert ambiguous.status_code == 422, ambiguous.text
    assert "child_welfare_unit_id" in ambiguous.text

    loaded = await consent.load_region(_region())
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"]["organisation_child_welfare_service_set"] == 1
    directory = await consent.client.get("/api/v1/directory", headers=consent.auth(REPORTER))
    siljan = next(o for o in directory.json()["organisations"] if o["id"] == "4010")
    assert siljan["child_welfare_unit_id"] == "skien-barnevern"
    # Left out again, Siljan's reports go to its own service.
    own = _region()
    del own["organisations"][0]["child_welfare_unit_id"]
    reloaded = await consent.load_region(own)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["changes"] == {"organisation_child_welfare_service_set": 1}


async def test_the_report_lists_page_with_opaque_cursors_bound_to_their_caller(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _load(consent, case, _region())
    _child, _guardians, child = await consent.register_child(14, [("Mor", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=child["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    sent = []
    for n in range(3):
        answer = await _report(case, opened["id"], REPORTER, text=f"{TEXT} ({n})")
        assert answer.status_code == 201, answer.text
        sent.append(answer.json()["id"])
    await case.settle(await consent.store.last_seq())

    for url, person in (
        ("/api/v1/child-welfare-reports", SKIEN_INTAKE),
        (f"/api/v1/cases/{opened['id']}/child-welfare-reports", REPORTER),
    ):
        seen: list[str] = []
        cursors: list[str] = []
        params: dict[str, Any] = {"limit": 1}
        for _ in range(5):
            page = await case.client.get(url, params=params, headers=case.auth(person))
            assert page.status_code == 200, page.text
            seen += [r["id"] for r in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
            # Nothing of the report it points at shows in the cursor.
            assert all(report_id not in cursor for report_id in sent)
            cursors.append(cursor)
            params = {"limit": 1, "cursor": cursor}
        assert sorted(seen) == sorted(sent)
        assert len(cursors) == 2
        # The bare id these lists could have taken, and another caller's cursor, are refused.
        for cursor, who in ((sent[0], person), (cursors[0], PORSGRUNN_INTAKE)):
            refused = await case.client.get(url, params={"cursor": cursor}, headers=case.auth(who))
            assert refused.status_code in (404, 422), refused.text
            if refused.status_code == 422:
                assert refused.json()["code"] in ("invalid_cursor", "validation_error")
