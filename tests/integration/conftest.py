from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import ConsentHarness, fresh_consent
from stafett_log.testing import LogHarness, running_log
from stafett_notify.testing import Mailbox, NotifyHarness, running_notify, smtp_server
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import create_database, drop_database


@pytest.fixture
async def consent(
    nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> AsyncIterator[ConsentHarness]:
    """The consent service in-process, on a fresh stream, once per database."""
    async with fresh_consent(nats_server.url, database_url, tmp_path) as harness:
        yield harness


@pytest.fixture
async def case_service(
    request: pytest.FixtureRequest, consent: ConsentHarness, database_url: str, tmp_path: Path
) -> AsyncIterator[CaseHarness]:
    """The case service in-process beside the consent service, on the same NATS, with a
    database of its own (services never share one)."""
    nats_url = consent.runtime.settings.nats_url
    dropped: str | None = None
    admin: str | None = None
    if database_url.startswith("sqlite"):
        case_db = f"sqlite:///{tmp_path / 'case.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        assert admin is not None
        dropped, case_db = await create_database(admin)
    try:
        async with running_case(nats_url, case_db, tmp_path) as harness:
            await harness.runtime.projector.catch_up()
            yield harness
    finally:
        if dropped is not None and admin is not None:
            await drop_database(admin, dropped)


@pytest.fixture
async def log_service(
    request: pytest.FixtureRequest,
    consent: ConsentHarness,
    case_service: CaseHarness,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[LogHarness]:
    """The log service in-process beside the consent and case services; a test may give it
    settings by indirect parametrisation (``{"permit_cache_s": 0}``)."""
    overrides: dict[str, object] = getattr(request, "param", None) or {}
    nats_url = consent.runtime.settings.nats_url
    dropped: str | None = None
    admin: str | None = None
    if database_url.startswith("sqlite"):
        log_db = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        assert admin is not None
        dropped, log_db = await create_database(admin)
    try:
        async with running_log(nats_url, log_db, tmp_path, **overrides) as harness:
            await harness.runtime.projector.catch_up()
            yield harness
    finally:
        if dropped is not None and admin is not None:
            await drop_database(admin, dropped)


@pytest.fixture
def mailbox() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free port, keeping every message it receives."""
    with smtp_server() as server:
        yield server


@pytest.fixture
async def notify_service(
    request: pytest.FixtureRequest,
    consent: ConsentHarness,
    log_service: LogHarness,
    mailbox: tuple[int, Mailbox],
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[NotifyHarness]:
    """The notify service in-process beside the others, sending mail to ``mailbox``."""
    nats_url = consent.runtime.settings.nats_url
    dropped: str | None = None
    admin: str | None = None
    if database_url.startswith("sqlite"):
        notify_db = f"sqlite:///{tmp_path / 'notify.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        assert admin is not None
        dropped, notify_db = await create_database(admin)
    try:
        async with running_notify(
            nats_url,
            notify_db,
            tmp_path,
            smtp_port=mailbox[0],
            retry_base_s=0.05,
            retry_cap_s=0.2,
            max_attempts=3,
        ) as harness:
            await harness.runtime.projector.catch_up()
            yield harness
    finally:
        if dropped is not None and admin is not None:
            await drop_database(admin, dropped)
