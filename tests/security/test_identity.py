"""Identity is (issuer, subject), and ids of different kinds never collide (issue 16, items
1 and 2), over HTTP with real NATS, on SQLite and PostgreSQL.

A second issuer is served on 127.0.0.1 (OIDC discovery and a JWKS) and configured beside
the development issuer. Whoever holds its key can mint any ``sub``: ``"admin"`` or a staff
id is nobody until a login binds it; a binding makes it that person; a kind the issuer may
not assert is refused. An agency client whose ``client_id`` spells a staff member's, a
child's or a handover receiver's id gets nothing of theirs: 404 on every case route.

Logins are bound in the region document (``logins`` on a staff member): the case and log
services ask the consent service (``stafett.rpc.consent.login``), the consent service looks
them up itself. The services keep an answer for ``STAFETT_LOGIN_CACHE_S``, short here, so
a login the document no longer lists stops working within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
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
from stafett_consent.testing import REGION, ConsentHarness, running_consent
from stafett_log.testing import LogHarness, running_log
from stafett_shared import rpc
from stafett_shared.embedded import free_port
from stafett_shared.logins import LOGIN_SUBJECT
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.plugin import create_database, drop_database, reset_jetstream

HOLDER = "ann-kristin-allum"  # holds the cases opened here (Siljan ungdomsskole)
RECEIVER = "helse-hanne"  # asked to take over a case (Siljan helsestasjon)
AGENCY_OID = "5b0e1c9a-agency-oid"  # the second issuer's subject for the holder, once bound
LOGIN_CACHE_S = 0.3  # how long the services keep a login's answer (STAFETT_LOGIN_CACHE_S)


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
    monkeypatch.setenv("STAFETT_LOGIN_CACHE_S", str(LOGIN_CACHE_S))
    nc = await nats.connect(nats_server.url)
    await reset_jetstream(nc)
    await nc.close()
    async with (
        _own_database(request, database_url, tmp_path, "case") as case_db,
        running_consent(nats_server.url, database_url, tmp_path) as consent,
    ):
        loaded = await consent.load_region()
        assert loaded.status_code == 200, loaded.text
        async with running_case(nats_server.url, case_db, tmp_path) as case:
            await case.runtime.projector.catch_up()
            yield consent, case


@contextlib.asynccontextmanager
async def _own_database(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, name: str
) -> AsyncIterator[str]:
    """A database of a service's own beside the consent service's (services never share
    one): a SQLite file, or a PostgreSQL database dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    assert admin is not None
    dropped, url = await create_database(admin)
    try:
        yield url
    finally:
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


@pytest.fixture
async def log(
    request: pytest.FixtureRequest,
    services: tuple[ConsentHarness, CaseHarness],
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[LogHarness]:
    """The log service beside them (it trusts the same issuers)."""
    del services  # started first
    async with (
        _own_database(request, database_url, tmp_path, "log") as log_db,
        running_log(nats_server.url, log_db, tmp_path) as harness,
    ):
        await harness.runtime.projector.catch_up()
        yield harness


def _region(*bound: tuple[str, str, str]) -> dict[str, Any]:
    """The test region with logins: (staff id, issuer, subject)."""
    document = copy.deepcopy(REGION)
    for person in document["staff"]:
        logins = [{"issuer": i, "subject": s} for p, i, s in bound if p == person["id"]]
        if logins:
            person["logins"] = logins
    return document


async def _routes(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness, case_id: str, auth: dict[str, str]
) -> dict[str, int]:
    """What a token gets on a case, log and consent route, and the directory."""
    return {
        "case": (await case.client.get(f"/api/v1/cases/{case_id}", headers=auth)).status_code,
        "log": (await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=auth)).status_code,
        "consents": (
            await consent.client.get(f"/api/v1/consents?case_id={case_id}", headers=auth)
        ).status_code,
        "directory": (await consent.client.get("/api/v1/directory", headers=auth)).status_code,
    }


SEEN = {"case": 200, "log": 200, "consents": 200, "directory": 200}
NOBODY = {"case": 401, "log": 401, "consents": 401, "directory": 401}


async def test_a_login_bound_in_the_region_document_is_that_person_until_unbound(
    services: tuple[ConsentHarness, CaseHarness], log: LogHarness, issuer: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _handover = await _open_case(consent, case)
    bound = issuer.auth(AGENCY_OID)
    assert await _routes(consent, case, log, case_id, bound) == NOBODY

    loaded = await consent.load_region(_region((HOLDER, issuer.url, AGENCY_OID)))
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"] == {"login_bound": 1}
    await asyncio.sleep(LOGIN_CACHE_S * 2)  # "bound to nobody" a moment ago is forgotten

    assert await _routes(consent, case, log, case_id, bound) == SEEN
    for service in (consent.client, case.client, log.client):
        me = await service.get("/api/v1/whoami", headers=bound)
        assert me.json() == {"kind": "person", "id": HOLDER}
    # Bound subjects are per issuer: the same subject from the development issuer is
    # someone else (nobody the directory knows), and the holder's id from the second
    # issuer, or a subject the document does not bind, is still nobody.
    assert (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth("5b0e1c9a"))
    ).status_code == 404
    assert await _routes(consent, case, log, case_id, issuer.auth(HOLDER)) == NOBODY
    assert await _routes(consent, case, log, case_id, issuer.auth("never-bound")) == NOBODY

    # Loaded again without it, the login names nobody once the services' window has passed.
    again = await consent.load_region()
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == {"login_unbound": 1}
    await asyncio.sleep(LOGIN_CACHE_S * 2)
    assert await _routes(consent, case, log, case_id, bound) == NOBODY
    assert await _routes(consent, case, log, case_id, issuer.auth(AGENCY_OID, jti="x")) == NOBODY


async def test_a_login_moved_to_another_staff_member_is_theirs(
    services: tuple[ConsentHarness, CaseHarness], log: LogHarness, issuer: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _handover = await _open_case(consent, case)
    assert (await consent.load_region(_region((HOLDER, issuer.url, AGENCY_OID)))).is_success
    moved = await consent.load_region(_region((RECEIVER, issuer.url, AGENCY_OID)))
    assert moved.status_code == 200, moved.text
    assert moved.json()["changes"] == {"login_unbound": 1, "login_bound": 1}
    await asyncio.sleep(LOGIN_CACHE_S * 2)

    bound = issuer.auth(AGENCY_OID)
    for service in (consent.client, case.client, log.client):
        me = await service.get("/api/v1/whoami", headers=bound)
        assert me.json() == {"kind": "person", "id": RECEIVER}
    # The receiver may see the handover's header, never the holder's case itself.
    assert (await case.client.get(f"/api/v1/cases/{case_id}", headers=bound)).status_code == 404


@pytest.mark.parametrize(
    "staff",
    [
        [(HOLDER, "ISSUER", AGENCY_OID), (RECEIVER, "ISSUER", AGENCY_OID)],
        [(HOLDER, "ISSUER", AGENCY_OID), (HOLDER, "ISSUER", AGENCY_OID)],
    ],
    ids=["two-people", "listed-twice"],
)
async def test_a_login_bound_twice_is_422_and_writes_nothing(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer, staff: list[tuple[str, ...]]
) -> None:
    consent, _case = services
    before = await consent.store.last_seq()
    document = copy.deepcopy(REGION)
    by_id = {person["id"]: person for person in document["staff"]}
    for person_id, _issuer, subject in staff:
        by_id[person_id].setdefault("logins", []).append({"issuer": issuer.url, "subject": subject})
    refused = await consent.load_region(document)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert AGENCY_OID not in refused.text  # the refusal does not repeat the login
    assert await consent.store.last_seq() == before
    assert await _whoami(consent, issuer.auth(AGENCY_OID)) == 401


async def test_a_staff_id_shaped_like_a_derived_login_id_is_422_and_writes_nothing(
    services: tuple[ConsentHarness, CaseHarness],
) -> None:
    consent, _case = services
    before = await consent.store.last_seq()
    document = copy.deepcopy(REGION)
    document["staff"].append(
        {"id": "login-0123456789abcdef0123456789abcdef", "name": "Ikke en administrator"}
    )
    refused = await consent.load_region(document)
    assert refused.status_code == 422, refused.text
    assert await consent.store.last_seq() == before


async def test_a_lookup_that_cannot_be_made_is_503_never_someone_or_nobody(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, case = services
    assert (await consent.load_region(_region((HOLDER, issuer.url, AGENCY_OID)))).is_success
    for subscription in consent.runtime.extras["subscriptions"]:
        if subscription.subject in (LOGIN_SUBJECT, f"{LOGIN_SUBJECT}.*"):
            await subscription.unsubscribe()

    unanswered = await case.client.get("/api/v1/whoami", headers=issuer.auth(AGENCY_OID))
    assert unanswered.status_code == 503, unanswered.text
    assert unanswered.headers["Retry-After"] == "1"
    assert unanswered.json()["code"] == "unavailable"
    # The consent service looks its logins up itself; the development issuer needs none.
    assert await _whoami(consent, issuer.auth(AGENCY_OID)) == 200
    assert await _whoami(case, case.auth(HOLDER)) == 200


async def test_only_a_service_may_ask_who_a_login_is(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, _case = services
    assert (await consent.load_region(_region((HOLDER, issuer.url, AGENCY_OID)))).is_success
    nc = consent.runtime.nc
    asked = {"issuer": issuer.url, "subject": AGENCY_OID}
    assert await rpc.request(nc, LOGIN_SUBJECT, {**asked, "asked_by": "case"}, timeout=5) == {
        "person_id": HOLDER
    }
    unbound = {"issuer": issuer.url, "subject": HOLDER, "asked_by": "log"}
    assert await rpc.request(nc, LOGIN_SUBJECT, unbound, timeout=5) == {"person_id": None}
    for payload, code in (
        (asked, "unknown_service"),
        ({**asked, "asked_by": "portal"}, "unknown_service"),
        ({**asked, "asked_by": "case", "subject": "s" * 256}, "bad_request"),
        ({"issuer": issuer.url, "asked_by": "case"}, "bad_request"),
    ):
        with pytest.raises(rpc.RpcRemoteError) as refused:
            await rpc.request(nc, LOGIN_SUBJECT, payload, timeout=5)
        assert refused.value.code == code


async def _whoami(service: ConsentHarness | CaseHarness, auth: dict[str, str]) -> int:
    return (await service.client.get("/api/v1/whoami", headers=auth)).status_code


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
