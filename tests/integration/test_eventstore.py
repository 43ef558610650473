"""The JetStream event store against a real nats-server."""

from __future__ import annotations

import asyncio
import dataclasses

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS

from stafett_shared.eventstore import (
    AppendResult,
    ConcurrencyConflict,
    DuplicateAppend,
    EventStore,
    StreamMisconfigured,
    required_stream_config,
)
from stafett_shared.ids import new_id
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.events import make_event
from stafett_shared.testing.plugin import add_stream_retrying


async def test_two_concurrent_appends_with_the_same_expected_version_exactly_one_wins(
    event_store: EventStore,
) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    opened = await event_store.append(subject, [make_event(aggregate)], expected_version=0)

    results = await asyncio.gather(
        *(
            event_store.append(
                subject, [make_event(aggregate, data={"n": i})], expected_version=opened.seq
            )
            for i in range(2)
        ),
        return_exceptions=True,
    )

    assert sum(isinstance(r, AppendResult) for r in results) == 1
    assert sum(isinstance(r, ConcurrencyConflict) for r in results) == 1
    assert next(c.seq for c in await event_store.load(subject)) == opened.seq
    assert len(await event_store.load(subject)) == 2


async def test_ten_racing_writers_on_one_aggregate_give_one_winner_and_nine_conflicts(
    event_store: EventStore,
) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    results = await asyncio.gather(
        *(
            event_store.append(subject, [make_event(aggregate, data={"n": i})], expected_version=0)
            for i in range(10)
        ),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(conflicts) == 9
    winner = next(r for r in results if isinstance(r, AppendResult))
    assert all(c.actual == winner.seq for c in conflicts)


async def test_a_new_aggregate_refuses_a_second_opening(event_store: EventStore) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    await event_store.append(subject, [make_event(aggregate)], expected_version=0)
    with pytest.raises(ConcurrencyConflict):
        await event_store.append(subject, [make_event(aggregate)], expected_version=0)


async def test_the_same_idempotency_key_twice_stores_one_commit(event_store: EventStore) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    first = await event_store.append(
        subject, [make_event(aggregate)], expected_version=0, idempotency_key="cmd-1"
    )
    # The retry carries the same key and the same expected version it was decided on.
    with pytest.raises(DuplicateAppend) as repeated:
        await event_store.append(
            subject, [make_event(aggregate)], expected_version=0, idempotency_key="cmd-1"
        )
    assert repeated.value.seq == first.seq
    # A retry that reloaded first expects the new version; the duplicate window catches it.
    with pytest.raises(DuplicateAppend) as reloaded:
        await event_store.append(
            subject, [make_event(aggregate)], expected_version=first.seq, idempotency_key="cmd-1"
        )
    assert reloaded.value.seq == first.seq
    commits = await event_store.load(subject)
    assert [c.seq for c in commits] == [first.seq]
    assert commits[0].idempotency_key == "cmd-1"


async def test_a_repeat_found_after_newer_commits_is_still_a_duplicate(
    event_store: EventStore,
) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    first = await event_store.append(
        subject, [make_event(aggregate)], expected_version=0, idempotency_key="cmd-a"
    )
    await event_store.append(
        subject, [make_event(aggregate)], expected_version=first.seq, idempotency_key="cmd-b"
    )
    with pytest.raises(DuplicateAppend) as repeated:
        await event_store.append(
            subject, [make_event(aggregate)], expected_version=0, idempotency_key="cmd-a"
        )
    assert repeated.value.seq == first.seq
    assert len(await event_store.load(subject)) == 2


async def test_several_events_of_one_command_are_one_message(event_store: EventStore) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    events = [make_event(aggregate, data={"n": i}) for i in range(3)]
    result = await event_store.append(subject, events, expected_version=0)
    (commit,) = await event_store.load(subject)
    assert commit.seq == result.seq
    assert [e.id for e in commit.events] == [e.id for e in events]


async def test_load_returns_only_the_aggregates_commits_in_order(event_store: EventStore) -> None:
    mine, other = new_id(), new_id()
    mine_subject = event_store.subject("case", mine)
    other_subject = event_store.subject("case", other)
    version = 0
    for i in range(600):  # more than one direct-get batch
        if i % 3 == 0:
            version = (
                await event_store.append(
                    mine_subject, [make_event(mine, data={"n": i})], expected_version=version
                )
            ).seq
        else:
            await event_store.append(
                other_subject, [make_event(other, data={"n": i})], expected_version=None
            )
    commits = await event_store.load(mine_subject)
    assert [c.events[0].data["n"] for c in commits] == list(range(0, 600, 3))
    assert all(c.subject == mine_subject for c in commits)
    tail = await event_store.load(mine_subject, after_seq=commits[-3].seq)
    assert [c.seq for c in tail] == [c.seq for c in commits[-2:]]
    assert await event_store.last_seq() == 600
    assert len(await event_store.read(1, limit=1000)) == 600


async def test_an_unknown_aggregate_loads_as_empty(event_store: EventStore) -> None:
    assert await event_store.load(event_store.subject("case", new_id())) == []
    assert await event_store.get(12345) is None


async def test_a_stored_message_cannot_be_deleted_or_purged(
    event_store: EventStore, nats_client: NATS
) -> None:
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    result = await event_store.append(subject, [make_event(aggregate)], expected_version=0)
    js = nats_client.jetstream()
    with pytest.raises(nats.js.errors.APIError):
        await js.delete_msg("EVENTS", result.seq)
    with pytest.raises(nats.js.errors.APIError):
        await js.purge_stream("EVENTS")
    assert [c.seq for c in await event_store.load(subject)] == [result.seq]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"deny_delete": False}, "deny_delete"),
        ({"deny_purge": False}, "deny_purge"),
        ({"max_age": 3600.0}, "max_age"),
        ({"max_msgs": 1000}, "max_msgs"),
        ({"max_bytes": 10_000_000}, "max_bytes"),
        ({"max_msgs_per_subject": 10}, "max_msgs_per_subject"),
        ({"allow_rollup_hdrs": True, "deny_purge": False}, "rollup"),
        ({"duplicate_window": 10.0}, "duplicate window"),
    ],
)
async def test_a_stream_that_could_lose_history_is_refused(
    nats_client: NATS, change: dict[str, object], problem: str
) -> None:
    config = required_stream_config("EVENTS", "stafett.ev", 1)
    unsafe = dataclasses.replace(config, **change)  # type: ignore[arg-type]
    await add_stream_retrying(nats_client, unsafe)
    with pytest.raises(StreamMisconfigured, match=problem):
        await EventStore(nats_client).ensure_stream()


async def test_a_missing_stream_is_refused_when_creation_is_not_allowed(
    nats_client: NATS,
) -> None:
    with pytest.raises(StreamMisconfigured, match="does not exist"):
        await EventStore(nats_client).ensure_stream(create=False)


async def test_subjects_reject_wildcards_and_unknown_contexts(event_store: EventStore) -> None:
    with pytest.raises(ValueError, match="aggregate id"):
        event_store.subject("case", "a.b")
    with pytest.raises(ValueError, match="aggregate id"):
        event_store.subject("case", ">")
    with pytest.raises(ValueError, match="context"):
        event_store.subject("billing", new_id())


async def test_a_subscriber_keeps_reading_across_a_nats_server_restart(
    private_nats_server: NatsHandle,
) -> None:
    nc = await nats.connect(
        private_nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    try:
        store = EventStore(nc, timeout=2.0)
        await store.ensure_stream()
        aggregate = new_id()
        subject = store.subject("case", aggregate)
        for i in range(5):
            await store.append(
                subject, [make_event(aggregate, data={"n": i})], expected_version=None
            )
        seen: list[int] = []

        async def follow() -> None:
            async for commit in store.subscribe(1, idle_poll=0.2):
                seen.append(commit.events[0].data["n"])
                if len(seen) == 10:
                    return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(private_nats_server.restart)
        for i in range(5, 10):
            for _attempt in range(50):
                try:
                    await store.append(
                        subject, [make_event(aggregate, data={"n": i})], expected_version=None
                    )
                    break
                except Exception:
                    await asyncio.sleep(0.2)
        await asyncio.wait_for(follower, 20)
        assert seen == list(range(10))
    finally:
        await nc.close()


async def test_version_is_the_sequence_of_the_aggregates_last_commit(
    event_store: EventStore,
) -> None:
    aggregate, other = new_id(), new_id()
    subject = event_store.subject("case", aggregate)
    assert await event_store.version(subject) == 0
    first = await event_store.append(subject, [make_event(aggregate)], expected_version=0)
    await event_store.append(
        event_store.subject("case", other), [make_event(other)], expected_version=0
    )
    assert await event_store.version(subject) == first.seq
    second = await event_store.append(subject, [make_event(aggregate)], expected_version=first.seq)
    assert await event_store.version(subject) == second.seq
