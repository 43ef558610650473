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

Two more issuers stand beside it: a citizen issuer (ID-porten style: its ``pid`` is the
guardian or youth of that national id, found by the directory's blind index) and a client
issuer (Maskinporten style: a client the region document registers in ``clients``, by
client id and consumer organisation number).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import nats
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from stafett_case.testing import CaseHarness, running_case
from stafett_consent.testing import (
    REGION,
    ConsentHarness,
    running_consent,
    synthetic_national_id,
)
from stafett_log.testing import LogHarness, running_log
from stafett_shared import rpc
from stafett_shared.crypto import BlindIndex, load_or_create_kek
from stafett_shared.embedded import free_port
from stafett_shared.logins import LOGIN_SUBJECT
from stafett_shared.settings import DEV_ISSUER
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
    """The staff issuer (it may assert staff, nothing else)."""
    with _served() as served:
        yield served


@pytest.fixture
def citizens() -> Iterator[_Issuer]:
    """The citizen issuer (ID-porten style: it may assert citizens, by ``pid``)."""
    with _served() as served:
        yield served


@pytest.fixture
def clients() -> Iterator[_Issuer]:
    """The client issuer (Maskinporten style: it may assert clients)."""
    with _served() as served:
        yield served


@contextlib.contextmanager
def _served() -> Iterator[_Issuer]:
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
    citizens: _Issuer,
    clients: _Issuer,
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[ConsentHarness, CaseHarness]]:
    """Consent and case services trusting the development issuer, the second issuer (a
    staff issuer: it may assert staff, nothing else), a citizen and a client issuer."""
    trusted = [
        {"issuer": issuer.url, "kinds": ["staff"]},
        {"issuer": citizens.url, "kinds": ["citizen"]},
        {"issuer": clients.url, "kinds": ["client"]},
    ]
    monkeypatch.setenv("STAFETT_ISSUERS", json.dumps(trusted))
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


async def _family_case(
    consent: ConsentHarness, case: CaseHarness
) -> tuple[str, str, list[str], dict[str, Any]]:
    """A case held by Ann Kristin for a registered 15-year-old with a mother (parental
    responsibility) and a father (none): (case id, child id, guardian ids, the registration
    with the national ids)."""
    child_id, guardians, body = await consent.register_child(15, [("Mor", True), ("Far", False)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    await case.settle(opened["seq"])
    return opened["id"], child_id, guardians, body


async def _open_case(consent: ConsentHarness, case: CaseHarness) -> tuple[str, str, str]:
    """A case held by Ann Kristin for a registered 15-year-old, with a handover to Hanne
    waiting: (case id, child id, handover id)."""
    case_id, child_id, _guardians, _body = await _family_case(consent, case)
    asked = await case.client.post(
        f"/api/v1/cases/{case_id}/handovers",
        json={"to_person_id": RECEIVER, "to_unit_id": "siljan-helsestasjon", "note": "Overgang."},
        headers=case.auth(HOLDER),
    )
    assert asked.status_code == 201, asked.text
    await consent.runtime.projector.wait_for(int(asked.headers["Stafett-Seq"]), 10)
    await case.settle(int(asked.headers["Stafett-Seq"]))
    return case_id, child_id, asked.json()["id"]


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


def _region(
    *bound: tuple[str, str, str], clients: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The test region with logins, (staff id, issuer, subject), and ``clients``."""
    document = copy.deepcopy(REGION)
    if clients:
        document["clients"] = clients
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


# --- citizens: the pid through the directory's blind index ----------------------------------


def _citizen(citizens: _Issuer, pid: object, sub: str = "pairwise-7f3a") -> dict[str, str]:
    """An ID-porten style token: a pairwise ``sub``, the national id in ``pid``, and the
    ``client_id`` of the portal that received it (not a client token: it is no ``sub``)."""
    return citizens.auth(sub, pid=pid, client_id="stafett-portal", acr="idporten-loa-high")


async def _seen(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness, case_id: str, auth: dict[str, str]
) -> dict[str, Any]:
    """Who the services make of a token, and what it gets on the case and its log."""
    me = [(await s.get("/api/v1/whoami", headers=auth)) for s in (consent.client, case.client)]
    return {
        "whoami": [m.json() if m.is_success else m.status_code for m in me],
        "case": (await case.client.get(f"/api/v1/cases/{case_id}", headers=auth)).status_code,
        "log": (await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=auth)).status_code,
    }


async def test_a_citizens_pid_is_the_guardian_or_youth_of_that_national_id(
    services: tuple[ConsentHarness, CaseHarness], log: LogHarness, citizens: _Issuer
) -> None:
    consent, case = services
    case_id, child_id, (mother, father), body = await _family_case(consent, case)
    await log.runtime.projector.catch_up()
    mother_pid, father_pid = (g["national_id"] for g in body["guardians"])

    def person(person_id: str) -> list[dict[str, str]]:
        return [{"kind": "person", "id": person_id}] * 2

    # The mother (parental responsibility) and the youth (15, the self-access age) read the
    # case and its log; the father (no responsibility) is himself, and reads nothing.
    assert await _seen(consent, case, log, case_id, _citizen(citizens, mother_pid)) == {
        "whoami": person(mother),
        "case": 200,
        "log": 200,
    }
    assert await _seen(consent, case, log, case_id, _citizen(citizens, body["national_id"])) == {
        "whoami": person(child_id),
        "case": 200,
        "log": 200,
    }
    assert await _seen(consent, case, log, case_id, _citizen(citizens, father_pid)) == {
        "whoami": person(father),
        "case": 404,
        "log": 404,
    }
    # The same person is the same whatever pairwise sub the issuer gives each client.
    assert (await _whoami(case, _citizen(citizens, mother_pid, sub="another-pairwise"))) == 200


async def test_a_pid_that_maps_to_nobody_or_is_no_national_id_is_401(
    services: tuple[ConsentHarness, CaseHarness], log: LogHarness, citizens: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _guardians, body = await _family_case(consent, case)
    nobody = synthetic_national_id(datetime(1990, 3, 15, tzinfo=UTC), 456)
    mother_pid = body["guardians"][0]["national_id"]
    wrong_check_digit = mother_pid[:10] + str((int(mother_pid[10]) + 1) % 10)
    for pid in (nobody, wrong_check_digit, mother_pid[:10], f"{mother_pid} ", 1234, None):
        refused = await _seen(consent, case, log, case_id, _citizen(citizens, pid))
        assert refused == {"whoami": [401, 401], "case": 401, "log": 401}, pid
    # A citizen issuer's token without a pid is nobody too.
    assert await _whoami(case, citizens.auth(mother_pid)) == 401


async def test_a_staff_issuer_asserting_a_pid_is_refused(
    services: tuple[ConsentHarness, CaseHarness], issuer: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _guardians, body = await _family_case(consent, case)
    # Even for a subject the directory binds to a staff member.
    assert (await consent.load_region(_region((HOLDER, issuer.url, AGENCY_OID)))).is_success
    await asyncio.sleep(LOGIN_CACHE_S * 2)
    assert await _whoami(case, issuer.auth(AGENCY_OID)) == 200
    as_mother = issuer.auth(AGENCY_OID, pid=body["guardians"][0]["national_id"])
    for service in (consent, case):
        assert await _whoami(service, as_mother) == 401
    assert (await case.client.get(f"/api/v1/cases/{case_id}", headers=as_mother)).status_code == 401


async def test_a_pid_that_is_a_child_and_a_guardian_is_nobody_fail_closed(
    services: tuple[ConsentHarness, CaseHarness], citizens: _Issuer
) -> None:
    """A young parent: registered as a child, and as the guardian of their own child. The
    login cannot tell which person it is, so it is neither."""
    consent, case = services
    _case_id, _child, _guardians, body = await _family_case(consent, case)
    mother_pid = body["guardians"][0]["national_id"]
    assert await _whoami(case, _citizen(citizens, mother_pid)) == 200
    registered = await consent.client.post(
        "/api/v1/children",
        json={"national_id": mother_pid, "name": "Mor som barn", "guardians": []},
        headers=consent.auth(HOLDER),
    )
    assert registered.status_code in (200, 201), registered.text
    await asyncio.sleep(LOGIN_CACHE_S * 2)
    for service in (consent, case):
        assert await _whoami(service, _citizen(citizens, mother_pid, sub="fresh")) == 401


async def test_a_citizen_lookup_that_cannot_be_made_is_503(
    services: tuple[ConsentHarness, CaseHarness], citizens: _Issuer
) -> None:
    consent, case = services
    _case_id, _child, (mother, _father), body = await _family_case(consent, case)
    for subscription in consent.runtime.extras["subscriptions"]:
        if subscription.subject in (LOGIN_SUBJECT, f"{LOGIN_SUBJECT}.*"):
            await subscription.unsubscribe()
    as_mother = _citizen(citizens, body["guardians"][0]["national_id"])
    assert await _whoami(case, as_mother) == 503
    me = await consent.client.get("/api/v1/whoami", headers=as_mother)  # looked up itself
    assert me.json() == {"kind": "person", "id": mother}


# --- clients: registered in the region document ----------------------------------------------

CONSUMER = "889640782"  # the agency's organisation number (Enhetsregisteret)
NAV = {
    "id": "client-nav-tiltak",
    "name": "NAVs tiltakssystem",
    "org_id": "4010",
    "issuer": "",  # the client issuer's url, in _nav
    "client_id": "nav-system",
    "consumer_org": CONSUMER,
}


def _nav(clients: _Issuer) -> dict[str, str]:
    return {**NAV, "issuer": clients.url}


def _maskinporten(clients: _Issuer, consumer: str = CONSUMER, **claims: Any) -> dict[str, str]:
    """A Maskinporten style token: ``client_id``, ``consumer`` and ``scope``, no ``sub``."""
    now = int(time.time())
    body = {
        "iss": clients.url,
        "aud": "stafett",
        "iat": now,
        "exp": now + 600,
        "client_id": NAV["client_id"],
        "consumer": {"authority": "iso6523-actorid-upis", "ID": f"0192:{consumer}"},
        "scope": "case:read",
        **claims,
    }
    signed = jwt.encode(body, clients.key, "RS256", headers={"kid": "agency-1"})
    return {"Authorization": f"Bearer {signed}"}


async def test_a_registered_client_is_the_directorys_client(
    services: tuple[ConsentHarness, CaseHarness], log: LogHarness, clients: _Issuer
) -> None:
    consent, case = services
    case_id, _child, _handover = await _open_case(consent, case)
    loaded = await consent.load_region(_region(clients=[_nav(clients)]))
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"] == {"client_registered": 1}

    as_client = {"kind": "client", "id": "client-nav-tiltak"}
    for auth in (_maskinporten(clients), clients.auth("nav-system", client_id="nav-system")):
        for service in (consent.client, case.client, log.client):
            me = await service.get("/api/v1/whoami", headers=auth)
            assert me.json() == as_client
        # A client is no person: no rule gives it the case.
        got = await case.client.get(f"/api/v1/cases/{case_id}", headers=auth)
        assert got.status_code == 404

    # Left out of the document, it is nobody once the services' window has passed.
    again = await consent.load_region()
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == {"client_unregistered": 1}
    await asyncio.sleep(LOGIN_CACHE_S * 2)
    assert await _whoami(case, _maskinporten(clients, jti="after")) == 401


async def test_a_client_of_another_consumer_unregistered_or_from_another_issuer_is_401(
    services: tuple[ConsentHarness, CaseHarness],
    issuer: _Issuer,
    citizens: _Issuer,
    clients: _Issuer,
) -> None:
    consent, case = services
    assert (await consent.load_region(_region(clients=[_nav(clients)]))).is_success
    assert await _whoami(case, _maskinporten(clients)) == 200
    for auth in (
        _maskinporten(clients, consumer="974760673"),  # another organisation
        _maskinporten(clients, client_id="other-system"),  # not registered
        clients.auth("other-system", client_id="other-system"),
        _maskinporten(issuer),  # a staff-only issuer asserting the client
        _maskinporten(citizens),  # a citizen issuer asserting it
        issuer.auth("nav-system", client_id="nav-system"),
    ):
        for service in (consent, case):
            assert await _whoami(service, auth) == 401


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "nav-tiltak"}, '"loc":["clients","0","id"]'),
        ({"id": HOLDER}, '"loc":["clients","0","id"]'),
        ({"consumer_org": "889640783"}, "organisasjonsnummer"),
        ({"org_id": "9999"}, "ukjent virksomhet"),
        ({"issuer": DEV_ISSUER}, "Utviklingsutstederens"),
    ],
    ids=["no-prefix", "a-staff-id", "check-digit", "unknown-organisation", "development-issuer"],
)
async def test_a_bad_client_is_422_and_writes_nothing(
    services: tuple[ConsentHarness, CaseHarness],
    clients: _Issuer,
    change: dict[str, str],
    problem: str,
) -> None:
    consent, _case = services
    before = await consent.store.last_seq()
    refused = await consent.load_region(_region(clients=[{**_nav(clients), **change}]))
    assert refused.status_code == 422, refused.text
    assert problem in refused.text
    assert await consent.store.last_seq() == before


async def test_only_a_service_may_ask_who_a_citizen_or_client_is(
    services: tuple[ConsentHarness, CaseHarness], clients: _Issuer
) -> None:
    consent, case = services
    _case_id, _child, (mother, _father), body = await _family_case(consent, case)
    assert (await consent.load_region(_region(clients=[_nav(clients)]))).is_success
    nc = consent.runtime.nc
    index = BlindIndex(load_or_create_kek(consent.runtime.settings.data_dir / "keys" / "kek"))
    citizen = {
        "kind": "citizen",
        "national_id_index": index(body["guardians"][0]["national_id"], context="national_id"),
    }
    client = {"kind": "client", "issuer": clients.url, "client_id": "nav-system"}
    asked_as_case = f"{LOGIN_SUBJECT}.case"
    assert await rpc.request(nc, asked_as_case, citizen, timeout=5) == {"person_id": mother}
    assert await rpc.request(nc, asked_as_case, client, timeout=5) == {"client": NAV["id"]}
    assert await rpc.request(
        nc, asked_as_case, {**client, "consumer_org": "974760673"}, timeout=5
    ) == {"client": None}
    for subject, payload, code in (
        (LOGIN_SUBJECT, citizen, "unknown_service"),
        (f"{LOGIN_SUBJECT}.portal", client, "unknown_service"),
        # The number itself is never asked for: only its blind index.
        (asked_as_case, {**citizen, "national_id_index": body["national_id"]}, "bad_request"),
        (asked_as_case, {**client, "consumer_org": f"0192:{CONSUMER}"}, "bad_request"),
    ):
        with pytest.raises(rpc.RpcRemoteError) as refused:
            await rpc.request(nc, subject, payload, timeout=5)
        assert refused.value.code == code
