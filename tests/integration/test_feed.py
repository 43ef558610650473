"""The event feed for agencies' clients (issue 20 item 3; decision 0041), over HTTP on real
NATS and both databases: a client is given the integration events of a case while a consent
in force names its agency and service, and was in force when each event happened, of the
types its scopes cover only; without the consent or the scope it is given nothing and its
attempt is recorded; every batch records its reads, which the guardian sees in the who-read
view; the cursor is the stream's position and outlives the service; a waiting request
answers when an event arrives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stafett_case.testing import CaseHarness
from stafett_consent.testing import (
    ConsentHarness,
    fresh_consent,
    nav_consent,
    region_with_nav,
    running_consent,
)
from stafett_log.testing import LogHarness
from stafett_shared.testing import NatsHandle

HOLDER = "ann-kristin-allum"
NAV = "client-nav-grenland"
NAV_CASE_ONLY = "client-nav-saksoversikt"
BOTH = ("stafett:case.read", "stafett:log.read")
SECRET = "Eleven vil prøve sommerjobb gjennom NAV."
LEVEL = "no.stafett.feed.level_changed.v1"
ENTRY = "no.stafett.feed.entry_appended.v1"
CONSENT = "no.stafett.feed.consent_changed.v1"


def _region() -> dict[str, Any]:
    return region_with_nav(
        (NAV, "nav-stafett", BOTH), (NAV_CASE_ONLY, "nav-oversikt", ("stafett:case.read",))
    )


async def _feed(
    consent: ConsentHarness, client: str, *scopes: str, **params: Any
) -> httpx.Response:
    headers = consent.auth(client, client=True, scopes=scopes or BOTH)
    return await consent.client.get("/api/v1/feed", params=params, headers=headers)


async def _entry(log: LogHarness, case_id: str, text: str, **fields: str) -> int:
    written = await log.client.post(
        f"/api/v1/logs/{case_id}/entries",
        json={
            "kind": "note",
            "text": text,
            "occurred_at": datetime.now(UTC).isoformat(),
            **fields,
        },
        headers=log.auth(HOLDER),
    )
    assert written.status_code == 201, written.text
    return int(written.headers["Stafett-Seq"])


async def _child_case(consent: ConsentHarness, case: CaseHarness) -> tuple[str, list[str]]:
    _child, guardians, body = await consent.register_child(12, [("Mor", True), ("Far", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    return str(opened["id"]), guardians


def _seen(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.text
    return [(e["type"], e["subject"]) for e in response.json()["events"]]


async def _records(consent: ConsentHarness, case_id: str, client: str) -> list[tuple[str, ...]]:
    rows = await consent.runtime.extras["decisions"].records(case_id=case_id, principal_id=client)
    return sorted({(r["action"], r["decision"], r["reason"]) for r in rows})


async def test_a_client_follows_only_what_its_basis_and_scopes_cover(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    case, log = case_service, log_service
    assert (await consent.load_region(_region())).status_code == 200
    case_id, guardians = await _child_case(consent, case)
    other_id, _ = await _child_case(consent, case)
    await _entry(log, case_id, "Skrevet før samtykket.")

    # No consent names NAV yet: an empty feed, and nothing about any case.
    empty = await _feed(consent, NAV)
    assert _seen(empty) == []
    assert await _records(consent, case_id, NAV) == []

    consent_id = await consent.signed_consent(nav_consent(case_id), guardians)
    raised = await case.client.post(
        f"/api/v1/cases/{case_id}/level",
        json={"level": 2, "reason": "Trenger tettere oppfølging."},
        headers=case.auth(HOLDER),
    )
    assert raised.status_code == 200, raised.text
    await _entry(log, other_id, "En annen sak.")
    # A health entry: closed to a system that does not work in health.
    await _entry(log, case_id, "Helsesykepleier: kontroll.", category="health")
    seq = await _entry(log, case_id, SECRET)
    await consent.runtime.projector.wait_for(seq, 10)

    since = await consent.store.last_seq()
    batch = await _feed(consent, NAV)
    # Only its case, from the consent on: the earlier entry and the opening are not given.
    assert _seen(batch) == [(CONSENT, case_id), (LEVEL, case_id), (ENTRY, case_id)]
    events = batch.json()["events"]
    assert events[0]["data"] == {"case_id": case_id, "consent_id": consent_id, "status": "active"}
    assert events[1]["data"] == {"case_id": case_id, "from_level": 1, "level": 2}
    assert events[2]["data"]["text"] == SECRET
    assert {e["source"] for e in events} == {"stafett/feed"}
    assert "reason" not in batch.text
    assert "Trenger tettere" not in batch.text
    assert "Helsesykepleier" not in batch.text

    # Every read of the batch is recorded, once for the case and once for its entries.
    reads = [
        (e.data["what"], e.data["reader_kind"], e.data["basis"], tuple(e.data["entry_ids"]))
        for e in await consent.events_since(since)
        if e.type == "no.stafett.access.recorded.v1" and e.data["reader_id"] == NAV
    ]
    assert sorted(reads) == [
        ("case", "client", "client_consent", ()),
        ("entries", "client", "client_consent", (events[2]["data"]["entry_id"],)),
    ]

    # The same cursor again: the same events, the same ids (at least once).
    again = await _feed(consent, NAV)
    assert [e["id"] for e in again.json()["events"]] == [e["id"] for e in events]
    # Paged: one at a time, to the same end.
    first = await _feed(consent, NAV, limit=1)
    second = await _feed(consent, NAV, limit=1, after=first.json()["next"])
    assert [e["id"] for e in first.json()["events"] + second.json()["events"]] == [
        e["id"] for e in events[:2]
    ]
    # Only the types asked for.
    only_level = await _feed(consent, NAV, types=LEVEL)
    assert _seen(only_level) == [(LEVEL, case_id)]

    # A client registered for the case only: no entries, however its token is scoped; asking
    # for them is refused and recorded.
    case_only = await _feed(consent, NAV_CASE_ONLY)
    assert _seen(case_only) == [(CONSENT, case_id), (LEVEL, case_id)]
    asked_for_entries = await _feed(consent, NAV_CASE_ONLY, types=ENTRY)
    assert _seen(asked_for_entries) == []
    assert ("log:read", "deny", "no_basis") in await _records(consent, case_id, NAV_CASE_ONLY)
    # A token without the log's scope: the same.
    assert _seen(await _feed(consent, NAV, "stafett:case.read", types=ENTRY)) == []
    # An unregistered client is given nothing.
    assert _seen(await _feed(consent, "client-ukjent")) == []

    # The guardian sees the agency's reads in the who-read view.
    who = await log.client.get(f"/api/v1/logs/{case_id}/access", headers=log.auth(guardians[0]))
    assert who.status_code == 200, who.text
    agency = {(r["reader_kind"], r["what"]) for r in who.json()["items"] if r["reader_id"] == NAV}
    assert agency >= {("client", "case"), ("client", "entries")}

    # The consent withdrawn: nothing of the case any more, and the attempt is recorded.
    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": guardians[0], "reason": "Vi vil ikke lenger."},
        headers=consent.auth(guardians[0]),
    )
    assert withdrawn.status_code in (200, 201), withdrawn.text
    await consent.runtime.projector.wait_for(int(withdrawn.headers["Stafett-Seq"]), 10)
    assert _seen(await _feed(consent, NAV)) == []
    assert ("case:read", "deny", "no_basis") in await _records(consent, case_id, NAV)


async def test_bad_questions_are_refused_and_a_person_has_no_feed(
    consent: ConsentHarness,
) -> None:
    assert (await consent.load_region(_region())).status_code == 200
    for params in (
        {"types": "no.stafett.case.opened.v1"},
        {"types": ""},
        {"limit": 0},
        {"limit": 501},
        {"wait": 31},
        {"after": "not-a-cursor"},
    ):
        refused = await _feed(consent, NAV, **params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    # A cursor is bound to the client it was given to.
    mine = (await _feed(consent, NAV)).json()["next"]
    stolen = await _feed(consent, NAV_CASE_ONLY, after=mine)
    assert stolen.status_code == 422, stolen.text
    person = await consent.client.get("/api/v1/feed", headers=consent.auth(HOLDER))
    assert person.status_code == 403, person.text


async def test_the_cursor_outlives_the_service_and_a_waiting_request_answers_on_an_event(
    nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> None:
    """The cursor is the stream's position: the consent service stopped and started anew
    (same stream, same database) goes on from it. A request that waits answers when an
    event comes, with it."""
    async with fresh_consent(nats_server.url, database_url, tmp_path) as consent:
        assert (await consent.load_region(_region())).status_code == 200
        child_id, guardians, _body = await consent.register_child(12, [("Mor", True)])
        case_id, _seq = await consent.open_case(child_id=child_id)
        await consent.signed_consent(nav_consent(case_id), guardians)
        first = await _feed(consent, NAV)
        assert _seen(first) == [(CONSENT, case_id)]
        cursor = first.json()["next"]

    async with running_consent(nats_server.url, database_url, tmp_path) as again:
        await again.runtime.projector.wait_for(await again.store.last_seq(), 10)
        waiting = asyncio.create_task(_feed(again, NAV, after=cursor, wait=20))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await again.publish_case_event(
            case_id,
            "level_changed",
            {"case_id": case_id, "from_level": 1, "level": 0, "reason": "enc:v1:test"},
        )
        answered = await asyncio.wait_for(waiting, 20)
        assert _seen(answered) == [(LEVEL, case_id)]
        # Nothing of the case after it (the read it recorded is passed by).
        nothing = await _feed(again, NAV, after=answered.json()["next"])
        assert _seen(nothing) == []
