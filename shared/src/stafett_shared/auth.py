"""Bearer tokens: validation against configured issuers, the development issuer, principals.

A token says who is calling, never what they may do: roles come from the directory and
every decision from the consent service. A token identifies a person (``sub``; a citizen by
``pid``) or an agency client (``client_id`` with ``scope``, as in RFC 9068 access tokens,
and Maskinporten's ``consumer``).

Identity is (issuer, subject). Each configured issuer declares the kinds it may assert
(``IssuerSettings.kinds``); a token asserting another kind is refused. A principal's id is
never an issuer's bare claim, but what the directory makes of it:

* a staff issuer's subject is a person only through a login the directory binds
  (:data:`LoginResolver`);
* a citizen issuer's ``pid`` (ID-porten: an 11-digit national id, validated here) is the
  guardian or the registered child or youth of that number, found by its blind index
  (:data:`CitizenResolver`; only the index leaves this module, never the number);
* a client issuer's ``client_id``, with the consumer's organisation number when the token
  names one, is the client the directory registers (:data:`ClientResolver`), whose id
  (``client-…``) is the principal's.

What maps to no one is nobody (401). The development issuer's subject is the person id,
and its client id the client's id, itself (the embedded setup's mapping). A lookup that
cannot be made (the directory does not answer) is :class:`IdentityUnavailable`, answered
503, never "nobody" and never someone. Neither a ``pid`` nor its index is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from stafett_shared.crypto import BlindIndex, load_or_create_signing_key, load_signing_key
from stafett_shared.ids import LOGIN_ID_PREFIX, ORG_NUMBER_PATTERN, PERSON_ID_PATTERN
from stafett_shared.nationalid import InvalidNationalId, parse_national_id
from stafett_shared.problems import Problem
from stafett_shared.ratelimit import RateLimiter
from stafett_shared.settings import DEV_ISSUER, IssuerSettings

__all__ = [
    "DEV_ISSUER",
    "NATIONAL_ID_INDEX_CONTEXT",
    "CitizenResolver",
    "ClientResolver",
    "DevIssuer",
    "IdentityUnavailable",
    "LoginResolver",
    "PersonDep",
    "Principal",
    "PrincipalDep",
    "TokenVerifier",
    "Unauthenticated",
    "current_person",
    "current_principal",
    "login_id",
]

_ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})
_MAX_TOKEN_BYTES = 8192


class Unauthenticated(Exception):
    """The token is missing, malformed, expired or from an untrusted issuer."""


class IdentityUnavailable(Exception):
    """Who the token names could not be found out now (the directory's logins did not
    answer): the caller is told to retry (503), not that they are nobody (401)."""


class Principal(BaseModel):
    """Who is calling: a person (staff, guardian, youth, auditor) or an agency's system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["person", "client"]
    id: str = Field(pattern=PERSON_ID_PATTERN.pattern)
    """The directory's id of the person, or the client's id: from the issuer's mapping."""
    issuer: str
    scopes: frozenset[str] = frozenset()
    subject: str | None = Field(default=None, max_length=255)
    """The token's ``sub`` as its issuer said it (administrators are issuer and subject)."""


LoginResolver = Callable[[str, str], Awaitable[str | None]]
"""(issuer, subject) → the person id the directory binds that login to, or None; raises
:class:`IdentityUnavailable` when it cannot tell (``stafett_shared.logins.LoginDirectory``)."""


CitizenResolver = Callable[[str], Awaitable[str | None]]
"""The blind index of a citizen's national id → the guardian's, child's or youth's person id
the directory knows by it, or None (nobody, or more than one); raises
:class:`IdentityUnavailable` when it cannot tell (``LoginDirectory.citizen``)."""

ClientResolver = Callable[[str, str, str | None], Awaitable[str | None]]
"""(issuer, client id, consumer organisation number or None) → the directory id of the
client registered so, or None; raises :class:`IdentityUnavailable` when it cannot tell
(``LoginDirectory.client``)."""

NATIONAL_ID_INDEX_CONTEXT = "national_id"
"""The blind index context of a national id: the directory's ``national_id_index`` of
children and guardians, so a citizen's ``pid`` is found under the same index."""

_CONSUMER_AUTHORITY = "iso6523-actorid-upis"
_CONSUMER_ORG_PREFIX = "0192:"  # ISO 6523 ICD of Enhetsregisteret's organisation numbers


def consumer_claim(org_number: str) -> dict[str, str]:
    """Maskinporten's ``consumer`` claim for an organisation number."""
    if not ORG_NUMBER_PATTERN.fullmatch(org_number):
        raise ValueError("an organisation number has nine digits")
    return {"authority": _CONSUMER_AUTHORITY, "ID": _CONSUMER_ORG_PREFIX + org_number}


def _consumer_org(consumer: object) -> str | None:
    """The organisation number in Maskinporten's ``consumer`` claim (``{"authority":
    "iso6523-actorid-upis", "ID": "0192:<nine digits>"}``), None when there is no claim;
    any other shape is refused."""
    if consumer is None:
        return None
    if isinstance(consumer, dict) and consumer.get("authority") == _CONSUMER_AUTHORITY:
        org = consumer.get("ID")
        if isinstance(org, str) and org.startswith(_CONSUMER_ORG_PREFIX):
            number = org.removeprefix(_CONSUMER_ORG_PREFIX)
            if ORG_NUMBER_PATTERN.fullmatch(number):
                return number
    raise Unauthenticated("the consumer claim names no organisation number")


def login_id(issuer: str, subject: str) -> str:
    """The id of a login the directory does not bind (an administrator's): derived from
    (issuer, subject), so no other issuer can name it, and outside the directory's ids."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()
    return f"{LOGIN_ID_PREFIX}{digest[:32]}"


def _kid(public_raw: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(public_raw).digest()[:12]).decode().rstrip("=")


class DevIssuer:
    """The development issuer: an Ed25519 key made in the data folder at first start."""

    def __init__(self, key: Ed25519PrivateKey, audience: str = "stafett") -> None:
        self._key = key
        self.audience = audience
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.kid = _kid(public)
        self._jwk = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(public).decode().rstrip("="),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DevIssuer:
        return cls(load_or_create_signing_key(data_dir / "keys" / "dev-issuer.pem"))

    @classmethod
    def load(cls, data_dir: Path) -> DevIssuer:
        """The key a running system made; never a new one (``FileNotFoundError``)."""
        return cls(load_signing_key(data_dir / "keys" / "dev-issuer.pem"))

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    def issue(
        self,
        subject: str,
        *,
        client: bool = False,
        scopes: Sequence[str] = (),
        ttl_s: int = 8 * 3600,
        now: float | None = None,
        consumer_org: str | None = None,
    ) -> str:
        """A signed token for a person id or, with ``client``, an agency client id (with
        Maskinporten's ``consumer`` when ``consumer_org`` names the organisation number)."""
        if not PERSON_ID_PATTERN.fullmatch(subject):
            raise ValueError("subject may hold only letters, digits and '-'")
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "sub": subject,
            "aud": self.audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_s,
        }
        if client:
            claims["client_id"] = subject
            claims["scope"] = " ".join(scopes)
            if consumer_org is not None:
                claims["consumer"] = consumer_claim(consumer_org)
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})


class _RemoteIssuer:
    """Keys of one configured issuer, found by OIDC discovery and refreshed on unknown kids."""

    def __init__(self, config: IssuerSettings, http: httpx.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # never fetched
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if kid in self._keys and time.monotonic() - self._fetched_at < 3600:
            return self._keys[kid]
        async with self._lock:
            # Refresh at most every 30 s, so unknown kids cannot make us hammer the issuer,
            # and at least every hour, so a key the issuer withdrew stops being accepted.
            age = time.monotonic() - self._fetched_at
            if (kid not in self._keys and age > 30) or age >= 3600:
                await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise Unauthenticated("unknown signing key")
        return self._keys[kid]

    async def _refresh(self) -> None:
        try:
            jwks_uri = self.config.jwks_uri
            if jwks_uri is None:
                discovery = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                response = await self._http.get(discovery)
                response.raise_for_status()
                jwks_uri = str(response.json()["jwks_uri"])
            response = await self._http.get(jwks_uri)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, KeyError, ValueError, jwt.PyJWKSetError) as exc:
            raise Unauthenticated("issuer keys are unavailable") from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = time.monotonic()


VERIFIED_TOKENS_KEPT = 4096
"""Tokens a verifier remembers as verified (the least recently used are forgotten)."""
VERIFIED_FOR_S = 60.0
"""How long a verified token is taken on trust at most (never past its ``exp``): a key an
issuer withdraws stops a token it signed within this time."""


class TokenVerifier:
    """Validates bearer tokens from the configured issuers (and the development issuer).

    A client sends the same token with every request until it expires, and checking its
    signature and claims costs more than most of the request's own work. A token that
    verified is therefore remembered, by its SHA-256, for :data:`VERIFIED_FOR_S` seconds
    and never past its expiry (``verified_for_s``, shorter, bounds how long a login the
    directory unbinds keeps working); a refused token is checked again every time. A lookup
    of a login that could not be made raises :class:`IdentityUnavailable` and is not kept."""

    def __init__(
        self,
        issuers: Sequence[IssuerSettings] = (),
        *,
        dev_issuer: DevIssuer | None = None,
        leeway_s: int = 30,
        http: httpx.AsyncClient | None = None,
        kept: int = VERIFIED_TOKENS_KEPT,
        logins: LoginResolver | None = None,
        admins: Iterable[tuple[str, str]] = (),
        verified_for_s: float = VERIFIED_FOR_S,
        citizens: CitizenResolver | None = None,
        clients: ClientResolver | None = None,
        blind_index: BlindIndex | None = None,
    ) -> None:
        if not 0 <= verified_for_s <= VERIFIED_FOR_S:
            raise ValueError(f"a verified token may be kept for at most {VERIFIED_FOR_S} s")
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self.logins = logins
        self.citizens = citizens
        self.clients = clients
        self._blind_index = blind_index
        self._admins = frozenset(admins)
        self._issuers = {cfg.issuer: _RemoteIssuer(cfg, self._http) for cfg in issuers}
        self._dev = dev_issuer
        self._dev_key = jwt.PyJWK(dev_issuer.jwks["keys"][0]) if dev_issuer else None
        self._leeway = leeway_s
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._kept = kept
        self._verified_for = verified_for_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        if len(token) > _MAX_TOKEN_BYTES:
            raise Unauthenticated("token too large")
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        known = self._verified.get(digest)
        if known is not None:
            if now < known[1]:
                self._verified.move_to_end(digest)
                return known[0]
            del self._verified[digest]
        principal, expires = await self._verify(token)
        self._verified[digest] = (principal, min(expires, now + self._verified_for))
        while len(self._verified) > self._kept:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        """The token's principal and expiry, after every check."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        algorithm = header.get("alg")
        if algorithm not in _ALLOWED_ALGORITHMS:
            raise Unauthenticated("signature algorithm not accepted")
        issuer = unverified.get("iss")
        key: Any
        kinds: frozenset[str]
        if issuer == DEV_ISSUER and self._dev is not None and self._dev_key is not None:
            if header.get("kid") != self._dev.kid:
                raise Unauthenticated("unknown signing key")
            key, audience, algorithms = self._dev_key, self._dev.audience, ["EdDSA"]
            kinds = frozenset({"staff", "citizen", "client"})
        elif isinstance(issuer, str) and issuer in self._issuers:
            remote = self._issuers[issuer]
            key = await remote.key(header.get("kid"))
            audience, algorithms = remote.config.audience, remote.config.algorithms
            kinds = frozenset(remote.config.kinds)
        else:
            raise Unauthenticated("issuer not trusted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[a for a in algorithms if a in _ALLOWED_ALGORITHMS],
                audience=audience,
                issuer=issuer,
                leeway=self._leeway,
                # ``sub`` is required of every token but a Maskinporten client's (below).
                options={"require": ["exp", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token rejected") from exc
        return await self._principal(claims, issuer, kinds), float(claims["exp"])

    async def _principal(
        self, claims: dict[str, Any], issuer: str, kinds: frozenset[str]
    ) -> Principal:
        """The principal the issuer's mapping makes of the token's claims (or refused)."""
        client_id = claims.get("client_id")
        subject = claims.get("sub")
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        # A client is ``client_id`` equal to ``sub`` (RFC 9068), or ``client_id`` with
        # Maskinporten's ``consumer`` (its tokens have no ``sub``).
        if isinstance(client_id, str) and (subject == client_id or "consumer" in claims):
            if "client" not in kinds:
                raise Unauthenticated("the issuer may not assert clients")
            if subject is not None and (not isinstance(subject, str) or len(subject) > 255):
                raise Unauthenticated("token names nobody")
            found = await self._client(issuer, client_id, claims.get("consumer"))
            return self._mapped("client", found, issuer, scopes, subject)
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthenticated("token names nobody")
        if issuer == DEV_ISSUER:
            person_id: str | None = subject  # the embedded setup's mapping
        elif "pid" in claims:
            if "citizen" not in kinds:
                raise Unauthenticated("the issuer may not assert citizens")
            person_id = await self._citizen(claims["pid"])
        elif "staff" in kinds:
            person_id = await self.logins(issuer, subject) if self.logins else None
            if person_id is None and (issuer, subject) in self._admins:
                # An administrator the directory does not bind (yet): someone who may load
                # the directory, and no one the directory knows.
                person_id = login_id(issuer, subject)
        else:
            person_id = None  # a citizen issuer's token without a pid: no one
        return self._mapped("person", person_id, issuer, scopes, subject)

    async def _citizen(self, pid: object) -> str | None:
        """The person a citizen's national id is: validated, then looked up by its blind
        index. Neither the number nor the index is put in a message."""
        if not isinstance(pid, str) or len(pid) != 11:  # exactly as issued, nothing around it
            raise Unauthenticated("the pid claim is not a national id")
        try:
            national_id = parse_national_id(pid)
        except InvalidNationalId:
            raise Unauthenticated("the pid claim is not a national id") from None
        if self._blind_index is None or self.citizens is None:
            return None
        index = self._blind_index(national_id.value, context=NATIONAL_ID_INDEX_CONTEXT)
        return await self.citizens(index)

    async def _client(self, issuer: str, client_id: str, consumer: object) -> str | None:
        """The client a token of ``issuer`` for ``client_id`` is. The development issuer's
        client id is the client's id; a configured issuer's is a client the directory
        registers for that issuer, client id and, when the token names one, consumer."""
        if issuer == DEV_ISSUER:
            return client_id
        if not client_id or len(client_id) > 255:
            raise Unauthenticated("token names nobody")
        consumer_org = _consumer_org(consumer)
        return await self.clients(issuer, client_id, consumer_org) if self.clients else None

    @staticmethod
    def _mapped(
        kind: Literal["person", "client"],
        found: str | None,
        issuer: str,
        scopes: frozenset[str],
        subject: object,
    ) -> Principal:
        if found is None:
            raise Unauthenticated("the token's subject is bound to nobody")
        try:
            return Principal(
                kind=kind,
                id=found,
                issuer=issuer,
                scopes=scopes,
                subject=subject if isinstance(subject, str) else None,
            )
        except ValueError as exc:
            raise Unauthenticated("token subject is not a valid id") from exc


# Declares the Bearer scheme in the OpenAPI document of every operation that authenticates;
# the header is read and checked below, so this never answers by itself.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="An access token from a trusted issuer (OpenID Connect), or a client's.",
)


async def current_principal(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    """FastAPI dependency: the authenticated caller, or 401 problem+json."""
    verifier: TokenVerifier = request.app.state.token_verifier
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="stafett"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthenticated", "Mangler Bearer-token.", headers=challenge)
    try:
        principal = await verifier.verify(token.strip())
    except Unauthenticated:
        raise Problem(
            401, "unauthenticated", "Tokenet er ugyldig eller utløpt.", headers=challenge
        ) from None
    except IdentityUnavailable:
        # Fail closed, and say so: a directory that does not answer is not "unknown user".
        raise Problem(
            503,
            "unavailable",
            "Innloggingen kunne ikke slås opp i katalogen nå; prøv igjen.",
            headers={"Retry-After": "1"},
        ) from None
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        wait = limiter.take(f"{principal.kind}:{principal.issuer}:{principal.id}")
        if wait is not None:
            raise Problem(
                429,
                "rate_limited",
                "For mange forespørsler på kort tid; prøv igjen om litt.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def current_person(principal: PrincipalDep) -> Principal:
    """FastAPI dependency: the authenticated caller, who must be a person (403 for an
    agency's client: a client's id is never a person's, whatever it reads)."""
    if principal.kind != "person":
        raise Problem(403, "forbidden", "Bare personer har tilgang her.")
    return principal


PersonDep = Annotated[Principal, Depends(current_person)]
"""The caller, a person: for routes about the caller's own things (inbox, preferences)."""
