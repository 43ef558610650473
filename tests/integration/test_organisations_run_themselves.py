"""An organisation's administrator manages its own part of the region document: its units,
its staff and their roles in its units, its settings (issue 17, item 10). Another
organisation's part, a shared organisation (the county) and what another organisation
holds stay out of reach; the region's administrator may change them all. Over HTTP on real
NATS and both databases."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stafett_consent.testing import REGION, ConsentHarness, consent_request, fresh_consent
from stafett_shared.testing import NatsHandle

SILJAN_ADMIN = "siljan-admin"  # administers Siljan kommune (4010)
PORSGRUNN_ADMIN = "porsgrunn-admin"  # administers Porsgrunn kommune (4001)
COUNTY_ADMIN = "fylke-admin"  # administers the county (40): its audit scopes, not its part
ISSUER = "https://login.grenland.example"
SILJAN = "/api/v1/directory/orgs/4010"
PORSGRUNN = "/api/v1/directory/orgs/4001"
COUNTY = "/api/v1/directory/orgs/40"


def _region() -> dict[str, Any]:
    """The test region with Porsgrunn kommune beside Siljan, a staff member with roles in
    both, and a Porsgrunn teacher's login."""
    region = copy.deepcopy(REGION)
    region["organisations"].append(
        {
            "id": "4001",
            "name": "Porsgrunn kommune",
            "kind": "municipality",
            "units": [{"id": "porsgrunn-ppt", "name": "PPT Porsgrunn", "sector": "ppt"}],
        }
    )
    region["staff"] += [
        {
            "id": "delt-dina",
            "name": "Dina Delt",
            "roles": [
                {"unit_id": "siljan-barnevern", "role": "child_welfare_worker"},
                {"unit_id": "porsgrunn-ppt", "role": "pp_adviser"},
            ],
        },
        {
            "id": "ppt-per",
            "name": "Per Ppt",
            "roles": [{"unit_id": "porsgrunn-ppt", "role": "pp_adviser"}],
            "logins": [{"issuer": ISSUER, "subject": "per-i-porsgrunn"}],
        },
    ]
    return region


@pytest.fixture
async def consent(
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ConsentHarness]:
    admins = {"4010": [SILJAN_ADMIN], "4001": [PORSGRUNN_ADMIN], "40": [COUNTY_ADMIN]}
    monkeypatch.setenv("STAFETT_ORG_ADMINS", json.dumps(admins))
    async with fresh_consent(nats_server.url, database_url, tmp_path) as harness:
        loaded = await harness.client.put(
            "/api/v1/directory", json=_region(), headers=harness.auth("admin")
        )
        assert loaded.status_code == 200, loaded.text
        yield harness


async def _part(consent: ConsentHarness, path: str, who: str) -> dict[str, Any]:
    response = await consent.client.get(path, headers=consent.auth(who))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _last_seq(consent: ConsentHarness) -> int:
    """The stream's end, with every recorded denial published (the relay would publish
    them a moment later): what comes after it is what a request wrote."""
    await consent.runtime.extras["decisions"].publish_pending()
    return await consent.store.last_seq()


def _person(part: dict[str, Any], person_id: str) -> dict[str, Any]:
    return next(p for p in part["staff"] if p["id"] == person_id)


async def test_siljans_administrator_changes_its_units_staff_and_settings_and_access_follows_at_once(  # noqa: E501
    consent: ConsentHarness,
) -> None:
    case_id, seq = await consent.open_case()  # Siljan ungdomsskole (4010)
    assert (await consent.decide("ny-leder", "case:read", case_id))["decision"] == "deny"
    assert (await consent.decide("rektor-siljan", "case:read", case_id))["decision"] == "permit"

    answer = await _part(consent, SILJAN, SILJAN_ADMIN)
    assert (answer["id"], answer["kind"]) == ("4010", "municipality")
    assert answer["shared_staff"] == ["delt-dina"]
    assert _person(answer["part"], "delt-dina")["roles"] == [
        {"unit_id": "siljan-barnevern", "role": "child_welfare_worker"}
    ]  # the roles in Porsgrunn are Porsgrunn's
    assert "ppt-per" not in {p["id"] for p in answer["part"]["staff"]}
    assert answer["settings_in_force"]["youth_consent_age"] == 15

    part = answer["part"]
    part["units"].append({"id": "siljan-skule", "name": "Siljan skule", "sector": "school"})
    part["staff"] = [p for p in part["staff"] if p["id"] != "rektor-siljan"]
    part["staff"].append(
        {
            "id": "ny-leder",
            "name": "Nina Leder",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "leader"}],
            "logins": [{"issuer": ISSUER, "subject": "nina-i-siljan"}],
        }
    )
    _person(part, "delt-dina")["roles"].append(
        {"unit_id": "siljan-skule", "role": "child_welfare_worker"}
    )
    part["settings"] = {"youth_consent_age": 16, "consent_max_days": 365}
    changed = await consent.client.put(SILJAN, json=part, headers=consent.auth(SILJAN_ADMIN))
    assert changed.status_code == 200, changed.text
    assert int(changed.headers["Stafett-Seq"]) > seq
    assert changed.json()["changes"] == {
        "unit_registered": 1,
        "organisation_settings_set": 1,
        "staff_registered": 1,
        "role_granted": 2,
        "role_ended": 1,
        "login_bound": 1,
    }

    # Access decisions follow at once: the new leader sees the unit's cases, the old one not.
    permitted = await consent.decide("ny-leder", "case:read", case_id)
    assert (permitted["decision"], permitted["basis"]) == ("permit", "unit_leader")
    assert (await consent.decide("rektor-siljan", "case:read", case_id))["decision"] == "deny"
    assert await consent.runtime.extras["consent"].login_of(ISSUER, "nina-i-siljan") == "ny-leder"

    # Porsgrunn's roles of the shared staff member stand, and nothing of Porsgrunn changed.
    directory = await consent.client.get("/api/v1/directory", headers=consent.auth("admin"))
    roles = {p["id"]: p["roles"] for p in directory.json()["staff"]}
    assert {"unit_id": "porsgrunn-ppt", "role": "pp_adviser"} in roles["delt-dina"]
    assert len(roles["delt-dina"]) == 3
    assert roles["ppt-per"] == [{"unit_id": "porsgrunn-ppt", "role": "pp_adviser"}]

    # The part answers as it was loaded, and loading it again writes nothing.
    again = await _part(consent, SILJAN, SILJAN_ADMIN)
    assert again["part"]["settings"]["youth_consent_age"] == 16
    assert again["settings_in_force"] == {
        "youth_consent_age": 16,
        "health_youth_consent_age": 16,
        "consent_default_days": 365,
        "consent_max_days": 365,
        "level0_days": 14,  # the reminder times Siljan left out are the region's
        "evaluation_warning_days": 7,
        "handover_days": 3,
        "inactive_days": 60,
        "consent_reminder_days": 30,
    }
    before = await _last_seq(consent)
    repeated = await consent.client.put(SILJAN, json=part, headers=consent.auth(SILJAN_ADMIN))
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["changes"] == {}
    assert await _last_seq(consent) == before


async def test_siljans_settings_decide_who_consents_and_for_how_long(
    consent: ConsentHarness,
) -> None:
    child_id, _guardians, _ = await consent.register_child(15, [("Mor", True)])
    case_id, _seq = await consent.open_case(child_id=child_id)
    school = {"org_ids": ["4010"], "sectors": ["school"], "purpose": "Samarbeid om skolen."}
    holder = consent.auth("ann-kristin-allum")

    region_rule = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id, scope=school), headers=holder
    )
    assert region_rule.json()["rule"] == "guardians_and_youth"  # the region's 15

    part = (await _part(consent, SILJAN, SILJAN_ADMIN))["part"]
    part["settings"] = {"youth_consent_age": 16, "consent_max_days": 180}
    changed = await consent.client.put(SILJAN, json=part, headers=consent.auth(SILJAN_ADMIN))
    assert changed.status_code == 200, changed.text

    own_rule = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id, scope=school), headers=holder
    )
    assert own_rule.status_code == 201, own_rule.text
    assert (own_rule.json()["rule"], own_rule.json()["age_applied"]) == ("guardians", 15)
    too_long = consent_request(
        case_id,
        scope=school,
        valid_until=(datetime.now(UTC) + timedelta(days=200)).isoformat(),
    )
    refused = await consent.client.post("/api/v1/consents", json=too_long, headers=holder)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validity_too_long"
    listed = await consent.client.get(f"/api/v1/consents?case_id={case_id}", headers=holder)
    assert listed.status_code == 200, listed.text
    valid_until = datetime.fromisoformat(listed.json()["items"][-1]["valid_until"])
    assert valid_until - datetime.now(UTC) <= timedelta(days=180)  # the default, cut to 180


async def test_an_organisations_administrator_gets_403_for_another_municipality_and_the_county(
    consent: ConsentHarness,
) -> None:
    siljan = consent.auth(SILJAN_ADMIN)
    county_part = {"units": [{"id": "skien-vgs", "name": "Skien vgs", "sector": "upper_secondary"}]}
    before = await _last_seq(consent)
    for path in (PORSGRUNN, COUNTY):
        read = await consent.client.get(path, headers=siljan)
        assert read.status_code == 403, read.text
        assert read.headers["content-type"] == "application/problem+json"
        written = await consent.client.put(path, json=county_part, headers=siljan)
        assert written.status_code == 403, written.text
    # Even the county's own administrator may not change it: a shared organisation is the
    # region's to manage.
    for request in (
        consent.client.get(COUNTY, headers=consent.auth(COUNTY_ADMIN)),
        consent.client.put(COUNTY, json=county_part, headers=consent.auth(COUNTY_ADMIN)),
    ):
        shared = await request
        assert shared.status_code == 403, shared.text
        assert "regionens administrator" in shared.json()["detail"]
    # A staff member of Siljan may not load any part.
    staff = await consent.client.put(SILJAN, json={}, headers=consent.auth("rektor-siljan"))
    assert staff.status_code == 403, staff.text
    assert await _last_seq(consent) == before

    region_admin = consent.auth("admin")
    unknown = await consent.client.get("/api/v1/directory/orgs/9999", headers=region_admin)
    assert unknown.status_code == 404, unknown.text
    county = (await _part(consent, COUNTY, "admin"))["part"]
    county["units"].append(county_part["units"][0])
    changed = await consent.client.put(COUNTY, json=county, headers=region_admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == {"unit_registered": 1}
    units = [u["id"] for u in (await _part(consent, COUNTY, "admin"))["part"]["units"]]
    assert sorted(units) == ["porsgrunn-vgs", "skien-vgs"]


async def test_siljans_administrator_cannot_touch_what_another_organisation_holds(
    consent: ConsentHarness,
) -> None:
    siljan = consent.auth(SILJAN_ADMIN)
    part = (await _part(consent, SILJAN, SILJAN_ADMIN))["part"]
    before = await _last_seq(consent)

    def but(change: dict[str, Any]) -> dict[str, Any]:
        return {**copy.deepcopy(part), **change}

    dina = _person(part, "delt-dina")

    def with_dina(**change: Any) -> dict[str, Any]:
        return but({"staff": [p if p is not dina else {**dina, **change} for p in part["staff"]]})

    newcomer = {"id": "ny-nils", "name": "Nils Ny", "roles": []}
    refused = {
        "a unit of Porsgrunn": but(
            {"units": [*part["units"], {"id": "porsgrunn-ppt", "name": "PPT", "sector": "ppt"}]}
        ),
        "the shared staff member's name": with_dina(name="Dina Annet"),
        "the shared staff member's logins": with_dina(logins=[{"issuer": ISSUER, "subject": "x"}]),
        "a Porsgrunn teacher's login": but(
            {
                "staff": [
                    *part["staff"],
                    {**newcomer, "logins": [{"issuer": ISSUER, "subject": "per-i-porsgrunn"}]},
                ]
            }
        ),
        "a client of Porsgrunn": but(
            {
                "clients": [
                    {
                        "id": "client-porsgrunn-fag",
                        "name": "Fagsystem",
                        "org_id": "4001",
                        "issuer": "https://maskinporten.no/",
                        "client_id": "fag",
                        "consumer_org": "889640782",
                    }
                ]
            }
        ),
    }
    for what, body in refused.items():
        response = await consent.client.put(SILJAN, json=body, headers=siljan)
        assert response.status_code == 403, (what, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    role_elsewhere = but(
        {"staff": [{**newcomer, "roles": [{"unit_id": "porsgrunn-ppt", "role": "pp_adviser"}]}]}
    )
    response = await consent.client.put(SILJAN, json=role_elsewhere, headers=siljan)
    assert response.status_code == 422, response.text
    assert await _last_seq(consent) == before


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"youth_consent_age": 30}, None),
        ({"consent_max_days": 0}, None),
        ({"consent_max_days": 5000}, None),
        ({"reminder_days": 3}, None),
        ({"consent_reminder_days": 0}, None),
        ({"consent_reminder_days": 181}, None),
        (
            {"consent_reminder_days": 30, "consent_max_days": 30},
            "Påminnelsen må komme før det lengste et samtykke kan vare.",
        ),
        (
            {"youth_consent_age": 16, "health_youth_consent_age": 15},
            "Aldersgrensen for samtykke om helse kan ikke være lavere enn den vanlige.",
        ),
        (
            {"consent_default_days": 400, "consent_max_days": 365},
            "Vanlig varighet for samtykke kan ikke være lengre enn den lengste.",
        ),
    ],
)
async def test_settings_out_of_range_are_refused_in_bokmal_and_write_nothing(
    consent: ConsentHarness, settings: dict[str, Any], message: str | None
) -> None:
    part = (await _part(consent, SILJAN, SILJAN_ADMIN))["part"]
    before = await _last_seq(consent)
    response = await consent.client.put(
        SILJAN, json={**part, "settings": settings}, headers=consent.auth(SILJAN_ADMIN)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert all(e["loc"][:1] == ["settings"] for e in errors), errors
    if message is not None:
        assert [e["msg"] for e in errors] == [message]
    assert await _last_seq(consent) == before


async def test_a_part_that_is_not_json_or_yaml_is_refused(consent: ConsentHarness) -> None:
    siljan = consent.auth(SILJAN_ADMIN)
    broken = await consent.client.put(
        SILJAN, content=b"{", headers={**siljan, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400, broken.text
    xml = await consent.client.put(
        SILJAN, content=b"<part/>", headers={**siljan, "Content-Type": "application/xml"}
    )
    assert xml.status_code == 415, xml.text


async def test_a_closed_unit_stays_its_organisations(consent: ConsentHarness) -> None:
    porsgrunn = (await _part(consent, PORSGRUNN, PORSGRUNN_ADMIN))["part"]
    porsgrunn["units"] = [{"id": "porsgrunn-skole", "name": "Porsgrunn skole", "sector": "school"}]
    porsgrunn["staff"] = []
    closed = await consent.client.put(
        PORSGRUNN, json=porsgrunn, headers=consent.auth(PORSGRUNN_ADMIN)
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["changes"]["unit_closed"] == 1

    siljan = (await _part(consent, SILJAN, SILJAN_ADMIN))["part"]
    siljan["units"].append({"id": "porsgrunn-ppt", "name": "PPT", "sector": "ppt"})
    before = await _last_seq(consent)
    taken = await consent.client.put(SILJAN, json=siljan, headers=consent.auth(SILJAN_ADMIN))
    assert taken.status_code == 403, taken.text
    assert await _last_seq(consent) == before


async def test_the_region_document_sets_an_organisations_settings_too(
    consent: ConsentHarness,
) -> None:
    region = _region()
    region["organisations"][0]["settings"] = {"consent_default_days": 90}
    loaded = await consent.client.put(
        "/api/v1/directory", json=region, headers=consent.auth("admin")
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"] == {"organisation_settings_set": 1}
    answer = await _part(consent, SILJAN, SILJAN_ADMIN)
    assert answer["settings_in_force"]["consent_default_days"] == 90

    region["organisations"][0]["settings"] = {"youth_consent_age": 11}
    refused = await consent.client.put(
        "/api/v1/directory", json=region, headers=consent.auth("admin")
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"][:3] == ["organisations", "0", "settings"]
