"""NATS request/reply with timeouts, JSON bodies and trace context in the headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from stafett_shared.logging import get_logger
from stafett_shared.telemetry import extract_context, inject_headers

__all__ = [
    "Handler",
    "RpcError",
    "RpcRemoteError",
    "RpcUnavailable",
    "asked_on",
    "request",
    "serve",
]

MAX_RPC_BYTES = 256 * 1024
_tracer = trace.get_tracer("stafett.rpc")
_log = get_logger("stafett.rpc")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RpcError(Exception):
    """Root of request/reply errors."""


class RpcUnavailable(RpcError):
    """No responder, a timeout, or no connection."""


def asked_on(subject: str, service: str) -> str:
    """The subject on which ``service`` sends the requests of ``subject``: its own name is
    the last token. In production each service's NATS user may publish only on subjects
    ending in its own name (deploy/nats/cluster.conf), so the responder learns from the
    subject, not from a claim in the body, which service asked."""
    return f"{subject}.{service}"


class RpcRemoteError(RpcError):
    """The responder refused the request; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


async def request(
    nc: NATS, subject: str, payload: dict[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Send a JSON request and return the JSON reply."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > MAX_RPC_BYTES:
        raise RpcError("request too large")
    with _tracer.start_as_current_span(
        f"{subject} request", kind=SpanKind.CLIENT, attributes={"messaging.system": "nats"}
    ):
        headers = dict(inject_headers({}))
        if not nc.is_connected:
            # Reconnecting: the request would wait out its timeout in the client's buffer.
            raise RpcUnavailable("not connected to NATS")
        try:
            msg = await nc.request(subject, body, timeout=timeout, headers=headers)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise RpcUnavailable(f"{subject} did not answer") from exc
        except nats.errors.Error as exc:
            raise RpcUnavailable("not connected to NATS") from exc
    try:
        reply = json.loads(msg.data)
    except json.JSONDecodeError as exc:
        raise RpcError("reply is not JSON") from exc
    if not isinstance(reply, dict):
        raise RpcError("reply is not an object")
    error = reply.get("error")
    if isinstance(error, dict):
        raise RpcRemoteError(str(error.get("code", "error")), str(error.get("detail", "")))
    return reply


def _asker(subject: str, payload: dict[str, Any], askers: frozenset[str]) -> str:
    """The service a request arrived from (its subject's last token), or a refusal."""
    asker = subject.rpartition(".")[2]
    if asker not in askers:
        raise RpcRemoteError("unknown_service", "the subject names no known service")
    if payload.get("asked_by", asker) != asker:
        raise RpcRemoteError("unknown_service", "asked_by names another service than the subject")
    return asker


async def serve(
    nc: NATS,
    subject: str,
    handler: Handler,
    *,
    queue: str | None = None,
    askers: frozenset[str] | None = None,
) -> Subscription:
    """Answer requests on ``subject`` with ``handler``; errors become ``{"error": …}`` replies.

    With ``askers``, ``subject`` ends in ``*`` and its last token names the asking service
    (:func:`asked_on`): a name outside ``askers`` is refused, and the handler sees it as the
    request's ``asked_by``. A body that claims another service is refused, so a request
    can never be recorded in another service's name."""
    if askers is not None and not subject.endswith(".*"):
        raise ValueError("a subject that names its asker ends in '.*'")

    async def _on_request(msg: Msg) -> None:
        ctx = extract_context(msg.headers)
        token = otel_context.attach(ctx)
        try:
            with _tracer.start_as_current_span(f"{subject} process", kind=SpanKind.SERVER):
                reply = await _handle(msg)
            if msg.reply:
                await msg.respond(json.dumps(reply, separators=(",", ":")).encode())
        finally:
            otel_context.detach(token)

    async def _handle(msg: Msg) -> dict[str, Any]:
        if len(msg.data) > MAX_RPC_BYTES:
            return {"error": {"code": "too_large", "detail": "request too large"}}
        try:
            payload = json.loads(msg.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"error": {"code": "bad_request", "detail": "request is not JSON"}}
        if not isinstance(payload, dict):
            return {"error": {"code": "bad_request", "detail": "request is not an object"}}
        try:
            if askers is not None:
                payload["asked_by"] = _asker(msg.subject, payload, askers)
            return await handler(payload)
        except RpcRemoteError as exc:
            return {"error": {"code": exc.code, "detail": exc.detail}}
        except Exception as exc:  # noqa: BLE001 - the reply must always come, or callers wait for the timeout
            _log.error("rpc_handler_failed", subject=subject, error_type=type(exc).__name__)
            return {"error": {"code": "internal_error", "detail": "the responder failed"}}

    return await nc.subscribe(subject, queue=queue or subject, cb=_on_request)
