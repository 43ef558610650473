"""Token attacks against a running service over HTTP.

The consent service runs in-process (real NATS, a real database) and trusts, besides the
development issuer, a remote issuer served from this test on 127.0.0.1: an OpenID Connect
discovery document and a JWKS that the test changes. Every forged, misdirected, stale or
malformed token must be answered 401 with ``application/problem+json`` and a
``WWW-Authenticate: Bearer`` challenge, and must write nothing: no event in the stream and
no decision record."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from stafett_consent.app import SPEC
from stafett_consent.decisions import DecisionPoint, decision_records
from stafett_consent.settings import ConsentSettings
from stafett_consent.testing import REGION
from stafett_shared.auth import DevIssuer, TokenVerifier, Unauthenticated
from stafett_shared.ids import new_id
from stafett_shared.service import Runtime, create_app
from stafett_shared.settings import CommonSettings, IssuerSettings
from stafett_shared.testing.plugin import reset_jetstream
from stafett_shared.testing.servers import NatsHandle, serve_in_thread

AUDIENCE = "stafett"
_PEM = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
CLIENT = "stafett-case"
REGISTERED = "client-stafett-case"  # the client's id in the directory
CONSUMER = "889640782"  # the organisation number it is registered for
SCOPE = "stafett.decisions"
NOBODYS_PID = "15839012362"  # a valid (synthetic) national id the directory does not know


@dataclass
class Issuer:
    """A remote issuer: RSA keys by kid, the ones its JWKS publishes now."""

    url: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.add(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in sorted(self.published):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def public_pem(self, kid: str) -> bytes:
        return self.keys[kid].public_key().public_bytes(*_PEM)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": CLIENT,
            "client_id": CLIENT,
            "scope": SCOPE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), self.keys[kid], "RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    served = Issuer()
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {"issuer": served.url, "jwks_uri": served.url + "/jwks"}

    @app.get("/jwks")
    def keys() -> dict[str, Any]:
        return served.jwks()

    served.url, stop = serve_in_thread(app)
    served.add_key("k1")
    try:
        yield served
    finally:
        stop()


def _issuer_settings(issuer: Issuer) -> IssuerSettings:
    # ``kinds`` lets this issuer assert clients (the region document registers one) and
    # citizens (by ``pid``, none of whom the directory knows here).
    return IssuerSettings.model_validate(
        {
            "issuer": issuer.url,
            "audience": AUDIENCE,
            "algorithms": ["RS256"],
            "kinds": ["client", "citizen"],
        }
    )


def _region(issuer: Issuer) -> dict[str, Any]:
    """The test region with the issuer's client registered."""
    client = {
        "id": REGISTERED,
        "name": "Saksbehandlingssystem",
        "org_id": "4010",
        "issuer": issuer.url,
        "client_id": CLIENT,
        "consumer_org": CONSUMER,
    }
    return {**REGION, "clients": [client]}


async def _registered(issuer: str, client_id: str, consumer_org: str | None) -> str | None:
    """The directory's client, for a verifier outside the running service."""
    return REGISTERED if client_id == CLIENT and consumer_org in (None, CONSUMER) else None


@dataclass
class Service:
    client: httpx.AsyncClient
    runtime: Runtime
    dev: DevIssuer

    async def written(self) -> tuple[int, int]:
        """The stream's last sequence and the number of decision records."""
        decisions: DecisionPoint = self.runtime.extras["decisions"]

        def count() -> int:
            with decisions.records_engine.connect() as conn:
                return len(conn.execute(decision_records.select()).all())

        return await self.runtime.store.last_seq(), await decisions.in_thread(count)


@pytest.fixture
async def service(
    issuer: Issuer, nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> AsyncIterator[Service]:
    nc = await nats.connect(nats_server.url)
    await reset_jetstream(nc)
    await nc.close()
    settings = CommonSettings(
        nats_url=nats_server.url,
        data_dir=tmp_path,
        admins=["admin"],
        issuers=[_issuer_settings(issuer)],
    )
    app = create_app(SPEC, settings, ConsentSettings(database_url=database_url))
    dev = DevIssuer.load_or_create(tmp_path)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://consent"
        ) as client,
    ):
        loaded = await client.put(
            "/api/v1/directory",
            content=yaml.safe_dump(_region(issuer), allow_unicode=True).encode(),
            headers={
                "Authorization": f"Bearer {dev.issue('admin')}",
                "Content-Type": "application/yaml",
            },
        )
        assert loaded.status_code == 200, loaded.text
        yield Service(client, app.state.runtime, dev)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(claims: dict[str, Any], **header: Any) -> str:
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}."


def _attacks(issuer: Issuer, dev: DevIssuer) -> dict[str, str]:
    now = int(time.time())
    dev_claims = jwt.decode(dev.issue("admin"), options={"verify_signature": False})
    hs256_with_public_key = _hs256(issuer.claims(), issuer.public_pem("k1"), kid="k1")
    other = Issuer(url=issuer.url)
    other.add_key("k1")  # the same kid, another key: a forged signature
    return {
        "alg-none": _unsigned(issuer.claims(), kid="k1"),
        "alg-none-dev-admin": _unsigned(dev_claims, kid=dev.kid),
        "hs256-signed-with-the-public-key": hs256_with_public_key,
        "hs256-signed-with-the-dev-public-key": _hs256(
            dev_claims, _dev_public_pem(dev), kid=dev.kid
        ),
        "forged-signature": other.token(),
        "wrong-issuer": issuer.token(iss="https://login.evil.example"),
        "issuer-missing": issuer.token(iss=None),
        "wrong-audience": issuer.token(aud="another-service"),
        "audience-missing": issuer.token(aud=None),
        "expired": issuer.token(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "expiry-missing": issuer.token(exp=None),
        "not-yet-valid": issuer.token(nbf=now + 3600, iat=now),
        "unknown-kid": _with_kid(issuer, "k-unknown"),
        "subject-missing": issuer.token(sub=None),
        "over-the-size-limit": issuer.token(padding="x" * 9000),
        "garbage": "not-a-token",
        "garbage-three-parts": "a.b.c",
        "empty-signature": issuer.token().rsplit(".", 1)[0] + ".",
        "payload-swapped": _swap_payload(issuer.token(), issuer.claims(sub="admin")),
        "client-unregistered": issuer.token(sub="bufetat", client_id="bufetat"),
        "client-of-another-consumer": issuer.token(
            consumer={"authority": "iso6523-actorid-upis", "ID": "0192:974760673"}
        ),
        "client-consumer-garbled": issuer.token(consumer={"ID": f"0192:{CONSUMER}"}),
        "citizen-pid-of-nobody": issuer.token(sub="pairwise-1", client_id=None, pid=NOBODYS_PID),
        "citizen-pid-not-a-national-id": issuer.token(
            sub="pairwise-1", client_id=None, pid="15839012361"
        ),
    }


def _hs256(claims: dict[str, Any], secret: bytes, *, kid: str) -> str:
    """HS256 over the claims with ``secret`` as the HMAC key (PyJWT refuses a PEM as an HMAC
    secret, which is exactly the attack, so the token is made by hand)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _dev_public_pem(dev: DevIssuer) -> bytes:
    jwk = jwt.PyJWK(dev.jwks["keys"][0])
    key: Any = jwk.key
    return bytes(key.public_bytes(*_PEM))


def _with_kid(issuer: Issuer, kid: str) -> str:
    return jwt.encode(issuer.claims(), issuer.keys["k1"], "RS256", headers={"kid": kid})


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


ATTACKS = [
    "alg-none",
    "alg-none-dev-admin",
    "hs256-signed-with-the-public-key",
    "hs256-signed-with-the-dev-public-key",
    "forged-signature",
    "wrong-issuer",
    "issuer-missing",
    "wrong-audience",
    "audience-missing",
    "expired",
    "expiry-missing",
    "not-yet-valid",
    "unknown-kid",
    "subject-missing",
    "over-the-size-limit",
    "garbage",
    "garbage-three-parts",
    "empty-signature",
    "payload-swapped",
    "client-unregistered",
    "client-of-another-consumer",
    "client-consumer-garbled",
    "citizen-pid-of-nobody",
    "citizen-pid-not-a-national-id",
]


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


def _decision_body(case_id: str) -> dict[str, Any]:
    return {
        "principal": "ann-kristin-allum",
        "action": "case:read",
        "resource": {"case_id": case_id},
    }


async def test_a_token_of_the_remote_issuer_is_accepted(service: Service, issuer: Issuer) -> None:
    answer = await service.client.post(
        "/api/v1/decisions",
        json=_decision_body(new_id()),
        headers={"Authorization": f"Bearer {issuer.token()}"},
    )
    assert answer.status_code == 200, answer.text
    consumer = {"authority": "iso6523-actorid-upis", "ID": f"0192:{CONSUMER}"}
    for token in (issuer.token(), issuer.token(sub=None, consumer=consumer)):
        me = await service.client.get(
            "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.json() == {"kind": "client", "id": REGISTERED}  # the directory's id


async def test_every_token_attack_is_refused_and_writes_nothing(
    service: Service, issuer: Issuer
) -> None:
    attacks = _attacks(issuer, service.dev)
    assert sorted(attacks) == sorted(ATTACKS)
    before = await service.written()
    for name, token in attacks.items():
        for method, path, body in (
            ("POST", "/api/v1/decisions", _decision_body(new_id())),
            ("POST", "/api/v1/children", {"national_id": "x", "name": "x", "guardians": []}),
            ("GET", "/api/v1/directory", None),
        ):
            response = await service.client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            try:
                _assert_refused(response)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {method} {path}: {exc}") from exc
    for header in ("", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", f"bearer{'x' * 10}"):
        _assert_refused(
            await service.client.post(
                "/api/v1/decisions",
                json=_decision_body(new_id()),
                headers={"Authorization": header} if header else {},
            )
        )
    assert await service.written() == before


async def test_a_key_the_issuer_removed_is_refused_once_the_cache_is_renewed(
    issuer: Issuer,
) -> None:
    """The verifier refreshes an issuer's keys at least hourly; a fresh verifier (a restart,
    or the next refresh) no longer accepts a token whose key the issuer has withdrawn."""
    issuer.add_key("k-old")
    token = issuer.token("k-old")
    verifier = TokenVerifier([_issuer_settings(issuer)], clients=_registered)
    try:
        assert (await verifier.verify(token)).id == REGISTERED
    finally:
        await verifier.aclose()
    issuer.published.discard("k-old")
    try:
        fresh = TokenVerifier([_issuer_settings(issuer)], clients=_registered)
        try:
            with pytest.raises(Unauthenticated):
                await fresh.verify(token)
            assert (await fresh.verify(issuer.token("k1"))).id == REGISTERED
        finally:
            await fresh.aclose()
    finally:
        issuer.keys.pop("k-old", None)


async def test_a_removed_key_is_refused_by_the_running_service(
    service: Service, issuer: Issuer
) -> None:
    """Over HTTP: accepted while published; once withdrawn and the service's verifier
    renews its keys (a restart here), refused with 401."""
    issuer.add_key("k-gone")
    token = issuer.token("k-gone")
    headers = {"Authorization": f"Bearer {token}"}
    accepted = await service.client.post(
        "/api/v1/decisions", json=_decision_body(new_id()), headers=headers
    )
    assert accepted.status_code == 200, accepted.text
    issuer.published.discard("k-gone")
    app_state = service.client._transport.app.state  # type: ignore[attr-defined]
    old: TokenVerifier = app_state.token_verifier
    app_state.token_verifier = TokenVerifier([_issuer_settings(issuer)], clients=old.clients)
    try:
        before = await service.written()
        _assert_refused(
            await service.client.post(
                "/api/v1/decisions", json=_decision_body(new_id()), headers=headers
            )
        )
        assert await service.written() == before
    finally:
        await app_state.token_verifier.aclose()
        app_state.token_verifier = old
        issuer.keys.pop("k-gone", None)
