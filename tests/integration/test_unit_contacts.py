"""A unit's own contact details (issue 18, item 2: the holder «with contact»): the region
document may give a unit an organisational phone number and e-mail address; the directory
carries them on the unit events, the staff directory, the families' read of the
organisations and the organisation's own part show them, and a changed contact is a changed
unit. Bad contact details are refused in bokmål and write nothing. Real NATS, SQLite and
PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

from stafett_consent.testing import REGION, ConsentHarness

PROBLEM = "application/problem+json"
SCHOOL = "siljan-ungdomsskole"
CHANGED = "no.stafett.directory.unit_changed.v1"
PHONE = "35 00 00 00"
EMAIL = "ungdomsskolen@siljan.kommune.no"


def _region(**contact: Any) -> dict[str, Any]:
    document = copy.deepcopy(REGION)
    school = next(u for u in document["organisations"][0]["units"] if u["id"] == SCHOOL)
    school.update(contact)
    return document


async def _units(consent: ConsentHarness, path: str, who: str) -> dict[str, dict[str, Any]]:
    response = await consent.client.get(path, headers=consent.auth(who))
    assert response.status_code == 200, response.text
    body = response.json()
    # The directory and the families' read list organisations; an organisation's part is one.
    orgs = [body["part"]] if "part" in body else body.get("organisations") or body["items"]
    return {u["id"]: u for org in orgs for u in org["units"]}


async def _changed_units(consent: ConsentHarness, seq: int) -> list[dict[str, Any]]:
    chunks = await consent.store.read(seq + 1, limit=10_000)
    return [e.data for c in chunks for e in c.events if e.type == CHANGED]


async def test_a_units_contact_details_are_shown_to_staff_families_and_its_organisation(
    consent: ConsentHarness,
) -> None:
    before = await consent.store.last_seq()
    loaded = await consent.load_region(_region(phone=PHONE, email=EMAIL))
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changes"] == {"unit_changed": 1}
    [event] = await _changed_units(consent, before)
    assert (event["unit_id"], event["phone"], event["email"]) == (SCHOOL, PHONE, EMAIL)

    staff = await _units(consent, "/api/v1/directory", "ann-kristin-allum")
    assert staff[SCHOOL] == {
        "id": SCHOOL,
        "name": "Siljan ungdomsskole",
        "sector": "school",
        "phone": PHONE,
        "email": EMAIL,
    }
    # A unit without contact details shows none.
    assert "phone" not in staff["siljan-helsestasjon"]
    assert "email" not in staff["siljan-helsestasjon"]
    # The families' read (decision 0031): any person, a guardian too.
    family = await _units(consent, "/api/v1/organisations", "en-foresatt")
    assert (family[SCHOOL]["phone"], family[SCHOOL]["email"]) == (PHONE, EMAIL)
    part = await _units(consent, "/api/v1/directory/orgs/4010", "admin")
    assert (part[SCHOOL]["phone"], part[SCHOOL]["email"]) == (PHONE, EMAIL)

    # The same document again writes nothing; a changed or dropped contact is a changed unit.
    again = await consent.load_region(_region(phone=PHONE, email=EMAIL))
    assert again.json()["changes"] == {}
    before = await consent.store.last_seq()
    moved = await consent.load_region(_region(phone=PHONE, email="skolen@siljan.kommune.no"))
    assert moved.json()["changes"] == {"unit_changed": 1}
    [event] = await _changed_units(consent, before)
    assert (event["phone"], event["email"]) == (PHONE, "skolen@siljan.kommune.no")
    family = await _units(consent, "/api/v1/organisations", "en-foresatt")
    assert family[SCHOOL]["email"] == "skolen@siljan.kommune.no"
    dropped = await consent.load_region(_region(email="skolen@siljan.kommune.no"))
    assert dropped.json()["changes"] == {"unit_changed": 1}
    family = await _units(consent, "/api/v1/organisations", "en-foresatt")
    assert "phone" not in family[SCHOOL]
    assert family[SCHOOL]["email"] == "skolen@siljan.kommune.no"


async def test_the_organisations_part_carries_its_units_contact_details(
    consent: ConsentHarness,
) -> None:
    assert (await consent.load_region(_region(phone=PHONE))).status_code == 200
    path = "/api/v1/directory/orgs/4010"
    part = (await consent.client.get(path, headers=consent.auth("admin"))).json()["part"]
    # The part read back and sent unchanged changes nothing.
    same = await consent.client.put(path, json=part, headers=consent.auth("admin"))
    assert same.status_code == 200, same.text
    assert same.json()["changes"] == {}
    school = next(u for u in part["units"] if u["id"] == SCHOOL)
    school["phone"] = "+47 35 00 00 01"
    school["email"] = EMAIL
    changed = await consent.client.put(path, json=part, headers=consent.auth("admin"))
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == {"unit_changed": 1}
    units = await _units(consent, "/api/v1/directory", "ann-kristin-allum")
    assert (units[SCHOOL]["phone"], units[SCHOOL]["email"]) == ("+47 35 00 00 01", EMAIL)


async def test_bad_contact_details_are_refused_in_bokmal_and_write_nothing(
    consent: ConsentHarness,
) -> None:
    assert (await consent.load_region(_region(phone=PHONE, email=EMAIL))).status_code == 200
    phone = "Telefonnummeret må ha 8 til 16 tegn"
    email = "E-postadressen har ikke riktig form"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"phone": "1234567"}, phone),  # too short
        ({"phone": "1" * 17}, "Teksten kan ha høyst 16 tegn."),
        ({"phone": "35-00-00-00"}, phone),
        ({"phone": "tlf 35000000"}, phone),
        ({"phone": "+ 35000000"}, phone),
        ({"phone": 35000000}, "Verdien må være tekst."),  # a number, not text
        ({"email": "ungdomsskolen.siljan.kommune.no"}, email),
        ({"email": "ungdomsskolen@siljan"}, email),
        ({"email": "en skole@siljan.kommune.no"}, email),
        ({"email": "a@b@siljan.kommune.no"}, email),
        ({"email": "x" * 64 + "@" + "s" * 190 + ".kommune.no"}, "høyst 254 tegn"),
    ]
    for contact, message in bad:
        before = await consent.store.last_seq()
        # A valid change beside the bad one: nothing of the document may be applied.
        document = _region(**contact)
        document["organisations"][0]["units"][1]["phone"] = "35 00 00 10"
        response = await consent.load_region(document)
        assert response.status_code == 422, (contact, response.text)
        assert response.headers["content-type"].split(";")[0] == PROBLEM
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert message in response.text, (contact, response.text)
        assert "Ann Kristin Allum" not in response.text
        assert await consent.store.last_seq() == before, "a refused document was written"
    units = await _units(consent, "/api/v1/organisations", "en-foresatt")
    assert (units[SCHOOL]["phone"], units[SCHOOL]["email"]) == (PHONE, EMAIL)
    assert "phone" not in units["siljan-helsestasjon"]
