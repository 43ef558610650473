"""Test support for the consent service: run it in-process against real NATS and a real
database, with development tokens and helpers that publish the case facts it learns from."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import yaml

from stafett_consent.app import SPEC
from stafett_consent.settings import ConsentSettings
from stafett_shared.auth import DevIssuer
from stafett_shared.contracts.consent import EmergencyAccessGranted
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.service import Runtime, create_app
from stafett_shared.settings import CommonSettings

REGION: dict[str, Any] = {
    "region": "grenland",
    "organisations": [
        {
            "id": "4010",
            "name": "Siljan kommune",
            "kind": "municipality",
            "units": [
                {"id": "siljan-ungdomsskole", "name": "Siljan ungdomsskole", "sector": "school"},
                {
                    "id": "siljan-helsestasjon",
                    "name": "Helsestasjonen i Siljan",
                    "sector": "health",
                },
                {"id": "siljan-barnevern", "name": "Barneverntjenesten", "sector": "child_welfare"},
            ],
        },
        {
            "id": "40",
            "name": "Vestfold og Telemark fylkeskommune",
            "kind": "county",
            "units": [
                {
                    "id": "porsgrunn-vgs",
                    "name": "Porsgrunn videregående skole",
                    "sector": "upper_secondary",
                },
            ],
        },
    ],
    "staff": [
        {
            "id": "ann-kristin-allum",
            "name": "Ann Kristin Allum",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "teacher"}],
        },
        {
            "id": "rektor-siljan",
            "name": "Rolf Rektor",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "leader"}],
        },
        {
            "id": "helse-hanne",
            "name": "Hanne Helse",
            "roles": [{"unit_id": "siljan-helsestasjon", "role": "health_nurse"}],
        },
        {
            "id": "vgs-vidar",
            "name": "Vidar Vgs",
            "roles": [{"unit_id": "porsgrunn-vgs", "role": "teacher"}],
        },
        {
            "id": "bv-berit",
            "name": "Berit Barnevern",
            "roles": [{"unit_id": "siljan-barnevern", "role": "child_welfare_worker"}],
        },
    ],
}


def region_with_porsgrunn(*staff: dict[str, Any]) -> dict[str, Any]:
    """The test region with Porsgrunn kommune (3806) and its lower secondary school, and the
    staff members ``staff`` besides the region's own."""
    region = copy.deepcopy(REGION)
    region["organisations"].append(
        {
            "id": "3806",
            "name": "Porsgrunn kommune",
            "kind": "municipality",
            "units": [
                {
                    "id": "porsgrunn-ungdomsskole",
                    "name": "Porsgrunn ungdomsskole",
                    "sector": "school",
                }
            ],
        }
    )
    region["staff"] += list(staff)
    return region


NAV_CLIENT_NAME = "NAV Grenlands saksbehandlingssystem"


def region_with_nav(*clients: tuple[str, str, tuple[str, ...]]) -> dict[str, Any]:
    """The test region with NAV Grenland (sector ``nav``) and its clients, each
    ``(directory id, token client id, scopes)``, serving the ground ``consent``."""
    region = copy.deepcopy(REGION)
    region["organisations"].append(
        {
            "id": "nav-grenland",
            "name": "NAV Grenland",
            "kind": "state_agency",
            "units": [{"id": "nav-skien", "name": "NAV Skien", "sector": "nav"}],
        }
    )
    region["clients"] = [
        {
            "id": client_id,
            "name": NAV_CLIENT_NAME,
            "org_id": "nav-grenland",
            "issuer": "https://maskinporten.no/",
            "client_id": token_client_id,
            "consumer_org": "889640782",
            "scopes": list(scopes),
            "sectors": ["nav"],
            "purposes": ["consent"],
        }
        for client_id, token_client_id, scopes in clients
    ]
    return region


def nav_consent(case_id: str) -> dict[str, Any]:
    """A consent request for the case that names NAV Grenland and the sector ``nav``."""
    return {
        "case_id": case_id,
        "scope": {
            "org_ids": ["nav-grenland"],
            "sectors": ["nav"],
            "purpose": "Samarbeid med NAV om sommerjobb og videre skolegang.",
        },
        "evidence": {"method": "digital_signature"},
    }


def child_registration(age_years: int, guardians: list[tuple[str, bool]]) -> dict[str, Any]:
    """The body of ``POST /api/v1/children``: a child of ``age_years`` and their guardians
    (name, parental responsibility), with synthetic national ids."""
    today = datetime.now(UTC)
    born = today.replace(year=today.year - age_years, day=min(today.day, 28)) - _days(40)
    return {
        "national_id": synthetic_national_id(born),
        "name": "Ola Nordmann",
        "guardians": [
            {
                "national_id": synthetic_national_id(
                    born.replace(year=born.year - 30), 200 + 10 * i
                ),
                "name": name,
                "parental_responsibility": responsible,
            }
            for i, (name, responsible) in enumerate(guardians)
        ],
    }


def synthetic_national_id(born: datetime, individual: int = 123) -> str:
    """A synthetic national id (month + 80) for a birth date, with valid control digits."""
    from stafett_shared.nationalid import control_digits

    if born.year >= 2000:  # individual numbers 500-999 mark births from 2000
        individual = 500 + individual % 500
    first = f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}"
    digits = control_digits(first)
    if digits is None:
        return synthetic_national_id(born, individual + 1)
    return first + digits


def consent_request(case_id: str, **fields: Any) -> dict[str, Any]:
    """A valid body for ``POST /api/v1/consents``: Siljan's health service, asked by the
    school; ``fields`` replace or add top-level fields (``valid_until``, …)."""
    return {
        "case_id": case_id,
        "scope": {
            "org_ids": ["4010"],
            "sectors": ["health"],
            "purpose": "Samarbeid med helsestasjonen om oppfølging på skolen.",
        },
        "evidence": {"method": "digital_signature"},
        **fields,
    }


def past_emergency_grant(person: str, case_id: str, *, days_ago: float) -> EmergencyAccessGranted:
    """An emergency grant to ``person`` on the case that began ``days_ago`` days ago and
    ended a day later: what makes a new request a repeat (its reason a placeholder)."""
    start = datetime.now(UTC) - _days(days_ago)
    return EmergencyAccessGranted(
        grant_id=new_id(),
        case_id=case_id,
        person_id=person,
        reason="enc:v1:test",
        valid_from=start,
        valid_until=start + _days(1),
        notify_person_ids=(),
    )


@dataclass
class ConsentHarness:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: DevIssuer
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> EventStore:
        return self.runtime.store

    def token(self, person: str, *, client: bool = False, scopes: tuple[str, ...] = ()) -> str:
        key = f"{person}|{client}|{','.join(scopes)}"
        if key not in self.tokens:
            self.tokens[key] = self.issuer.issue(person, client=client, scopes=scopes)
        return self.tokens[key]

    def auth(self, person: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(person, **kwargs)}"}

    async def load_region(self, document: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.put(
            "/api/v1/directory",
            content=yaml.safe_dump(document or REGION, allow_unicode=True).encode(),
            headers={**self.auth("admin"), "Content-Type": "application/yaml"},
        )

    async def register_child(
        self, age_years: int, guardians: list[tuple[str, bool]], *, by: str = "ann-kristin-allum"
    ) -> tuple[str, list[str], dict[str, Any]]:
        body = child_registration(age_years, guardians)
        response = await self.client.post("/api/v1/children", json=body, headers=self.auth(by))
        assert response.status_code in (200, 201), response.text
        data = response.json()
        return data["id"], [g["id"] for g in data.get("guardians", [])], body

    async def signed_consent(
        self, body: dict[str, Any], guardians: list[str], *, by: str = "ann-kristin-allum"
    ) -> str:
        """Ask for the consent ``body`` as ``by``, have every one of ``guardians`` sign it,
        wait until the read models have it, and answer its id."""
        asked = await self.client.post("/api/v1/consents", json=body, headers=self.auth(by))
        assert asked.status_code == 201, asked.text
        consent_id = str(asked.json()["id"])
        for guardian in guardians:
            signed = await self.client.post(
                f"/api/v1/consents/{consent_id}/signatures",
                json={"grantor_person_id": guardian},
                headers=self.auth(guardian),
            )
            assert signed.status_code == 201, signed.text
            await self.runtime.projector.wait_for(int(signed.headers["Stafett-Seq"]), 10)
        return consent_id

    async def publish_case_event(self, case_id: str, name: str, data: dict[str, Any]) -> int:
        event = CloudEvent(
            source="stafett/case",
            type=f"no.stafett.case.{name}.v1",
            subject=case_id,
            time=datetime.now(UTC),
            tenant=data.get("org_id", "4010"),
            actor="ann-kristin-allum",
            data=data,
        )
        result = await self.store.append(
            self.store.subject("case", case_id), [event], expected_version=None
        )
        return result.seq

    async def publish_consent_event(
        self, payload: EventData, aggregate: str, *, actor: str, at: datetime
    ) -> int:
        """Publish ``payload`` as the consent service would, as the first commit of
        ``aggregate``, at ``at``, and wait until the read models have it."""
        event = registry.envelope(
            payload,
            subject=aggregate,
            source="stafett/consent",
            tenant="4010",
            actor=actor,
            time=at,
        )
        result = await self.store.append(
            self.store.subject("consent", aggregate), [event], expected_version=0
        )
        await self.runtime.projector.wait_for(result.seq, 10)
        return result.seq

    async def past_emergency_grant(self, person: str, case_id: str, *, days_ago: float) -> str:
        """An emergency grant to ``person`` on the case that began ``days_ago`` days ago (and
        ended a day later): what makes a new request a repeat. Answers its id."""
        granted = past_emergency_grant(person, case_id, days_ago=days_ago)
        await self.publish_consent_event(
            granted, granted.grant_id, actor=person, at=granted.valid_from
        )
        return granted.grant_id

    async def open_case(
        self,
        *,
        unit_id: str = "siljan-ungdomsskole",
        org_id: str = "4010",
        holder: str = "ann-kristin-allum",
        child_id: str | None = None,
    ) -> tuple[str, int]:
        case_id = new_id()
        seq = await self.publish_case_event(
            case_id,
            "opened",
            {
                "case_id": case_id,
                "org_id": org_id,
                "unit_id": unit_id,
                "level": 1,
                "holder": {"person_id": holder, "unit_id": unit_id},
                "child_id": child_id,
                "concern": "enc:v1:test",  # a valid payload, or the projector refuses it
            },
        )
        await self.runtime.projector.wait_for(seq, 5)
        return case_id, seq

    async def add_team_member(
        self,
        case_id: str,
        person_id: str,
        unit_id: str,
        access: str = "read",
        *,
        org_id: str = "4010",
    ) -> int:
        return await self.publish_case_event(
            case_id,
            "team_member_added",
            {
                "case_id": case_id,
                "person_id": person_id,
                "unit_id": unit_id,
                "org_id": org_id,
                "access": access,
            },
        )

    async def decide(
        self,
        person: str,
        action: str,
        case_id: str,
        *,
        min_seq: int | None = None,
        entry_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "principal": person,
            "action": action,
            "resource": {"case_id": case_id, "entry_id": entry_id},
        }
        if min_seq is not None:
            body["min_seq"] = min_seq
        response = await self.client.post(
            "/api/v1/decisions",
            json=body,
            headers=self.auth("stafett-case", client=True, scopes=("stafett.decisions",)),
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events_since(self, seq: int) -> list[CloudEvent]:
        """The events after ``seq``, with every recorded denial published first (the relay
        would publish them a moment later)."""
        await self.runtime.extras["decisions"].publish_pending()
        return [e for c in await self.store.read(seq + 1, limit=10_000) for e in c.events]


def _days(n: float) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


@contextlib.asynccontextmanager
async def running_consent(
    nats_url: str, database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[ConsentHarness]:
    settings = CommonSettings(nats_url=nats_url, data_dir=data_dir, admins=["admin"])
    service = ConsentSettings(database_url=database_url, expiry_check_interval_s=3600, **overrides)
    app = create_app(SPEC, settings, service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://consent"
        ) as client,
    ):
        runtime: Runtime = app.state.runtime
        yield ConsentHarness(client, runtime, DevIssuer.load_or_create(data_dir))


@contextlib.asynccontextmanager
async def fresh_consent(
    nats_url: str, database_url: str, data_dir: Path
) -> AsyncIterator[ConsentHarness]:
    """The consent service on an emptied JetStream, with the test region loaded."""
    from stafett_shared.testing.plugin import reset_jetstream

    nc = await nats.connect(nats_url)
    await reset_jetstream(nc)
    await nc.close()
    async with running_consent(nats_url, database_url, data_dir) as harness:
        response = await harness.load_region()
        assert response.status_code == 200, response.text
        yield harness
