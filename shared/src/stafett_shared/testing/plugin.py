"""pytest fixtures over real servers (loaded with ``-p stafett_shared.testing.plugin``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.testing.servers import NatsHandle, start_nats, start_postgres


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsHandle]:
    """One NATS server with JetStream for the session."""
    with start_nats() as handle:
        yield handle


@pytest.fixture
def private_nats_server() -> Iterator[NatsHandle]:
    """A NATS server of the test's own, from the wheel, that the test may stop and restart."""
    with start_nats(prefer_docker=False) as handle:
        yield handle


async def reset_jetstream(nc: NATS) -> None:
    """Remove every stream, so a test starts on an empty event store."""
    js = nc.jetstream()
    for info in await js.streams_info():
        if info.config.name:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(info.config.name)


async def add_stream_retrying(nc: NATS, config: StreamConfig) -> None:
    """``add_stream`` right after ``reset_jetstream``: nats-server removes a deleted
    stream's files after it has answered, and creating one of the same name meanwhile can
    fail with "error creating store for stream" (err_code 10049). Try again briefly."""
    js = nc.jetstream()
    for attempt in range(20):
        try:
            await js.add_stream(config)
            return
        except nats.js.errors.ServerError as exc:
            if exc.err_code != _STORE_NOT_CREATED or attempt == 19:
                raise
            await asyncio.sleep(0.05)


_STORE_NOT_CREATED = 10049


@pytest.fixture
async def nats_client(nats_server: NatsHandle) -> AsyncIterator[NATS]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await reset_jetstream(nc)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def event_store(nats_client: NATS) -> EventStore:
    """An ``EventStore`` on a freshly created ``EVENTS`` stream."""
    store = EventStore(nats_client)
    await store.ensure_stream()
    return store


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    with start_postgres() as url:
        yield url


async def create_database(admin_url: str) -> tuple[str, str]:
    name = "t_" + new_id().lower()
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return name, f"{base}/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def postgres_url(postgres_admin_url: str | None) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test."""
    if postgres_admin_url is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL: no Docker, no STAFETT_TEST_DATABASE_URL, no local binaries")
        pytest.skip("no PostgreSQL available (Docker, STAFETT_TEST_DATABASE_URL or binaries)")
    name, url = await create_database(postgres_admin_url)
    try:
        yield url
    finally:
        await drop_database(postgres_admin_url, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh read-model database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readmodel.db'}"
    return str(request.getfixturevalue("postgres_url"))


_exporter = InMemorySpanExporter()


@pytest.fixture(scope="session")
def _tracer_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return provider


@pytest.fixture
def span_exporter(_tracer_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test, kept in memory."""
    _exporter.clear()
    yield _exporter
    _exporter.clear()
