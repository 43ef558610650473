"""Bearer tokens: the development issuer, configured OIDC issuers, and the FastAPI dependency."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from stafett_shared.auth import (
    DEV_ISSUER,
    NATIONAL_ID_INDEX_CONTEXT,
    VERIFIED_FOR_S,
    DevIssuer,
    IdentityUnavailable,
    Principal,
    PrincipalDep,
    TokenVerifier,
    Unauthenticated,
    login_id,
)
from stafett_shared.crypto import BlindIndex
from stafett_shared.embedded import free_port
from stafett_shared.problems import PROBLEM_CONTENT_TYPE, install_problem_handlers
from stafett_shared.settings import IssuerSettings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(issuer: str = DEV_ISSUER, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "ann-kristin-allum",
        "aud": "stafett",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), ""])


@pytest.fixture(scope="module")
def dev_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def dev(dev_key: Ed25519PrivateKey) -> DevIssuer:
    return DevIssuer(dev_key)


@pytest.fixture
async def verifier(dev: DevIssuer) -> AsyncIterator[TokenVerifier]:
    verifier = TokenVerifier(dev_issuer=dev)
    yield verifier
    await verifier.aclose()


# --- the development issuer -----------------------------------------------------------------


def test_load_or_create_makes_a_private_key_file(tmp_path: Path) -> None:
    issuer = DevIssuer.load_or_create(tmp_path)

    key_file = tmp_path / "keys" / "dev-issuer.pem"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_file.read_bytes()
    assert issuer.kid


async def test_load_or_create_reuses_the_key_it_made(tmp_path: Path) -> None:
    first = DevIssuer.load_or_create(tmp_path)
    content = (tmp_path / "keys" / "dev-issuer.pem").read_bytes()

    second = DevIssuer.load_or_create(tmp_path)

    assert second.kid == first.kid
    assert second.jwks == first.jwks
    assert (tmp_path / "keys" / "dev-issuer.pem").read_bytes() == content
    verifier = TokenVerifier(dev_issuer=second)
    try:
        principal = await verifier.verify(first.issue("ola"))
    finally:
        await verifier.aclose()
    assert principal.id == "ola"


def test_two_data_folders_get_different_keys(tmp_path: Path) -> None:
    first = DevIssuer.load_or_create(tmp_path / "a")
    second = DevIssuer.load_or_create(tmp_path / "b")

    assert first.kid != second.kid


def test_the_dev_jwks_publishes_only_the_public_key(dev: DevIssuer) -> None:
    (jwk,) = dev.jwks["keys"]

    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    assert jwk["kid"] == dev.kid
    assert jwk["alg"] == "EdDSA"
    assert "d" not in jwk


@pytest.mark.parametrize("subject", ["", "ola nordmann", "ola.nordmann", "a" * 65, "ola\n"])
def test_the_dev_issuer_refuses_a_subject_that_is_not_a_person_id(
    dev: DevIssuer, subject: str
) -> None:
    with pytest.raises(ValueError, match="subject"):
        dev.issue(subject)


def test_a_dev_token_names_its_issuer_audience_and_lifetime(dev: DevIssuer) -> None:
    token = dev.issue("ola", ttl_s=60, now=1_700_000_000)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": dev.kid, "typ": "JWT"}
    assert claims == {
        "iss": DEV_ISSUER,
        "sub": "ola",
        "aud": "stafett",
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 1_700_000_060,
    }


# --- verification of development tokens -----------------------------------------------------


async def test_a_dev_token_names_a_person(dev: DevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(dev.issue("ann-kristin-allum"))

    assert principal == Principal(
        kind="person",
        id="ann-kristin-allum",
        issuer=DEV_ISSUER,
        scopes=frozenset(),
        subject="ann-kristin-allum",
    )


async def test_a_client_token_names_a_client_with_its_scopes(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    token = dev.issue("nav-fagsystem", client=True, scopes=["case:read", "log:append"])

    principal = await verifier.verify(token)

    assert principal.kind == "client"
    assert principal.id == "nav-fagsystem"
    assert principal.scopes == frozenset({"case:read", "log:append"})


async def test_an_expired_token_is_refused(dev: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev.issue("ola", ttl_s=60, now=time.time() - 3600)

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_token_expired_within_the_leeway_is_accepted(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    token = dev.issue("ola", ttl_s=60, now=time.time() - 70)

    assert (await verifier.verify(token)).id == "ola"


async def test_a_token_not_yet_valid_is_refused(dev: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev.issue("ola", now=time.time() + 3600)

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_token_for_another_audience_is_refused(
    dev_key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    token = DevIssuer(dev_key, audience="another-system").issue("ola")

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_token_with_a_tampered_payload_is_refused(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    header, _, signature = dev.issue("ola").split(".")
    forged = _b64(json.dumps(_claims(sub="admin")).encode())

    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_a_token_with_a_tampered_signature_is_refused(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    header, payload, signature = dev.issue("ola").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 0x01

    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{header}.{payload}.{_b64(bytes(raw))}")


async def test_a_token_with_alg_none_is_refused(dev: DevIssuer, verifier: TokenVerifier) -> None:
    token = _unsigned({"alg": "none", "typ": "JWT", "kid": dev.kid}, _claims())

    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier.verify(token)


async def test_a_token_signed_with_hs256_is_refused(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    token = jwt.encode(
        _claims(),
        "a-shared-secret-of-enough-length-32b",
        algorithm="HS256",
        headers={"kid": dev.kid},
    )

    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier.verify(token)


async def test_a_token_from_an_untrusted_issuer_is_refused(
    dev_key: Ed25519PrivateKey, dev: DevIssuer, verifier: TokenVerifier
) -> None:
    token = jwt.encode(
        _claims(issuer="https://evil.example"),
        dev_key,
        algorithm="EdDSA",
        headers={"kid": dev.kid},
    )

    with pytest.raises(Unauthenticated, match="not trusted"):
        await verifier.verify(token)


async def test_a_dev_token_signed_by_another_dev_key_is_refused(
    verifier: TokenVerifier,
) -> None:
    stranger = DevIssuer(Ed25519PrivateKey.generate())

    with pytest.raises(Unauthenticated):
        await verifier.verify(stranger.issue("ola"))


async def test_a_dev_token_with_the_right_kid_but_another_key_is_refused(
    dev: DevIssuer, verifier: TokenVerifier
) -> None:
    token = jwt.encode(
        _claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": dev.kid}
    )

    with pytest.raises(Unauthenticated, match="rejected"):
        await verifier.verify(token)


async def test_an_oversize_token_is_refused(dev: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev.issue("ola", client=True, scopes=["s" * 9000])

    with pytest.raises(Unauthenticated, match="too large"):
        await verifier.verify(token)


async def test_a_dev_token_is_refused_when_the_verifier_has_no_dev_issuer(
    dev: DevIssuer,
) -> None:
    verifier = TokenVerifier()
    try:
        with pytest.raises(Unauthenticated, match="not trusted"):
            await verifier.verify(dev.issue("admin"))
    finally:
        await verifier.aclose()


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 100])
async def test_a_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_token_without_an_expiry_is_refused(
    dev_key: Ed25519PrivateKey, dev: DevIssuer, verifier: TokenVerifier
) -> None:
    claims = _claims()
    del claims["exp"]
    token = jwt.encode(claims, dev_key, algorithm="EdDSA", headers={"kid": dev.kid})

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


@pytest.mark.parametrize("subject", ["ola.nordmann@example.no", "a" * 65, 42])
async def test_a_token_whose_subject_is_not_a_person_id_is_refused(
    dev_key: Ed25519PrivateKey, dev: DevIssuer, verifier: TokenVerifier, subject: object
) -> None:
    token = jwt.encode(_claims(sub=subject), dev_key, algorithm="EdDSA", headers={"kid": dev.kid})

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


# --- OIDC discovery against a real HTTP server ----------------------------------------------


class _Issuer:
    """A tiny OIDC provider: discovery document and JWKS, with a log of requests."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.keys: list[dict[str, Any]] = []
        self.requests: list[str] = []


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


@pytest.fixture
def oidc(rsa_key: rsa.RSAPrivateKey) -> Iterator[_Issuer]:
    port = free_port()
    issuer = _Issuer(port)
    issuer.keys.append(_jwk(rsa_key, "key-1"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.requests.append(self.path)
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
            elif self.path == "/jwks":
                body = {"keys": list(issuer.keys)}
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _bound_as_itself(issuer: str, subject: str) -> str | None:
    """A directory that binds every login of every issuer to the id its subject spells."""
    del issuer
    return subject


@pytest.fixture
async def oidc_verifier(oidc: _Issuer) -> AsyncIterator[TokenVerifier]:
    verifier = TokenVerifier(
        [IssuerSettings(issuer=oidc.url, kinds=["staff", "client"])], logins=_bound_as_itself
    )
    yield verifier
    await verifier.aclose()


def _rs256(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str | None = "key-1") -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def _age_key_cache(verifier: TokenVerifier, issuer: str, seconds: float) -> None:
    """Pretend the verifier fetched the issuer's keys ``seconds`` earlier than it did."""
    verifier._issuers[issuer]._fetched_at -= seconds


def _age_verified_tokens(verifier: TokenVerifier, seconds: float) -> None:
    """Pretend the verifier verified the tokens it remembers ``seconds`` earlier."""
    for digest, (principal, until) in list(verifier._verified.items()):
        verifier._verified[digest] = (principal, until - seconds)


async def test_an_rs256_token_from_a_discovered_issuer_is_accepted(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    principal = await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="kari")))

    assert principal == Principal(kind="person", id="kari", issuer=oidc.url, subject="kari")
    assert oidc.requests == ["/.well-known/openid-configuration", "/jwks"]


# --- identity: (issuer, subject), mapped per issuer ------------------------------------------


async def test_a_staff_subject_the_directory_does_not_bind_is_nobody(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url)])
    try:
        for subject in ("admin", "kari"):
            with pytest.raises(Unauthenticated, match="bound to nobody"):
                await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub=subject)))
    finally:
        await verifier.aclose()


async def test_a_binding_maps_the_issuers_subject_to_the_person_id(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    asked: list[tuple[str, str]] = []

    async def logins(issuer: str, subject: str) -> str | None:
        asked.append((issuer, subject))
        return "kari-nordmann" if subject == "3f2c-oid@example.no" else None

    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url)], logins=logins)
    try:
        token = _rs256(rsa_key, _claims(oidc.url, sub="3f2c-oid@example.no"))
        principal = await verifier.verify(token)
    finally:
        await verifier.aclose()

    assert principal == Principal(
        kind="person", id="kari-nordmann", issuer=oidc.url, subject="3f2c-oid@example.no"
    )
    assert asked == [(oidc.url, "3f2c-oid@example.no")]


async def test_a_login_lookup_that_cannot_be_made_is_503_and_asked_again(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Fail closed, and say so: a directory that does not answer is not "unknown user"
    (401), and the refusal is not remembered as a verified token would be."""
    asked: list[str] = []

    async def unavailable(issuer: str, subject: str) -> str | None:
        asked.append(subject)
        raise IdentityUnavailable("the directory's logins did not answer")

    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url)], logins=unavailable)
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, str]:
        return {"id": principal.id}

    token = _rs256(rsa_key, _claims(oidc.url, sub="3f2c-oid@example.no"))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://stafett.test"
        ) as client:
            for _ in range(2):
                answer = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 503
                assert answer.headers["content-type"] == PROBLEM_CONTENT_TYPE
                assert answer.headers["retry-after"] == "1"
                assert answer.json()["code"] == "unavailable"
    finally:
        await verifier.aclose()
    assert asked == ["3f2c-oid@example.no"] * 2


async def test_a_verified_login_is_remembered_no_longer_than_the_window(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    bound = {"3f2c-oid@example.no": "kari-nordmann"}

    async def logins(issuer: str, subject: str) -> str | None:
        return bound.get(subject)

    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url)], logins=logins, verified_for_s=0.2)
    token = _rs256(rsa_key, _claims(oidc.url, sub="3f2c-oid@example.no"))
    try:
        assert (await verifier.verify(token)).id == "kari-nordmann"
        bound.clear()  # the region document no longer binds it
        assert (await verifier.verify(token)).id == "kari-nordmann"  # within the window
        await asyncio.sleep(0.3)
        with pytest.raises(Unauthenticated, match="bound to nobody"):
            await verifier.verify(token)
    finally:
        await verifier.aclose()


@pytest.mark.parametrize(
    ("kinds", "client"),
    [(["staff"], True), (["client"], False), (["citizen"], False)],
    ids=["staff-issuer-asserts-a-client", "client-issuer-asserts-a-person", "citizen-unmapped"],
)
async def test_an_issuer_asserting_a_kind_it_may_not_is_refused(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, kinds: list[Any], client: bool
) -> None:
    verifier = TokenVerifier(
        [IssuerSettings(issuer=oidc.url, kinds=kinds)], logins=_bound_as_itself
    )
    claims = _claims(oidc.url, sub="kari", **({"client_id": "kari"} if client else {}))
    try:
        with pytest.raises(Unauthenticated):
            await verifier.verify(_rs256(rsa_key, claims))
    finally:
        await verifier.aclose()


async def test_an_administrator_is_an_issuer_and_subject_bound_or_not(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(
        [IssuerSettings(issuer=oidc.url)], admins=[(oidc.url, "root@example.no")]
    )
    try:
        principal = await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="root@example.no")))
        with pytest.raises(Unauthenticated):  # the same subject elsewhere is nobody
            await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="admin")))
    finally:
        await verifier.aclose()

    assert principal.kind == "person"
    assert principal.id == login_id(oidc.url, "root@example.no")
    assert principal.id.startswith("login-")
    assert principal.subject == "root@example.no"


async def test_a_client_token_from_a_discovered_issuer_names_the_registered_client(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    asked: list[tuple[str, str, str | None]] = []

    async def clients(issuer: str, client_id: str, consumer_org: str | None) -> str | None:
        asked.append((issuer, client_id, consumer_org))
        return "client-bufetat" if client_id == "bufetat" else None

    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url, kinds=["client"])], clients=clients)
    claims = _claims(oidc.url, sub="bufetat", client_id="bufetat", scope="case:read audit:read")
    try:
        principal = await verifier.verify(_rs256(rsa_key, claims))
    finally:
        await verifier.aclose()

    assert principal.kind == "client"
    assert principal.id == "client-bufetat"  # the directory's id, never the issuer's
    assert principal.scopes == frozenset({"case:read", "audit:read"})
    assert asked == [(oidc.url, "bufetat", None)]  # the token names no consumer


async def test_the_issuer_keys_are_fetched_once_and_cached(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    for subject in ("kari", "ola", "per"):
        await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub=subject)))

    assert oidc.requests.count("/jwks") == 1


async def test_a_token_with_an_unknown_kid_is_refused(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = _rs256(rsa_key, _claims(oidc.url), kid="key-unknown")

    with pytest.raises(Unauthenticated, match="unknown signing key"):
        await oidc_verifier.verify(token)
    assert "/jwks" in oidc.requests


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    oidc: _Issuer, oidc_verifier: TokenVerifier, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="rejected"):
        await oidc_verifier.verify(_rs256(other_rsa_key, _claims(oidc.url)))


async def test_unknown_kids_do_not_make_the_verifier_hammer_the_issuer(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    for number in range(5):
        with pytest.raises(Unauthenticated):
            await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url), kid=f"k{number}"))

    assert oidc.requests.count("/jwks") == 1


async def test_a_rotated_key_is_found_by_a_later_refresh(
    oidc: _Issuer,
    oidc_verifier: TokenVerifier,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url)))
    oidc.keys.append(_jwk(other_rsa_key, "key-2"))
    _age_key_cache(oidc_verifier, oidc.url, 31)

    principal = await oidc_verifier.verify(_rs256(other_rsa_key, _claims(oidc.url), kid="key-2"))

    assert principal.id == "ann-kristin-allum"
    assert oidc.requests.count("/jwks") == 2


async def test_a_key_the_issuer_withdrew_is_refused_once_the_cache_is_an_hour_old(
    oidc: _Issuer,
    oidc_verifier: TokenVerifier,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    token = _rs256(rsa_key, _claims(oidc.url))
    await oidc_verifier.verify(token)
    oidc.keys[:] = [_jwk(other_rsa_key, "key-2")]

    await oidc_verifier.verify(token)  # still within the caches' lifetimes
    _age_key_cache(oidc_verifier, oidc.url, 3601)
    _age_verified_tokens(oidc_verifier, VERIFIED_FOR_S)

    with pytest.raises(Unauthenticated, match="unknown signing key"):
        await oidc_verifier.verify(token)


async def test_a_token_without_a_kid_is_accepted_when_the_issuer_has_one_key(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    principal = await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url), kid=None))

    assert principal.issuer == oidc.url


async def test_a_token_for_another_audience_from_a_discovered_issuer_is_refused(
    oidc: _Issuer, oidc_verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="rejected"):
        await oidc_verifier.verify(_rs256(rsa_key, _claims(oidc.url, aud="someone-else")))


async def test_an_issuer_configured_with_a_jwks_uri_skips_discovery(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(
        [IssuerSettings(issuer=oidc.url, jwks_uri=oidc.url + "/jwks", audience="region")],
        logins=_bound_as_itself,
    )
    try:
        principal = await verifier.verify(_rs256(rsa_key, _claims(oidc.url, aud="region")))
    finally:
        await verifier.aclose()

    assert principal.id == "ann-kristin-allum"
    assert oidc.requests == ["/jwks"]


async def test_an_algorithm_the_issuer_is_not_configured_for_is_refused(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier([IssuerSettings(issuer=oidc.url, algorithms=["ES256"])])
    try:
        with pytest.raises(Unauthenticated, match="rejected"):
            await verifier.verify(_rs256(rsa_key, _claims(oidc.url)))
    finally:
        await verifier.aclose()


async def test_an_unreachable_issuer_refuses_its_tokens(rsa_key: rsa.RSAPrivateKey) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    verifier = TokenVerifier([IssuerSettings(issuer=url)])
    try:
        with pytest.raises(Unauthenticated, match="unavailable"):
            await verifier.verify(_rs256(rsa_key, _claims(url)))
    finally:
        await verifier.aclose()


async def test_a_discovered_issuer_does_not_vouch_for_the_dev_issuer(
    oidc: _Issuer, oidc_verifier: TokenVerifier, dev: DevIssuer
) -> None:
    with pytest.raises(Unauthenticated, match="not trusted"):
        await oidc_verifier.verify(dev.issue("admin"))
    assert oidc.requests == []


# --- the FastAPI dependency -----------------------------------------------------------------


@pytest.fixture
async def api(verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, str]:
        return {"kind": principal.kind, "id": principal.id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stafett.test") as client:
        yield client


def _assert_unauthenticated(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["www-authenticate"] == 'Bearer realm="stafett"'
    body: dict[str, Any] = response.json()
    assert body["status"] == 401
    assert body["code"] == "unauthenticated"
    assert body["type"] == "urn:stafett:problem:unauthenticated"
    return body


async def test_a_request_with_a_valid_token_reaches_the_route(
    api: httpx.AsyncClient, dev: DevIssuer
) -> None:
    response = await api.get("/me", headers={"Authorization": f"Bearer {dev.issue('ola')}"})

    assert response.status_code == 200
    assert response.json() == {"kind": "person", "id": "ola"}


async def test_the_bearer_scheme_is_case_insensitive(
    api: httpx.AsyncClient, dev: DevIssuer
) -> None:
    response = await api.get("/me", headers={"Authorization": f"bearer {dev.issue('ola')}"})

    assert response.status_code == 200


async def test_a_request_without_a_token_is_a_401_problem_with_a_challenge(
    api: httpx.AsyncClient,
) -> None:
    body = _assert_unauthenticated(await api.get("/me"))

    assert body["detail"] == "Mangler Bearer-token."


@pytest.mark.parametrize("header", ["Basic b2xhOnBhc3M=", "Bearer", "Bearer   ", "token"])
async def test_a_request_without_a_bearer_token_is_a_401_problem(
    api: httpx.AsyncClient, header: str
) -> None:
    body = _assert_unauthenticated(await api.get("/me", headers={"Authorization": header}))

    assert body["detail"] == "Mangler Bearer-token."


async def test_a_request_with_a_bad_token_is_a_401_problem(api: httpx.AsyncClient) -> None:
    response = await api.get("/me", headers={"Authorization": "Bearer not.a.token"})

    body = _assert_unauthenticated(response)
    assert body["detail"] == "Tokenet er ugyldig eller utløpt."


async def test_a_request_with_an_expired_token_is_a_401_problem(
    api: httpx.AsyncClient, dev: DevIssuer
) -> None:
    token = dev.issue("ola", ttl_s=60, now=time.time() - 3600)

    response = await api.get("/me", headers={"Authorization": f"Bearer {token}"})

    _assert_unauthenticated(response)


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature ``jwt.decode`` checks from now on."""
    checked: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("options", {}).get("verify_signature", True):
            checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return checked


async def test_a_verified_token_is_not_checked_again_while_it_is_remembered(
    dev: DevIssuer, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = _count_signature_checks(monkeypatch)
    token = dev.issue("ola")

    assert (await verifier.verify(token)).id == "ola"
    assert (await verifier.verify(token)).id == "ola"
    assert checked == [token]

    _age_verified_tokens(verifier, VERIFIED_FOR_S)
    assert (await verifier.verify(token)).id == "ola"
    assert checked == [token, token]


async def test_a_remembered_token_is_refused_once_it_expires(dev: DevIssuer) -> None:
    verifier = TokenVerifier(dev_issuer=dev, leeway_s=0)
    issued = time.time()
    token = dev.issue("ola", ttl_s=1, now=issued)
    assert (await verifier.verify(token)).id == "ola"

    await asyncio.sleep(max(0.0, int(issued) + 1.05 - time.time()))  # past exp (whole seconds)
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)
    await verifier.aclose()


async def test_a_refused_token_is_checked_every_time(
    dev: DevIssuer, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = _count_signature_checks(monkeypatch)
    header, payload, signature = dev.issue("ola").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 0x01
    forged = f"{header}.{payload}.{_b64(bytes(raw))}"

    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await verifier.verify(forged)
    assert len(checked) == 2


async def test_the_verifier_remembers_a_bounded_number_of_tokens(
    dev: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(dev_issuer=dev, kept=2)
    checked = _count_signature_checks(monkeypatch)
    first, second, third = (dev.issue(name) for name in ("ola", "kari", "per"))

    for token in (first, second, third, third, second):
        await verifier.verify(token)
    assert checked == [first, second, third]
    await verifier.verify(first)  # forgotten: the least recently used
    assert checked == [first, second, third, first]
    await verifier.aclose()


# --- citizens (ID-porten's pid) and clients (Maskinporten) -----------------------------------

KEK = bytes(range(32))
GUARDIAN_PID = "01818512321"  # synthetic national ids (Tenor: month + 80)
YOUTH_PID = "24881212370"
NOBODY_PID = "15839012362"
ORG_NUMBER = "889640782"


class _Directory:
    """The directory's citizens (by blind index) and clients, with a log of what was asked."""

    def __init__(self) -> None:
        index = BlindIndex(KEK)
        self.people = {
            index(GUARDIAN_PID, context="national_id"): "01JGUARDIAN0000000000000000",
            index(YOUTH_PID, context="national_id"): "01JCHILD000000000000000000",
        }
        self.registered = {("nav-system", ORG_NUMBER): "client-nav-tiltak"}
        self.asked: list[tuple[object, ...]] = []
        self.unavailable = False

    async def citizen(self, national_id_index: str) -> str | None:
        self.asked.append((national_id_index,))
        if self.unavailable:
            raise IdentityUnavailable("the directory did not answer")
        return self.people.get(national_id_index)

    async def client(self, issuer: str, client_id: str, consumer_org: str | None) -> str | None:
        self.asked.append((issuer, client_id, consumer_org))
        return self.registered.get((client_id, consumer_org or ORG_NUMBER))


@pytest.fixture
async def directory() -> _Directory:
    return _Directory()


def _verifier(issuer: str, kinds: list[Any], directory: _Directory, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(
        [IssuerSettings(issuer=issuer, kinds=kinds)],
        citizens=directory.citizen,
        clients=directory.client,
        blind_index=BlindIndex(KEK),
        logins=_bound_as_itself,
        **kwargs,
    )


async def test_a_citizens_pid_is_the_person_of_that_national_id_by_its_blind_index(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["citizen"], directory)
    try:
        guardian = await verifier.verify(
            _rs256(rsa_key, _claims(oidc.url, sub="pairwise-1", pid=GUARDIAN_PID))
        )
        youth = await verifier.verify(
            _rs256(rsa_key, _claims(oidc.url, sub="pairwise-2", pid=YOUTH_PID))
        )
    finally:
        await verifier.aclose()

    assert guardian == Principal(
        kind="person", id="01JGUARDIAN0000000000000000", issuer=oidc.url, subject="pairwise-1"
    )
    assert youth.id == "01JCHILD000000000000000000"
    # Only the index is asked for, the directory's own (context "national_id"), never the pid.
    assert NATIONAL_ID_INDEX_CONTEXT == "national_id"
    assert directory.asked == [
        (BlindIndex(KEK)(GUARDIAN_PID, context="national_id"),),
        (BlindIndex(KEK)(YOUTH_PID, context="national_id"),),
    ]
    assert all(GUARDIAN_PID not in str(asked) for asked in directory.asked)


@pytest.mark.parametrize(
    "pid",
    [
        NOBODY_PID,
        "01818512320",
        "0181851232",
        "018185123210",
        f" {GUARDIAN_PID}",
        " ",
        1818512321,
        None,
    ],
    ids=[
        "nobody",
        "control-digit",
        "ten-digits",
        "twelve-digits",
        "padded",
        "blank",
        "number",
        "null",
    ],
)
async def test_a_pid_that_is_no_national_id_or_names_nobody_is_refused(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory, pid: object
) -> None:
    verifier = _verifier(oidc.url, ["citizen"], directory)
    try:
        with pytest.raises(Unauthenticated) as refused:
            await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="pairwise-1", pid=pid)))
    finally:
        await verifier.aclose()
    if isinstance(pid, str) and pid.strip():
        assert pid not in str(refused.value)
    # An invalid number is refused before anything is asked.
    assert len(directory.asked) == (1 if pid == NOBODY_PID else 0)


async def test_a_staff_issuer_asserting_a_pid_is_refused_and_asks_nothing(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["staff", "client"], directory)
    try:
        with pytest.raises(Unauthenticated, match="may not assert citizens"):
            await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="kari", pid=GUARDIAN_PID)))
    finally:
        await verifier.aclose()
    assert directory.asked == []


async def test_a_citizen_issuer_with_staff_too_maps_a_token_without_pid_as_a_login(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["staff", "citizen"], directory)
    try:
        staff = await verifier.verify(_rs256(rsa_key, _claims(oidc.url, sub="kari")))
        citizen = await verifier.verify(
            _rs256(rsa_key, _claims(oidc.url, sub="kari", pid=GUARDIAN_PID))
        )
    finally:
        await verifier.aclose()
    assert staff.id == "kari"
    assert citizen.id == "01JGUARDIAN0000000000000000"


async def test_a_citizen_lookup_that_cannot_be_made_is_unavailable_and_not_kept(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["citizen"], directory)
    token = _rs256(rsa_key, _claims(oidc.url, sub="pairwise-1", pid=GUARDIAN_PID))
    directory.unavailable = True
    try:
        with pytest.raises(IdentityUnavailable):
            await verifier.verify(token)
        directory.unavailable = False
        assert (await verifier.verify(token)).id == "01JGUARDIAN0000000000000000"
    finally:
        await verifier.aclose()


async def test_the_development_issuer_keeps_its_mapping_for_pid_and_client(
    dev: DevIssuer, directory: _Directory
) -> None:
    verifier = TokenVerifier(
        dev_issuer=dev,
        citizens=directory.citizen,
        clients=directory.client,
        blind_index=BlindIndex(KEK),
    )
    with_pid = jwt.encode(
        _claims(sub="kari-nordmann", pid=GUARDIAN_PID), dev._key, "EdDSA", headers={"kid": dev.kid}
    )
    try:
        assert (await verifier.verify(with_pid)).id == "kari-nordmann"
        client = await verifier.verify(dev.issue("stafett-case", client=True, scopes=["x"]))
    finally:
        await verifier.aclose()
    assert (client.kind, client.id) == ("client", "stafett-case")
    assert directory.asked == []


def _maskinporten(issuer: str, client_id: str = "nav-system", **claims: Any) -> dict[str, Any]:
    """Maskinporten's access token: ``client_id``, ``consumer`` and ``scope``; no ``sub``."""
    body = _claims(
        issuer,
        **{
            "client_id": client_id,
            "scope": "stafett:case.read",
            "consumer": {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG_NUMBER}"},
            "client_amr": "private_key_jwt",
            "token_type": "Bearer",
            **claims,
        },
    )
    del body["sub"]
    return {k: v for k, v in body.items() if v is not None}


async def test_a_maskinporten_client_is_the_client_registered_for_it_and_its_consumer(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["client"], directory)
    try:
        principal = await verifier.verify(_rs256(rsa_key, _maskinporten(oidc.url)))
    finally:
        await verifier.aclose()

    assert principal == Principal(
        kind="client",
        id="client-nav-tiltak",
        issuer=oidc.url,
        scopes=frozenset({"stafett:case.read"}),
        subject=None,
    )
    assert directory.asked == [(oidc.url, "nav-system", ORG_NUMBER)]


@pytest.mark.parametrize(
    ("claims", "asks"),
    [
        ({"client_id": "unknown-system"}, True),
        ({"consumer": {"authority": "iso6523-actorid-upis", "ID": "0192:974760673"}}, True),
        ({"consumer": {"authority": "iso6523-actorid-upis", "ID": f"9908:{ORG_NUMBER}"}}, False),
        ({"consumer": {"authority": "another", "ID": f"0192:{ORG_NUMBER}"}}, False),
        ({"consumer": {"authority": "iso6523-actorid-upis", "ID": "0192:88964078"}}, False),
        ({"consumer": f"0192:{ORG_NUMBER}"}, False),
    ],
    ids=[
        "unregistered",
        "another-consumer",
        "not-an-org-number",
        "another-authority",
        "eight-digits",
        "not-an-object",
    ],
)
async def test_a_client_registered_for_no_one_or_with_a_garbled_consumer_is_refused(
    oidc: _Issuer,
    rsa_key: rsa.RSAPrivateKey,
    directory: _Directory,
    claims: dict[str, Any],
    asks: bool,
) -> None:
    verifier = _verifier(oidc.url, ["client"], directory)
    try:
        with pytest.raises(Unauthenticated):
            await verifier.verify(_rs256(rsa_key, _maskinporten(oidc.url, **claims)))
    finally:
        await verifier.aclose()
    assert len(directory.asked) == (1 if asks else 0)


@pytest.mark.parametrize("kinds", [["staff"], ["citizen"], ["staff", "citizen"]])
async def test_a_client_from_an_issuer_that_may_not_assert_clients_is_refused(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory, kinds: list[Any]
) -> None:
    verifier = _verifier(oidc.url, kinds, directory)
    try:
        for claims in (
            _maskinporten(oidc.url),
            _claims(oidc.url, sub="nav-system", client_id="nav-system"),
        ):
            with pytest.raises(Unauthenticated, match="may not assert clients"):
                await verifier.verify(_rs256(rsa_key, claims))
    finally:
        await verifier.aclose()
    assert directory.asked == []


async def test_a_token_without_sub_that_is_no_maskinporten_client_names_nobody(
    oidc: _Issuer, rsa_key: rsa.RSAPrivateKey, directory: _Directory
) -> None:
    verifier = _verifier(oidc.url, ["staff", "citizen", "client"], directory)
    claims = _claims(oidc.url, client_id="nav-system", pid=GUARDIAN_PID)
    del claims["sub"]
    try:
        with pytest.raises(Unauthenticated, match="names nobody"):
            await verifier.verify(_rs256(rsa_key, claims))
    finally:
        await verifier.aclose()
