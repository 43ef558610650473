"""Trace context travels from an HTTP request through NATS into the event's consumer."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from stafett_shared.db import create_engine
from stafett_shared.eventstore import EventStore, StoredCommit
from stafett_shared.ids import new_id
from stafett_shared.projector import Projection, Projector
from stafett_shared.telemetry import FASTAPI_TELEMETRY, TracingMiddleware, current_traceparent
from stafett_shared.testing.counting import counted_events, create_tables
from stafett_shared.testing.events import make_event


class _RecordingProjection(Projection):
    name = "recording"
    event_registry = counted_events  # the test's event is not a real case.opened

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def apply(self, session: AsyncSession, commit: StoredCommit) -> None:
        ctx = trace.get_current_span().get_span_context()
        self.seen.append((ctx.trace_id, ctx.span_id))


async def test_a_trace_started_by_an_http_request_continues_in_the_events_consumer(
    event_store: EventStore, span_exporter: InMemorySpanExporter, tmp_path: object
) -> None:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY)
    aggregate = new_id()
    subject = event_store.subject("case", aggregate)
    traceparents: list[str | None] = []

    @app.post("/cases")
    async def open_case() -> dict[str, int]:
        traceparents.append(current_traceparent())
        result = await event_store.append(subject, [make_event(aggregate)], expected_version=0)
        return {"seq": result.seq}

    app.add_middleware(TracingMiddleware)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/cases")
    assert response.status_code == 200

    engine = create_engine(f"sqlite:///{tmp_path}/trace.db")
    await create_tables(engine)
    projection = _RecordingProjection()
    await Projector(projection, event_store, engine).catch_up()
    await engine.dispose()

    spans = span_exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    producer = next(s for s in spans if s.name == "eventstore.append")
    consumer = next(s for s in spans if s.kind == SpanKind.CONSUMER)
    assert server.name == "POST /cases"
    assert server.context is not None and producer.context is not None
    assert consumer.context is not None
    trace_id = server.context.trace_id
    assert producer.context.trace_id == trace_id
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    assert consumer.context.trace_id == trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    # The projection ran inside the consumer span.
    assert projection.seen == [(trace_id, consumer.context.span_id)]
    assert traceparents[0] is not None and format(trace_id, "032x") in traceparents[0]


async def test_an_incoming_traceparent_is_continued_by_the_server_span(
    span_exporter: InMemorySpanExporter,
) -> None:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(TracingMiddleware)
    incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        await client.get(
            "/ping", headers={"traceparent": f"00-{incoming_trace}-00f067aa0ba902b7-01"}
        )
    (server,) = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.context is not None
    assert format(server.context.trace_id, "032x") == incoming_trace
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/ping"
