"""The directory's logins, as every service asks for them: who a token of a configured
issuer names.

Three lookups, one request subject (``stafett.rpc.consent.login``, the request's ``kind``
says which; docs/decisions/0022 and 0023):

* ``staff`` (the default): a staff issuer's subject (an Entra ID ``oid``, a Feide id) is a
  person only through a login the region document binds to a staff member (``logins`` on
  the staff member, published as ``directory.login_bound`` and ``login_unbound``):
  (issuer, subject) → person id.
* ``citizen``: a citizen issuer's ``pid`` (ID-porten) is the guardian or the registered
  child or youth of that national id. The verifier validates the number and sends only its
  blind index (``national_id_index``, as the directory keeps it): index → person id.
* ``client``: an agency's client (Maskinporten) is the client the region document registers
  (``clients``, published as ``directory.client_registered`` and ``client_unregistered``):
  (issuer, client id, consumer organisation number or none) → the client's directory id.

The consent service keeps the directory and answers; :class:`LoginDirectory` asks it and is
the resolver of the other services' token verifiers (:data:`~stafett_shared.auth.LoginResolver`,
:data:`~stafett_shared.auth.CitizenResolver`, :data:`~stafett_shared.auth.ClientResolver`).

Answers are kept a short while, in a bounded cache: a binding for at most ``cache_s``
(so a login the directory unbinds stops working within that time), a subject bound to
nobody for at most :data:`MISS_KEPT_S` (so a login bound a moment ago works almost at once).
A lookup that cannot be made (no responder, a timeout, a refusal) is never cached and raises
:class:`~stafett_shared.auth.IdentityUnavailable`: the request is answered 503, not 401,
so an outage of the consent service is not "unknown user", and never someone.

The subject, the client id and the organisation number are identifiers, not content: they
travel in the request in clear (over the services' own NATS connections) and are never
logged. A national id never travels: its blind index does, and is never logged either.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from nats.aio.client import Client as NATS

from stafett_shared import rpc
from stafett_shared.auth import IdentityUnavailable
from stafett_shared.contracts import SERVICES
from stafett_shared.ids import CLIENT_ID_PATTERN, ORG_NUMBER_PATTERN, PERSON_ID_PATTERN

__all__ = [
    "LOGINS_KEPT",
    "LOGIN_KEPT_S",
    "LOGIN_SUBJECT",
    "MAX_ISSUER_CHARS",
    "MAX_SUBJECT_CHARS",
    "MISS_KEPT_S",
    "CitizenLogin",
    "ClientLogin",
    "IdentityLookups",
    "LoginDirectory",
    "StaffLogin",
    "answer_login",
    "identity_request",
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
_INDEX = re.compile(r"^[A-Za-z0-9_-]{43}$")  # a blind index: base64url of an HMAC-SHA256


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


@dataclass(frozen=True, slots=True)
class StaffLogin:
    issuer: str
    subject: str


@dataclass(frozen=True, slots=True)
class CitizenLogin:
    national_id_index: str


@dataclass(frozen=True, slots=True)
class ClientLogin:
    issuer: str
    client_id: str
    consumer_org: str | None


def identity_request(payload: dict[str, Any]) -> StaffLogin | CitizenLogin | ClientLogin:
    """What a ``stafett.rpc.consent.login`` request asks (its ``kind``: ``staff`` when
    absent), or a refusal; only the services ask (``asked_by``, as :func:`login_request`)."""
    kind = payload.get("kind", "staff")
    if kind == "staff":
        return StaffLogin(*login_request(payload))
    if payload.get("asked_by") not in SERVICES:
        raise rpc.RpcRemoteError("unknown_service", "asked_by names no known service")
    if kind == "citizen":
        index = payload.get("national_id_index")
        if not isinstance(index, str) or not _INDEX.fullmatch(index):
            raise rpc.RpcRemoteError("bad_request", "national_id_index must be a blind index")
        return CitizenLogin(index)
    if kind == "client":
        issuer = payload.get("issuer")
        client_id = payload.get("client_id")
        consumer = payload.get("consumer_org")
        if not isinstance(issuer, str) or not 0 < len(issuer) <= MAX_ISSUER_CHARS:
            raise rpc.RpcRemoteError(
                "bad_request", "issuer must be a string of 1 to 500 characters"
            )
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_SUBJECT_CHARS:
            raise rpc.RpcRemoteError(
                "bad_request", "client_id must be a string of 1 to 255 characters"
            )
        if consumer is not None and (
            not isinstance(consumer, str) or not ORG_NUMBER_PATTERN.fullmatch(consumer)
        ):
            raise rpc.RpcRemoteError("bad_request", "consumer_org must be nine digits or null")
        return ClientLogin(issuer, client_id, consumer)
    raise rpc.RpcRemoteError("bad_request", "kind must be staff, citizen or client")


class IdentityLookups(Protocol):
    """What answers the lookups: the consent service's directory."""

    async def login_of(self, issuer: str, subject: str) -> str | None: ...

    async def citizen_of(self, national_id_index: str) -> str | None: ...

    async def client_of(
        self, issuer: str, client_id: str, consumer_org: str | None
    ) -> str | None: ...


async def answer_login(payload: dict[str, Any], lookups: IdentityLookups) -> dict[str, Any]:
    """The answer to a ``stafett.rpc.consent.login`` request: ``{"person_id": …}`` for a
    staff login or a citizen, ``{"client": …}`` for a client (null: nobody)."""
    match identity_request(payload):
        case StaffLogin(issuer, subject):
            return {"person_id": await lookups.login_of(issuer, subject)}
        case CitizenLogin(index):
            return {"person_id": await lookups.citizen_of(index)}
        case ClientLogin(issuer, client_id, consumer):
            return {"client": await lookups.client_of(issuer, client_id, consumer)}


class LoginDirectory:
    """Asks the consent service who a login is: called, a staff login
    (:data:`~stafett_shared.auth.LoginResolver`); :meth:`citizen` and :meth:`client` are a
    :data:`~stafett_shared.auth.CitizenResolver` and :data:`~stafett_shared.auth.ClientResolver`.
    The three share one cache and its rules."""

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
        self._answers: OrderedDict[tuple[str | None, ...], tuple[str | None, float]] = OrderedDict()

    async def __call__(self, issuer: str, subject: str) -> str | None:
        return await self._lookup(
            ("staff", issuer, subject), {"issuer": issuer, "subject": subject}, "person_id"
        )

    async def citizen(self, national_id_index: str) -> str | None:
        """The guardian, child or youth a citizen's national id (its blind index) is."""
        return await self._lookup(
            ("citizen", national_id_index),
            {"kind": "citizen", "national_id_index": national_id_index},
            "person_id",
        )

    async def client(self, issuer: str, client_id: str, consumer_org: str | None) -> str | None:
        """The directory id of the client a client issuer's token names."""
        return await self._lookup(
            ("client", issuer, client_id, consumer_org),
            {
                "kind": "client",
                "issuer": issuer,
                "client_id": client_id,
                "consumer_org": consumer_org,
            },
            "client",
        )

    async def _lookup(
        self,
        key: tuple[str | None, ...],
        request: dict[str, Any],
        field: Literal["person_id", "client"],
    ) -> str | None:
        now = self._clock()
        known = self._answers.get(key)
        if known is not None:
            if now < known[1]:
                self._answers.move_to_end(key)
                return known[0]
            del self._answers[key]
        found = await self._ask(request, field)
        kept_for = self._hit_s if found is not None else self._miss_s
        if kept_for > 0:
            self._answers[key] = (found, now + kept_for)
            while len(self._answers) > self._kept:
                self._answers.popitem(last=False)
        return found

    def forget(self) -> None:
        """Forget every answer (the next lookup of each asks again)."""
        self._answers.clear()

    async def _ask(
        self, request: dict[str, Any], field: Literal["person_id", "client"]
    ) -> str | None:
        try:
            reply = await rpc.request(
                self._nc,
                rpc.asked_on(LOGIN_SUBJECT, self._service),
                {**request, "asked_by": self._service},
                timeout=self._timeout,
            )
        except rpc.RpcError as exc:
            raise IdentityUnavailable("the directory's logins did not answer") from exc
        found = reply.get(field)
        if found is None:
            return None
        pattern = PERSON_ID_PATTERN if field == "person_id" else CLIENT_ID_PATTERN
        if not isinstance(found, str) or not pattern.fullmatch(found):
            raise IdentityUnavailable("the directory's answer names no one")
        return found
