"""The case service over HTTP beside the consent service, with real NATS, SQLite and
PostgreSQL: handovers, team access under consent, concurrency, bad input and rebuilds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from stafett_case.projections import metadata as case_metadata
from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness


async def _identified_case(
    consent: ConsentHarness, case: CaseHarness, age: int = 15
) -> tuple[dict[str, Any], list[str], str]:
    """A level-1 case at Siljan ungdomsskole for a registered child, held by Ann Kristin."""
    child_id, guardians, body = await consent.register_child(age, [("Mor", True), ("Far", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    return opened, guardians, child_id


async def _consent(
    consent: ConsentHarness,
    case_id: str,
    guardians: list[str],
    child_id: str,
    *,
    org_ids: list[str],
    sectors: list[str],
    history_travels: bool,
) -> int:
    requested = await consent.client.post(
        "/api/v1/consents",
        json={
            "case_id": case_id,
            "scope": {
                "org_ids": org_ids,
                "sectors": sectors,
                "history_travels": history_travels,
                "purpose": "Overgang til videregående skole.",
            },
            "evidence": {"method": "digital_signature"},
        },
        headers=consent.auth("ann-kristin-allum"),
    )
    assert requested.status_code == 201, requested.text
    consent_id = requested.json()["id"]
    grantors = [m for g in requested.json()["grantors"] for m in g["members"]]
    seq = 0
    for grantor in grantors:
        signed = await consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": grantor},
            headers=consent.auth(grantor),
        )
        assert signed.status_code == 201, signed.text
        seq = int(signed.headers["Stafett-Seq"])
    assert signed.json()["status"] == "active"
    assert set(grantors) >= set(guardians)
    del child_id
    return seq


async def _handover_to_county(case: CaseHarness, case_id: str) -> Any:
    return await case.client.post(
        f"/api/v1/cases/{case_id}/handovers",
        json={
            "to_person_id": "vgs-vidar",
            "to_unit_id": "porsgrunn-vgs",
            "note": "Overgang etter 10. trinn.",
        },
        headers=case.auth("ann-kristin-allum"),
    )


async def test_a_handover_to_the_county_needs_a_consent_naming_it_and_history_travels_only_if_it_says_so(  # noqa: E501
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, guardians, child_id = await _identified_case(consent, case)
    case_id = opened["id"]
    measure = await case.client.post(
        f"/api/v1/cases/{case_id}/measures",
        json={
            "title": "Samtaler med sosiallærer",
            "goal": "Bedre oppmøte",
            "responsible_person_id": "ann-kristin-allum",
            "start": datetime.now(UTC).date().isoformat(),
            "evaluate_by": (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
        },
        headers=case.auth("ann-kristin-allum"),
    )
    assert measure.status_code == 201, measure.text
    raised = await case.client.post(
        f"/api/v1/cases/{case_id}/level",
        json={"level": 2, "reason": "Trenger tettere oppfølging."},
        headers=case.auth("ann-kristin-allum"),
    )
    assert raised.status_code == 200, raised.text

    refused = await _handover_to_county(case, case_id)
    assert refused.status_code == 422
    assert refused.json()["code"] == "consent_required_for_handover"

    seq = await _consent(
        consent,
        case_id,
        guardians,
        child_id,
        org_ids=["4010", "40"],
        sectors=["school", "upper_secondary"],
        history_travels=False,
    )
    await case.settle(seq)
    requested = await _handover_to_county(case, case_id)
    assert requested.status_code == 201, requested.text
    handover_id = requested.json()["id"]

    # Until the receiver accepts, the old holder stays responsible.
    still = await case.client.get(
        f"/api/v1/cases/{case_id}", headers=case.auth("ann-kristin-allum")
    )
    assert still.json()["holder"]["person_id"] == "ann-kristin-allum"
    assert still.json()["pending_handover"]["id"] == handover_id

    wrong = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover_id}/accept",
        headers=case.auth("rektor-siljan"),
    )
    assert wrong.status_code == 403
    accepted = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover_id}/accept",
        headers=case.auth("vgs-vidar"),
    )
    assert accepted.status_code == 200, accepted.text
    await consent.runtime.projector.wait_for(int(accepted.headers["Stafett-Seq"]), 10)
    view = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("vgs-vidar"))
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["holder"] == {"person_id": "vgs-vidar", "unit_id": "porsgrunn-vgs"}
    assert body["org_id"] == "40"
    assert body["history_from"] is not None
    assert body["measures"] == []  # the history did not travel
    assert body["concern"] is None
    # The levels did, without the reasons given before the handover; of the handovers, the
    # one that brought the case over, with the sender's note.
    assert [(h["level"], h["reason"]) for h in body["level_history"]] == [(1, None), (2, None)]
    (brought,) = body["handovers"]
    assert (brought["id"], brought["status"]) == (handover_id, "accepted")
    assert brought["note"] == "Overgang etter 10. trinn."
    assert brought["answered_at"] == body["holder_since"]


async def test_history_travels_when_the_consent_lets_it(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, guardians, child_id = await _identified_case(consent, case)
    case_id = opened["id"]
    await case.client.post(
        f"/api/v1/cases/{case_id}/measures",
        json={
            "title": "Leksehjelp",
            "goal": "Fullføre 10. trinn",
            "responsible_person_id": "ann-kristin-allum",
            "start": datetime.now(UTC).date().isoformat(),
            "evaluate_by": (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
        },
        headers=case.auth("ann-kristin-allum"),
    )
    seq = await _consent(
        consent,
        case_id,
        guardians,
        child_id,
        org_ids=["40"],
        sectors=["upper_secondary"],
        history_travels=True,
    )
    await case.settle(seq)
    handover_id = (await _handover_to_county(case, case_id)).json()["id"]
    accepted = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover_id}/accept",
        headers=case.auth("vgs-vidar"),
    )
    await consent.runtime.projector.wait_for(int(accepted.headers["Stafett-Seq"]), 10)
    body = (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("vgs-vidar"))
    ).json()
    assert [m["title"] for m in body["measures"]] == ["Leksehjelp"]
    assert body["concern"] == "Eleven virker sliten og har mye fravær."
    assert body["child"]["name"] == "Ola Nordmann"


async def test_a_health_team_member_is_refused_until_a_consent_covers_health(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, guardians, child_id = await _identified_case(consent, case)
    case_id = opened["id"]
    added = await case.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": "helse-hanne", "unit_id": "siljan-helsestasjon", "access": "write"},
        headers=case.auth("ann-kristin-allum"),
    )
    assert added.status_code == 201, added.text
    await consent.runtime.projector.wait_for(int(added.headers["Stafett-Seq"]), 10)
    hidden = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("helse-hanne"))
    assert hidden.status_code == 404
    listed = await case.client.get("/api/v1/cases", headers=case.auth("helse-hanne"))
    assert listed.json()["items"] == []
    raised = await case.client.post(
        f"/api/v1/cases/{case_id}/level",
        json={"level": 2, "reason": "Trenger helsesykepleier"},
        headers=case.auth("ann-kristin-allum"),
    )
    assert raised.status_code == 422
    assert raised.json()["code"] == "consent_missing_for_team"

    seq = await _consent(
        consent,
        case_id,
        guardians,
        child_id,
        org_ids=["4010"],
        sectors=["health"],
        history_travels=False,
    )
    await case.settle(seq)
    shown = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("helse-hanne"))
    assert shown.status_code == 200, shown.text
    listed = await case.client.get("/api/v1/cases", headers=case.auth("helse-hanne"))
    assert [c["id"] for c in listed.json()["items"]] == [case_id]
    raised = await case.client.post(
        f"/api/v1/cases/{case_id}/level",
        json={"level": 2, "reason": "Trenger helsesykepleier"},
        headers=case.auth("ann-kristin-allum"),
    )
    assert raised.status_code == 200, raised.text
    assert raised.json()["level"] == 2


async def test_two_clients_raising_the_level_with_the_same_if_match_get_one_200_and_one_409(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, _g, _c = await _identified_case(consent, case)
    case_id = opened["id"]
    etag = (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("ann-kristin-allum"))
    ).headers["ETag"]
    results = await asyncio.gather(
        *(
            case.client.post(
                f"/api/v1/cases/{case_id}/level",
                json={"level": level, "reason": "Mer hjelp"},
                headers=case.auth("ann-kristin-allum", **{"If-Match": etag}),
            )
            for level in (2, 3)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    conflict = next(r for r in results if r.status_code == 409)
    assert conflict.json()["code"] == "version_conflict"


async def test_bad_input_is_refused_and_writes_nothing(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, _g, _c = await _identified_case(consent, case)
    case_id = opened["id"]
    me = case.auth("ann-kristin-allum")
    before = await consent.store.last_seq()
    cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        (
            "POST",
            "/api/v1/cases",
            {"unit_id": "no-such-unit", "level": 0, "child": {"pseudonym": "A"}, "concern": "x"},
            422,
            "unknown_unit",
        ),
        (
            "POST",
            "/api/v1/cases",
            {
                "unit_id": "siljan-ungdomsskole",
                "level": 1,
                "child": {"pseudonym": "A"},
                "concern": "x",
            },
            422,
            "identification_required",
        ),
        (
            "POST",
            "/api/v1/cases",
            {
                "unit_id": "siljan-ungdomsskole",
                "level": 0,
                "child": {"pseudonym": "A"},
                "concern": "x",
                "extra": 1,
            },
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/cases/{case_id}/level",
            {"level": 7, "reason": "x"},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/cases/{case_id}/identify",
            {"national_id": "12345678901"},
            422,
            "invalid_national_id",
        ),
        (
            "POST",
            f"/api/v1/cases/{case_id}/measures",
            {
                "title": "T",
                "goal": "G",
                "responsible_person_id": "ann-kristin-allum",
                "start": "2026-12-01",
                "evaluate_by": "2026-11-01",
            },
            422,
            "invalid_dates",
        ),
        (
            "POST",
            f"/api/v1/cases/{case_id}/team",
            {"person_id": "helse-hanne", "unit_id": "no-such-unit"},
            422,
            "unknown_unit",
        ),
        (
            "POST",
            f"/api/v1/cases/{case_id}/handovers/01JNZZZZZZZZZZZZZZZZZZZZZZ/accept",
            {},
            404,
            None,
        ),
        ("POST", f"/api/v1/cases/{case_id}/close", {"reason": "bored"}, 422, "validation_error"),
    ]
    for method, path, body, status, code in cases:
        response = await case.client.request(method, path, json=body, headers=me)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if code:
            assert response.json()["code"] == code, (path, response.text)
    # Someone else's handover: only the addressee may accept it.
    handover = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers",
        json={"to_person_id": "rektor-siljan", "to_unit_id": "siljan-ungdomsskole"},
        headers=me,
    )
    assert handover.status_code == 201
    after_handover = await consent.store.last_seq()
    stolen = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover.json()['id']}/accept",
        headers=case.auth("helse-hanne"),
    )
    assert stolen.status_code == 404  # no basis: the case does not exist for her
    by_holder = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover.json()['id']}/accept", headers=me
    )
    assert by_holder.status_code == 403
    assert by_holder.json()["code"] == "not_addressee"
    # Nothing reached the stream but the one valid handover request (and the denials the
    # consent service records as audit events).
    written = [
        e.type
        for c in await consent.store.read(before + 1, limit=1000)
        for e in c.events
        if not e.type.startswith("no.stafett.access.")
    ]
    assert written == ["no.stafett.case.handover_requested.v1"]
    assert after_handover >= before + 1


async def test_commands_on_a_closed_case_are_refused_except_reopen(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, _g, _c = await _identified_case(consent, case)
    case_id = opened["id"]
    me = case.auth("ann-kristin-allum")
    closed = await case.client.post(
        f"/api/v1/cases/{case_id}/close", json={"reason": "resolved"}, headers=me
    )
    assert closed.status_code == 200, closed.text
    again = await case.client.post(
        f"/api/v1/cases/{case_id}/level", json={"level": 2, "reason": "x"}, headers=me
    )
    assert again.status_code == 409
    assert again.json()["code"] == "case_closed"
    reopened = await case.client.post(
        f"/api/v1/cases/{case_id}/reopen", json={"reason": "Ny bekymring"}, headers=me
    )
    assert reopened.status_code == 200
    assert reopened.json()["status"] == "open"


async def test_anyone_on_staff_may_report_to_child_welfare_without_consent(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, _g, _c = await _identified_case(consent, case)
    report = await case.client.post(
        f"/api/v1/cases/{opened['id']}/child-welfare-reports",
        json={"text": "Melding etter opplysningsplikten."},
        headers=case.auth("bv-berit"),
    )
    assert report.status_code == 201, report.text
    guardian = await case.client.post(
        f"/api/v1/cases/{opened['id']}/child-welfare-reports",
        json={"text": "x"},
        headers=case.auth("01JNOTSTAFF000000000000000"),
    )
    assert guardian.status_code == 404


async def test_rebuilding_the_case_read_models_gives_the_same_rows(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened, _guardians, _child_id = await _identified_case(consent, case)
    case_id = opened["id"]
    me = case.auth("ann-kristin-allum")
    await case.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole"},
        headers=me,
    )
    measure = await case.client.post(
        f"/api/v1/cases/{case_id}/measures",
        json={
            "title": "T",
            "goal": "G",
            "responsible_person_id": "ann-kristin-allum",
            "start": datetime.now(UTC).date().isoformat(),
            "evaluate_by": (datetime.now(UTC).date() + timedelta(days=3)).isoformat(),
        },
        headers=me,
    )
    await case.client.post(
        f"/api/v1/cases/{case_id}/measures/{measure.json()['id']}/evaluations",
        json={
            "outcome": "partly",
            "next_evaluate_by": (datetime.now(UTC).date() + timedelta(days=10)).isoformat(),
        },
        headers=me,
    )
    await case.open_case()
    await case.runtime.projector.catch_up()

    async def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        async with case.runtime.engine.connect() as conn:
            for table in case_metadata.sorted_tables:
                result = await conn.execute(select(table))
                rows[table.name] = sorted(
                    (tuple(r) for r in result), key=lambda r: tuple(str(v) for v in r)
                )
        return rows

    before = await snapshot()
    assert before["cases"] and before["measures"] and before["evaluations"]
    await case.runtime.projector.rebuild()
    assert await snapshot() == before


async def test_deadlines_are_published_once_for_notify(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    from stafett_case.app import deadline_policy
    from stafett_case.deadlines import publish_due
    from stafett_case.settings import CaseSettings

    case = case_service
    anonymous = await case.open_case()
    service = case.runtime.extras["case"]
    later = datetime.now(UTC) + timedelta(days=15)
    policy = deadline_policy(CaseSettings())
    assert await publish_due(service, policy, clock=lambda: later) >= 1
    assert await publish_due(service, policy, clock=lambda: later) == 0
    due = [
        e
        for c in await consent.store.read(1, limit=10_000)
        for e in c.events
        if e.type == "no.stafett.case.deadline_due.v1"
    ]
    kinds = {(e.data["case_id"], e.data["kind"]) for e in due}
    assert (anonymous["id"], "level0_unresolved") in kinds
    assert all("Eleven" not in str(e.data) for e in due)


async def test_indicators_are_for_leaders_and_hide_small_counts(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    for _ in range(6):
        await case.open_case()
    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    query = f"/api/v1/indicators?org_id=4010&from={first}&to={last}"
    teacher = await case.client.get(query, headers=case.auth("ann-kristin-allum"))
    assert teacher.status_code == 403
    leader = await case.client.get(query, headers=case.auth("rektor-siljan"))
    assert leader.status_code == 200, leader.text
    body = leader.json()
    assert body["cases_opened"] == 6
    assert body["cases_opened_by_level"] == {"0": 6, "1": "<5", "2": "<5", "3": "<5"}
    assert body["share_with_child_voice"] == 0.0
    assert body["median_days_concern_to_first_measure"] == "<5"
    backwards = await case.client.get(
        f"/api/v1/indicators?org_id=4010&from={today}&to={today - timedelta(days=3)}",
        headers=case.auth("rektor-siljan"),
    )
    assert backwards.status_code == 422
