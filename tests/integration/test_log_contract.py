"""The log service's list and write contract over HTTP on real NATS: entries a page at a
time behind an opaque cursor, and writes guarded by If-Match."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

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


async def _count(log: LogHarness, case_id: str) -> int:
    """The log's events on the stream (what a refused write must not add to)."""
    store = log.runtime.store
    return len(await store.load(store.subject("log", case_id)))


async def test_if_match_guards_every_log_write_and_a_stale_version_writes_nothing(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    url = f"/api/v1/logs/{case_id}/entries"
    empty = await log.client.get(url, headers=log.auth(HOLDER))
    assert empty.headers["ETag"] == '"0"'
    body = {"kind": "note", "text": "Første.", "occurred_at": datetime.now(UTC).isoformat()}
    first = await log.client.post(url, json=body, headers={**log.auth(HOLDER), "If-Match": '"0"'})
    assert first.status_code == 201, first.text
    assert first.headers["ETag"] == f'"{first.headers["Stafett-Seq"]}"'
    entry = first.json()["id"]
    read = await log.client.get(url, headers=log.auth(HOLDER))
    assert read.headers["ETag"] == first.headers["ETag"]
    stale = first.headers["ETag"]
    moved = await log.append(case_id, text="Uten If-Match: som før.")
    assert moved.status_code == 201
    current = moved.headers["ETag"]

    writes = {
        url: (HOLDER, body),
        f"{url}/{entry}/corrections": (HOLDER, {"text": "Rettet.", "reason": "Feil."}),
        f"{url}/{entry}/retractions": (HOLDER, {"reason": "Feil sak."}),
        f"{url}/{entry}/restrictions": (
            LEADER,
            {
                "ground": "fvl_19_harmful_to_child",
                "reason": "Kan skade eleven.",
                "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
        ),
    }
    for path, (person, payload) in writes.items():
        before = await _count(log, case_id)
        for version in (stale, '"0"', f'"{int(current.strip(chr(34))) + 1000}"'):
            refused = await log.client.post(
                path, json=payload, headers={**log.auth(person), "If-Match": version}
            )
            assert refused.status_code == 409, (path, version, refused.text)
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["code"] == "version_conflict"
        malformed = await log.client.post(
            path, json=payload, headers={**log.auth(person), "If-Match": "nyeste"}
        )
        assert malformed.status_code == 400, malformed.text
        assert await _count(log, case_id) == before
        weak = "W/" + current  # an ETag's weak form names the same version
        written = await log.client.post(
            path, json=payload, headers={**log.auth(person), "If-Match": weak}
        )
        assert written.status_code == 201, (path, written.text)
        assert written.headers["ETag"] == f'"{written.headers["Stafett-Seq"]}"'
        assert await _count(log, case_id) == before + 1
        current = written.headers["ETag"]


async def test_writers_racing_on_one_version_leave_one_write_and_the_rest_409(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    version = (await log.append(case_id)).headers["ETag"]
    before = await _count(log, case_id)
    url = f"/api/v1/logs/{case_id}/entries"
    answers = await asyncio.gather(
        *(
            log.client.post(
                url,
                json={
                    "kind": "note",
                    "text": f"Skriver {i}.",
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
                headers={**log.auth(HOLDER), "If-Match": version},
            )
            for i in range(6)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert await _count(log, case_id) == before + 1


async def test_if_match_is_met_when_this_process_has_not_seen_the_newest_write(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    """Another instance wrote last: the version the client holds is ahead of what this one
    knew of the chain. The stream is asked; the write goes through once the read model has
    the other instance's write, and the chain stays whole."""
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    await log.append(case_id, text="Skrevet her.")
    service = log.runtime.extras["log"]
    before = dict(service._heads)
    written = await log.append(case_id, text="Skrevet av den andre.")
    service._heads.clear()
    service._heads.update(before)  # as if the last write came from elsewhere
    corrected = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{written.json()['id']}/corrections",
        json={"text": "Rettet her.", "reason": "Presisering."},
        headers={**log.auth(HOLDER), "If-Match": written.headers["ETag"]},
    )
    assert corrected.status_code == 201, corrected.text
    service._heads.clear()
    service._heads.update(before)
    appended = await log.client.post(
        f"/api/v1/logs/{case_id}/entries",
        json={"kind": "note", "text": "Ny.", "occurred_at": datetime.now(UTC).isoformat()},
        headers={**log.auth(HOLDER), "If-Match": corrected.headers["ETag"]},
    )
    assert appended.status_code == 201, appended.text
    verify = await log.client.get(f"/api/v1/logs/{case_id}/verify", headers=log.auth(HOLDER))
    assert verify.json()["ok"] is True and verify.json()["entries"] == 4
