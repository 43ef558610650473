"""The directory's logins, as every service asks for them: (issuer, subject) → person id.

A staff issuer's subject (an Entra ID ``oid``, a Feide id) is a person only through a login
the region document binds to a staff member (``logins`` on the staff member, published as
``directory.login_bound`` and ``login_unbound``). The consent service keeps the bindings
and answers ``stafett.rpc.consent.login``; :class:`LoginDirectory` asks it and is the
:data:`~stafett_shared.auth.LoginResolver` of the other services' token verifiers.

Answers are kept a short while, in a bounded cache: a binding for at most ``cache_s``
(so a login the directory unbinds stops working within that time), a subject bound to
nobody for at most :data:`MISS_KEPT_S` (so a login bound a moment ago works almost at once).
A lookup that cannot be made (no responder, a timeout, a refusal) is never cached and raises
:class:`~stafett_shared.auth.IdentityUnavailable`: the request is answered 503, not 401,
so an outage of the consent service is not "unknown user", and never someone.

The subject is an identifier, not content: it travels in the request in clear (over the
services' own NATS connections) and is never logged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS

from stafett_shared import rpc
from stafett_shared.auth import IdentityUnavailable
from stafett_shared.contracts import SERVICES
from stafett_shared.ids import PERSON_ID_PATTERN

__all__ = [
    "LOGINS_KEPT",
    "LOGIN_KEPT_S",
    "LOGIN_SUBJECT",
    "MAX_ISSUER_CHARS",
    "MAX_SUBJECT_CHARS",
    "MISS_KEPT_S",
    "LoginDirectory",
    "login_request",
]

LOGIN_SUBJECT = "stafett.rpc.consent.login"
LOGINS_KEPT = 4096
"""Answers a service remembers at most (the least recently used are forgotten)."""
LOGIN_KEPT_S = 60.0
"""How long a binding is taken on trust at most (``STAFETT_LOGIN_CACHE_S`` shortens it)."""
MISS_KEPT_S = 2.0
"""How long "bound to nobody" is taken on trust at most."""
MAX_ISSUER_CHARS = 500
MAX_SUBJECT_CHARS = 255


def login_request(payload: dict[str, Any]) -> tuple[str, str]:
    """The (issuer, subject) of a ``stafett.rpc.consent.login`` request, or a refusal. Only
    the services ask (``asked_by``, a claim: in production each service's NATS user, and so
    the subjects it may publish on, is what binds a request to a service)."""
    if payload.get("asked_by") not in SERVICES:
        raise rpc.RpcRemoteError("unknown_service", "asked_by names no known service")
    issuer = payload.get("issuer")
    subject = payload.get("subject")
    if not isinstance(issuer, str) or not 0 < len(issuer) <= MAX_ISSUER_CHARS:
        raise rpc.RpcRemoteError("bad_request", "issuer must be a string of 1 to 500 characters")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise rpc.RpcRemoteError("bad_request", "subject must be a string of 1 to 255 characters")
    return issuer, subject


class LoginDirectory:
    """Asks the consent service who a login is; a :data:`~stafett_shared.auth.LoginResolver`."""

    def __init__(
        self,
        nc: NATS,
        *,
        service: str,
        timeout_s: float = 2.0,
        cache_s: float = LOGIN_KEPT_S,
        kept: int = LOGINS_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= cache_s <= LOGIN_KEPT_S:
            raise ValueError(f"a binding may be kept for at most {LOGIN_KEPT_S} s")
        self._nc = nc
        self._service = service
        self._timeout = timeout_s
        self._hit_s = cache_s
        self._miss_s = min(cache_s, MISS_KEPT_S)
        self._kept = kept
        self._clock = clock
        self._answers: OrderedDict[tuple[str, str], tuple[str | None, float]] = OrderedDict()

    async def __call__(self, issuer: str, subject: str) -> str | None:
        key = (issuer, subject)
        now = self._clock()
        known = self._answers.get(key)
        if known is not None:
            if now < known[1]:
                self._answers.move_to_end(key)
                return known[0]
            del self._answers[key]
        person_id = await self._ask(issuer, subject)
        kept_for = self._hit_s if person_id is not None else self._miss_s
        if kept_for > 0:
            self._answers[key] = (person_id, now + kept_for)
            while len(self._answers) > self._kept:
                self._answers.popitem(last=False)
        return person_id

    def forget(self) -> None:
        """Forget every answer (the next lookup of each asks again)."""
        self._answers.clear()

    async def _ask(self, issuer: str, subject: str) -> str | None:
        try:
            reply = await rpc.request(
                self._nc,
                rpc.asked_on(LOGIN_SUBJECT, self._service),
                {"issuer": issuer, "subject": subject, "asked_by": self._service},
                timeout=self._timeout,
            )
        except rpc.RpcError as exc:
            raise IdentityUnavailable("the directory's logins did not answer") from exc
        person_id = reply.get("person_id")
        if person_id is None:
            return None
        if not isinstance(person_id, str) or not PERSON_ID_PATTERN.fullmatch(person_id):
            raise IdentityUnavailable("the directory's answer names no person")
        return person_id
