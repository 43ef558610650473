"""Identity is (issuer, subject), and ids of different kinds never collide (issue 16, items
1 and 2), over HTTP with real NATS, on SQLite and PostgreSQL.

A second issuer is served on 127.0.0.1 (OIDC discovery and a JWKS) and configured beside
the development issuer. Whoever holds its key can mint any ``sub``: ``"admin"`` or a staff
id is nobody until a login binds it; a binding makes it that person; a kind the issuer may
not assert is refused. An agency client whose ``client_id`` spells a staff member's, a
child's or a handover receiver's id gets nothing of theirs: 404 on every case route.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import nats
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import ConsentHarness, running_consent
from stafett_shared.embedded import free_port
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import create_database, drop_database, reset_jetstream

HOLDER = "ann-kristin-allum"  # holds the cases opened here (Siljan ungdomsskole)
RECEIVER = "helse-hanne"  # asked to take over a case (Siljan helsestasjon)
AGENCY_OID = "5b0e1c9a-agency-oid"  # the second issuer's subject for the holder, once bound


class _Issuer:
    """An OIDC issuer on 127.0.0.1: discovery, a JWKS, and tokens signed with its key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.url = f"http://127.0.0.1:{free_port()}"
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "agency-1", "alg": "RS256", "use": "sig"}]}

    def token(self, sub: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "sub": sub, "aud": "stafett", "iat": now, "exp": now + 600}
        return jwt.encode({**body, **claims}, self.key, "RS256", headers={"kid": "agency-1"})

    def auth(self, sub: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, **claims)}"}


@pytest.fixture
def issuer() -> Iterator[_Issuer]:
    served = _Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": served.url, "jwks_uri": served.url + "/jwks"}
            elif self.path == "/jwks":
                body = served.jwks
            else:
                self.send_response(404)
                self.end_headers()
                return
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    port = int(served.url.rsplit(":", 1)[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def services(
    request: pytest.FixtureRequest,
    issuer: _Issuer,
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[ConsentHarness, CaseHarness]]:
    """Consent and case services trusting the development issuer and the second issuer (a
    staff issuer: it may assert staff, nothing else)."""
    monkeypatch.setenv("STAFETT_ISSUERS", json.dumps([{"issuer": issuer.url, "kinds": ["staff"]}]))
    nc = await nats.connect(nats_server.url)
    await reset_jetstream(nc)
    await nc.close()
    dropped: str | None = None
    admin: str | None = None
    if database_url.startswith("sqlite"):
        case_db = f"sqlite:///{tmp_path / 'case.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        assert admin is not None
        dropped, case_db = await create_database(admin)
    try:
        async with running_consent(nats_server.url, database_url, tmp_path) as consent:
            loaded = await consent.load_region()
            assert loaded.status_code == 200, loaded.text
            async with running_case(nats_server.url, case_db, tmp_path) as case:
                await case.runtime.projector.catch_up()
                yield consent, case
    finally:
        if dropped is not None and admin is not None:
            await drop_database(admin, dropped)


async def _open_case(consent: ConsentHarness, case: CaseHarness) -> tuple[str, str, str]:
    """A case held by Ann Kristin for a registered 15-year-old, with a handover to Hanne
    waiting: (case id, child id, handover id)."""
    child_id, _guardians, body = await consent.register_child(15, [("Mor", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    asked = await case.client.post(
        f"/api/v1/cases/{opened['id']}/handovers",
        json={"to_person_id": RECEIVER, "to_unit_id": "siljan-helsestasjon", "note": "Overgang."},
        headers=case.auth(HOLDER),
    )
    assert asked.status_code == 201, asked.text
    await consent.runtime.projector.wait_for(int(asked.headers["Stafett-Seq"]), 10)
    await case.settle(int(asked.headers["Stafett-Seq"]))
    return opened["id"], child_id, asked.json()["id"]


# --- identity: (issuer, subject) -----------------------------------------------------------


async def test_another_issuer_minting_admin_or_a_staff_id_is_nobody(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _handover = await _open_case(consent, case)

    as_admin = issuer.auth("admin")
    loaded = await consent.client.put(
        "/api/v1/directory",
        content=b"region: taken-over\n",
        headers={**as_admin, "Content-Type": "application/yaml"},
    )
    assert loaded.status_code == 401
    assert (await consent.client.get("/api/v1/directory", headers=as_admin)).status_code == 401
    as_holder = issuer.auth(HOLDER)
    assert (await case.client.get(f"/api/v1/cases/{case_id}", headers=as_holder)).status_code == 401
    assert (await case.client.get("/api/v1/cases", headers=as_holder)).status_code == 401
    # The development issuer's own "admin" and holder are who they were.
    assert (await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth(HOLDER))).is_success


async def test_a_login_bound_to_a_staff_member_is_that_person(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _handover = await _open_case(consent, case)

    async def logins(of: str, subject: str) -> str | None:
        return HOLDER if (of, subject) == (issuer.url, AGENCY_OID) else None

    # The directory's bindings, as the verifier asks for them (here: one login).
    case.runtime.verifier.logins = logins
    consent.runtime.verifier.logins = logins

    bound = issuer.auth(AGENCY_OID)
    seen = await case.client.get(f"/api/v1/cases/{case_id}", headers=bound)
    assert seen.status_code == 200, seen.text
    assert (await consent.client.get("/api/v1/directory", headers=bound)).status_code == 200
    # Bound subjects are per issuer: the same subject from the development issuer is
    # someone else (nobody the directory knows), and the holder's id from the second
    # issuer is still nobody.
    assert (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("5b0e1c9a"))
    ).status_code == 404
    assert (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=issuer.auth(HOLDER))
    ).status_code == 401


async def test_an_issuer_asserting_a_kind_it_may_not_is_refused(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, case = services
    # A staff issuer minting an agency client (with the decisions scope, even) is refused.
    as_client = issuer.auth("stafett-case", client_id="stafett-case", scope="stafett.decisions")
    for response in (
        await case.client.get("/api/v1/cases", headers=as_client),
        await consent.client.get("/api/v1/directory", headers=as_client),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- kinds: a client's id is never a person's ------------------------------------------------


@pytest.mark.parametrize("named", ["holder", "child", "receiver"])
async def test_a_client_named_like_a_person_gets_404_on_every_case_route(
    services: tuple[ConsentHarness, CaseHarness], named: str
) -> None:
    consent, case = services
    case_id, child_id, handover_id = await _open_case(consent, case)
    client_id = {"holder": HOLDER, "child": child_id, "receiver": RECEIVER}[named]
    as_client = consent.auth(client_id, client=True, scopes=("case:read",))
    base = f"/api/v1/cases/{case_id}"

    for path in (base, f"{base}/handovers/{handover_id}"):
        got = await case.client.get(path, headers=as_client)
        assert got.status_code == 404, (path, got.text)
    listed = await case.client.get("/api/v1/cases", headers=as_client)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    waiting = await case.client.get("/api/v1/handovers?to=me", headers=as_client)
    assert waiting.status_code == 200
    assert waiting.json()["items"] == []
    answers: tuple[tuple[str, dict[str, object]], ...] = (
        ("accept", {}),
        ("decline", {"reason": "Ikke min elev."}),
    )
    for answer, reason in answers:
        got = await case.client.post(
            f"{base}/handovers/{handover_id}/{answer}", json=reason, headers=as_client
        )
        assert got.status_code == 404, (answer, got.text)
    for path, body in (
        (f"{base}/level", {"level": 2, "reason": "Mer hjelp trengs."}),
        (f"{base}/close", {"reason": "other"}),
    ):
        got = await case.client.post(path, json=body, headers=as_client)
        assert got.status_code == 404, (path, got.text)

    # The person of that id still has what they had.
    if named == "holder":
        assert (await case.client.get(base, headers=case.auth(HOLDER))).status_code == 200
    if named == "receiver":
        header = await case.client.get(
            f"{base}/handovers/{handover_id}", headers=case.auth(RECEIVER)
        )
        assert header.status_code == 200
