"""The client every service uses to ask the consent service for access decisions over NATS.

Permits may be cached for at most one second (DESIGN.md): a withdrawn consent must stop
access for every decision issued more than a second after it. Denials are never cached, and a
request with a minimum sequence newer than a cached permit bypasses the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from stafett_shared.auth import Principal
from stafett_shared.contracts.access import AccessDecision, AccessRecorded, ReadWhat
from stafett_shared.envelope import registry
from stafett_shared.eventstore import EventStore
from stafett_shared.rpc import RpcRemoteError, asked_on, request
from stafett_shared.telemetry import current_traceparent

__all__ = [
    "MAX_PERMIT_CACHE_S",
    "REQUEST_MIN_SEQ",
    "SERVICES",
    "AccessClient",
    "AccessDecision",
    "AccessRecorded",
    "AccessUnavailable",
    "announce_access_changed",
    "record_access",
]

REQUEST_MIN_SEQ: ContextVar[int | None] = ContextVar("stafett_request_min_seq", default=None)
"""The ``Stafett-Min-Seq`` of the HTTP request being served: every decision asked for while
serving it waits, at the consent service, until the consent projection has reached it. A
client that wrote something and then acts on it (a child registered, then a case opened for
the child) sends its write's sequence and is never refused by a projection that lags."""

MAX_PERMIT_CACHE_S = 1.0
SERVICES = frozenset({"case", "log", "consent", "notify"})
"""The services that may ask for a decision (``asked_by``). The consent service refuses a
request from any other name. Each service asks on its own subject
(``stafett.rpc.consent.check.<service>``, :func:`~stafett_shared.rpc.asked_on`), the only
one its NATS user may publish on in production (deploy/nats/cluster.conf), and the consent
service takes the name from the subject: a request cannot be recorded in another service's
name. The subjects without a service (CONTRACT.md) stay for an operator's tools; no
service's user may publish on them."""
CHECK_SUBJECT = "stafett.rpc.consent.check"
ACCESS_CHANGED_SUBJECT = "stafett.access.changed"
"""Core NATS (not the stream): the consent service says here, with an empty message, that
it has indexed a change to who may read some case — a role, a team, a holder, a guardian, a
consent. Every :class:`AccessClient` that listens forgets the permits it holds, so a
permission taken away is not answered from a cache even for the second one may be kept.
The message names no case and no person."""
FILTER_SUBJECT = "stafett.rpc.consent.filter"


def _principal(principal: Principal) -> dict[str, Any]:
    """The principal as a decision request names it: a client with its token's scopes, of
    which the consent service counts only those the directory registers (decision 0039)."""
    named: dict[str, Any] = {"id": principal.id, "kind": principal.kind}
    if principal.kind == "client":
        named["scopes"] = sorted(principal.scopes)
    return named


def _scope_key(principal: Principal) -> str:
    return " ".join(sorted(principal.scopes)) if principal.kind == "client" else ""


class AccessUnavailable(Exception):
    """The consent service did not answer, or its read model is behind: fail closed."""


class AccessClient:
    def __init__(
        self,
        nc: NATS,
        *,
        service: str,
        timeout_s: float = 2.0,
        permit_cache_s: float = MAX_PERMIT_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= permit_cache_s <= MAX_PERMIT_CACHE_S:
            raise ValueError("a permit may be cached for at most one second")
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        self._nc = nc
        self._service = service
        self._timeout = timeout_s
        self._ttl = permit_cache_s
        self._clock = clock
        self._cache: dict[
            tuple[str, str, str, str, str | None, str], tuple[float, AccessDecision]
        ] = {}
        self._subscription: Subscription | None = None

    async def listen(self) -> None:
        """Forget every cached permit whenever the consent service announces a change to
        who may read (:data:`ACCESS_CHANGED_SUBJECT`). Without it a permit lives at most
        ``permit_cache_s``."""
        if self._subscription is None and self._ttl > 0:
            self._subscription = await self._nc.subscribe(ACCESS_CHANGED_SUBJECT, cb=self._forget)

    async def _forget(self, _msg: Msg) -> None:
        self._cache.clear()

    def forget(self) -> None:
        """Forget every cached permit now."""
        self._cache.clear()

    async def check(
        self,
        principal: Principal,
        action: str,
        case_id: str,
        *,
        entry_id: str | None = None,
        min_seq: int | None = None,
    ) -> AccessDecision:
        min_seq = min_seq or REQUEST_MIN_SEQ.get()
        key = (principal.kind, principal.id, action, case_id, entry_id, _scope_key(principal))
        now = self._clock()
        if self._subscription is not None and self._subscription.pending_msgs:
            self._cache.clear()  # an announcement arrived that its callback has not seen yet
        cached = self._cache.get(key)
        if cached is not None and not min_seq and now - cached[0] < self._ttl:
            return cached[1]
        payload: dict[str, Any] = {
            "principal": _principal(principal),
            "action": action,
            "resource": {"case_id": case_id, "entry_id": entry_id},
            "asked_by": self._service,
        }
        if min_seq:
            payload["min_seq"] = min_seq
        reply = await self._ask(asked_on(CHECK_SUBJECT, self._service), payload)
        try:
            decision = AccessDecision.model_validate(reply)
        except ValidationError as exc:
            raise AccessUnavailable("the consent service's answer is not a decision") from exc
        if decision.permitted and self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, decision)
        else:
            self._cache.pop(key, None)
        return decision

    async def filter(
        self,
        principal: Principal,
        action: str,
        case_ids: Sequence[str],
        *,
        min_seq: int | None = None,
    ) -> list[str]:
        min_seq = min_seq or REQUEST_MIN_SEQ.get()
        payload: dict[str, Any] = {
            "principal": {"id": principal.id, "kind": principal.kind},
            "action": action,
            "case_ids": list(case_ids),
            "asked_by": self._service,
        }
        if min_seq:
            payload["min_seq"] = min_seq
        reply = await self._ask(asked_on(FILTER_SUBJECT, self._service), payload)
        return [str(case_id) for case_id in reply.get("permitted", [])]

    async def _ask(self, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await request(self._nc, subject, payload, timeout=self._timeout)
        except RpcRemoteError as exc:
            raise AccessUnavailable(exc.code) from exc
        except Exception as exc:
            raise AccessUnavailable("the consent service did not answer") from exc


async def announce_access_changed(nc: NATS) -> None:
    """Tell every listening :class:`AccessClient` to forget its permits, and wait until the
    server has the message, before the change is answered."""
    await nc.publish(ACCESS_CHANGED_SUBJECT, b"")
    await nc.flush()


async def record_access(
    store: EventStore,
    *,
    case_id: str,
    tenant: str,
    principal: Principal,
    basis: str | None,
    decision_id: str | None,
    what: ReadWhat,
    service: str,
    entry_ids: Sequence[str] = (),
) -> int:
    """Publish that ``principal`` read ``what`` of a case. Reads are facts: no concurrency
    check. A read that cannot be recorded must not be served (the caller lets this raise)."""
    payload = AccessRecorded(
        case_id=case_id,
        reader_id=principal.id,
        reader_kind=principal.kind,
        basis=basis,
        decision_id=decision_id,
        what=what,
        entry_ids=tuple(entry_ids[:500]),
        service=service,
    )
    event = registry.envelope(
        payload,
        subject=case_id,
        source=f"stafett/{service}",
        tenant=tenant,
        actor=principal.id,
        time=datetime.now(UTC),
        traceparent=current_traceparent(),
    )
    result = await store.append(store.subject("access", case_id), [event], expected_version=None)
    return result.seq
