"""Consent reminders and digital renewal (issue 18, items 4 and 6; decision 0032), over HTTP
on real NATS and both databases, with the consent service's and the decision point's clocks
moved forward instead of waiting: request → reminder notice → renewal → signed → no gap in
access at the old end; and an end without renewal → access ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from stafett_case.testing import CaseHarness
from stafett_consent.decisions import DecisionPoint
from stafett_consent.handlers import ConsentService
from stafett_consent.testing import ConsentHarness, consent_request
from stafett_log.testing import LogHarness
from stafett_notify.testing import NotifyHarness

STAFF = "ann-kristin-allum"
NURSE = "helse-hanne"  # on the team from the health service: reads the case by the consent
STRANGER = "vgs-vidar"  # no relation to the case


def _service(consent: ConsentHarness) -> ConsentService:
    service = consent.runtime.extras["consent"]
    assert isinstance(service, ConsentService)
    return service


def _decisions(consent: ConsentHarness) -> DecisionPoint:
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    return decisions


def _at(consent: ConsentHarness, when: datetime) -> None:
    """Move the consent service's clock and the decision point's to ``when``."""
    clock: Callable[[], datetime] = lambda: when  # noqa: E731 - a fixed clock
    _service(consent).clock = clock
    _decisions(consent)._clock = clock  # the test moves time


async def _active_consent(consent: ConsentHarness) -> tuple[str, str, list[str], datetime]:
    """A case with two responsible guardians, the nurse on its team and an active consent
    for the health service: (case, consent, guardians, the consent's end)."""
    child_id, guardians, _ = await consent.register_child(12, [("Mor", True), ("Far", True)])
    case_id, _seq = await consent.open_case(child_id=child_id)
    await consent.add_team_member(case_id, NURSE, "siljan-helsestasjon")
    requested = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=consent.auth(STAFF)
    )
    assert requested.status_code == 201, requested.text
    consent_id = requested.json()["id"]
    for guardian in guardians:
        signed = await _sign(consent, consent_id, guardian)
        assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "active"
    (listed,) = await _list(consent, case_id)
    return case_id, consent_id, guardians, datetime.fromisoformat(listed["valid_until"])


async def _sign(consent: ConsentHarness, consent_id: str, guardian: str) -> httpx.Response:
    return await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": guardian},
        headers=consent.auth(guardian),
    )


async def _list(consent: ConsentHarness, case_id: str, query: str = "") -> list[dict[str, Any]]:
    listed = await consent.client.get(
        f"/api/v1/consents?case_id={case_id}{query}", headers=consent.auth(STAFF)
    )
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def _renew(consent: ConsentHarness, consent_id: str, person: str, **headers: str) -> Any:
    return await consent.client.post(
        f"/api/v1/consents/{consent_id}/renewals", headers={**consent.auth(person), **headers}
    )


async def _notices(notify: NotifyHarness, person: str, kind: str) -> list[dict[str, Any]]:
    """The person's notices of ``kind``, once one has arrived (or none after ten seconds)."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        inbox = await notify.client.get("/api/v1/notifications", headers=notify.auth(person))
        assert inbox.status_code == 200, inbox.text
        found = [n for n in inbox.json()["items"] if n["kind"] == kind]
        if found:
            break
        await asyncio.sleep(0.1)
    return found


async def test_a_reminded_renewal_signed_before_the_end_leaves_no_gap_in_access(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
) -> None:
    notify = notify_service
    case_id, old_id, guardians, old_end = await _active_consent(consent)
    mother = guardians[0]
    await notify.settle(await consent.store.last_seq())
    (asked,) = await _notices(notify, mother, "consent_requested")
    assert asked["case_id"] == case_id
    assert asked["link"].endswith(f"/familie/{case_id}")

    service = _service(consent)
    # Before the reminder time (the region's 30 days): nothing is due, nothing marked.
    _at(consent, old_end - timedelta(days=31))
    assert await service.remind_due() == 0
    (listed,) = await _list(consent, case_id)
    assert listed["expires_soon"] is False
    assert await _list(consent, case_id, "&expiring_within_days=30") == []

    _at(consent, old_end - timedelta(days=10))
    assert await service.remind_due() == 1
    assert await service.remind_due() == 0  # once per consent
    reminders = [
        e
        for e in await consent.events_since(0)
        if e.type == "no.stafett.consent.expiry_reminder_due.v1"
    ]
    assert [e.data["consent_id"] for e in reminders] == [old_id]
    assert sorted(reminders[0].data["grantor_person_ids"]) == sorted(guardians)
    (listed,) = await _list(consent, case_id)
    assert (listed["expires_soon"], listed["renewed_by"]) == (True, None)
    assert [c["id"] for c in await _list(consent, case_id, "&expiring_within_days=30")] == [old_id]
    assert await _list(consent, case_id, "&expiring_within_days=5") == []

    await notify.settle(await consent.store.last_seq())
    for guardian in guardians:
        (reminded,) = await _notices(notify, guardian, "consent_expires_soon")
        assert reminded["link"].endswith(f"/familie/{case_id}")

    # The mother renews it in the portal: the same scope, from the old consent's end.
    renewed = await _renew(consent, old_id, mother)
    assert renewed.status_code == 201, renewed.text
    new_id = renewed.json()["id"]
    assert renewed.json()["renews"] == old_id
    assert datetime.fromisoformat(renewed.json()["valid_from"]) == old_end
    again = await _renew(consent, old_id, guardians[1])
    assert (again.status_code, again.json()["code"]) == (409, "already_renewed")
    old, new = await _list(consent, case_id)
    assert (old["expires_soon"], old["renewed_by"]) == (False, new_id)
    assert (new["status"], new["renews"], new["scope"]) == ("pending", old_id, old["scope"])

    for guardian in guardians:
        signed = await _sign(consent, new_id, guardian)
        assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "active"
    seq = int(signed.headers["Stafett-Seq"])

    # Just before the old end the old consent holds; from it, the renewal: no gap.
    _at(consent, old_end - timedelta(seconds=1))
    before = await consent.decide(NURSE, "case:read", case_id, min_seq=seq)
    assert (before["decision"], before["consent_id"]) == ("permit", old_id)
    _at(consent, old_end)
    at_end = await consent.decide(NURSE, "case:read", case_id, min_seq=seq)
    assert (at_end["decision"], at_end["consent_id"]) == ("permit", new_id)
    _at(consent, old_end + timedelta(minutes=1))
    assert await service.expire_due() == 1
    after = await consent.decide(
        NURSE, "case:read", case_id, min_seq=await consent.store.last_seq()
    )
    assert (after["decision"], after["consent_id"]) == ("permit", new_id)
    statuses = {c["id"]: c["status"] for c in await _list(consent, case_id)}
    assert statuses == {old_id: "expired", new_id: "active"}


async def test_a_consent_that_is_not_renewed_ends_and_access_ends_with_it(
    consent: ConsentHarness,
) -> None:
    case_id, consent_id, _guardians, end = await _active_consent(consent)
    service = _service(consent)
    _at(consent, end - timedelta(days=1))
    assert await service.remind_due() == 1
    permitted = await consent.decide(NURSE, "case:read", case_id)
    assert (permitted["decision"], permitted["consent_id"]) == ("permit", consent_id)

    _at(consent, end + timedelta(seconds=1))
    assert await service.remind_due() == 0
    assert await service.expire_due() == 1
    denied = await consent.decide(
        NURSE, "case:read", case_id, min_seq=await consent.store.last_seq()
    )
    assert (denied["decision"], denied["consent_id"]) == ("deny", None)
    (listed,) = await _list(consent, case_id)
    assert (listed["status"], listed["expires_soon"]) == ("expired", False)
    # An ended consent may still be asked for anew with its scope; it holds from now.
    renewed = await _renew(consent, consent_id, STAFF)
    assert renewed.status_code == 201, renewed.text
    assert datetime.fromisoformat(renewed.json()["valid_from"]) == end + timedelta(seconds=1)


async def test_renewal_is_refused_to_strangers_and_for_consents_not_in_force(
    consent: ConsentHarness,
) -> None:
    case_id, consent_id, guardians, _end = await _active_consent(consent)
    unknown = await _renew(consent, "01JAAAAAAAAAAAAAAAAAAAAAAA", STAFF)
    stranger = await _renew(consent, consent_id, STRANGER)
    # Byte for byte the answer for a consent that does not exist (decision 0025).
    assert (unknown.status_code, stranger.status_code) == (404, 404)
    assert unknown.content == stranger.content
    malformed = await _renew(consent, "not-an-id", STAFF)
    assert malformed.status_code == 404
    nurse = await _renew(consent, consent_id, NURSE)  # may read the case, not manage consents
    assert (nurse.status_code, nurse.json()["code"]) == (403, "forbidden")

    # A pending consent is signed, not renewed; a refused one is the family's no.
    pending = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=consent.auth(STAFF)
    )
    pending_id = pending.json()["id"]
    refused = await _renew(consent, pending_id, STAFF)
    assert (refused.status_code, refused.json()["code"]) == (409, "not_renewable")
    assert refused.headers["content-type"].startswith("application/problem+json")

    # A repeated request with the same key answers the first renewal and writes nothing.
    first = await _renew(consent, consent_id, STAFF, **{"Idempotency-Key": "renew-key-0001"})
    last = await consent.store.last_seq()
    repeat = await _renew(consent, consent_id, STAFF, **{"Idempotency-Key": "renew-key-0001"})
    assert first.status_code == repeat.status_code == 201, first.text
    assert first.json()["id"] == repeat.json()["id"]
    assert await consent.store.last_seq() == last
    assert guardians


async def test_the_organisations_own_reminder_time_decides_when_grantors_are_reminded(
    consent: ConsentHarness,
) -> None:
    siljan = "/api/v1/directory/orgs/4010"
    read = await consent.client.get(siljan, headers=consent.auth("admin"))
    assert read.status_code == 200, read.text
    part = read.json()["part"]
    loaded = await consent.client.put(
        siljan,
        json={**part, "settings": {**part["settings"], "consent_reminder_days": 7}},
        headers=consent.auth("admin"),
    )
    assert loaded.status_code == 200, loaded.text
    await consent.runtime.projector.wait_for(int(loaded.headers["Stafett-Seq"]), 10)
    case_id, consent_id, _guardians, end = await _active_consent(consent)
    service = _service(consent)
    _at(consent, end - timedelta(days=8))
    assert await service.remind_due() == 0
    (listed,) = await _list(consent, case_id)
    assert listed["expires_soon"] is False
    _at(consent, end - timedelta(days=6))
    assert await service.remind_due() == 1
    (listed,) = await _list(consent, case_id)
    assert (listed["id"], listed["expires_soon"]) == (consent_id, True)


async def test_a_bad_expiring_within_days_is_a_bad_request(consent: ConsentHarness) -> None:
    case_id, _consent_id, _guardians, _end = await _active_consent(consent)
    for bad in ("-1", "abc", "100000"):
        listed = await consent.client.get(
            f"/api/v1/consents?case_id={case_id}&expiring_within_days={bad}",
            headers=consent.auth(STAFF),
        )
        assert listed.status_code in (400, 422), listed.text
        assert listed.headers["content-type"].startswith("application/problem+json")
