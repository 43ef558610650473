"""The production sign-in against a real OpenID Connect provider made here.

The provider is a small FastAPI app served by uvicorn on 127.0.0.1: discovery, an
authorisation endpoint that signs the person in at once, a token endpoint that checks the
client's secret, the code (one use), the redirect URI and the PKCE verifier against the S256
challenge, a JWKS with an RSA key made for the test run, and an end-session endpoint. A
second app stands in for the services: it answers the portal's directory and inbox calls only
for an access token the provider signed, as the real services do.

The portal is built as production builds it (OpenID Connect, no development issuer, an
https:// public address, so ``__Host-`` cookies) and reached through a TestClient on
https://portal.test. Nothing connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from stafett_portal import oidc as oidc_module
from stafett_portal.app import create_app
from stafett_portal.session import Session, SessionSealer
from stafett_portal.settings import OidcClientSettings, PortalSettings
from stafett_shared.embedded import free_port
from stafett_shared.settings import CommonSettings, IssuerSettings, SettingsError
from stafett_shared.testing.servers import serve_in_thread

PORTAL = "https://portal.test"
REDIRECT_URI = PORTAL + "/logg-inn/svar"
CITIZEN_REDIRECT_URI = PORTAL + "/logg-inn/innbygger/svar"
CLIENT_ID = "stafett-portal"
CLIENT_SECRET = "s3cret:with+odd/chars%="  # RFC 6749 2.3.1: form-encoded before Basic
PERSON = "kari-nordmann"
SUBJECT = "00u1f-9c2b-entra"  # the issuer's subject: the directory binds it to PERSON
SESSION_KEY = bytes(range(32))
COOKIE = "__Host-stafett"
KID = "provider-key-1"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- the provider --------------------------------------------------------------------------


@dataclass
class Grant:
    redirect_uri: str
    challenge: str
    nonce: str
    used: bool = False


@dataclass
class Provider:
    key: rsa.RSAPrivateKey
    url: str = ""
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    service_callers: list[str] = field(default_factory=list)
    # What the next answers get wrong, set by a test:
    id_claims: dict[str, Any] = field(default_factory=dict)  # None removes a claim
    id_key: rsa.RSAPrivateKey | None = None
    id_kid: str = KID
    id_alg: str = "RS256"
    named_issuer: str | None = None  # the issuer discovery names
    deny: bool = False  # the person (or the issuer) declines
    access_padding: int = 0  # characters of extra claims in the access token
    unbound: bool = False  # the directory binds the subject to nobody

    @property
    def issuer(self) -> str:
        return self.url

    def reset(self) -> None:
        fresh = Provider(self.key, self.url)
        self.__dict__.update(fresh.__dict__)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": KID, "use": "sig", "alg": "RS256"}

    def id_token(self, grant: Grant, now: int) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
        }
        claims.update(self.id_claims)
        claims = {k: v for k, v in claims.items() if v is not None}
        if self.id_alg == "none":
            return jwt.encode(claims, "", algorithm="none", headers={"kid": self.id_kid})
        key = self.id_key or self.key
        return jwt.encode(claims, key, algorithm=self.id_alg, headers={"kid": self.id_kid})

    def access_token(self, now: int) -> str:
        claims = {
            "iss": self.issuer,
            "sub": SUBJECT,
            "aud": "stafett",
            "iat": now,
            "exp": now + 600,
            "scope": "openid",
            "groups": "x" * self.access_padding,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})
        self.access_tokens.append(token)
        return token


def _client_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except ValueError:
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def _provider_app(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        base = provider.url
        return {
            "issuer": provider.named_issuer or provider.issuer,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks",
            "end_session_endpoint": base + "/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return {"keys": [provider.public_jwk()]}

    def from_client(
        request: Request,
        into: list[dict[str, str]],
        address_param: str,
        address: str | tuple[str, ...],
    ) -> dict[str, str] | None:
        """The query, recorded; None unless it names the client and a registered address."""
        asked = dict(request.query_params)
        into.append(asked)
        addresses = (address,) if isinstance(address, str) else address
        known = asked.get("client_id") == CLIENT_ID and asked.get(address_param) in addresses
        return asked if known else None

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        # One provider plays the staff issuer and, in the citizen tests, the citizen issuer.
        registered = (REDIRECT_URI, CITIZEN_REDIRECT_URI)
        asked = from_client(request, provider.authorize_requests, "redirect_uri", registered)
        if asked is None:
            return Response("unknown client or redirect URI", status_code=400)
        back: dict[str, str] = {"state": asked.get("state", "")}
        complete = all(asked.get(k) for k in ("state", "nonce", "code_challenge"))
        if (
            asked.get("response_type") != "code"
            or asked.get("code_challenge_method") != "S256"
            or not complete
        ):
            back["error"] = "invalid_request"
        elif provider.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(32)
            provider.grants[code] = Grant(
                asked["redirect_uri"], asked["code_challenge"], asked["nonce"]
            )
            back["code"] = code
        return RedirectResponse(f"{asked['redirect_uri']}?{urlencode(back)}", status_code=302)

    def refuse(error: str, status: int = 400) -> Response:
        provider.refusals.append(error)
        return JSONResponse({"error": error.split(":", maxsplit=1)[0]}, status_code=status)

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        provider.token_requests.append(form)
        if _client_credentials(request.headers.get("authorization")) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return refuse("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        grant = provider.grants.get(form.get("code", ""))
        if grant is None:
            return refuse("invalid_grant: unknown code")
        if grant.used:
            return refuse("invalid_grant: code used")
        grant.used = True  # one try per code, right or wrong
        if form.get("redirect_uri") != grant.redirect_uri:
            return refuse("invalid_grant: redirect_uri")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or _s256(verifier) != grant.challenge:
            return refuse("invalid_grant: code_verifier")
        now = int(time.time())
        answer = {
            "access_token": provider.access_token(now),
            "token_type": "Bearer",
            "expires_in": 600,
            "id_token": provider.id_token(grant, now),
        }
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        if from_client(request, provider.logouts, "post_logout_redirect_uri", PORTAL) is None:
            return Response("unknown post-logout address", status_code=400)
        return RedirectResponse(PORTAL, status_code=302)

    return app


def _services_app(provider: Provider) -> FastAPI:
    """The consent and notify calls a page makes, answered only for the provider's tokens."""
    app = FastAPI()

    def caller(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(
                header.removeprefix("Bearer "),
                provider.key.public_key(),
                algorithms=["RS256"],
                audience="stafett",
                issuer=provider.issuer,
            )
        except jwt.PyJWTError:
            return None
        provider.service_callers.append(str(claims["sub"]))
        return str(claims["sub"])

    unauthenticated = JSONResponse({"code": "unauthenticated"}, status_code=401)

    @app.get("/api/v1/directory")
    async def directory(request: Request) -> Response:
        if caller(request) is None:
            return unauthenticated
        unit = {"id": "unit-1", "name": "Bakken skole", "sector": "school"}
        person = {"id": PERSON, "name": "Kari", "roles": [{"unit_id": "unit-1", "role": "teacher"}]}
        body = {
            "region": "test",
            "organisations": [{"id": "org-1", "name": "Kommunen", "units": [unit]}],
            "staff": [person],
        }
        return JSONResponse(body)

    @app.get("/api/v1/whoami")
    async def whoami(request: Request) -> Response:
        # The services map (issuer, subject) to the person the directory binds it to.
        if caller(request) != SUBJECT or provider.unbound:
            return unauthenticated
        return JSONResponse({"kind": "person", "id": PERSON})

    @app.get("/api/v1/notifications")
    async def notifications(request: Request) -> Response:
        return unauthenticated if caller(request) is None else JSONResponse({"items": []})

    return app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Provider, str]]:
    """The provider and the services' stand-in, one uvicorn each for the module."""
    provider = Provider(_new_key())
    provider.url, stop_provider = serve_in_thread(_provider_app(provider))
    services_url, stop_services = serve_in_thread(_services_app(provider))
    try:
        yield provider, services_url
    finally:
        stop_services()
        stop_provider()


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup beyond 127.0.0.1 fails the test."""
    connect = socket.socket.connect
    getaddrinfo = socket.getaddrinfo
    loopback = ("127.0.0.1", b"127.0.0.1")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        inet = self.family in (socket.AF_INET, socket.AF_INET6)
        if inet and address[0] not in loopback:
            raise OSError(f"the test may not reach {address[0]}")
        connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in loopback:
            raise socket.gaierror(f"the test may not look up {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture
def provider(served: tuple[Provider, str]) -> Provider:
    served[0].reset()
    return served[0]


def _settings(issuer: str, services_url: str) -> PortalSettings:
    return PortalSettings(
        public_url=PORTAL,
        session_key=SecretStr(base64.b64encode(SESSION_KEY).decode()),
        oidc=OidcClientSettings(
            issuer=issuer, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET)
        ),
        case_url=services_url,
        log_url=services_url,
        consent_url=services_url,
        notify_url=services_url,
    )


def _portal(settings: PortalSettings, tmp_path: Path, *, dev: bool = False) -> TestClient:
    common = CommonSettings(env="development", dev_issuer=dev, data_dir=tmp_path)
    return TestClient(create_app(settings, common), base_url=PORTAL, follow_redirects=False)


@pytest.fixture
def portal(
    served: tuple[Provider, str], provider: Provider, tmp_path: Path
) -> Iterator[TestClient]:
    with _portal(_settings(provider.issuer, served[1]), tmp_path) as client:
        yield client


# --- helpers -------------------------------------------------------------------------------


def _location(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return response.headers["location"]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _at_provider(url: str) -> str:
    """The browser at the provider: where the provider sends it back."""
    with httpx.Client(trust_env=False) as browser:
        return _location(browser.get(url))


def _session(client: TestClient) -> Session:
    return SessionSealer(SESSION_KEY, secure=True).open(client.cookies.get(COOKIE))


def _to_issuer(client: TestClient) -> str:
    return _location(client.get("/logg-inn"))


def _sign_in(client: TestClient) -> httpx.Response:
    """The whole round trip; the portal's answer to the provider's redirect."""
    answer: httpx.Response = client.get(_at_provider(_to_issuer(client)))
    return answer


def _refused(answer: httpx.Response, client: TestClient) -> None:
    assert answer.status_code == 400, answer.text[:300]
    assert "Innloggingen mislyktes" in answer.text
    assert "Traceback" not in answer.text
    session = _session(client)
    assert not session.signed_in()
    assert session.token is None and session.person_id is None
    assert session.login_state is None  # the attempt is spent


# --- the round trip ------------------------------------------------------------------------


def test_the_loopback_guard_stops_anything_else() -> None:
    with pytest.raises(OSError, match="may not"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)


def test_a_person_signs_in_through_the_issuer_and_lands_on_their_cases(
    portal: TestClient, provider: Provider
) -> None:
    assert _location(portal.get("/")) == "/logg-inn"
    to_issuer = _to_issuer(portal)
    assert to_issuer.startswith(provider.issuer + "/authorize?")
    asked = _query(to_issuer)
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT_ID
    assert asked["redirect_uri"] == REDIRECT_URI
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert "openid" in asked["scope"].split()
    assert not _session(portal).signed_in()

    back = _at_provider(to_issuer)
    assert back.startswith(REDIRECT_URI + "?")
    assert _query(back)["state"] == asked["state"]

    before = time.time()
    answer = portal.get(back)
    assert _location(answer) == "/saker"
    session = _session(portal)
    assert session.signed_in()
    assert session.person_id == PERSON
    assert session.token == provider.access_tokens[-1]
    assert session.login_state is None
    assert session.expires_at <= before + 600 + 5  # the session ends with the access token

    assert _location(portal.get("/")) == "/saker"
    assert provider.service_callers and set(provider.service_callers) == {SUBJECT}
    assert provider.refusals == []


def test_the_portal_serves_no_metrics_signed_in_or_not(portal: TestClient) -> None:
    """The portal is what the Ingress exposes: the services' /metrics (no token) must not be
    reachable through it, and it has none of its own (deploy/helm/stafett)."""
    for signed_in in (False, True):
        if signed_in:
            assert _location(_sign_in(portal)) == "/saker"
        for path in ("/metrics", "/metrics/", "/metrics?format=prometheus"):
            answer = portal.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert answer.headers["content-type"].startswith("text/html")
            assert "stafett_projector" not in answer.text and "# TYPE" not in answer.text


@pytest.fixture
def two_issuers(
    served: tuple[Provider, str], provider: Provider, tmp_path: Path
) -> Iterator[TestClient]:
    """The portal with a staff issuer and a citizen issuer (here the same provider)."""
    staff = _settings(provider.issuer, served[1])
    settings = staff.model_copy(update={"citizen_oidc": staff.oidc})
    with _portal(settings, tmp_path) as client:
        yield client


def test_a_guardian_signs_in_at_the_citizen_issuer_and_lands_on_the_family_pages(
    two_issuers: TestClient,
) -> None:
    portal = two_issuers
    choice = portal.get("/logg-inn")  # two issuers: the person chooses
    assert choice.status_code == 200, choice.text[:300]
    assert 'href="/logg-inn/innbygger"' in choice.text
    assert 'href="/logg-inn/oidc"' in choice.text
    to_issuer = _location(portal.get("/logg-inn/innbygger"))
    assert _query(to_issuer)["redirect_uri"] == CITIZEN_REDIRECT_URI
    back = _at_provider(to_issuer)
    assert back.startswith(CITIZEN_REDIRECT_URI + "?")
    assert _location(portal.get(back)) == "/familie"
    session = _session(portal)
    assert session.signed_in() and session.citizen and session.person_id == PERSON
    assert _location(portal.get("/")) == "/familie"
    assert _location(portal.get("/saker")) == "/familie"


def test_a_staff_sign_in_answered_at_the_citizen_address_is_refused(
    two_issuers: TestClient, provider: Provider
) -> None:
    portal = two_issuers
    back = _at_provider(_location(portal.get("/logg-inn/oidc")))
    crossed = back.replace(REDIRECT_URI, CITIZEN_REDIRECT_URI)
    _refused(portal.get(crossed), portal)
    assert not _session(portal).citizen
    assert len(provider.token_requests) == 0


def test_the_portal_sends_the_verifier_of_the_challenge_it_made(
    portal: TestClient, provider: Provider
) -> None:
    to_issuer = _to_issuer(portal)
    assert _location(portal.get(_at_provider(to_issuer))) == "/saker"
    (asked,) = provider.authorize_requests
    (exchanged,) = provider.token_requests
    verifier = exchanged["code_verifier"]
    assert 43 <= len(verifier) <= 128
    assert _s256(verifier) == asked["code_challenge"]
    assert verifier not in to_issuer  # the browser never sees it
    assert exchanged["grant_type"] == "authorization_code"
    assert exchanged["redirect_uri"] == REDIRECT_URI


def test_a_code_bound_to_another_challenge_is_refused(
    portal: TestClient, provider: Provider
) -> None:
    asked = _query(_to_issuer(portal))
    asked["code_challenge"] = _s256(secrets.token_urlsafe(48))  # not the portal's verifier
    back = _at_provider(f"{provider.issuer}/authorize?{urlencode(asked)}")
    _refused(portal.get(back), portal)
    assert provider.refusals == ["invalid_grant: code_verifier"]


# --- state and code ------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["forged-state", "", "ø" * 10], ids=["forged", "empty", "utf8"])
def test_a_wrong_state_is_refused_before_the_code_is_used(
    portal: TestClient, provider: Provider, state: str
) -> None:
    back = _at_provider(_to_issuer(portal))
    answer = portal.get("/logg-inn/svar", params={"code": _query(back)["code"], "state": state})
    _refused(answer, portal)
    assert provider.token_requests == []
    _refused(portal.get(back), portal)  # and the attempt is spent: the right state is gone too


def test_an_answer_to_a_sign_in_this_browser_did_not_start_is_refused(
    portal: TestClient, provider: Provider
) -> None:
    back = _at_provider(_to_issuer(portal))
    portal.cookies.clear()  # another browser: someone else's code pushed on this person
    _refused(portal.get(back), portal)
    assert provider.token_requests == []


def test_a_replayed_code_is_refused(portal: TestClient, provider: Provider) -> None:
    back = _at_provider(_to_issuer(portal))
    assert _location(portal.get(back)) == "/saker"
    portal.cookies.clear()  # another browser, with a sign-in of its own under way
    state = _query(_to_issuer(portal))["state"]
    answer = portal.get("/logg-inn/svar", params={"code": _query(back)["code"], "state": state})
    _refused(answer, portal)
    assert provider.refusals == ["invalid_grant: code used"]


def test_an_altered_code_is_refused(portal: TestClient, provider: Provider) -> None:
    sent = _query(_at_provider(_to_issuer(portal)))
    answer = portal.get(
        "/logg-inn/svar", params={"code": sent["code"] + "x", "state": sent["state"]}
    )
    _refused(answer, portal)
    assert provider.refusals == ["invalid_grant: unknown code"]


def test_an_issuer_that_declines_is_a_page_and_no_token_request(
    portal: TestClient, provider: Provider
) -> None:
    provider.deny = True
    back = _at_provider(_to_issuer(portal))
    assert _query(back)["error"] == "access_denied"
    _refused(portal.get(back), portal)
    assert provider.token_requests == []


def test_an_access_token_too_large_for_the_cookie_is_a_page_not_a_loop(
    portal: TestClient, provider: Provider
) -> None:
    provider.access_padding = 4000
    answer = _sign_in(portal)
    assert answer.status_code == 400  # not a redirect that would go back to the issuer
    assert "Kontakt brukerstøtte" in answer.text
    assert not _session(portal).signed_in()


# --- the ID token --------------------------------------------------------------------------


def _wrong_nonce(p: Provider) -> None:
    p.id_claims = {"nonce": "a-nonce-the-portal-never-sent-0123456789"}


def _no_nonce(p: Provider) -> None:
    p.id_claims = {"nonce": None}


def _wrong_audience(p: Provider) -> None:
    p.id_claims = {"aud": "another-client"}


def _wrong_issuer(p: Provider) -> None:
    p.id_claims = {"iss": "https://another-issuer.test"}


def _expired(p: Provider) -> None:
    p.id_claims = {"exp": int(time.time()) - 120}


def _another_key(p: Provider) -> None:
    p.id_key = _new_key()  # same kid, wrong signature


def _unknown_key(p: Provider) -> None:
    p.id_kid = "a-key-the-issuer-does-not-publish"


def _unsigned(p: Provider) -> None:
    p.id_alg = "none"


@pytest.mark.parametrize(
    "defect",
    [
        _wrong_nonce,
        _no_nonce,
        _wrong_audience,
        _wrong_issuer,
        _expired,
        _another_key,
        _unknown_key,
        _unsigned,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_an_id_token_that_does_not_hold_up_is_refused(
    portal: TestClient, provider: Provider, defect: Callable[[Provider], None]
) -> None:
    defect(provider)
    _refused(_sign_in(portal), portal)
    assert len(provider.token_requests) == 1 and provider.refusals == []  # the portal refused


# --- signing out, the cookie, time ---------------------------------------------------------


def test_sign_out_ends_the_session_and_the_issuers(portal: TestClient, provider: Provider) -> None:
    assert _location(_sign_in(portal)) == "/saker"
    out = portal.post("/logg-ut", data={"csrf": _session(portal).csrf})
    target = _location(out)
    assert target.startswith(provider.issuer + "/logout?")
    assert _query(target) == {"client_id": CLIENT_ID, "post_logout_redirect_uri": PORTAL}
    session = _session(portal)
    assert not session.signed_in() and session.token is None
    assert _at_provider(target) == PORTAL
    assert provider.logouts == [_query(target)]
    assert _location(portal.get("/")) == "/logg-inn"


@pytest.mark.parametrize("csrf", ["guess", "", "ø" * 32], ids=["guess", "empty", "utf8"])
def test_sign_out_without_the_csrf_token_is_refused(portal: TestClient, csrf: str) -> None:
    assert _location(_sign_in(portal)) == "/saker"
    assert portal.post("/logg-ut", data={"csrf": csrf}).status_code == 400
    assert _session(portal).signed_in()


def _attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    pair, *rest = (part.strip() for part in set_cookie.split(";"))
    name = pair.partition("=")[0]
    attributes = {}
    for part in rest:
        key, _, value = part.partition("=")
        attributes[key.lower()] = value
    return name, attributes


def test_the_session_cookie_is_host_only_secure_httponly_and_lax(
    portal: TestClient, provider: Provider
) -> None:
    start = portal.get("/logg-inn")
    answer = portal.get(_at_provider(_location(start)))
    for response in (start, answer):
        (set_cookie,) = response.headers.get_list("set-cookie")
        name, attributes = _attributes(set_cookie)
        assert name == COOKIE
        assert "secure" in attributes
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "lax"
        assert attributes["path"] == "/"
        assert "domain" not in attributes  # __Host-: this host only
    assert int(_attributes(answer.headers["set-cookie"])[1]["max-age"]) <= 600
    assert answer.headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(("took_s", "accepted"), [(590, True), (610, False)])
def test_a_sign_in_that_took_more_than_ten_minutes_is_refused(
    portal: TestClient,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    took_s: int,
    accepted: bool,
) -> None:
    back = _at_provider(_to_issuer(portal))
    real = time.time
    monkeypatch.setattr(oidc_module, "time", SimpleNamespace(time=lambda: real() + took_s))
    answer = portal.get(back)
    if accepted:
        assert _location(answer) == "/saker"
    else:
        _refused(answer, portal)
        assert provider.token_requests == []


# --- the issuer unavailable or misconfigured, and the settings ---------------------------


def test_an_issuer_that_does_not_answer_is_a_page(
    served: tuple[Provider, str], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with _portal(_settings(closed, served[1]), tmp_path) as client:
        answer = client.get("/logg-inn")
    assert answer.status_code == 503
    assert "Traceback" not in answer.text


def test_discovery_that_names_another_issuer_is_refused(
    portal: TestClient, provider: Provider
) -> None:
    provider.named_issuer = "https://another-issuer.test"
    answer = portal.get("/logg-inn")
    assert answer.status_code == 503
    assert provider.authorize_requests == []


def test_with_both_sign_ins_the_page_offers_the_issuer(
    served: tuple[Provider, str], provider: Provider, tmp_path: Path
) -> None:
    with _portal(_settings(provider.issuer, served[1]), tmp_path, dev=True) as client:
        page = client.get("/logg-inn")
        assert page.status_code == 200
        assert 'href="/logg-inn/oidc"' in page.text
        to_issuer = _location(client.get("/logg-inn/oidc"))
        assert to_issuer.startswith(provider.issuer + "/authorize?")
        assert _location(client.get(_at_provider(to_issuer))) == "/saker"
        assert _session(client).person_id == PERSON


def _production() -> CommonSettings:
    return CommonSettings(
        env="production",
        kek=SecretStr(base64.b64encode(bytes(32)).decode()),
        issuers=[IssuerSettings(issuer="https://login.example.no")],
        admins=["https://login.example.no|0c1f-admin-oid"],
    )


@pytest.mark.parametrize(
    "change",
    [
        {"session_key": None},
        {"oidc": None},
        {"public_url": "http://portal.example.no"},
        {"oidc": OidcClientSettings(issuer="http://login.example.no", client_id=CLIENT_ID)},
        {
            "citizen_oidc": OidcClientSettings(
                issuer="http://idporten.example.no", client_id=CLIENT_ID
            )
        },
    ],
    ids=["no-session-key", "no-oidc", "http-portal", "http-issuer", "http-citizen-issuer"],
)
def test_production_refuses_an_unsafe_sign_in(change: dict[str, Any]) -> None:
    good = _settings("https://login.example.no", "http://127.0.0.1:1")
    good.check_production()
    with pytest.raises(SettingsError):
        good.model_copy(update=change).check_production()


def test_a_client_without_the_openid_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="openid"):
        OidcClientSettings(issuer="https://login.example.no", client_id="c", scopes=["profile"])


def test_a_subject_the_directory_binds_to_nobody_is_not_signed_in(
    portal: TestClient, provider: Provider
) -> None:
    provider.unbound = True
    answer = portal.get(_at_provider(_to_issuer(portal)))
    assert answer.status_code == 403
    assert "ikke registrert i Stafett" in answer.text
    assert not _session(portal).signed_in()
