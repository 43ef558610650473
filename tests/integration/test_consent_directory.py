"""The directory as the portal reads it (`GET /api/v1/directory`): organisations, open units,
each organisation's guide and measure catalogue, and staff with their roles and names. Only
staff and administrators may read it; guides are loaded and changed with the region
document. Real NATS, SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from stafett_consent.testing import REGION, ConsentHarness

PROBLEM = "application/problem+json"
GUIDE_TYPE = "no.stafett.directory.organisation_guide_set.v1"
CATALOGUE_TYPE = "no.stafett.directory.organisation_measure_catalogue_set.v1"
SILJAN_GUIDE = {
    0: ["Snakk med eleven om det du har lagt merke til."],
    1: ["Snakk med eleven og foresatte om bekymringen.", "Opprett stafettlogg."],
    2: ["Vurder om helsesykepleier eller PPT bør inn (nivå 2)."],
    3: ["Meld saken til ressursteamet med samtykke."],
}
SILJAN_CATALOGUE = [
    {"title": "Samtale med elev hver fredag", "goal": "Eleven har en fast voksen å snakke med."},
    {"title": "Leksehjelp"},
    {"title": "Samtalegruppe hos helsesykepleier", "goal": "Eleven får det bedre."},
]


def _with_guide(guide: dict[int, list[str]] | None = None) -> dict[str, Any]:
    document = copy.deepcopy(REGION)
    siljan = document["organisations"][0]
    assert siljan["id"] == "4010"
    siljan["guide"] = copy.deepcopy(guide or SILJAN_GUIDE)
    siljan["measure_catalogue"] = copy.deepcopy(SILJAN_CATALOGUE)
    return document


async def _directory(consent: ConsentHarness, person: str, **token: Any) -> httpx.Response:
    return await consent.client.get("/api/v1/directory", headers=consent.auth(person, **token))


async def _types_since(consent: ConsentHarness, seq: int) -> list[str]:
    return [e.type for c in await consent.store.read(seq + 1, limit=10_000) for e in c.events]


async def test_staff_read_the_directory_with_names_guides_and_measure_catalogues(
    consent: ConsentHarness,
) -> None:
    loaded = await consent.load_region(_with_guide())
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"] == {
        "organisation_guide_set": 1,
        "organisation_measure_catalogue_set": 1,
    }

    response = await _directory(consent, "ann-kristin-allum")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["region"] == "grenland"
    orgs = {org["id"]: org for org in body["organisations"]}
    assert set(orgs) == {"4010", "40"}
    siljan = orgs["4010"]
    assert (siljan["name"], siljan["kind"]) == ("Siljan kommune", "municipality")
    assert {"id": "siljan-helsestasjon", "name": "Helsestasjonen i Siljan", "sector": "health"} in (
        siljan["units"]
    )
    assert siljan["guide"] == {str(level): steps for level, steps in SILJAN_GUIDE.items()}
    assert siljan["measure_catalogue"] == [
        {
            "title": "Samtale med elev hver fredag",
            "goal": "Eleven har en fast voksen å snakke med.",
        },
        {"title": "Leksehjelp", "goal": None},
        {"title": "Samtalegruppe hos helsesykepleier", "goal": "Eleven får det bedre."},
    ]
    assert orgs["40"]["guide"] == {"0": [], "1": [], "2": [], "3": []}
    assert orgs["40"]["measure_catalogue"] == []

    staff = {person["id"]: person for person in body["staff"]}
    assert set(staff) == {p["id"] for p in REGION["staff"]}
    assert staff["ann-kristin-allum"] == {
        "id": "ann-kristin-allum",
        "name": "Ann Kristin Allum",  # decrypted: the events and read model hold it encrypted
        "roles": [{"unit_id": "siljan-ungdomsskole", "role": "teacher"}],
    }
    assert staff["helse-hanne"]["name"] == "Hanne Helse"

    admin = await _directory(consent, "admin")
    assert admin.status_code == 200, admin.text
    assert admin.json() == body


async def test_guardians_youth_clients_and_unknown_persons_may_not_read_the_directory(
    consent: ConsentHarness,
) -> None:
    child_id, (guardian, *_), _ = await consent.register_child(16, [("Mor", True)])
    callers: list[tuple[str, dict[str, Any]]] = [
        (guardian, {}),
        (child_id, {}),
        ("ukjent-person", {}),
        ("stafett-case", {"client": True, "scopes": ("stafett.decisions",)}),
    ]
    for person, token in callers:
        response = await _directory(consent, person, **token)
        assert response.status_code == 403, (person, response.text)
        assert response.headers["content-type"].split(";")[0] == PROBLEM
        assert response.json()["code"] == "forbidden"
        assert "Ann Kristin" not in response.text
    anonymous = await consent.client.get("/api/v1/directory")
    assert anonymous.status_code == 401


async def test_a_staff_member_whose_roles_ended_leaves_the_directory_and_may_no_longer_read_it(
    consent: ConsentHarness,
) -> None:
    document = copy.deepcopy(REGION)
    document["staff"] = [p for p in document["staff"] if p["id"] != "rektor-siljan"]
    assert (await consent.load_region(document)).status_code == 200
    refused = await _directory(consent, "rektor-siljan")
    assert refused.status_code == 403
    listed = await _directory(consent, "ann-kristin-allum")
    assert "rektor-siljan" not in {p["id"] for p in listed.json()["staff"]}


async def test_loading_the_same_guide_twice_writes_nothing_the_second_time(
    consent: ConsentHarness,
) -> None:
    first = await consent.load_region(_with_guide())
    assert first.status_code == 200, first.text
    before = await consent.store.last_seq()
    again = await consent.load_region(_with_guide())
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == {}
    assert await consent.store.last_seq() == before


async def test_a_changed_guide_is_applied_and_the_unchanged_catalogue_is_left_alone(
    consent: ConsentHarness,
) -> None:
    assert (await consent.load_region(_with_guide())).status_code == 200
    before = await consent.store.last_seq()
    changed = copy.deepcopy(SILJAN_GUIDE)
    changed[2] = ["Hent samtykke, og vurder om helsesykepleier eller PPT bør inn."]
    reloaded = await consent.load_region(_with_guide(changed))
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["changes"] == {"organisation_guide_set": 1}
    assert await _types_since(consent, before) == [GUIDE_TYPE]

    body = (await _directory(consent, "helse-hanne")).json()
    siljan = next(org for org in body["organisations"] if org["id"] == "4010")
    assert siljan["guide"]["2"] == changed[2]
    assert siljan["guide"]["1"] == SILJAN_GUIDE[1]
    assert len(siljan["measure_catalogue"]) == len(SILJAN_CATALOGUE)

    cleared = await consent.load_region(REGION)
    assert cleared.json()["changes"] == {
        "organisation_guide_set": 1,
        "organisation_measure_catalogue_set": 1,
    }
    body = (await _directory(consent, "helse-hanne")).json()
    siljan = next(org for org in body["organisations"] if org["id"] == "4010")
    assert siljan["guide"] == {"0": [], "1": [], "2": [], "3": []}
    assert siljan["measure_catalogue"] == []


async def test_a_bad_guide_or_catalogue_is_refused_and_writes_nothing(
    consent: ConsentHarness,
) -> None:
    assert (await consent.load_region(_with_guide())).status_code == 200
    too_long = _with_guide({0: ["x" * 301]})
    no_such_level = _with_guide({4: ["Nivå 4 finnes ikke."]})
    extra_key = _with_guide()
    extra_key["organisations"][0]["measure_catalogue"][0]["responsible"] = "Ann Kristin Allum"
    too_many = _with_guide({1: [f"Steg {i}" for i in range(21)]})
    # A valid change beside the bad one: nothing of the document may be applied.
    renamed = _with_guide({0: ["Ny tekst"], 3: [""]})
    for document in (too_long, no_such_level, extra_key, too_many, renamed):
        before = await consent.store.last_seq()
        response = await consent.load_region(document)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].split(";")[0] == PROBLEM
        assert response.json()["code"] == "validation_error"
        assert response.json()["errors"]
        assert "Ann Kristin Allum" not in response.text
        assert await consent.store.last_seq() == before, "a refused document was written"
    body = (await _directory(consent, "ann-kristin-allum")).json()
    siljan = next(org for org in body["organisations"] if org["id"] == "4010")
    assert siljan["guide"]["0"] == SILJAN_GUIDE[0]
