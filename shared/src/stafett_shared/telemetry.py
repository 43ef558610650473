"""OpenTelemetry tracing: W3C trace context over HTTP and in NATS message headers.

Spans carry ids and counts only, never personal data: attribute values are aggregate ids,
event types, status codes and sizes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Literal

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = [
    "FASTAPI_TELEMETRY",
    "TracingMiddleware",
    "configure_tracing",
    "current_traceparent",
    "extract_context",
    "inject_headers",
    "start_consumer_span",
]

Exporter = Literal["none", "console"]

FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}
"""FastAPI's own instrumentation is off: its logs carry exception and validation messages,
which can quote what a client sent (personal data). ``TracingMiddleware`` makes the server
span instead, named by the route template only. See docs/decisions/0004-tracing.md."""
_tracer = trace.get_tracer("stafett")


def configure_tracing(service: str, exporter: Exporter = "none") -> TracerProvider:
    """Install the process's tracer provider once; later calls return the installed one."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": f"stafett-{service}"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write ``traceparent`` (and ``tracestate``) of the current span into ``headers``."""
    inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return extract(dict(headers or {}))


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def start_consumer_span(
    name: str, headers: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[trace.Span]:
    """A current CONSUMER span continuing the trace carried in a NATS message's headers."""
    return _tracer.start_as_current_span(
        name,
        context=extract_context(headers),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes or {}),
    )


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TracingMiddleware:
    """Starts a SERVER span per HTTP request, continuing an incoming ``traceparent``.

    The span name is the route template (``POST /api/v1/cases/{id}/level``), never the raw
    path, so no id or query value reaches the span name.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        span = _tracer.start_span(
            f"{method}",
            context=extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        status_code = 500

        async def _send(message: MutableMapping[str, Any]) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", status_code)
            if status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)
