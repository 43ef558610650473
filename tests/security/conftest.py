"""What the security tests share: the four services on a fresh stream, in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import nats
import pytest

from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import ConsentHarness, running_consent
from stafett_log.testing import LogHarness, running_log
from stafett_notify.testing import NotifyHarness, running_notify, smtp_server
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import reset_jetstream

Services = tuple[ConsentHarness, CaseHarness, LogHarness, NotifyHarness]


@pytest.fixture
def four_services(
    nats_server: NatsHandle, tmp_path: Path
) -> Callable[[], AbstractAsyncContextManager[Services]]:
    """Start the consent, case, log and notify services on an emptied stream, each with a
    SQLite database of its own and notify's mail going to a local SMTP server. A factory,
    so a test sets its environment (``monkeypatch.setenv``) before the services read it."""

    @contextlib.asynccontextmanager
    async def started() -> AsyncIterator[Services]:
        nc = await nats.connect(nats_server.url)
        await reset_jetstream(nc)
        await nc.close()

        def db(name: str) -> str:
            return f"sqlite:///{tmp_path / f'{name}.db'}"

        with smtp_server() as (smtp_port, _mailbox):
            async with (
                running_consent(nats_server.url, db("consent"), tmp_path) as consent,
                running_case(nats_server.url, db("case"), tmp_path) as case,
                running_log(nats_server.url, db("log"), tmp_path) as log,
                running_notify(
                    nats_server.url, db("notify"), tmp_path, smtp_port=smtp_port, max_attempts=1
                ) as notify,
            ):
                yield consent, case, log, notify

    return started
