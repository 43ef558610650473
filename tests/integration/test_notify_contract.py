"""The notify service's writes over HTTP on real NATS: Idempotency-Key on every POST, as on
the other services (a repeat gets the first answer and writes nothing; the key on another
request is 422), held in one transaction with the write, so racing repeats write once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from stafett_notify.projections import inbox, webhooks
from stafett_notify.testing import NotifyHarness

ME = "ann-kristin-allum"
SECRET = "webhook-secret-0123456789"
NOTICE = "n-" + "a" * 40


async def _webhooks(notify: NotifyHarness) -> int:
    async with notify.runtime.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(webhooks))
    return int(count or 0)


async def _read_at(notify: NotifyHarness) -> datetime | None:
    async with notify.runtime.sessions() as session:
        value: datetime | None = await session.scalar(
            select(inbox.c.read_at).where(inbox.c.notice_id == NOTICE)
        )
    return value


async def test_a_webhook_posted_again_with_its_key_is_registered_once(
    notify_service: NotifyHarness,
) -> None:
    notify = notify_service
    body = {"url": "http://127.0.0.1:9/stafett", "event_types": [], "secret": SECRET}

    async def post(key: str | None, json: object = body, person: str = ME) -> httpx.Response:
        headers = notify.auth(person)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await notify.client.post("/api/v1/webhooks", json=json, headers=headers)

    first = await post("webhook-key-0001")
    assert first.status_code == 201, first.text
    again = await post("webhook-key-0001")
    assert (again.status_code, again.json()) == (201, first.json())
    assert await _webhooks(notify) == 1
    other_body = await post("webhook-key-0001", {**body, "event_types": ["case_opened"]})
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_key_reused"
    malformed = await post("kort")
    assert malformed.status_code == 400
    assert await _webhooks(notify) == 1

    racing = await asyncio.gather(*(post("webhook-key-0002") for _ in range(6)))
    assert {r.status_code for r in racing} == {201}
    assert len({r.json()["id"] for r in racing}) == 1
    assert await _webhooks(notify) == 2
    # A key is the caller's own: another person's same key is another request.
    theirs = await post("webhook-key-0001", person="vgs-vidar")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    unkeyed = await post(None)
    assert unkeyed.status_code == 201
    assert await _webhooks(notify) == 4


async def test_marking_a_notice_read_again_with_its_key_writes_nothing(
    notify_service: NotifyHarness,
) -> None:
    notify = notify_service
    async with notify.runtime.extras["writer"]() as session, session.begin():
        await session.execute(
            inbox.insert().values(
                notice_id=NOTICE,
                recipient=ME,
                kind="case_opened",
                case_id="0" * 26,
                title="Ny sak",
                link="/saker",
                created_at=datetime.now(UTC),
            )
        )
    url = f"/api/v1/notifications/{NOTICE}/read"
    keyed = {**notify.auth(ME), "Idempotency-Key": "read-key-0001"}
    first = await notify.client.post(url, headers=keyed)
    assert first.status_code == 200, first.text
    assert first.json() == {"id": NOTICE, "status": "read"}
    read_at = await _read_at(notify)
    assert read_at is not None
    await asyncio.sleep(0.02)
    again = await notify.client.post(url, headers=keyed)
    assert (again.status_code, again.json()) == (200, first.json())
    assert await _read_at(notify) == read_at  # the repeat wrote nothing
    elsewhere = await notify.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/x", "event_types": [], "secret": SECRET},
        headers=keyed,
    )
    assert elsewhere.status_code == 422  # the key belongs to another request
    unknown = await notify.client.post(
        f"/api/v1/notifications/n-{'b' * 40}/read",
        headers={**notify.auth(ME), "Idempotency-Key": "read-key-0002"},
    )
    assert unknown.status_code == 404
    others = await notify.client.post(
        url, headers={**notify.auth("vgs-vidar"), "Idempotency-Key": "read-key-0003"}
    )
    assert others.status_code == 404  # not theirs: a refusal, and not kept
    unkeyed = await notify.client.post(url, headers=notify.auth(ME))
    assert unkeyed.status_code == 200
    assert await _read_at(notify) != read_at  # without a key: as before
