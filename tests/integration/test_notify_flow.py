"""Notify over real NATS, SMTP and HTTP: the right people are told, nothing confidential
leaks, webhooks are signed and retried, dead letters can be re-driven."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from stafett_case.testing import CaseHarness
from stafett_consent.handlers import ConsentService
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness
from stafett_notify.projections import deliveries, inbox
from stafett_notify.testing import Mailbox, NotifyHarness
from stafett_shared.contracts.webhook import WebhookHeaders, WebhookNotice
from stafett_shared.embedded import free_port

SECRET = "webhook-secret-0123456789"
FAMILY = ("emergency_access", "consent_requested", "consent_expires_soon", "new_holder")
"""What the guardians are told in the realistic mix below."""


class Receiver:
    """A webhook endpoint that fails a given number of times, then answers 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers.items()), body))
                failing = receiver.failures < 0 or len(receiver.calls) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stafett"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=2)
    yield server
    server.close()


_WEBHOOK_HEADERS = [f.alias for f in WebhookHeaders.model_fields.values() if f.alias]


def _verify_signature(headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers["Stafett-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())


def _text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")


async def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.1)


async def _settled(consent: ConsentHarness, case: CaseHarness, log: LogHarness) -> None:
    """Wait until the consent, case and log read models have every event written so far."""
    seq = await consent.store.last_seq()
    for harness in (consent, case, log):
        await harness.runtime.projector.wait_for(seq, 20)


async def _inbox(notify: NotifyHarness) -> list[Any]:
    async with notify.runtime.sessions() as session:
        return list((await session.execute(select(inbox))).all())


async def _world(
    consent: ConsentHarness,
    case: CaseHarness,
    log: LogHarness,
    notify: NotifyHarness,
    receiver: Receiver,
) -> dict[str, Any]:
    me = notify.auth("ann-kristin-allum")
    prefs = await notify.client.put(
        "/api/v1/preferences",
        json={
            "channels": {"inbox": True, "email": True, "webhook": True},
            "email_address": "ann.kristin@siljan.kommune.no",
        },
        headers=me,
    )
    assert prefs.status_code == 200, prefs.text
    hook = await notify.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": [], "secret": SECRET},
        headers=me,
    )
    assert hook.status_code == 201, hook.text
    await notify.client.put(
        "/api/v1/preferences",
        json={
            "channels": {"inbox": True, "email": True},
            "email_address": "hanne.helse@siljan.kommune.no",
        },
        headers=notify.auth("helse-hanne"),
    )
    child_id, guardians, body = await consent.register_child(
        13, [("Kari Nordmann", True), ("Per Nordmann", True)]
    )
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    return {
        "case_id": opened["id"],
        "guardians": guardians,
        "child": body,
        "webhook_id": hook.json()["id"],
        "child_id": child_id,
    }


async def _consent_for_health(consent: ConsentHarness, case_id: str, guardians: list[str]) -> str:
    requested = await consent.client.post(
        "/api/v1/consents",
        json={
            "case_id": case_id,
            "scope": {"org_ids": ["4010"], "sectors": ["health"], "purpose": "Helsesamarbeid."},
            "evidence": {"method": "digital_signature"},
        },
        headers=consent.auth("ann-kristin-allum"),
    )
    consent_id = str(requested.json()["id"])
    for guardian in guardians:
        signed = await consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": guardian},
            headers=consent.auth(guardian),
        )
        assert signed.status_code == 201, signed.text
    return consent_id


async def test_a_realistic_mix_of_events_notifies_the_right_people_and_leaks_nothing(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    mailbox: tuple[int, Mailbox],
    receiver: Receiver,
) -> None:
    case, log, notify = case_service, log_service, notify_service
    world = await _world(consent, case, log, notify, receiver)
    case_id = world["case_id"]
    me = case.auth("ann-kristin-allum")
    for number, guardian in enumerate(world["guardians"]):
        # The families chose e-mail: their notices go there too, with as little in them.
        chosen = await notify.client.put(
            "/api/v1/preferences",
            json={
                "channels": {"inbox": True, "email": True},
                "email_address": f"foresatt{number}@example.no",
            },
            headers=notify.auth(guardian),
        )
        assert chosen.status_code == 200, chosen.text
    await case.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": "helse-hanne", "unit_id": "siljan-helsestasjon", "access": "write"},
        headers=me,
    )
    consent_id = await _consent_for_health(consent, case_id, world["guardians"])
    texts = ["Eleven fortalte om vanskelige forhold hjemme.", "Helsesamtale om søvn og mat."]
    await _settled(consent, case, log)
    assert (await log.append(case_id, "ann-kristin-allum", texts[0])).status_code == 201
    assert (await log.append(case_id, "helse-hanne", texts[1])).status_code == 201
    raised = await case.client.post(
        f"/api/v1/cases/{case_id}/level",
        json={"level": 3, "reason": "Bred innsats trengs."},
        headers=me,
    )
    assert raised.status_code == 200, raised.text
    handover = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers",
        json={
            "to_person_id": "rektor-siljan",
            "to_unit_id": "siljan-ungdomsskole",
            "note": "Rektor tar over.",
        },
        headers=me,
    )
    assert handover.status_code == 201
    emergency = await consent.client.post(
        "/api/v1/emergency-access",
        json={
            "case_id": case_id,
            "ground": "acute_child_welfare",
            "reason": "Akutt bekymring på kveldstid.",
        },
        headers=consent.auth("bv-berit"),
    )
    assert emergency.status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def everything_arrived() -> bool:
        rows = await _inbox(notify)
        kinds = {(r.recipient, r.kind) for r in rows}
        return (
            {
                ("helse-hanne", "entry_appended"),
                ("ann-kristin-allum", "entry_appended"),
                ("rektor-siljan", "level_raised_to_3"),
                ("rektor-siljan", "handover_requested"),
                ("rektor-siljan", "emergency_access"),
                ("ann-kristin-allum", "emergency_access"),
                *((guardian, "emergency_access") for guardian in world["guardians"]),
            }
            <= kinds
            and len(mailbox[1].messages) >= 5
            and len(receiver.calls) >= 3
        )

    await _wait(everything_arrived)
    # The holder hands the case over (after the notices above: the old holder is told of
    # the emergency access only while they may read the case).
    accepted = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers/{handover.json()['id']}/accept",
        headers=case.auth("rektor-siljan"),
    )
    assert accepted.status_code == 200, accepted.text
    # The consent's reminder time has come (the consent service's clock moved to it).
    service = consent.runtime.extras["consent"]
    assert isinstance(service, ConsentService)
    (listed,) = (
        await consent.client.get(
            f"/api/v1/consents?case_id={case_id}", headers=consent.auth("rektor-siljan")
        )
    ).json()["items"]
    end = datetime.fromisoformat(listed["valid_until"])
    service.clock = lambda: end - timedelta(days=10)
    assert await service.remind_due() == 1
    await notify.settle(await consent.store.last_seq())

    async def the_family_was_told() -> bool:
        kinds = {(r.recipient, r.kind) for r in await _inbox(notify)}
        wanted = {(g, kind) for g in world["guardians"] for kind in FAMILY}
        return wanted <= kinds and len(mailbox[1].messages) >= 3 + 2 * len(FAMILY)

    await _wait(the_family_was_told)
    rows = await _inbox(notify)
    # The author is not told about their own entry; nobody without a basis is told at all.
    assert ("ann-kristin-allum", "entry_appended") in {(r.recipient, r.kind) for r in rows}
    assert all(r.recipient != "vgs-vidar" for r in rows)
    # The guardians are told of the emergency access (issue 17, item 5), that a consent
    # waits for them and is about to expire, and that the case has a new holder (issue 18,
    # item 6), of nothing else here.
    told = {(r.recipient, r.kind) for r in rows if r.recipient in world["guardians"]}
    assert told == {(g, kind) for g in world["guardians"] for kind in FAMILY}

    child = world["child"]
    secrets = [
        "Ola Nordmann",
        "Kari Nordmann",
        "Per Nordmann",
        child["national_id"],
        *(g["national_id"] for g in child["guardians"]),
        *texts,
        "Bred innsats trengs",
        "Rektor tar over",
        "Akutt bekymring",
        "Eleven virker sliten",
        "Helsesamarbeid",  # the consent's purpose
        "Rolf Rektor",  # the new holder is never named to the family
    ]
    delivered: list[str] = [json.dumps([tuple(str(v) for v in r) for r in rows])]
    # Decode the transfer encoding, or quoted-printable would hide a leaked "ø".
    delivered += [str(dict(m.items())) + _text(m) for m in mailbox[1].messages]
    delivered += [body.decode() for _h, body in receiver.calls]
    for text in delivered:
        for secret in secrets:
            assert secret not in text, secret
    assert consent_id


async def test_a_webhook_that_fails_twice_gets_the_third_attempt_with_a_valid_signature(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    receiver: Receiver,
) -> None:
    notify = notify_service
    world = await _world(consent, case_service, log_service, notify, receiver)
    await case_service.client.post(
        f"/api/v1/cases/{world['case_id']}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    await _settled(consent, case_service, log_service)
    assert (await log_service.append(world["case_id"], "rektor-siljan", "x")).status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def delivered() -> bool:
        return len(receiver.calls) >= 3

    await _wait(delivered)
    await asyncio.sleep(0.3)
    headers, body = receiver.calls[2]
    assert _verify_signature(headers, body)
    # What docs/asyncapi.yaml describes, from the same models.
    WebhookHeaders.model_validate({name: headers[name] for name in _WEBHOOK_HEADERS})
    assert WebhookNotice.model_validate_json(body).case_id == world["case_id"]
    first_id = receiver.calls[0][0]["Stafett-Delivery-Id"]
    assert {h["Stafett-Delivery-Id"] for h, _b in receiver.calls[:3]} == {first_id}
    listed = await notify.client.get(
        f"/api/v1/webhooks/{world['webhook_id']}/deliveries",
        headers=notify.auth("ann-kristin-allum"),
    )
    (item,) = listed.json()["items"]
    assert (item["status"], item["attempts"]) == ("delivered", 3)


async def test_a_webhook_that_always_fails_ends_in_the_dlq_and_can_be_redriven(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    receiver: Receiver,
) -> None:
    notify = notify_service
    receiver.failures = -1  # always 500
    world = await _world(consent, case_service, log_service, notify, receiver)
    await case_service.client.post(
        f"/api/v1/cases/{world['case_id']}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    await _settled(consent, case_service, log_service)
    assert (await log_service.append(world["case_id"], "rektor-siljan", "x")).status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def dead() -> bool:
        async with notify.runtime.sessions() as session:
            return (
                await session.scalar(
                    select(deliveries.c.status).where(deliveries.c.channel == "webhook")
                )
                == "dead"
            )

    await _wait(dead)
    assert len(receiver.calls) == 3
    receiver.failures = 0  # the endpoint is repaired
    assert await notify.runtime.extras["delivery"].redrive() == 1

    async def delivered() -> bool:
        async with notify.runtime.sessions() as session:
            return (
                await session.scalar(
                    select(deliveries.c.status).where(deliveries.c.channel == "webhook")
                )
                == "delivered"
            )

    await _wait(delivered)
    assert _verify_signature(*receiver.calls[-1])


async def test_a_team_member_whose_access_ended_gets_no_further_notices(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    receiver: Receiver,
) -> None:
    notify = notify_service
    world = await _world(consent, case_service, log_service, notify, receiver)
    case_id = world["case_id"]
    await case_service.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": "helse-hanne", "unit_id": "siljan-helsestasjon"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    consent_id = await _consent_for_health(consent, case_id, world["guardians"])
    await _settled(consent, case_service, log_service)
    assert (await log_service.append(case_id, text="Før tilbaketrekking.")).status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def told() -> bool:
        return any(r.recipient == "helse-hanne" for r in await _inbox(notify))

    await _wait(told)
    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": world["guardians"][0]},
        headers=consent.auth(world["guardians"][0]),
    )
    assert withdrawn.status_code == 201
    await case_service.settle(int(withdrawn.headers["Stafett-Seq"]))
    await asyncio.sleep(1.1)  # past any cached permit
    assert (await log_service.append(case_id, text="Etter tilbaketrekking.")).status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def holder_told_of_withdrawal() -> bool:
        return any(r.kind == "consent_withdrawn" for r in await _inbox(notify))

    await _wait(holder_told_of_withdrawal)
    await asyncio.sleep(0.5)
    nurse = [r for r in await _inbox(notify) if r.recipient == "helse-hanne"]
    assert len(nurse) == 1, [r.kind for r in nurse]


async def test_inbox_lists_and_marks_read_for_the_owner_only(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    receiver: Receiver,
) -> None:
    notify = notify_service
    world = await _world(consent, case_service, log_service, notify, receiver)
    await case_service.client.post(
        f"/api/v1/cases/{world['case_id']}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    await _settled(consent, case_service, log_service)
    await log_service.append(world["case_id"], "rektor-siljan", "x")
    await notify.settle(await consent.store.last_seq())

    async def arrived() -> bool:
        listed = await notify.client.get(
            "/api/v1/notifications", headers=notify.auth("ann-kristin-allum")
        )
        return bool(listed.json()["items"])

    await _wait(arrived)
    item = (
        await notify.client.get("/api/v1/notifications", headers=notify.auth("ann-kristin-allum"))
    ).json()["items"][0]
    assert item["title"] and item["link"].endswith(world["case_id"])
    other = await notify.client.post(
        f"/api/v1/notifications/{item['id']}/read", headers=notify.auth("vgs-vidar")
    )
    assert other.status_code == 404
    mine = await notify.client.post(
        f"/api/v1/notifications/{item['id']}/read", headers=notify.auth("ann-kristin-allum")
    )
    assert mine.status_code == 200
    unread = await notify.client.get(
        "/api/v1/notifications?unread=true", headers=notify.auth("ann-kristin-allum")
    )
    assert item["id"] not in [i["id"] for i in unread.json()["items"]]


async def test_a_daily_digest_gathers_the_days_notices_in_one_mail(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    notify_service: NotifyHarness,
    mailbox: tuple[int, Mailbox],
    receiver: Receiver,
) -> None:
    notify = notify_service
    world = await _world(consent, case_service, log_service, notify, receiver)
    rektor = notify.auth("rektor-siljan")
    prefs = await notify.client.put(
        "/api/v1/preferences",
        json={
            "channels": {"inbox": True, "email": True},
            "email_address": "rektor@siljan.kommune.no",
            "daily_digest": True,
        },
        headers=rektor,
    )
    assert prefs.status_code == 200
    assert (await notify.client.get("/api/v1/preferences", headers=rektor)).json()[
        "daily_digest"
    ] is True
    await case_service.client.post(
        f"/api/v1/cases/{world['case_id']}/team",
        json={"person_id": "rektor-siljan", "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    await _settled(consent, case_service, log_service)
    for i in range(2):
        assert (await log_service.append(world["case_id"], text=f"Notat {i}.")).status_code == 201
    await notify.settle(await consent.store.last_seq())

    async def queued() -> bool:
        async with notify.runtime.sessions() as session:
            statuses = (
                await session.scalars(
                    select(deliveries.c.status).where(
                        deliveries.c.recipient == "rektor-siljan", deliveries.c.channel == "email"
                    )
                )
            ).all()
        return list(statuses) == ["digest", "digest"]

    await _wait(queued)
    before = len(mailbox[1].messages)
    assert await notify.runtime.extras["delivery"].send_digests() == 1
    assert await notify.runtime.extras["delivery"].send_digests() == 0
    (digest,) = mailbox[1].messages[before:]
    assert digest["To"] == "rektor@siljan.kommune.no"
    text = _text(digest)
    assert text.count("Ny innføring i stafettloggen") == 2
    assert "Notat" not in text
