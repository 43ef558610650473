"""Every list's cursor is opaque (issue 17, item 7), over HTTP on real NATS and both databases:
the case list, the who-read view, the decision records, the inbox and a webhook's
deliveries page with a ``next_cursor`` that shows nothing of what it points at, is bound to
its list and scope, and is 422 ``invalid_cursor`` when it is anything else, such as the bare
id or sequence these lists used to take."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.testing import NotifyHarness

HOLDER = "ann-kristin-allum"
LEADER = "rektor-siljan"
STRANGER = "vgs-vidar"
AUDITOR = "statsforvalter-siri"


async def _pages(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], key: str, **query: str
) -> tuple[list[list[Any]], list[str]]:
    """Walk a list one item a page: the items' keys, page by page, and the cursors given."""
    pages: list[list[Any]] = []
    cursors: list[str] = []
    params: dict[str, Any] = {"limit": 1, **query}
    while len(pages) < 20:
        answer = await client.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append([item[key] for item in answer.json()["items"]])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages, cursors
        cursors.append(cursor)
        params = {"limit": 1, "cursor": cursor, **query}
    raise AssertionError("the cursor does not move on")


def _opaque(cursors: list[str], shown: list[Any]) -> None:
    for cursor in cursors:
        assert isinstance(cursor, str) and not cursor.isdigit()
        for value in shown:
            if len(str(value)) >= 8:  # a short number may turn up in any text
                assert str(value) not in cursor


async def _refused(
    client: httpx.AsyncClient, url: str, cursor: str, who: dict[str, str], **query: str
) -> None:
    answer = await client.get(url, params={"cursor": cursor, **query}, headers=who)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] in {"invalid_cursor", "validation_error"}


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not hold")


async def test_the_case_list_pages_with_a_cursor_bound_to_its_caller(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened = [await case.open_case(HOLDER) for _ in range(3)]
    await consent.runtime.projector.wait_for(opened[-1]["seq"], 10)

    pages, cursors = await _pages(case.client, "/api/v1/cases", case.auth(HOLDER), "id")

    assert sorted(i for page in pages for i in page) == sorted(c["id"] for c in opened)
    _opaque(cursors, [c["id"] for c in opened])
    await _refused(case.client, "/api/v1/cases", opened[0]["id"], case.auth(HOLDER))
    await _refused(case.client, "/api/v1/cases", cursors[0], case.auth(LEADER))


async def test_the_who_read_view_pages_with_a_cursor_bound_to_its_case(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _guardians = await log.open_case(consent, case_service)
    other_id, _ = await log.open_case(consent, case_service)
    assert (await log.append(case_id)).status_code == 201
    for _ in range(3):
        read = await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=log.auth(HOLDER))
        assert read.status_code == 200, read.text
    other = await log.client.get(f"/api/v1/logs/{other_id}/access", headers=log.auth(HOLDER))
    assert other.status_code == 200, other.text
    await log.runtime.projector.wait_for(await consent.store.last_seq(), 10)
    url = f"/api/v1/logs/{case_id}/access"

    pages, cursors = await _pages(log.client, url, log.auth(HOLDER), "seq")

    seqs = [s for page in pages for s in page]
    assert len(seqs) >= 3 and len(set(seqs)) == len(seqs)
    _opaque(cursors, seqs)
    await _refused(log.client, url, str(seqs[0]), log.auth(HOLDER))  # the old bare sequence
    moved = await log.client.get(
        f"/api/v1/logs/{other_id}/access", params={"cursor": cursors[0]}, headers=log.auth(HOLDER)
    )
    assert moved.status_code == 422 and moved.json()["code"] == "invalid_cursor"


async def test_the_decision_records_page_with_a_cursor_bound_to_their_case(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    opened = await case.open_case(HOLDER)
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    for _ in range(3):  # each refusal is a decision record
        seen = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth(STRANGER))
        assert seen.status_code == 404
    scope = await consent.client.post(
        "/api/v1/audit-scopes",
        json={
            "auditor_person_id": AUDITOR,
            "org_id": "4010",
            "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "reason": "Tilsyn med kommunens oppfølging",
        },
        headers=consent.auth("admin"),
    )
    assert scope.status_code == 201, scope.text
    await consent.runtime.projector.wait_for(await consent.store.last_seq(), 10)
    url = "/api/v1/decision-records"

    pages, cursors = await _pages(
        consent.client, url, consent.auth(AUDITOR), "decision_id", case_id=case_id
    )

    ids = [i for page in pages for i in page]
    assert len(ids) >= 3 and len(set(ids)) == len(ids)
    _opaque(cursors, ids)
    await _refused(consent.client, url, ids[0], consent.auth(AUDITOR), case_id=case_id)


async def test_the_inbox_and_a_webhooks_deliveries_page_with_cursors_bound_to_their_owner(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
) -> None:
    notify, log = notify_service, log_service
    prefs = await notify.client.put(
        "/api/v1/preferences",
        json={"channels": {"inbox": True, "webhook": True}},
        headers=notify.auth(HOLDER),
    )
    assert prefs.status_code == 200, prefs.text
    hook = await notify.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/stafett", "event_types": [], "secret": "s" * 24},
        headers=notify.auth(HOLDER),
    )
    assert hook.status_code == 201, hook.text
    case_id, _ = await log.open_case(consent, case_service)
    added = await case_service.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": LEADER, "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth(HOLDER),
    )
    assert added.status_code in (200, 201), added.text
    seq = int(added.headers["Stafett-Seq"])
    for runtime in (consent.runtime, log.runtime):
        await runtime.projector.wait_for(seq, 10)
    for text in ("Samtale.", "Ny samtale.", "Tredje samtale."):
        assert (await log.append(case_id, LEADER, text)).status_code == 201
    inbox = "/api/v1/notifications"
    deliveries = f"/api/v1/webhooks/{hook.json()['id']}/deliveries"

    async def listed(url: str) -> bool:
        answer = await notify.client.get(url, headers=notify.auth(HOLDER))
        return len(answer.json()["items"]) >= 2

    await _until(lambda: listed(inbox))
    await _until(lambda: listed(deliveries))

    for url, key in ((inbox, "id"), (deliveries, "delivery_id")):
        pages, cursors = await _pages(notify.client, url, notify.auth(HOLDER), key)
        keys = [k for page in pages for k in page]
        assert len(keys) >= 2 and len(set(keys)) == len(keys), url
        _opaque(cursors, keys)
        await _refused(notify.client, url, keys[0], notify.auth(HOLDER))
    pages, cursors = await _pages(notify.client, inbox, notify.auth(HOLDER), "id")
    await _refused(notify.client, inbox, cursors[0], notify.auth(LEADER))
