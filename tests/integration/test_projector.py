"""The projector base on SQLite and PostgreSQL against a real nats-server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from stafett_shared.db import create_engine, create_sync_engine, position_table
from stafett_shared.envelope import CloudEvent, encode_commit
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.loopdb import loop_engine
from stafett_shared.projector import ProjectionBehind, Projector
from stafett_shared.testing.counting import (
    BlockingCountingProjection,
    CountingProjection,
    counting_projector,
    create_tables,
    rows,
)
from stafett_shared.testing.events import make_event


async def _append_history(
    store: EventStore, commits: int, aggregates: int = 7
) -> dict[str, tuple[int, int]]:
    """Append ``commits`` commits over a few aggregates; returns the expected counts."""
    rng = random.Random(commits)
    ids = [new_id() for _ in range(aggregates)]
    expected: dict[str, tuple[int, int]] = {}
    for i in range(commits):
        aggregate = rng.choice(ids)
        subject = store.subject("case", aggregate)
        size = rng.randint(1, 3)
        await store.append(
            subject,
            [make_event(aggregate, data={"n": i, "k": k}) for k in range(size)],
            expected_version=None,
        )
        c, e = expected.get(subject, (0, 0))
        expected[subject] = (c + 1, e + size)
    return expected


def _as_counts(table: list[tuple[str, int, int, int]]) -> dict[str, tuple[int, int]]:
    return {subject: (c, e) for subject, c, e, _ in table}


@pytest.fixture(params=["async", "blocking", "loop"])
def kind(request: pytest.FixtureRequest) -> str:
    """Every projector test runs for a projection that awaits each statement and for one
    written against a blocking connection: a batch in one call in the projector's thread,
    or ("loop", on SQLite) small batches on the event loop."""
    return str(request.param)


@pytest.fixture
async def engine(database_url: str) -> AsyncEngine:
    engine = create_engine(database_url)
    await create_tables(engine)
    return engine


async def _position(engine: AsyncEngine, name: str = "counting") -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(position_table.c.last_seq).where(position_table.c.name == name)
        )
    return int(value or 0)


async def test_rebuild_gives_the_rows_of_the_incremental_run(
    event_store: EventStore, engine: AsyncEngine, kind: str
) -> None:
    projector = counting_projector(kind, event_store, engine, batch=16)
    expected = await _append_history(event_store, 60)
    assert await projector.catch_up() == 60
    more = await _append_history(event_store, 45, aggregates=3)
    assert await projector.catch_up() == 105
    incremental = await rows(engine)
    assert _as_counts(incremental) == {**expected, **more}

    assert await projector.rebuild() == 105
    assert await rows(engine) == incremental
    assert await _position(engine) == 105
    await projector.aclose()
    await engine.dispose()


async def test_a_commit_applied_by_its_writer_is_skipped_by_the_projector(
    event_store: EventStore, engine: AsyncEngine, kind: str
) -> None:
    projector = counting_projector(kind, event_store, engine)
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    result = await event_store.append(subject, [make_event(aggregate)], expected_version=0)
    (commit,) = await event_store.load(subject)
    # Read-your-writes: the handler applies its own commit before answering ...
    assert await projector.apply_commits([commit]) == result.seq
    # ... and the projector's catch-up must not apply it again.
    assert await projector.catch_up() == result.seq
    assert _as_counts(await rows(engine)) == {subject: (1, 1)}
    await projector.aclose()
    await engine.dispose()


async def test_a_commit_ahead_of_the_position_first_closes_the_gap(
    event_store: EventStore, engine: AsyncEngine, kind: str
) -> None:
    projector = counting_projector(kind, event_store, engine)
    expected = await _append_history(event_store, 10)
    last = await event_store.get(10)
    assert last is not None
    assert await projector.apply_commits([last]) == 10
    assert _as_counts(await rows(engine)) == expected
    await projector.aclose()
    await engine.dispose()


class _CaseOnly(CountingProjection):
    contexts = frozenset({"case"})


class _BlockingCaseOnly(BlockingCountingProjection):
    contexts = frozenset({"case"})


async def test_commits_a_projection_does_not_read_cost_no_transaction_and_are_never_lost(
    event_store: EventStore, engine: AsyncEngine, kind: str
) -> None:
    transactions = 0

    def count(*_args: object) -> None:
        nonlocal transactions
        transactions += 1

    event.listen(engine.sync_engine, "commit", count)
    url = engine.url.render_as_string(hide_password=False)
    blocking = create_sync_engine(url)
    event.listen(blocking, "commit", count)

    on_loop = loop_engine(url, writes=True) if kind == "loop" else None
    if on_loop is not None:
        event.listen(on_loop, "commit", count)

    def case_only() -> Projector:
        if kind in ("blocking", "loop"):
            return Projector(
                _BlockingCaseOnly(),
                event_store,
                engine,
                batch=8,
                blocking_engine=blocking,
                loop_engine=on_loop,
            )
        return Projector(_CaseOnly(), event_store, engine, batch=8)

    projector = case_only()
    expected = await _append_history(event_store, 5)
    assert await projector.catch_up() == 5
    # 20 commits of another context: read, skipped, no transaction.
    for _ in range(20):
        aggregate = new_id()
        await event_store.append(
            event_store.subject("log", aggregate),
            [make_event(aggregate, "no.stafett.log.entry_appended.v1")],
            expected_version=None,
        )
    before = transactions
    assert await projector.catch_up() == 25
    assert transactions == before
    assert await _position(engine) == 5  # on disk, the last commit that mattered
    await projector.wait_for(25, 1)  # and waiting for them answers at once
    # The next commit that matters writes its rows and the whole position at once.
    more = await _append_history(event_store, 3, aggregates=2)
    assert await projector.catch_up() == 28
    assert await _position(engine) == 28
    assert _as_counts(await rows(engine)) == {**expected, **more}
    # A new process starting from the stored position ends in the same state.
    fresh = case_only()
    assert await fresh.catch_up() == 28
    assert _as_counts(await rows(engine)) == {**expected, **more}
    await asyncio.to_thread(blocking.dispose)
    if on_loop is not None:
        await asyncio.to_thread(on_loop.dispose)
    await engine.dispose()


async def test_on_the_loop_a_held_lock_sends_the_batch_to_the_thread_which_waits(
    event_store: EventStore, engine: AsyncEngine, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("batches are applied on the event loop only on SQLite")
    projector = counting_projector("loop", event_store, engine)
    await projector.catch_up()
    expected = await _append_history(event_store, 3)
    commits = await event_store.read(1, limit=10)
    database = engine.url.database
    assert database
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        applying = asyncio.create_task(projector.apply_commits(commits))
        await asyncio.sleep(0.3)
        assert not applying.done()  # waiting in the thread, not failed on the loop
        assert (await asyncio.wait_for(asyncio.sleep(0, result="free"), 1)) == "free"
        other.execute("COMMIT")
        assert await asyncio.wait_for(applying, 10) == 3
    finally:
        other.close()
    assert _as_counts(await rows(engine)) == expected
    assert await _position(engine) == 3
    await projector.aclose()
    await engine.dispose()


async def test_wait_for_a_sequence_not_yet_applied_answers_behind_in_bounded_time(
    event_store: EventStore, engine: AsyncEngine, kind: str
) -> None:
    projector = counting_projector(kind, event_store, engine)
    await _append_history(event_store, 3)
    with pytest.raises(ProjectionBehind) as behind:
        await projector.wait_for(3, timeout_s=0.2)
    assert behind.value.wanted == 3
    projector.start()
    try:
        assert await projector.wait_for(3, timeout_s=5) >= 3
        await _append_history(event_store, 2)
        assert await projector.wait_for(5, timeout_s=5) >= 5
        assert projector.lag == 0
        assert projector.caught_up_within(5.0)
    finally:
        await projector.aclose()
        await engine.dispose()


@pytest.mark.slow
async def test_a_projector_killed_mid_stream_resumes_without_applying_twice(
    event_store: EventStore, nats_client: NATS, database_url: str, kind: str
) -> None:
    engine = create_engine(database_url)
    await create_tables(engine)
    expected = await _append_history(event_store, 150)
    nats_url = nats_client.connected_url
    assert nats_url is not None
    url = f"nats://{nats_url.hostname}:{nats_url.port}"
    rng = random.Random(7)
    positions: list[int] = []
    for _round in range(4):
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stafett_shared.testing.counting",
            url,
            database_url,
            "--delay",
            "0.01",
            "--batch",
            str(rng.randint(1, 9)),
            "--kind",
            kind,
            env=dict(os.environ),
        )
        target = await _position(engine) + rng.randint(3, 25)
        # Kill it once it has made progress: mid-batch or between events, wherever it is.
        for _ in range(1000):
            await asyncio.sleep(0.005)
            if await _position(engine) >= target:
                break
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        positions.append(await _position(engine))
    killed_at = positions[-1]
    assert 0 < killed_at < 150, f"the kills should land mid-stream: {positions}"

    projector = counting_projector(kind, event_store, engine)
    assert await projector.catch_up() == 150
    assert _as_counts(await rows(engine)) == expected
    await projector.aclose()
    await engine.dispose()


async def test_a_running_projector_survives_a_nats_restart(
    private_nats_server: object, tmp_path: object, kind: str
) -> None:
    import nats

    from stafett_shared.testing import NatsHandle

    assert isinstance(private_nats_server, NatsHandle)
    nc = await nats.connect(
        private_nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    engine = create_engine(f"sqlite:///{tmp_path}/restart.db")
    await create_tables(engine)
    store = EventStore(nc, timeout=2.0)
    await store.ensure_stream()
    projector = counting_projector(kind, store, engine, idle_poll_s=0.2)
    projector.start()
    try:
        await _append_history(store, 5)
        await projector.wait_for(5, timeout_s=5)
        await asyncio.to_thread(private_nats_server.restart)
        for _ in range(100):
            try:
                await _append_history(store, 1)
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert await projector.wait_for(6, timeout_s=15) == 6
    finally:
        await projector.aclose()
        await nc.close()
        await engine.dispose()


async def test_a_message_the_guard_refuses_is_quarantined_and_projection_goes_on(
    event_store: EventStore, nats_client: NATS, engine: AsyncEngine, kind: str
) -> None:
    """Garbage, a forged source, an event of another aggregate and a payload its model
    refuses: each is quarantined and skipped on every path (catch-up, a writer's own commit,
    the running loop and a rebuild), and the commits around them are applied."""
    js = nats_client.jetstream()
    projector = counting_projector(kind, event_store, engine, idle_poll_s=0.2)
    expected = await _append_history(event_store, 3)
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    refused = {
        (await js.publish(subject, b"\x00\xff not a commit")).seq: "undecodable",
        (await js.publish(subject, b"[]")).seq: "undecodable",
        (await js.publish(subject, _raw(make_event(aggregate, source="stafett/log")))).seq: (
            "wrong_source"
        ),
        (await js.publish(subject, _raw(make_event(new_id())))).seq: "wrong_aggregate",
        (await js.publish(subject, _raw(make_event(aggregate, data={"n": "x"})))).seq: (
            "invalid_payload"
        ),
        (
            await js.publish(subject, _raw(make_event(aggregate, "no.stafett.case.gone.v1")))
        ).seq: "unknown_type",
        (await js.publish("stafett.ev.billing.x", _raw(make_event("x")))).seq: "bad_subject",
    }
    more = await _append_history(event_store, 2, aggregates=2)
    assert await projector.catch_up() == 12
    assert _as_counts(await rows(engine)) == {**expected, **more}
    assert {q.seq: q.reason for q in await projector.quarantine()} == refused
    assert await _position(engine) == 12

    # A writer's own commit passes the same guard.
    own = await js.publish(subject, _raw(make_event(aggregate, source="stafett/consent")))
    forged = make_event(aggregate, source="stafett/consent")
    assert await projector.apply_own(subject, own.seq, [forged]) == own.seq
    refused[own.seq] = "wrong_source"

    # And so does the running loop, which never stops for one message.
    projector.start()
    try:
        garbage = await js.publish(subject, b"{")
        refused[garbage.seq] = "undecodable"
        last = await _append_history(event_store, 1, aggregates=1)
        assert await projector.wait_for(garbage.seq + 1, timeout_s=10) == garbage.seq + 1
        assert projector.running
    finally:
        await projector.stop()
    counts = {**expected, **more, **last}  # every call appends to aggregates of its own
    assert _as_counts(await rows(engine)) == counts
    assert {q.seq: q.reason for q in await projector.quarantine()} == refused

    # A rebuild judges the whole stream again and ends in the same rows and quarantine.
    assert await projector.rebuild() == garbage.seq + 1
    assert _as_counts(await rows(engine)) == counts
    assert {q.seq: q.reason for q in await projector.quarantine()} == refused
    await projector.aclose()
    await engine.dispose()


def _raw(event: CloudEvent) -> bytes:
    return encode_commit([event])
