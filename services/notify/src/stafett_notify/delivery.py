"""Delivering notices: the outbox relay, the work-queue consumer, the channels, the DLQ.

* The relay publishes outbox rows to the ``NOTIFY`` stream (work-queue retention, separate
  from ``EVENTS``) with the delivery id as ``Nats-Msg-Id``.
* The worker pulls from a durable consumer, delivers, records the delivery and acks. A
  delivery already recorded is acked without being sent again, so redelivered messages and
  restarts never deliver twice. The inbox write and its record are one transaction (exactly
  once); e-mail and webhooks carry the delivery id (``Message-ID``, ``Stafett-Delivery-Id``)
  so that a receiver can drop the rare repeat after a crash between sending and recording.
* A failed delivery is retried with exponential backoff and jitter; after the last attempt it
  goes to ``NOTIFY_DLQ``, from where ``stafett notify redrive`` puts it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_notify import domain
from stafett_notify.projections import (
    deliveries,
    digest_queue,
    inbox,
    outbox,
    preferences,
    webhooks,
)
from stafett_shared.contracts.webhook import WebhookHeaders, WebhookNotice
from stafett_shared.crypto import CryptoError, FieldCipher
from stafett_shared.db import upsert
from stafett_shared.logging import get_logger

WORK_STREAM = "NOTIFY"
DLQ_STREAM = "NOTIFY_DLQ"
WORK_SUBJECT = "stafett.notify.work"
DLQ_SUBJECT = "stafett.notify.dlq"
CONSUMER = "notify-worker"
_log = get_logger("stafett.notify.delivery")


class DeliveryFailed(Exception):
    """A channel could not deliver; the message is retried or dead-lettered."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "stafett@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 2.0
    cap_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """``Stafett-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Deliverer:
    def __init__(
        self,
        *,
        nc: NATS,
        sessions: async_sessionmaker[AsyncSession],
        writer: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        smtp: SmtpSettings,
        retry: RetryPolicy,
        link_base: str,
        http: httpx.AsyncClient | None = None,
        replicas: int = 1,
        ack_wait_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._sessions = sessions
        self._writer = writer
        self._cipher = cipher
        self._smtp = smtp
        self._retry = retry
        self._link_base = link_base.rstrip("/")
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._replicas = replicas
        self._ack_wait = ack_wait_s
        self._clock = clock
        self._wake = asyncio.Event()

    # --- streams ---------------------------------------------------------------------------

    async def ensure_streams(self) -> None:
        for name, subject, retention in (
            (WORK_STREAM, WORK_SUBJECT, RetentionPolicy.WORK_QUEUE),
            (DLQ_STREAM, DLQ_SUBJECT, RetentionPolicy.LIMITS),
        ):
            try:
                await self._js.stream_info(name)
            except nats.js.errors.NotFoundError:
                with contextlib.suppress(nats.js.errors.BadRequestError):
                    await self._js.add_stream(
                        StreamConfig(
                            name=name,
                            subjects=[f"{subject}.>"],
                            retention=retention,
                            storage=StorageType.FILE,
                            discard=DiscardPolicy.NEW,
                            num_replicas=self._replicas,
                            duplicate_window=120.0,
                        )
                    )
        try:
            await self._js.consumer_info(WORK_STREAM, CONSUMER)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self._js.add_consumer(
                    WORK_STREAM,
                    ConsumerConfig(
                        durable_name=CONSUMER,
                        ack_policy=AckPolicy.EXPLICIT,
                        # A message a crashed worker held comes back after this long.
                        ack_wait=self._ack_wait,
                        max_deliver=self._retry.max_attempts + 1,
                    ),
                )

    def wake(self) -> None:
        self._wake.set()

    # --- relay -------------------------------------------------------------------------------

    async def relay_once(self, limit: int = 500) -> int:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(outbox)
                    .where(outbox.c.queued.is_(False))
                    .order_by(outbox.c.created_at)
                    .limit(limit)
                )
            ).all()
        for row in rows:
            body = json.dumps(
                {
                    "delivery_id": row.delivery_id,
                    "notice_id": row.notice_id,
                    "recipient": row.recipient,
                    "channel": row.channel,
                    "webhook_id": row.webhook_id,
                    "kind": row.kind,
                    "case_id": row.case_id,
                }
            ).encode()
            await self._js.publish(
                f"{WORK_SUBJECT}.{row.channel}",
                body,
                headers={"Nats-Msg-Id": row.delivery_id},
            )
            async with self._writer() as session, session.begin():
                await session.execute(
                    update(outbox)
                    .where(outbox.c.delivery_id == row.delivery_id)
                    .values(queued=True)
                )
        return len(rows)

    async def relay_forever(self, idle_s: float = 1.0) -> None:
        while True:
            self._wake.clear()
            try:
                if await self.relay_once():
                    continue
            except (nats.errors.Error, OSError) as exc:
                _log.warning("relay_failed", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_s):
                    await self._wake.wait()

    # --- worker ------------------------------------------------------------------------------

    async def work_forever(self, batch: int = 20) -> None:
        """Pull and deliver for ever; the subscription is made anew after any failure, so a
        NATS restart does not leave the worker deaf."""
        while True:
            try:
                sub = await self._js.pull_subscribe_bind(CONSUMER, stream=WORK_STREAM)
                try:
                    while True:
                        try:
                            messages = await sub.fetch(batch, timeout=1.0)
                        except TimeoutError:
                            # An idle queue. nats-py says so with its own TimeoutError or,
                            # when the server's "no messages" comes as the time runs out,
                            # with asyncio's: both are TimeoutError, neither is a fault.
                            continue
                        for msg in messages:
                            await self.handle(msg)
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect and go on
                _log.warning("worker_restarting", error_type=type(exc).__name__)
                await asyncio.sleep(1.0)

    async def handle(self, msg: Msg) -> None:
        work = json.loads(msg.data)
        delivery_id = str(work["delivery_id"])
        attempt = int(msg.metadata.num_delivered) if msg.metadata else 1
        async with self._sessions() as session:
            done = await session.scalar(
                select(deliveries.c.status).where(deliveries.c.delivery_id == delivery_id)
            )
        if done in ("delivered", "digest"):
            await msg.ack()
            return
        try:
            status = await self._deliver(work)
        except DeliveryFailed as exc:
            await self._record(work, "retrying", attempt, str(exc)[:200])
            if attempt >= self._retry.max_attempts:
                await self._js.publish(
                    f"{DLQ_SUBJECT}.{work['channel']}",
                    msg.data,
                    headers={"Nats-Msg-Id": f"dlq-{delivery_id}-{attempt}"},
                )
                await self._record(work, "dead", attempt, str(exc)[:200])
                await msg.term()
                return
            await msg.nak(delay=self._retry.delay(attempt))
            return
        if work["channel"] != "inbox":
            await self._record(work, status, attempt, None)
        await msg.ack()

    async def _record(
        self,
        work: dict[str, Any],
        status: str,
        attempts: int,
        error: str | None,
        session: AsyncSession | None = None,
    ) -> None:
        values = {
            "delivery_id": work["delivery_id"],
            "channel": work["channel"],
            "recipient": work["recipient"],
            "webhook_id": work.get("webhook_id"),
            "status": status,
            "attempts": attempts,
            "last_error": error,
            "updated_at": datetime.now(UTC),
        }
        if session is not None:
            await upsert(session, deliveries, values)
            return
        async with self._writer() as own, own.begin():
            await upsert(own, deliveries, values)

    def notice(self, work: dict[str, Any]) -> domain.Notice:
        return domain.Notice(
            notice_id=str(work["notice_id"]),
            recipient=str(work["recipient"]),
            channel=work["channel"],
            kind=str(work["kind"]),
            case_id=str(work["case_id"]),
            title=domain.title(str(work["kind"])),
            link=self._link_base + domain.page(str(work["kind"]), str(work["case_id"])),
        )

    async def _deliver(self, work: dict[str, Any]) -> str:
        notice = self.notice(work)
        if work["channel"] == "inbox":
            async with self._writer() as session, session.begin():
                await upsert(
                    session,
                    inbox,
                    {
                        "notice_id": notice.notice_id,
                        "recipient": notice.recipient,
                        "kind": notice.kind,
                        "case_id": notice.case_id,
                        "title": notice.title,
                        "link": notice.link,
                        "created_at": datetime.now(UTC),
                        "read_at": None,
                    },
                    update=False,
                )
                await self._record(work, "delivered", 1, None, session)
            return "delivered"
        if work["channel"] == "email":
            return await self._email(work, notice)
        return await self._webhook(work, notice)

    async def _email(self, work: dict[str, Any], notice: domain.Notice) -> str:
        async with self._sessions() as session:
            prefs = (
                await session.execute(
                    select(preferences).where(preferences.c.person_id == notice.recipient)
                )
            ).first()
        if prefs is None or not prefs.email or not prefs.email_address:
            return "delivered"  # the person turned e-mail off since: nothing to send
        if prefs.daily_digest:
            async with self._writer() as session, session.begin():
                await upsert(
                    session,
                    digest_queue,
                    {
                        "delivery_id": work["delivery_id"],
                        "recipient": notice.recipient,
                        "title": notice.title,
                        "link": notice.link,
                        "created_at": datetime.now(UTC),
                        "sent_at": None,
                    },
                    update=False,
                )
            return "digest"
        address = await self._address(notice.recipient, prefs.email_address)
        await self._send_mail(
            address, notice.title, notice.body_text(), message_id=f"<{work['delivery_id']}@stafett>"
        )
        return "delivered"

    async def _address(self, person_id: str, token: str) -> str:
        try:
            return await self._cipher.decrypt(
                person_id, token, aggregate=person_id, context="email"
            )
        except CryptoError as exc:
            raise DeliveryFailed("the e-mail address cannot be read") from exc

    async def _send_mail(self, to: str, subject: str, text: str, *, message_id: str) -> None:
        message = EmailMessage()
        message["From"] = self._smtp.sender
        message["To"] = to
        message["Subject"] = f"Stafett: {subject}"
        message["Message-ID"] = message_id or make_msgid(domain="stafett")
        message.set_content(text)

        def send() -> None:
            with smtplib.SMTP(
                self._smtp.host, self._smtp.port, timeout=self._smtp.timeout_s
            ) as client:
                if self._smtp.starttls:
                    client.starttls()
                if self._smtp.username and self._smtp.password:
                    client.login(self._smtp.username, self._smtp.password)
                client.send_message(message)

        try:
            await asyncio.to_thread(send)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"smtp: {type(exc).__name__}") from exc

    async def _webhook(self, work: dict[str, Any], notice: domain.Notice) -> str:
        async with self._sessions() as session:
            hook = (
                await session.execute(
                    select(webhooks).where(webhooks.c.webhook_id == work.get("webhook_id"))
                )
            ).first()
        if hook is None:
            return "delivered"  # the subscription was removed: nothing to send
        try:
            secret = await self._cipher.decrypt(
                hook.owner_id, hook.secret, aggregate=hook.webhook_id, context="webhook"
            )
        except CryptoError as exc:
            raise DeliveryFailed("the webhook secret cannot be read") from exc
        # The body and headers are the contract's models (stafett_shared.contracts.webhook),
        # which the AsyncAPI document describes.
        delivery_id = str(work["delivery_id"])
        body = WebhookNotice(**notice.as_json(), delivery_id=delivery_id).model_dump_json()
        content = body.encode()
        timestamp = int(self._clock())
        headers = WebhookHeaders(
            signature=sign_webhook(secret, timestamp, content), delivery_id=delivery_id
        )
        try:
            response = await self._http.post(
                hook.url, content=content, headers=headers.model_dump(by_alias=True)
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook answered {response.status_code}")
        return "delivered"

    # --- digest and re-drive -------------------------------------------------------------------

    async def send_digests(self) -> int:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(digest_queue)
                    .where(digest_queue.c.sent_at.is_(None))
                    .order_by(digest_queue.c.recipient, digest_queue.c.created_at)
                )
            ).all()
        by_person: dict[str, list[Any]] = {}
        for row in rows:
            by_person.setdefault(row.recipient, []).append(row)
        sent = 0
        for person, items in by_person.items():
            async with self._sessions() as session:
                prefs = (
                    await session.execute(
                        select(preferences).where(preferences.c.person_id == person)
                    )
                ).first()
            if prefs is None or not prefs.email_address:
                continue
            lines = [f"- {item.title}: {item.link}" for item in items]
            text = (
                "Dette har skjedd i saker du følger:\n\n"
                + "\n".join(lines)
                + "\n\nMeldingen inneholder ingen opplysninger fra sakene.\n"
            )
            digest_id = hashlib.sha256("".join(i.delivery_id for i in items).encode()).hexdigest()
            await self._send_mail(
                await self._address(person, prefs.email_address),
                "Daglig oppsummering",
                text,
                message_id=f"<digest-{digest_id[:32]}@stafett>",
            )
            async with self._writer() as session, session.begin():
                await session.execute(
                    update(digest_queue)
                    .where(digest_queue.c.delivery_id.in_([i.delivery_id for i in items]))
                    .values(sent_at=datetime.now(UTC))
                )
            sent += 1
        return sent

    async def redrive(self) -> int:
        """Move every dead-lettered delivery back to the work queue."""
        moved = 0
        info = await self._js.stream_info(DLQ_STREAM)
        first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
        for seq in range(max(first, 1), last + 1):
            try:
                msg = await self._js.get_msg(DLQ_STREAM, seq)
            except nats.js.errors.NotFoundError:
                continue
            work = json.loads(msg.data or b"{}")
            async with self._writer() as session, session.begin():
                await session.execute(
                    update(deliveries)
                    .where(deliveries.c.delivery_id == work["delivery_id"])
                    .values(status="retrying", attempts=0)
                )
            await self._js.publish(
                f"{WORK_SUBJECT}.{work['channel']}",
                msg.data or b"",
                headers={"Nats-Msg-Id": f"redrive-{work['delivery_id']}-{seq}"},
            )
            await self._js.delete_msg(DLQ_STREAM, seq)
            moved += 1
        return moved
