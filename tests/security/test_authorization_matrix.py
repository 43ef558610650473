"""The authorization matrix (issue 16, item 4): every route of every service's OpenAPI
document × fourteen callers, against a real world on real NATS and the four services.

The expected answers are the table beside this file (``authorization_matrix.md``): one row
per route, one column per caller, the status written out. The route list comes from each
service's OpenAPI document at test time; a route without a row, or a row whose route is gone,
fails the test. Every cell is sent as a sensible, valid request (the body an allowed caller
would send), with path parameters that name real resources of the caller's world: the case,
its handover, measure, entry and consents, the holder's notice and webhook.

Writes are robust to order: a caller the table permits a stateful write gets a world of its
own (a fresh case with the same team, consents, entry and handover), so one permitted write
never changes what the next caller meets; refusals share one world per variant.

Cells ``200+`` and ``200-`` are for lists: 200, and the world's case (or handover) is in the
answer, or is not. A refused read of a case is 404 and byte-identical (status, body, headers)
to the answer for a case id that does not exist.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness, region_with_porsgrunn, synthetic_national_id
from stafett_log.testing import LogHarness
from stafett_notify.testing import NotifyHarness
from stafett_shared.ids import new_id

pytestmark = pytest.mark.slow

TABLE = Path(__file__).with_name("authorization_matrix.md")

CALLERS = (
    "holder",
    "team_read",
    "team_write",
    "unit_leader",
    "other_unit",
    "other_municipality",
    "guardian",
    "guardian_no_resp",
    "youth_15",
    "child_under_15",
    "client_scope",
    "client_no_scope",
    "client_consent",
    "admin_other_org",
)

HOLDER = "ann-kristin-allum"  # teacher, Siljan ungdomsskole (owns the cases)
LEADER = "rektor-siljan"  # leader, Siljan ungdomsskole
TEAM_READ = "vgs-vidar"  # Porsgrunn vgs (the county): on the team, read, under consent
TEAM_WRITE = "bv-berit"  # Siljan barnevern: on the team, write, under consent
OTHER_UNIT = "helse-hanne"  # Siljan helsestasjon: no relation but a pending handover to her
OTHER_MUNICIPALITY = "porsgrunn-petter"  # Porsgrunn kommune: no relation
EXTRA = "lærer-lise".replace("æ", "ae")  # a colleague of the holder, added to teams in writes
AUDITOR = "revisor-randi"  # given an audit scope by the administrator
ADMIN = "admin"  # STAFETT_ADMINS: the region's administrator, staff of no organisation
ORG_ADMIN = "porsgrunn-admin"  # STAFETT_ORG_ADMINS: Porsgrunn kommune's administrator
CLIENT_SCOPE = "fagsystem-med"  # an agency client with stafett.decisions
CLIENT_NO_SCOPE = "fagsystem-uten"  # an agency client without scopes
CLIENT_CONSENT = "client-fylket-vgs"  # the county's registered school system (decision 0039)
READ_SCOPES = ("stafett:case.read", "stafett:log.read")
DECISION_SCOPE = "stafett.decisions"

IGNORED_HEADERS = frozenset({"date", "server"})  # differ by time, not by the case
ONE_CONSENT = "consent GET /api/v1/consents/{consent_id}"
"""A consent of the case by its id: a refusal is compared with a consent that does not exist."""


def _region() -> dict[str, Any]:
    """The test region with a second municipality, a colleague, an auditor and the county's
    school system, registered to read where a consent names the county's upper secondary
    schools."""
    region = region_with_porsgrunn(
        {
            "id": OTHER_MUNICIPALITY,
            "name": "Petter Porsgrunn",
            "roles": [{"unit_id": "porsgrunn-ungdomsskole", "role": "teacher"}],
        },
        {
            "id": EXTRA,
            "name": "Lise Lærer",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "teacher"}],
        },
        {
            "id": AUDITOR,
            "name": "Randi Revisor",
            "roles": [{"unit_id": "siljan-barnevern", "role": "coordinator"}],
        },
    )
    region["clients"] = [
        {
            "id": CLIENT_CONSENT,
            "name": "Fylkets skoleadministrative system",
            "org_id": "40",
            "issuer": "https://maskinporten.no/",
            "client_id": "fylket-vgs",
            "consumer_org": "974568039",
            "scopes": list(READ_SCOPES),
            "sectors": ["upper_secondary"],
            "purposes": ["consent"],
        }
    ]
    return region


# --- the world -----------------------------------------------------------------------------------


@dataclass
class Child:
    id: str
    national_id: str
    guardian: str  # with parental responsibility
    guardian_no_resp: str


@dataclass
class World:
    """One case of a child with everything a route may name."""

    child: Child
    case_id: str
    case_version: int = 0
    handover_id: str = ""
    measure_id: str = ""
    entry_id: str = ""
    consent_id: str = ""  # active (signed by every grantor)
    report_id: str = ""  # a report of concern the holder sent to Siljan's child welfare
    pending_consent_id: str = ""  # requested, not signed
    emergency_id: str = ""  # a colleague's repeat emergency request, waiting for approval


@dataclass
class Stack:
    consent: ConsentHarness
    case: CaseHarness
    log: LogHarness
    notify: NotifyHarness
    children: dict[str, Child] = field(default_factory=dict)
    worlds: dict[tuple[str, str], World] = field(default_factory=dict)
    notice_id: str = ""
    webhook_id: str = ""
    tree_size: int = 0
    event_types: dict[str, str] = field(default_factory=dict)
    built: int = 0
    building_s: float = 0.0

    def auth(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(caller)}"}

    def token(self, caller: str) -> str:
        if caller == "client_scope":
            return self.consent.token(CLIENT_SCOPE, client=True, scopes=(DECISION_SCOPE,))
        if caller == "client_no_scope":
            return self.consent.token(CLIENT_NO_SCOPE, client=True)
        if caller == "client_consent":
            return self.consent.token(CLIENT_CONSENT, client=True, scopes=READ_SCOPES)
        return self.consent.token(self.person(caller))

    def person(self, caller: str) -> str:
        fixed = {
            "holder": HOLDER,
            "team_read": TEAM_READ,
            "team_write": TEAM_WRITE,
            "unit_leader": LEADER,
            "other_unit": OTHER_UNIT,
            "other_municipality": OTHER_MUNICIPALITY,
            "client_scope": CLIENT_SCOPE,
            "client_no_scope": CLIENT_NO_SCOPE,
            "client_consent": CLIENT_CONSENT,
            "admin_other_org": ORG_ADMIN,
            "region_admin": ADMIN,  # for the setup only: no column
        }
        if caller in fixed:
            return fixed[caller]
        child = self.children["B" if caller == "child_under_15" else "A"]
        return {
            "guardian": child.guardian,
            "guardian_no_resp": child.guardian_no_resp,
            "youth_15": child.id,
            "child_under_15": child.id,
        }[caller]

    def service(self, name: str) -> httpx.AsyncClient:
        harness: ConsentHarness | CaseHarness | LogHarness | NotifyHarness = getattr(self, name)
        return harness.client

    async def settle(self) -> None:
        position = await self.consent.store.last_seq()
        for harness in (self.consent, self.case, self.log, self.notify):
            await harness.runtime.projector.wait_for(position, 20)

    async def call(
        self, service: str, method: str, url: str, caller: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.auth(caller), **kwargs.pop("headers", {})}
        return await self.service(service).request(method, url, headers=headers, **kwargs)

    async def ok(self, service: str, method: str, url: str, caller: str, **kwargs: Any) -> Any:
        response = await self.call(service, method, url, caller, **kwargs)
        assert response.is_success, f"{method} {url}: {response.status_code} {response.text}"
        return response.json()

    async def register(self, key: str, age: int) -> Child:
        today = datetime.now(UTC)
        born = today.replace(year=today.year - age, day=min(today.day, 28)) - timedelta(days=40)
        parents = today.replace(year=today.year - 45, month=3, day=14)
        body = {
            "national_id": synthetic_national_id(born),
            "name": "Ola Nordmann",
            "guardians": [
                {
                    "national_id": synthetic_national_id(parents, 210),
                    "name": "Mor",
                    "parental_responsibility": True,
                },
                {
                    "national_id": synthetic_national_id(parents, 230),
                    "name": "Far",
                    "parental_responsibility": False,
                },
            ],
        }
        data = await self.ok("consent", "POST", "/api/v1/children", "holder", json=body)
        await self.settle()
        ids = [str(g["id"]) for g in data["guardians"]]  # in the order given
        child = Child(str(data["id"]), str(body["national_id"]), ids[0], ids[1])
        self.children[key] = child
        return child

    async def world(self, key: str, variant: str = "full") -> World:
        """A new case of child ``key``: the team (read and write, outside the owning unit),
        an active consent covering them, a pending one, a measure, a log entry and a handover
        to Hanne waiting. Variants: ``pseudonymous`` (child not identified: the team only),
        ``no_handover``, ``closed``."""
        self.built += 1
        began = time.monotonic()
        try:
            return await self._world(key, variant)
        finally:
            self.building_s += time.monotonic() - began

    async def _world(self, key: str, variant: str) -> World:
        child = self.children[key]
        pseudonymous = variant == "pseudonymous"
        case_body = {
            "unit_id": "siljan-ungdomsskole",
            "level": 0 if pseudonymous else 1,
            "child": {"pseudonym": "Elev A"}
            if pseudonymous
            else {"national_id": child.national_id},
            "concern": "Eleven virker sliten og har mye fravær.",
        }
        opened = await self.ok("case", "POST", "/api/v1/cases", "holder", json=case_body)
        await self.settle()  # the consent and log services know the case
        world = World(child, opened["id"])
        case = f"/api/v1/cases/{world.case_id}"
        if not pseudonymous:
            world.consent_id = await self._consent(world, signed=True)
            world.pending_consent_id = await self._consent(world, signed=False)
        for person, unit, access in (
            (TEAM_READ, "porsgrunn-vgs", "read"),
            (TEAM_WRITE, "siljan-barnevern", "write"),
        ):
            body = {"person_id": person, "unit_id": unit, "access": access}
            await self.ok("case", "POST", f"{case}/team", "holder", json=body)
        if not pseudonymous:
            world.measure_id = (
                await self.ok("case", "POST", f"{case}/measures", "holder", json=_measure())
            )["id"]
            world.entry_id = (
                await self.ok(
                    "log", "POST", f"/api/v1/logs/{world.case_id}/entries", "holder", json=_entry()
                )
            )["id"]
        if variant == "full":
            body = {"text": "Bekymringsmelding etter opplysningsplikten."}
            world.report_id = (
                await self.ok("case", "POST", f"{case}/child-welfare-reports", "holder", json=body)
            )["id"]
            body = {"to_person_id": OTHER_UNIT, "to_unit_id": "siljan-helsestasjon", "note": "Ny."}
            world.handover_id = (
                await self.ok("case", "POST", f"{case}/handovers", "holder", json=body)
            )["id"]
        if variant == "closed":
            body = {"reason": "resolved", "note": "Løst."}
            await self.ok("case", "POST", f"{case}/close", "holder", json=body)
        if variant == "full":
            world.emergency_id = await self._waiting_emergency(world)
        await self.settle()
        view = await self.call("case", "GET", case, "holder")
        world.case_version = int(view.headers["ETag"].strip('"'))
        return world

    async def _consent(self, world: World, *, signed: bool) -> str:
        body = {
            "case_id": world.case_id,
            "scope": {
                "org_ids": ["4010", "40"],
                "sectors": ["child_welfare", "upper_secondary"],
                "purpose": "Samarbeid om oppfølging.",
            },
            "evidence": {"method": "digital_signature"},
        }
        asked = await self.ok("consent", "POST", "/api/v1/consents", "holder", json=body)
        if signed:
            grantors = {p for group in asked["grantors"] for p in _people(group)}
            for person in sorted(grantors):
                await self.consent.client.post(
                    f"/api/v1/consents/{asked['id']}/signatures",
                    json={"grantor_person_id": person},
                    headers=self.consent.auth(person),
                )
        consent_id: str = asked["id"]
        return consent_id

    async def _waiting_emergency(self, world: World) -> str:
        """The colleague had emergency access three days ago and asks again: the request
        waits for a leader of the owning unit."""
        await self.consent.past_emergency_grant(EXTRA, world.case_id, days_ago=3)
        await self.settle()
        asked = await self.consent.client.post(
            "/api/v1/emergency-access",
            json={"case_id": world.case_id, "ground": "missing_child", "reason": "Savnet igjen."},
            headers=self.consent.auth(EXTRA),
        )
        assert asked.status_code == 201 and asked.json()["status"] == "pending", asked.text
        emergency_id: str = asked.json()["id"]
        return emergency_id

    async def base(self, caller: str, variant: str) -> World:
        key = "B" if caller == "child_under_15" else "A"
        if (key, variant) not in self.worlds:
            self.worlds[key, variant] = await self.world(key, variant)
        return self.worlds[key, variant]


def _people(group: Any) -> list[str]:
    """The person ids a grantor group of a consent request names."""
    if isinstance(group, dict):
        out: list[str] = []
        for name, value in group.items():
            if name in ("person_id", "person_ids", "any_of", "all_of", "members"):
                out += _people(value)
        return out
    if isinstance(group, list):
        return [p for item in group for p in _people(item)]
    return [group] if isinstance(group, str) else []


def _measure() -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "title": "Leksehjelp",
        "goal": "Bedre oppmøte",
        "responsible_person_id": HOLDER,
        "start": today.isoformat(),
        "evaluate_by": (today + timedelta(days=30)).isoformat(),
    }


def _entry() -> dict[str, Any]:
    return {
        "kind": "note",
        "text": "Samtale med eleven.",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


FourServices = Callable[
    [], AbstractAsyncContextManager[tuple[ConsentHarness, CaseHarness, LogHarness, NotifyHarness]]
]
"""The ``four_services`` fixture of tests/security/conftest.py."""


@pytest.fixture
async def stack(
    four_services: FourServices,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """The four services on a fresh stream, SQLite each, the region loaded, two children
    registered (16 and 12, the same guardians), a checkpoint, a notice and a webhook."""
    monkeypatch.setenv("STAFETT_RATE_LIMIT_PER_S", "0")
    # The holder registers and opens a case by national id for every world it builds.
    monkeypatch.setenv("STAFETT_LOOKUP_LIMIT_BURST", "1000")
    monkeypatch.setenv("STAFETT_ORG_ADMINS", json.dumps({"3806": [ORG_ADMIN]}))
    monkeypatch.setenv("STAFETT_MIN_SEQ_WAIT_S", "0.2")
    async with four_services() as (consent, case, log, notify):
        loaded = await consent.load_region(_region())
        assert loaded.status_code == 200, loaded.text
        stack = Stack(consent, case, log, notify)
        await stack.settle()
        await stack.register("A", 16)
        await stack.register("B", 12)
        yield stack


async def prepare(stack: Stack) -> None:
    """The base worlds, then what the routes outside the cases name."""
    for caller in ("holder", "child_under_15"):
        await stack.base(caller, "full")
    await stack.settle()
    notices = await stack.ok("notify", "GET", "/api/v1/notifications", "team_read")
    assert notices["items"], "the team member has no notice to mark as read"
    stack.notice_id = notices["items"][0]["id"]
    hook = {"url": "http://127.0.0.1:9/hook", "secret": "s" * 16}
    stack.webhook_id = (await stack.ok("notify", "POST", "/api/v1/webhooks", "holder", json=hook))[
        "id"
    ]
    made = await stack.call("log", "POST", "/api/v1/checkpoints", "region_admin")
    assert made.status_code == 201, made.text
    stack.tree_size = int(made.json()["tree_size"])
    for service in ("case", "log", "consent", "notify"):
        schemas = (await stack.service(service).get("/schemas.json")).json()
        # The notify service owns no event type: any type it is asked for is 404.
        stack.event_types[service] = min(schemas, default="no.stafett.notify.none.v1")


# --- the requests ------------------------------------------------------------------------------


@dataclass
class Request:
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    world: World | None = None


Build = Callable[[Stack, World, str], Request]


@dataclass
class Route:
    build: Build
    variant: str = "full"
    fresh: bool = False  # a permitted caller gets a world of its own
    # "case", "handover", "report", "emergency" or "feed": 200+ / 200- by whether it is
    # listed (the feed: whether an event of the case is given)
    lists: str | None = None


def _later(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _if_match(w: World) -> dict[str, str]:
    return {"If-Match": f'"{w.case_version}"'}


def _decision(s: Stack, w: World) -> dict[str, Any]:
    return {"principal": HOLDER, "action": "case:read", "resource": {"case_id": w.case_id}}


def _authzen(w: World) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": HOLDER},
        "action": {"name": "case:read"},
        "resource": {"type": "case", "id": w.case_id},
    }


def _case(path: str = "") -> Callable[[World], str]:
    return lambda w: f"/api/v1/cases/{w.case_id}{path}"


def _plain(url: str) -> Build:
    return lambda _s, _w, _c: Request(url)


def _case_write(path: str, body: Callable[[World], Any], if_match: bool = True) -> Build:
    def build(_s: Stack, w: World, _c: str) -> Request:
        headers = _if_match(w) if if_match else {}
        return Request(f"/api/v1/cases/{w.case_id}{path.format(w=w)}", body(w), headers=headers)

    return build


ROUTES: dict[str, Route] = {
    # -- case ------------------------------------------------------------------------------
    "case GET /api/v1/whoami": Route(_plain("/api/v1/whoami")),
    "case POST /api/v1/cases": Route(
        lambda s, w, _c: Request(
            "/api/v1/cases",
            {
                "unit_id": "siljan-ungdomsskole",
                "level": 1,
                "child": {"national_id": w.child.national_id},
                "concern": "Eleven virker sliten.",
            },
        )
    ),
    "case GET /api/v1/cases": Route(_plain("/api/v1/cases?limit=500"), lists="case"),
    "case GET /api/v1/cases/{case_id}": Route(lambda _s, w, _c: Request(_case()(w))),
    "case GET /api/v1/cases/{case_id}/handovers/{handover_id}": Route(
        lambda _s, w, _c: Request(_case(f"/handovers/{w.handover_id}")(w))
    ),
    "case GET /api/v1/handovers": Route(_plain("/api/v1/handovers?to=me"), lists="handover"),
    "case POST /api/v1/cases/{case_id}/identify": Route(
        _case_write("/identify", lambda w: {"national_id": w.child.national_id}),
        variant="pseudonymous",
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/level": Route(
        _case_write("/level", lambda _w: {"level": 2, "reason": "Flere tjenester trengs."}),
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/team": Route(
        _case_write(
            "/team",
            lambda _w: {"person_id": EXTRA, "unit_id": "siljan-ungdomsskole", "access": "read"},
        ),
        fresh=True,
    ),
    "case DELETE /api/v1/cases/{case_id}/team/{person_id}": Route(
        _case_write(f"/team/{TEAM_READ}", lambda _w: None), fresh=True
    ),
    "case POST /api/v1/cases/{case_id}/handovers": Route(
        _case_write(
            "/handovers",
            lambda _w: {"to_person_id": EXTRA, "to_unit_id": "siljan-ungdomsskole"},
        ),
        variant="no_handover",
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/handovers/{handover_id}/accept": Route(
        _case_write("/handovers/{w.handover_id}/accept", lambda _w: None), fresh=True
    ),
    "case POST /api/v1/cases/{case_id}/handovers/{handover_id}/decline": Route(
        _case_write("/handovers/{w.handover_id}/decline", lambda _w: {"reason": "Feil enhet."}),
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/handovers/{handover_id}/cancel": Route(
        _case_write("/handovers/{w.handover_id}/cancel", lambda _w: None), fresh=True
    ),
    "case POST /api/v1/cases/{case_id}/measures": Route(
        _case_write("/measures", lambda _w: _measure())
    ),
    "case POST /api/v1/cases/{case_id}/measures/{measure_id}/evaluations": Route(
        _case_write(
            "/measures/{w.measure_id}/evaluations",
            lambda _w: {"outcome": "partly", "note": "Litt bedre."},
        ),
    ),
    "case POST /api/v1/cases/{case_id}/close": Route(
        _case_write("/close", lambda _w: {"reason": "resolved", "note": "Løst."}),
        variant="no_handover",
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/reopen": Route(
        _case_write("/reopen", lambda _w: {"reason": "Ny bekymring."}),
        variant="closed",
        fresh=True,
    ),
    "case POST /api/v1/cases/{case_id}/child-welfare-reports": Route(
        _case_write(
            "/child-welfare-reports",
            lambda _w: {"text": "Bekymringsmelding etter opplysningsplikten."},
            if_match=False,
        )
    ),
    "case GET /api/v1/cases/{case_id}/child-welfare-reports": Route(
        lambda _s, w, _c: Request(_case("/child-welfare-reports?limit=500")(w)), lists="report"
    ),
    "case GET /api/v1/child-welfare-reports": Route(
        _plain("/api/v1/child-welfare-reports?limit=500"), lists="report"
    ),
    "case GET /api/v1/child-welfare-reports/{report_id}": Route(
        lambda _s, w, _c: Request(f"/api/v1/child-welfare-reports/{w.report_id}")
    ),
    "case POST /api/v1/child-welfare-reports/{report_id}/receipt": Route(
        lambda _s, w, _c: Request(f"/api/v1/child-welfare-reports/{w.report_id}/receipt"),
        fresh=True,
    ),
    "case GET /api/v1/indicators": Route(
        lambda _s, _w, _c: Request(
            f"/api/v1/indicators?org_id=4010&from={datetime.now(UTC).year}-01-01"
            f"&to={datetime.now(UTC).year}-12-31"
        )
    ),
    # -- log -------------------------------------------------------------------------------
    "log GET /api/v1/whoami": Route(_plain("/api/v1/whoami")),
    "log POST /api/v1/logs/{case_id}/entries": Route(
        lambda _s, w, _c: Request(f"/api/v1/logs/{w.case_id}/entries", _entry())
    ),
    "log POST /api/v1/logs/{case_id}/own-voice": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/logs/{w.case_id}/own-voice", {"text": "Jeg vil fortsette med fotball."}
        )
    ),
    "log GET /api/v1/logs/{case_id}/entries": Route(
        lambda _s, w, _c: Request(f"/api/v1/logs/{w.case_id}/entries")
    ),
    "log POST /api/v1/logs/{case_id}/entries/{entry_id}/corrections": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/logs/{w.case_id}/entries/{w.entry_id}/corrections",
            {"text": "Samtale med eleven og mor.", "reason": "Mor var med."},
        ),
    ),
    "log POST /api/v1/logs/{case_id}/entries/{entry_id}/retractions": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/logs/{w.case_id}/entries/{w.entry_id}/retractions",
            {"reason": "Feil sak."},
        ),
        fresh=True,
    ),
    "log POST /api/v1/logs/{case_id}/entries/{entry_id}/restrictions": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/logs/{w.case_id}/entries/{w.entry_id}/restrictions",
            {"ground": "fvl_19_harmful_to_child", "reason": "Til skade.", "until": _later()},
        ),
    ),
    "log GET /api/v1/logs/{case_id}/access": Route(
        lambda _s, w, _c: Request(f"/api/v1/logs/{w.case_id}/access")
    ),
    "log GET /api/v1/logs/{case_id}/verify": Route(
        lambda _s, w, _c: Request(f"/api/v1/logs/{w.case_id}/verify")
    ),
    "log GET /api/v1/checkpoints/latest": Route(_plain("/api/v1/checkpoints/latest")),
    "log POST /api/v1/checkpoints": Route(_plain("/api/v1/checkpoints")),
    "log GET /api/v1/proofs/inclusion": Route(
        lambda s, _w, _c: Request(f"/api/v1/proofs/inclusion?seq=1&tree_size={s.tree_size}")
    ),
    "log GET /api/v1/proofs/consistency": Route(
        lambda s, _w, _c: Request(f"/api/v1/proofs/consistency?first=1&second={s.tree_size}")
    ),
    # -- consent ---------------------------------------------------------------------------
    "consent GET /api/v1/whoami": Route(_plain("/api/v1/whoami")),
    "consent GET /api/v1/directory": Route(_plain("/api/v1/directory")),
    "consent GET /api/v1/organisations": Route(_plain("/api/v1/organisations")),
    "consent GET /api/v1/staff": Route(_plain(f"/api/v1/staff?id={HOLDER}&id={OTHER_UNIT}")),
    "consent PUT /api/v1/directory": Route(
        lambda _s, _w, _c: Request(
            "/api/v1/directory",
            content=yaml.safe_dump(_region(), allow_unicode=True).encode(),
            headers={"Content-Type": "application/yaml"},
        )
    ),
    # Porsgrunn's part as the region document has it: loading it again changes nothing.
    "consent GET /api/v1/directory/orgs/{org_id}": Route(_plain("/api/v1/directory/orgs/3806")),
    "consent PUT /api/v1/directory/orgs/{org_id}": Route(
        lambda _s, _w, _c: Request(
            "/api/v1/directory/orgs/3806",
            {
                "units": _region()["organisations"][-1]["units"],
                "staff": [p for p in _region()["staff"] if p["id"] == OTHER_MUNICIPALITY],
            },
        )
    ),
    "consent POST /api/v1/children": Route(
        lambda _s, w, _c: Request(
            "/api/v1/children", {"national_id": w.child.national_id, "name": "Ola Nordmann"}
        )
    ),
    "consent POST /api/v1/children/{child_id}/guardians": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/children/{w.child.id}/guardians",
            {
                "national_id": synthetic_national_id(datetime(1985, 3, 14, tzinfo=UTC), 250),
                "name": "Bonusmor",
                "parental_responsibility": True,
                "reason": "Ny foresatt etter avtale om foreldreansvar.",
            },
        )
    ),
    "consent DELETE /api/v1/children/{child_id}/guardians/{person_id}": Route(
        lambda _s, w, _c: Request(
            f"/api/v1/children/{w.child.id}/guardians/{w.child.guardian_no_resp}",
            {"reason": "Ikke lenger foresatt."},
        )
    ),
    "consent POST /api/v1/children/{child_id}/guardians/{person_id}/parental-responsibility": (
        Route(
            lambda _s, w, _c: Request(
                f"/api/v1/children/{w.child.id}/guardians/{w.child.guardian_no_resp}"
                "/parental-responsibility",
                {"parental_responsibility": True, "reason": "Felles foreldreansvar avtalt."},
            )
        )
    ),
    "consent POST /api/v1/consents": Route(
        lambda _s, w, _c: Request(
            "/api/v1/consents",
            {
                "case_id": w.case_id,
                "scope": {
                    "org_ids": ["4010"],
                    "sectors": ["health"],
                    "purpose": "Helsesykepleier følger opp.",
                },
                "evidence": {"method": "digital_signature"},
            },
        )
    ),
    "consent GET /api/v1/consents": Route(
        lambda _s, w, _c: Request(f"/api/v1/consents?case_id={w.case_id}")
    ),
    ONE_CONSENT: Route(lambda _s, w, _c: Request(f"/api/v1/consents/{w.consent_id}")),
    "consent POST /api/v1/consents/{consent_id}/signatures": Route(
        lambda s, w, c: Request(
            f"/api/v1/consents/{w.pending_consent_id}/signatures",
            {"grantor_person_id": s.person(c), "method": "digital_signature"},
        ),
        fresh=True,
    ),
    "consent POST /api/v1/consents/{consent_id}/refusals": Route(
        lambda s, w, c: Request(
            f"/api/v1/consents/{w.pending_consent_id}/refusals",
            {"grantor_person_id": s.person(c), "reason": "Vil ikke."},
        ),
        fresh=True,
    ),
    "consent POST /api/v1/consents/{consent_id}/withdrawals": Route(
        lambda s, w, c: Request(
            f"/api/v1/consents/{w.consent_id}/withdrawals",
            {"grantor_person_id": _grantor(s, w, c), "reason": "Trekker samtykket."},
        ),
        fresh=True,
    ),
    "consent POST /api/v1/consents/{consent_id}/renewals": Route(
        lambda _s, w, _c: Request(f"/api/v1/consents/{w.consent_id}/renewals", {}),
        fresh=True,
    ),
    "consent POST /api/v1/decisions": Route(
        lambda s, w, _c: Request("/api/v1/decisions", _decision(s, w))
    ),
    "consent POST /api/v1/decisions/filter": Route(
        lambda _s, w, _c: Request(
            "/api/v1/decisions/filter",
            {"principal": HOLDER, "action": "case:read", "case_ids": [w.case_id]},
        )
    ),
    "consent GET /api/v1/feed": Route(_plain("/api/v1/feed?limit=500"), lists="feed"),
    "consent GET /api/v1/decision-records": Route(
        lambda _s, w, _c: Request(f"/api/v1/decision-records?case_id={w.case_id}")
    ),
    "consent POST /api/v1/emergency-access": Route(
        lambda _s, w, _c: Request(
            "/api/v1/emergency-access",
            {
                "case_id": w.case_id,
                "ground": "danger_to_life_or_health",
                "reason": "Akutt fare, holder er ikke tilgjengelig.",
            },
        ),
        fresh=True,
    ),
    "consent GET /api/v1/emergency-access": Route(
        _plain("/api/v1/emergency-access?status=pending"), lists="emergency"
    ),
    "consent POST /api/v1/emergency-access/{grant_id}/approval": Route(
        lambda _s, w, _c: Request(f"/api/v1/emergency-access/{w.emergency_id}/approval"),
        fresh=True,
    ),
    "consent POST /api/v1/audit-scopes": Route(
        lambda _s, w, _c: Request(
            "/api/v1/audit-scopes",
            {
                "auditor_person_id": AUDITOR,
                "case_ids": [w.case_id],
                "until": _later(),
                "reason": "Tilsyn med saksbehandlingen.",
            },
        )
    ),
    "consent POST /access/v1/evaluation": Route(
        lambda _s, w, _c: Request("/access/v1/evaluation", _authzen(w))
    ),
    "consent POST /access/v1/evaluations": Route(
        lambda _s, w, _c: Request("/access/v1/evaluations", {"evaluations": [_authzen(w)]})
    ),
    # -- notify ----------------------------------------------------------------------------
    "notify GET /api/v1/whoami": Route(_plain("/api/v1/whoami")),
    "notify GET /api/v1/notifications": Route(_plain("/api/v1/notifications")),
    "notify POST /api/v1/notifications/{notice_id}/read": Route(
        lambda s, _w, _c: Request(f"/api/v1/notifications/{s.notice_id}/read")
    ),
    "notify GET /api/v1/preferences": Route(_plain("/api/v1/preferences")),
    "notify PUT /api/v1/preferences": Route(
        lambda _s, _w, _c: Request(
            "/api/v1/preferences",
            {"channels": {"inbox": True, "email": False, "webhook": False}, "daily_digest": True},
        )
    ),
    "notify POST /api/v1/webhooks": Route(
        lambda _s, _w, _c: Request(
            "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "secret": "s" * 16}
        )
    ),
    "notify GET /api/v1/webhooks/{webhook_id}/deliveries": Route(
        lambda s, _w, _c: Request(f"/api/v1/webhooks/{s.webhook_id}/deliveries")
    ),
}

CASE_SCOPED = (
    "case GET /api/v1/cases/{case_id}",
    "case POST /api/v1/cases/{case_id}",
    "case DELETE /api/v1/cases/{case_id}",
    "case GET /api/v1/child-welfare-reports/",
    "case POST /api/v1/child-welfare-reports/",
    "log GET /api/v1/logs/{case_id}",
    "log POST /api/v1/logs/{case_id}",
    "consent GET /api/v1/consents",
    "consent GET /api/v1/decision-records",
    "consent POST /api/v1/consents",
    "consent POST /api/v1/emergency-access",
)
"""Routes that name a case (or a report of concern): a 404 from them is compared with the
answer for a case (a report) that does not exist."""

PUBLIC = (
    "GET /healthz",
    "GET /readyz",
    "GET /asyncapi.json",
    "GET /schemas.json",
    "GET /schemas/{event_type}.json",
    "GET /.well-known/authzen-configuration",
)


def _grantor(s: Stack, w: World, caller: str) -> str:
    """Whom a withdrawal names: a grantor withdraws their own consent; staff record it for
    the guardian."""
    if caller in ("youth_15", "child_under_15", "guardian", "guardian_no_resp"):
        return s.person(caller)
    return w.child.guardian


def _route(key: str, stack: Stack) -> Route:
    service, method, path = key.split(" ", 2)
    if f"{method} {path}" in PUBLIC:
        return Route(
            lambda s, _w, _c: Request(path.replace("{event_type}", s.event_types[service]))
        )
    return ROUTES[key]


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    route: str
    cells: dict[str, str]
    note: str


def read_table() -> dict[str, Row]:
    """The rows of the Markdown table: | service | method | path | callers... | note |."""
    rows: dict[str, Row] = {}
    header: list[str] | None = None
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if header is None:
            if cells[:3] != ["service", "method", "path"]:
                continue  # the legend's table above the matrix
            header = cells
            assert header[3:-1] == list(CALLERS), f"the table's columns are {header}"
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        key = " ".join(cells[:3])
        assert key not in rows, f"{key} has two rows"
        rows[key] = Row(key, dict(zip(CALLERS, cells[3:-1], strict=True)), cells[-1])
    return rows


async def document_routes(stack: Stack) -> list[str]:
    routes: list[str] = []
    for service in ("case", "log", "consent", "notify"):
        transport = stack.service(service)._transport
        assert isinstance(transport, httpx.ASGITransport)
        document = transport.app.openapi()  # type: ignore[attr-defined]
        for path, operations in document["paths"].items():
            for method in operations:
                if method in ("get", "post", "put", "delete", "patch"):
                    routes.append(f"{service} {method.upper()} {path}")
    return routes


def expected_permit(cell: str) -> bool:
    return cell[:1] == "2"


def observed(route: Route, response: httpx.Response, world: World) -> str:
    status = str(response.status_code)
    if route.lists is None or response.status_code != 200:
        return status
    if route.lists == "feed":
        served = any(event["subject"] == world.case_id for event in response.json()["events"])
        return f"{status}{'+' if served else '-'}"
    wanted = {
        "case": world.case_id,
        "report": world.report_id,
        "emergency": world.emergency_id,
    }.get(route.lists, world.handover_id)
    listed = any(item.get("id") == wanted for item in response.json()["items"])
    return f"{status}{'+' if listed else '-'}"


# --- the test ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: int = 0
    permits: int = 0
    refusals: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected_permits: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    not_identical: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    compared: int = 0


async def send(stack: Stack, key: str, caller: str, request: Request) -> httpx.Response:
    service, method, _path = key.split(" ", 2)
    headers = dict(request.headers)
    if method in ("POST", "PUT", "DELETE") and "Idempotency-Key" not in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return await stack.call(
        service,
        method,
        request.url,
        caller,
        json=request.json,
        content=request.content,
        headers=headers,
    )


async def test_every_route_answers_every_caller_as_the_table_says(stack: Stack) -> None:
    started = time.monotonic()
    await prepare(stack)
    table = read_table()
    routes = await document_routes(stack)
    missing = [r for r in routes if r not in table]
    gone = [r for r in table if r not in routes]
    assert not missing and not gone, (
        f"routes without a row: {missing}; rows of routes that no longer exist: {gone}"
    )
    outcome = Outcome()
    # Reads first, then writes; within each, refusals before the permits.
    order = sorted(routes, key=lambda r: (r.split(" ")[1] != "GET", r))
    for key in order:
        route = _route(key, stack)
        row = table[key]
        for caller in sorted(CALLERS, key=lambda c: expected_permit(row.cells[c])):
            cell = row.cells[caller]
            if cell.startswith("n/a"):
                outcome.skipped.append(f"{key} × {caller}: {row.note}")
                continue
            permit = expected_permit(cell)
            world = (
                await stack.world("B" if caller == "child_under_15" else "A", route.variant)
                if route.fresh and permit
                else await stack.base(caller, route.variant)
            )
            request = route.build(stack, world, caller)
            response = await send(stack, key, caller, request)
            got = observed(route, response, world)
            outcome.sent += 1
            outcome.statuses[got] += 1
            if response.is_success:
                outcome.permits += 1
            else:
                outcome.refusals += 1
            if got != cell:
                line = f"{key} × {caller}: expected {cell}, got {got} {response.text[:160]}"
                if response.is_success and not permit:
                    outcome.unexpected_permits.append(line)
                else:
                    outcome.mismatches.append(line)
            if response.status_code == 404 and key.startswith(CASE_SCOPED):
                await compare_with_missing(stack, key, caller, request, world, response, outcome)
            if response.is_success and key.split(" ")[1] != "GET":
                if key.startswith("case ") and "ETag" in response.headers:
                    world.case_version = int(response.headers["ETag"].strip('"'))
                await stack.settle()
    seconds = time.monotonic() - started
    summary = (
        f"authorization matrix: {len(routes)} routes × {len(CALLERS)} callers = "
        f"{len(routes) * len(CALLERS)} cells, {outcome.sent} requests sent "
        f"({len(outcome.skipped)} not exercised): {outcome.permits} permits, "
        f"{outcome.refusals} refusals; {dict(sorted(outcome.statuses.items()))}; "
        f"{outcome.compared} refusals compared with a missing case; "
        f"{stack.built} worlds built in {stack.building_s:.1f} s; {seconds:.1f} s in all"
    )
    print(summary)  # the figures for docs/security.md
    problems = [
        *(f"UNEXPECTED PERMIT {line}" for line in outcome.unexpected_permits),
        *(f"mismatch {line}" for line in outcome.mismatches),
        *(f"404 differs from a missing case: {line}" for line in outcome.not_identical),
    ]
    assert not problems, summary + "\n" + "\n".join(problems)


def _path_of(key: str) -> str:
    return key.split(" ", 2)[2]


async def compare_with_missing(
    stack: Stack,
    key: str,
    caller: str,
    request: Request,
    world: World,
    refused: httpx.Response,
    outcome: Outcome,
) -> None:
    """The refused request again with a case id that does not exist (in the address or the
    body): the same status, body and headers."""
    missing_id = new_id()
    url = request.url.replace(world.case_id, missing_id)
    if world.report_id:
        url = url.replace(world.report_id, missing_id)
    if key == ONE_CONSENT:
        url = url.replace(world.consent_id, missing_id)
    body = request.json
    if isinstance(body, dict):
        body = {k: missing_id if v == world.case_id else v for k, v in body.items()}
    if url == request.url and body == request.json:
        return  # the request names no case
    missing = await send(stack, key, caller, Request(url, body, request.content, request.headers))

    def headers(response: httpx.Response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k.lower() not in IGNORED_HEADERS}

    outcome.compared += 1
    if (refused.status_code, refused.content, headers(refused)) != (
        missing.status_code,
        missing.content,
        headers(missing),
    ):
        outcome.not_identical.append(
            f"{key} × {caller}: {refused.status_code} {refused.content!r} {headers(refused)} "
            f"!= {missing.status_code} {missing.content!r} {headers(missing)}"
        )
