"""An idle work queue is not a fault: the worker keeps its subscription and says nothing."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import nats.errors
import pytest

from stafett_notify.delivery import Deliverer, RetryPolicy, SmtpSettings


class _IdleQueue:
    """A pull subscription on an empty queue, answering each fetch as nats-py does: with
    its own TimeoutError, or with asyncio's when the server's "no messages" arrives as the
    fetch's time runs out."""

    def __init__(self, timeouts: list[type[BaseException]]) -> None:
        self.timeouts = timeouts
        self.fetches = 0
        self.drained = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        del batch, timeout
        self.fetches += 1
        if self.timeouts:
            raise self.timeouts.pop(0)()
        self.drained.set()
        await asyncio.Event().wait()  # idle until cancelled
        return []

    async def unsubscribe(self) -> None:
        return None


class _JetStream:
    def __init__(self, queue: _IdleQueue) -> None:
        self.queue = queue
        self.binds = 0

    async def pull_subscribe_bind(self, durable: str, stream: str) -> _IdleQueue:
        del durable, stream
        self.binds += 1
        return self.queue


class _Connection:
    def __init__(self, js: _JetStream) -> None:
        self.js = js

    def jetstream(self) -> _JetStream:
        return self.js


@pytest.mark.parametrize(
    "timeouts",
    [
        [asyncio.TimeoutError, asyncio.TimeoutError],
        [nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.TimeoutError],
    ],
    ids=["asyncio", "mixed"],
)
async def test_an_idle_queue_keeps_the_subscription(
    timeouts: list[type[BaseException]], caplog: pytest.LogCaptureFixture
) -> None:
    queue = _IdleQueue(list(timeouts))
    js = _JetStream(queue)
    deliverer = Deliverer(
        nc=cast("Any", _Connection(js)),
        sessions=cast("Any", None),
        writer=cast("Any", None),
        cipher=cast("Any", None),
        smtp=SmtpSettings(),
        retry=RetryPolicy(),
        link_base="http://127.0.0.1:8100",
    )
    worker = asyncio.create_task(deliverer.work_forever())
    try:
        async with asyncio.timeout(30):
            await queue.drained.wait()
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    assert queue.fetches == len(timeouts) + 1
    assert js.binds == 1
    assert "worker_restarting" not in caplog.text
