"""Test support for the notify service: an SMTP server that keeps what it receives, a
webhook receiver, and the service in-process beside the others."""

from __future__ import annotations

import asyncio
import contextlib
import email
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from stafett_notify.app import SPEC
from stafett_notify.settings import NotifySettings
from stafett_shared.auth import DevIssuer
from stafett_shared.embedded import free_port
from stafett_shared.service import Runtime, create_app
from stafett_shared.settings import CommonSettings


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd calls it by this name
        self, *args: Any
    ) -> str:
        envelope: Envelope = args[-1]
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self.messages.append(email.message_from_bytes(raw))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Any:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


@dataclass
class NotifyHarness:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: DevIssuer

    def auth(self, person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(person)}"}

    async def settle(self, seq: int) -> None:
        await self.runtime.projector.wait_for(seq, 20)
        self.runtime.extras["delivery"].wake()
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def running_notify(
    nats_url: str, database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[NotifyHarness]:
    settings = CommonSettings(nats_url=nats_url, data_dir=data_dir, admins=["admin"])
    service = NotifySettings(database_url=database_url, **overrides)
    app = create_app(SPEC, settings, service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notify"
        ) as client,
    ):
        yield NotifyHarness(client, app.state.runtime, DevIssuer.load_or_create(data_dir))
