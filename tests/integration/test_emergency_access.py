"""Emergency access with guardrails (issue 17, item 5), over HTTP on real NATS and both
databases: only staff related to the case's organisation or its unit's sector, a ground from
a fixed list, one grant at a time per person and case, a repeat within 30 days waits for a
leader of the case's unit; the holder, the leaders and the guardians are told; an unknown
case and one the caller has no relation to get the same 404
(docs/decisions/0027-emergency-access-guardrails.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete

from stafett_consent.testing import ConsentHarness, region_with_porsgrunn
from stafett_notify.testing import NotifyHarness
from stafett_shared.contracts.consent import (
    EmergencyAccessGranted,
    EmergencyAccessRequested,
    EmergencyGround,
)
from stafett_shared.envelope import EventData, registry
from stafett_shared.idempotency import idempotency_table
from stafett_shared.ids import new_id

HOLDER = "ann-kristin-allum"  # teacher, Siljan ungdomsskole (owns the cases)
LEADER = "rektor-siljan"  # leader, Siljan ungdomsskole
NURSE = "helse-hanne"  # Siljan helsestasjon: the case's municipality, no basis to read
COUNTY_TEACHER = "vgs-vidar"  # the county's upper secondary school: no relation at all
OTHER_SCHOOL_TEACHER = "porsgrunn-petter"  # a school in Porsgrunn: the case's sector
REASON = "Eleven er meldt savnet etter skoletid, og mor når ikke holderen."
IGNORED_HEADERS = frozenset({"date", "server"})


def _ask(case_id: str, ground: str = "missing_child", reason: str = REASON) -> dict[str, str]:
    return {"case_id": case_id, "ground": ground, "reason": reason}


async def _emergency(
    consent: ConsentHarness, person: str, case_id: str, **body: Any
) -> httpx.Response:
    return await consent.client.post(
        "/api/v1/emergency-access", json=_ask(case_id, **body), headers=consent.auth(person)
    )


async def _approve(consent: ConsentHarness, person: str, grant_id: str) -> httpx.Response:
    return await consent.client.post(
        f"/api/v1/emergency-access/{grant_id}/approval", headers=consent.auth(person)
    )


def _same(a: httpx.Response, b: httpx.Response) -> None:
    """Byte for byte: status, body and headers (but the date)."""
    assert (a.status_code, a.content) == (b.status_code, b.content)
    drop = IGNORED_HEADERS
    assert {k: v for k, v in a.headers.items() if k not in drop} == {
        k: v for k, v in b.headers.items() if k not in drop
    }


async def _written(consent: ConsentHarness, before: int) -> list[EventData]:
    """The emergency events written after ``before`` (decision records aside)."""
    return [
        registry.payload(e)
        for e in await consent.events_since(before)
        if e.type.startswith("no.stafett.consent.emergency")
    ]


async def _with_porsgrunn(consent: ConsentHarness) -> None:
    """The test region with a school in Porsgrunn kommune and a teacher there."""
    teacher = {
        "id": OTHER_SCHOOL_TEACHER,
        "name": "Petter Porsgrunn",
        "roles": [{"unit_id": "porsgrunn-ungdomsskole", "role": "teacher"}],
    }
    loaded = await consent.load_region(region_with_porsgrunn(teacher))
    assert loaded.status_code == 200, loaded.text
    await consent.runtime.projector.wait_for(loaded.json()["seq"], 10)


async def test_staff_of_the_cases_organisation_or_sector_read_for_a_day_on_a_ground(
    consent: ConsentHarness,
) -> None:
    await _with_porsgrunn(consent)
    case_id, _seq = await consent.open_case()
    for person in (NURSE, OTHER_SCHOOL_TEACHER):
        before = await consent.store.last_seq()
        granted = await _emergency(consent, person, case_id, ground="danger_to_life_or_health")
        assert granted.status_code == 201, granted.text
        body = granted.json()
        assert (body["case_id"], body["status"], body["ground"]) == (
            case_id,
            "active",
            "danger_to_life_or_health",
        )
        until = datetime.fromisoformat(body["valid_until"])
        assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
        (event,) = await _written(consent, before)
        assert isinstance(event, EmergencyAccessGranted)
        assert (event.person_id, event.ground) == (person, "danger_to_life_or_health")
        assert "savnet" not in event.reason  # the free text is encrypted
        read = await consent.decide(
            person, "case:read", case_id, min_seq=int(granted.headers["Stafett-Seq"])
        )
        assert (read["decision"], read["basis"]) == ("permit", "emergency")
        assert (await consent.decide(person, "case:write", case_id))["decision"] == "deny"


async def test_an_unknown_case_and_an_unrelated_one_get_the_same_404(
    consent: ConsentHarness,
) -> None:
    child_id, guardians, _ = await consent.register_child(12, [("Mor", True)])
    case_id, _seq = await consent.open_case(child_id=child_id)
    before = await consent.store.last_seq()
    unrelated = await _emergency(consent, COUNTY_TEACHER, case_id)
    unknown = await _emergency(consent, COUNTY_TEACHER, new_id())
    stranger = await _emergency(consent, "ukjent-person", case_id)
    assert unrelated.status_code == 404, unrelated.text
    assert unrelated.headers["content-type"].startswith("application/problem+json")
    assert unrelated.json()["code"] == "not_found"
    assert REASON not in unrelated.text
    _same(unrelated, unknown)
    _same(unrelated, stranger)
    # A guardian may read the case and so knows it exists: 403, as everywhere (0025).
    guardian = await _emergency(consent, guardians[0], case_id)
    assert (guardian.status_code, guardian.json()["code"]) == (403, "forbidden")
    assert await _written(consent, before) == []


async def test_the_ground_must_come_from_the_fixed_list(consent: ConsentHarness) -> None:
    case_id, _seq = await consent.open_case()
    before = await consent.store.last_seq()
    for body in (
        {"case_id": case_id, "reason": REASON},  # no ground
        _ask(case_id, ground="curiosity"),
        _ask(case_id, ground=""),
        {**_ask(case_id), "ground": ["missing_child"]},
    ):
        refused = await consent.client.post(
            "/api/v1/emergency-access", json=body, headers=consent.auth(NURSE)
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
        assert REASON not in refused.text
    assert await consent.store.last_seq() == before


async def test_one_grant_at_a_time_and_none_for_who_may_read_already(
    consent: ConsentHarness,
) -> None:
    case_id, _seq = await consent.open_case()
    first = await _emergency(consent, NURSE, case_id)
    assert first.status_code == 201, first.text
    before = await consent.store.last_seq()
    again = await _emergency(consent, NURSE, case_id, ground="acute_child_welfare")
    assert (again.status_code, again.json()["code"]) == (409, "emergency_access_active")
    for reader in (HOLDER, LEADER):
        refused = await _emergency(consent, reader, case_id)
        assert (refused.status_code, refused.json()["code"]) == (409, "access_exists")
    assert await _written(consent, before) == []


async def test_a_repeat_within_30_days_waits_for_a_leader_of_the_cases_unit(
    consent: ConsentHarness,
) -> None:
    case_id, _seq = await consent.open_case()
    previous = await consent.past_emergency_grant(NURSE, case_id, days_ago=3)
    before = await consent.store.last_seq()
    asked = await _emergency(consent, NURSE, case_id)
    assert asked.status_code == 201, asked.text
    assert (asked.json()["status"], asked.json()["valid_until"]) == ("pending", None)
    grant_id = asked.json()["id"]
    (event,) = await _written(consent, before)
    assert isinstance(event, EmergencyAccessRequested)
    assert (event.previous_grant_id, event.notify_person_ids) == (previous, (LEADER,))
    seq = int(asked.headers["Stafett-Seq"])
    assert (await consent.decide(NURSE, "case:read", case_id, min_seq=seq))["decision"] == "deny"
    waiting = await _emergency(consent, NURSE, case_id)
    assert (waiting.status_code, waiting.json()["code"]) == (409, "emergency_access_pending")

    # The holder may read the case but is no leader; the requester may not read it, and is
    # told what anyone is told about a grant that does not exist.
    holder = await _approve(consent, HOLDER, grant_id)
    assert (holder.status_code, holder.json()["code"]) == (403, "not_unit_leader")
    _same(await _approve(consent, NURSE, grant_id), await _approve(consent, NURSE, new_id()))
    assert (await _approve(consent, NURSE, grant_id)).status_code == 404
    assert (await _approve(consent, LEADER, "not-a-grant")).status_code == 404

    approved = await _approve(consent, LEADER, grant_id)
    assert approved.status_code == 201, approved.text
    assert (approved.json()["id"], approved.json()["status"]) == (grant_id, "active")
    until = datetime.fromisoformat(approved.json()["valid_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    read = await consent.decide(
        NURSE, "case:read", case_id, min_seq=int(approved.headers["Stafett-Seq"])
    )
    assert (read["decision"], read["basis"]) == ("permit", "emergency")
    twice = await _approve(consent, LEADER, grant_id)
    assert (twice.status_code, twice.json()["code"]) == (409, "not_pending")


async def _waiting(consent: ConsentHarness, person: str) -> list[dict[str, Any]]:
    listed = await consent.client.get(
        "/api/v1/emergency-access", params={"status": "pending"}, headers=consent.auth(person)
    )
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def test_a_leader_lists_the_requests_that_wait_for_their_approval(
    consent: ConsentHarness,
) -> None:
    case_id, _seq = await consent.open_case()
    await consent.past_emergency_grant(NURSE, case_id, days_ago=3)
    asked = await _emergency(consent, NURSE, case_id, ground="acute_child_welfare")
    assert asked.status_code == 201, asked.text
    grant_id = asked.json()["id"]
    await consent.runtime.projector.wait_for(int(asked.headers["Stafett-Seq"]), 10)

    (item,) = await _waiting(consent, LEADER)
    assert item == {
        "id": grant_id,
        "case_id": case_id,
        "person_id": NURSE,
        "ground": "acute_child_welfare",
        "requested_at": item["requested_at"],
    }
    assert "reason" not in item and REASON not in str(item)
    # The holder may manage the case but leads no unit; the requester approves nothing.
    assert await _waiting(consent, HOLDER) == []
    assert await _waiting(consent, NURSE) == []
    unknown = await consent.client.get(
        "/api/v1/emergency-access", params={"status": "active"}, headers=consent.auth(LEADER)
    )
    assert unknown.status_code == 422
    missing = await consent.client.get("/api/v1/emergency-access", headers=consent.auth(LEADER))
    assert missing.status_code == 422
    too_many = await consent.client.get(
        "/api/v1/emergency-access",
        params={"status": "pending", "limit": 101},
        headers=consent.auth(LEADER),
    )
    assert too_many.status_code == 422

    approved = await _approve(consent, LEADER, grant_id)
    assert approved.status_code == 201, approved.text
    await consent.runtime.projector.wait_for(int(approved.headers["Stafett-Seq"]), 10)
    assert await _waiting(consent, LEADER) == []


async def test_a_grant_more_than_30_days_ago_is_no_repeat(consent: ConsentHarness) -> None:
    case_id, _seq = await consent.open_case()
    await consent.past_emergency_grant(NURSE, case_id, days_ago=31)
    granted = await _emergency(consent, NURSE, case_id)
    assert granted.status_code == 201, granted.text
    assert granted.json()["status"] == "active"


async def test_a_request_no_leader_approved_within_a_day_can_no_longer_be_approved(
    consent: ConsentHarness,
) -> None:
    case_id, _seq = await consent.open_case()
    previous = await consent.past_emergency_grant(NURSE, case_id, days_ago=5)
    at = datetime.now(UTC) - timedelta(hours=25)
    grant_id = new_id()
    asked = EmergencyAccessRequested(
        grant_id=grant_id,
        case_id=case_id,
        person_id=NURSE,
        ground=EmergencyGround.MISSING_CHILD,
        reason="enc:v1:test",
        requested_at=at,
        previous_grant_id=previous,
        notify_person_ids=(LEADER,),
    )
    await consent.publish_consent_event(asked, grant_id, actor=NURSE, at=at)
    lapsed = await _approve(consent, LEADER, grant_id)
    assert (lapsed.status_code, lapsed.json()["code"]) == (409, "request_lapsed")
    assert await _waiting(consent, LEADER) == []  # no longer shown as waiting
    # It no longer stands in the way: a new request waits for approval in its place.
    again = await _emergency(consent, NURSE, case_id)
    assert (again.status_code, again.json()["status"]) == (201, "pending")


async def _notices(notify: NotifyHarness, person: str) -> list[dict[str, Any]]:
    inbox = await notify.client.get("/api/v1/notifications", headers=notify.auth(person))
    assert inbox.status_code == 200, inbox.text
    items: list[dict[str, Any]] = inbox.json()["items"]
    return items


async def _told(
    notify: NotifyHarness, wanted: dict[str, set[str]]
) -> dict[str, list[dict[str, Any]]]:
    """Each person's inbox once it holds the kinds ``wanted`` names for them."""
    inboxes: dict[str, list[dict[str, Any]]] = {}
    for _ in range(200):
        inboxes = {person: await _notices(notify, person) for person in wanted}
        if all(kinds <= {n["kind"] for n in inboxes[p]} for p, kinds in wanted.items()):
            return inboxes
        await asyncio.sleep(0.1)
    raise AssertionError(f"not told: {wanted}, inboxes: {inboxes}")


async def test_the_holder_the_leader_and_the_guardians_are_told_nothing_confidential(
    consent: ConsentHarness, notify_service: NotifyHarness
) -> None:
    notify = notify_service
    child_id, (mother, father), _ = await consent.register_child(
        12, [("Kari Nordmann", True), ("Per Nordmann", False)]
    )
    case_id, _seq = await consent.open_case(child_id=child_id)
    granted = await _emergency(consent, NURSE, case_id)
    assert granted.status_code == 201, granted.text
    await notify.settle(int(granted.headers["Stafett-Seq"]))
    told = {
        HOLDER: {"emergency_access"},
        LEADER: {"emergency_access"},
        mother: {"emergency_access"},
    }
    inboxes = await _told(notify, told)

    # A repeat by the child welfare worker waits: the leader is asked, nobody else is told.
    await consent.past_emergency_grant("bv-berit", case_id, days_ago=2)
    asked = await _emergency(consent, "bv-berit", case_id, ground="acute_child_welfare")
    assert asked.json()["status"] == "pending", asked.text
    waiting = await _told(notify, {LEADER: {"emergency_access", "emergency_access_requested"}})
    # The leader is led to the page where they approve it; the grant's notice to the case.
    links = {n["kind"]: n["link"] for n in waiting[LEADER]}
    assert links["emergency_access_requested"].endswith("/nodtilgang/godkjenn")
    assert links["emergency_access"].endswith(f"/saker/{case_id}")
    approved = await _approve(consent, LEADER, asked.json()["id"])
    assert approved.status_code == 201, approved.text
    await notify.settle(int(approved.headers["Stafett-Seq"]))
    after = {
        "bv-berit": {"emergency_access_approved"},
        HOLDER: {"emergency_access", "emergency_access_approved"},
        mother: {"emergency_access", "emergency_access_approved"},
    }
    inboxes = {**inboxes, **await _told(notify, after)}
    inboxes[LEADER] = await _notices(notify, LEADER)
    for person in (HOLDER, mother, "bv-berit"):
        assert "emergency_access_requested" not in {n["kind"] for n in inboxes[person]}
    # The leader approved it: no notice of their own approval.
    assert "emergency_access_approved" not in {n["kind"] for n in inboxes[LEADER]}
    # Neither the guardian without parental responsibility nor the nurse who asked first.
    assert await _notices(notify, father) == []
    assert await _notices(notify, NURSE) == []
    text = str(inboxes)
    for secret in ("Kari", "Per", "Nordmann", "savnet", REASON, "missing_child", NURSE):
        assert secret not in text
    assert all(n["case_id"] == case_id for notices in inboxes.values() for n in notices)


async def test_an_approval_sent_again_with_its_key_gets_the_first_answer(
    consent: ConsentHarness,
) -> None:
    """As after a service died between storing the approval and answering it: the approval
    sent again with the same Idempotency-Key is answered as the first, not as not pending."""
    case_id, _seq = await consent.open_case()
    await consent.past_emergency_grant(NURSE, case_id, days_ago=3)
    asked = await _emergency(consent, NURSE, case_id)
    assert asked.status_code == 201, asked.text
    url = f"/api/v1/emergency-access/{asked.json()['id']}/approval"
    keyed = {**consent.auth(LEADER), "Idempotency-Key": "approval-0001"}
    approved = await consent.client.post(url, headers=keyed)
    assert approved.status_code == 201, approved.text
    # The kept answer is lost with the process that had it; the stream keeps the key.
    async with consent.runtime.sessions() as session, session.begin():
        await session.execute(delete(idempotency_table))
    again = await consent.client.post(url, headers=keyed)
    assert again.status_code == 201, again.text
    assert again.json() == approved.json()
    assert again.headers["Stafett-Seq"] == approved.headers["Stafett-Seq"]
    unkeyed = await _approve(consent, LEADER, asked.json()["id"])
    assert (unkeyed.status_code, unkeyed.json()["code"]) == (409, "not_pending")
