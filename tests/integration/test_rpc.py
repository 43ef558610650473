"""NATS request/reply helpers against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stafett_shared.rpc import RpcRemoteError, RpcUnavailable, request, serve


async def test_a_request_gets_the_handlers_reply(nats_client: NATS) -> None:
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload["value"]}

    sub = await serve(nats_client, "stafett.rpc.test.echo", echo)
    try:
        assert await request(nats_client, "stafett.rpc.test.echo", {"value": 7}, timeout=2) == {
            "echo": 7
        }
    finally:
        await sub.unsubscribe()


async def test_no_responder_is_unavailable_without_waiting_for_the_timeout(
    nats_client: NATS,
) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(RpcUnavailable):
        await request(nats_client, "stafett.rpc.test.nobody", {}, timeout=5)
    assert asyncio.get_running_loop().time() - started < 4


async def test_a_slow_responder_times_out_as_unavailable(nats_client: NATS) -> None:
    async def slow(_payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(1)
        return {}

    sub = await serve(nats_client, "stafett.rpc.test.slow", slow)
    try:
        with pytest.raises(RpcUnavailable):
            await request(nats_client, "stafett.rpc.test.slow", {}, timeout=0.2)
    finally:
        await sub.unsubscribe()


async def test_a_failing_handler_answers_an_error_without_its_message(nats_client: NATS) -> None:
    async def broken(_payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("Ola Nordmann 01010012345")

    sub = await serve(nats_client, "stafett.rpc.test.broken", broken)
    try:
        with pytest.raises(RpcRemoteError) as failure:
            await request(nats_client, "stafett.rpc.test.broken", {}, timeout=2)
        assert failure.value.code == "internal_error"
        assert "01010012345" not in str(failure.value)
        reply = await nats_client.request("stafett.rpc.test.broken", b"not json", timeout=2)
        assert b"bad_request" in reply.data
    finally:
        await sub.unsubscribe()


async def test_the_responder_continues_the_callers_trace(
    nats_client: NATS, span_exporter: InMemorySpanExporter
) -> None:
    seen: list[int] = []

    async def traced(_payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return {}

    sub = await serve(nats_client, "stafett.rpc.test.traced", traced)
    try:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            await request(nats_client, "stafett.rpc.test.traced", {}, timeout=2)
        assert seen == [caller.get_span_context().trace_id]
    finally:
        await sub.unsubscribe()
