"""The log service's list and write contract over HTTP on real NATS: entries a page at a
time behind an opaque cursor, and writes guarded by If-Match."""

from __future__ import annotations

import asyncio
import base64

import httpx

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness

HOLDER = "ann-kristin-allum"
LEADER = "rektor-siljan"


async def _case(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness
) -> tuple[str, list[str]]:
    return await log.open_case(consent, case)


async def _pages(log: LogHarness, case_id: str, person: str, limit: int) -> list[httpx.Response]:
    pages: list[httpx.Response] = []
    params: dict[str, str | int] = {"limit": limit}
    while True:
        page = await log.client.get(
            f"/api/v1/logs/{case_id}/entries", params=params, headers=log.auth(person)
        )
        assert page.status_code == 200, page.text
        pages.append(page)
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not move on"
        params = {"limit": limit, "cursor": cursor}


async def test_entries_come_a_page_at_a_time_with_their_corrections_and_an_opaque_cursor(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    written = [(await log.append(case_id, text=f"Innføring {i}.")).json() for i in range(7)]
    ids = [w["id"] for w in written]
    corrected = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{ids[1]}/corrections",
        json={"text": "Innføring 1, rettet.", "reason": "Skrivefeil."},
        headers=log.auth(HOLDER),
    )
    assert corrected.status_code == 201, corrected.text
    retracted = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{ids[2]}/retractions",
        json={"reason": "Feil sak."},
        headers=log.auth(HOLDER),
    )
    assert retracted.status_code == 201, retracted.text

    pages = await _pages(log, case_id, HOLDER, 3)
    assert [len(p.json()["items"]) for p in pages] == [3, 3, 1]
    assert [e["id"] for p in pages for e in p.json()["items"]] == ids
    first = {e["id"]: e for e in pages[0].json()["items"]}
    # The correction and the retraction were written after the last entry of every page,
    # yet each is shown on its entry.
    assert first[ids[1]]["status"] == "corrected"
    assert [v["text"] for v in first[ids[1]]["versions"]] == [
        "Innføring 1.",
        "Innføring 1, rettet.",
    ]
    assert first[ids[2]]["status"] == "retracted"
    for page in pages[:-1]:
        cursor = page.json()["next_cursor"]
        assert not cursor.isdigit()
        for item in page.json()["items"]:
            assert str(item["seq"]) not in cursor and item["id"] not in cursor
    # A page that ends exactly at the last entry says so: no empty page after it.
    whole = await _pages(log, case_id, HOLDER, 7)
    assert len(whole) == 1 and len(whole[0].json()["items"]) == 7
    exact = await _pages(log, case_id, HOLDER, 1)
    assert len(exact) == 7


async def test_a_page_skips_what_the_reader_may_not_see_and_still_fills_up(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, (mother, _father) = await _case(consent, case_service, log)
    plain = [(await log.append(case_id, text=f"Samtale {i}.")).json()["id"] for i in range(4)]
    secrets = []
    for i in range(3):
        secret = await log.append(case_id, text=f"Skjermet {i}.", kind="conversation_child")
        restricted = await log.restrict(case_id, secret.json()["id"], LEADER)
        assert restricted.status_code == 201, restricted.text
        secrets.append(secret.json()["id"])
    last = (await log.append(case_id, text="Samtale etter.")).json()
    plain.append(last["id"])
    await consent.runtime.projector.wait_for(last["seq"], 10)

    pages = await _pages(log, case_id, mother, 2)
    assert [e["id"] for p in pages for e in p.json()["items"]] == plain
    # The third page begins after three entries the guardian may not see; it is full.
    assert [len(p.json()["items"]) for p in pages] == [2, 2, 1]
    holder = await _pages(log, case_id, HOLDER, 50)
    assert {e["id"] for e in holder[0].json()["items"]} == {*plain, *secrets}


async def test_limit_is_fifty_unless_given_and_at_most_five_hundred(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    answers = await asyncio.gather(*(log.append(case_id, text=f"Nr. {i}.") for i in range(51)))
    assert {a.status_code for a in answers} == {201}
    url = f"/api/v1/logs/{case_id}/entries"
    default = await log.client.get(url, headers=log.auth(HOLDER))
    assert len(default.json()["items"]) == 50
    assert default.json()["next_cursor"] is not None
    rest = await log.client.get(
        url, params={"cursor": default.json()["next_cursor"]}, headers=log.auth(HOLDER)
    )
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None
    most = await log.client.get(url, params={"limit": 500}, headers=log.auth(HOLDER))
    assert len(most.json()["items"]) == 51 and most.json()["next_cursor"] is None
    for limit in (0, 501, -1):
        refused = await log.client.get(url, params={"limit": limit}, headers=log.auth(HOLDER))
        assert refused.status_code == 422, (limit, refused.text)
        assert refused.headers["Content-Type"] == "application/problem+json"


async def test_a_cursor_not_given_for_this_list_is_422_never_a_500(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    other_id, _ = await _case(consent, case_service, log)
    for target in (case_id, other_id):
        for i in range(3):
            assert (await log.append(target, text=f"Nr. {i}.")).status_code == 201
    url = f"/api/v1/logs/{case_id}/entries"
    first = await log.client.get(url, params={"limit": 1}, headers=log.auth(HOLDER))
    cursor = first.json()["next_cursor"]
    other = await log.client.get(
        f"/api/v1/logs/{other_id}/entries", params={"limit": 1}, headers=log.auth(HOLDER)
    )
    seq = first.json()["items"][0]["seq"]

    def encoded(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    bad = [
        "",
        "abc",
        "!!!!",
        str(seq),
        first.json()["items"][0]["id"],
        cursor + "A",
        cursor[:-1],
        cursor + "==",
        cursor[:-1] + ("B" if cursor[-1] != "B" else "C"),
        other.json()["next_cursor"],  # another case's
        encoded(f"v2:entries:{case_id}:{seq}"),
        encoded(f"v1:access:{case_id}:{seq}"),
        encoded(f"v1:entries:{case_id}:0"),
        encoded(f"v1:entries:{case_id}:-1"),
        encoded(f"v1:entries:{case_id}:{2**63}"),
        encoded(f"v1:entries:{case_id}:{'9' * 40}"),
        encoded(f"v1:entries:{case_id}:0{seq}"),
        "A" * 5000,
    ]
    for token in bad:
        refused = await log.client.get(url, params={"cursor": token}, headers=log.auth(HOLDER))
        assert refused.status_code == 422, (token, refused.status_code, refused.text)
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["code"] in {"invalid_cursor", "validation_error"}
        assert len(token) < 8 or token not in refused.text  # never echoed
    good = await log.client.get(url, params={"cursor": cursor}, headers=log.auth(HOLDER))
    assert good.status_code == 200
    assert good.json()["items"][0]["seq"] > seq
