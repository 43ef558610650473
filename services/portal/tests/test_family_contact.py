"""The holder's unit's contact line on the families' case page: only what the unit gave,
with a tel: link of digits and + only."""

from __future__ import annotations

from typing import Any

from stafett_portal.directory import Directory
from stafett_portal.family import People, _asker


def test_the_contact_line_holds_what_the_unit_gave_and_a_dialable_number() -> None:
    people = People(
        me="guri",
        units={
            "skole": {
                "id": "skole",
                "name": "Skolen",
                "phone": "+47 35 00 00 00",
                "email": "s@k.no",
            },
            "helse": {"id": "helse", "name": "Helsestasjonen", "email": "h@k.no"},
            "ppt": {"id": "ppt", "name": "PPT"},
            "rart": {"id": "rart", "name": "Rart", "phone": "ingen", "email": 7},
        },
    )
    assert people.contact("skole") == {
        "phone": "+47 35 00 00 00",
        "tel": "+4735000000",
        "email": "s@k.no",
    }
    assert people.contact("helse") == {"email": "h@k.no"}
    assert people.contact("ppt") == {}
    assert people.contact("rart") == {}  # nothing to dial, and an e-mail that is no text
    assert people.contact("ukjent") == {}
    assert people.contact(None) == {}


def test_who_asked_for_a_consent_is_said_from_the_familys_side() -> None:
    grantors = [
        {"kind": "guardians", "members": ["guri", "per"], "needed": "all"},
        {"kind": "youth", "members": ["sara"], "needed": "all"},
    ]

    def asker(requested_by: object, me: str = "guri") -> str | None:
        return _asker({"grantors": grantors, "requested_by": requested_by}, me)

    assert asker("ann-kristin-allum") == "staff"
    assert asker("guri") == "me"
    assert asker("per") == "guardian"  # the other guardian renewed it
    assert asker("sara") == "youth"
    assert asker("sara", me="sara") == "me"
    assert asker(None) is None  # a consent from before the service kept who asked
    assert asker("") is None


def test_an_agencys_system_is_named_by_its_organisation_on_both_who_read_pages() -> None:
    card: dict[str, Any] = {
        "id": "client-nav-grenland",
        "name": "NAV Grenlands saksbehandlingssystem",
        "roles": [],
        "client": {"org_id": "nav-grenland", "org_name": "NAV Grenland"},
    }
    people = People(me="guri", staff={card["id"]: card, "hanne": {"id": "hanne", "roles": []}})
    assert people.system("client-nav-grenland") == "NAV Grenland (fagsystem)"
    assert people.system_name("client-nav-grenland") == "NAV Grenlands saksbehandlingssystem"
    # A system the directory no longer names, or a person's card, is no agency's name.
    assert people.system("client-borte") == "Et fagsystem"
    assert people.system("hanne") == "Et fagsystem"
    assert people.system_name("hanne") == ""

    directory = Directory.from_answer(
        {
            "organisations": [{"id": "nav-grenland", "name": "NAV Grenland", "units": []}],
            "clients": [{"id": "client-nav-grenland", "org_id": "nav-grenland"}, {"id": 7}],
        }
    )
    assert directory.client_name("client-nav-grenland") == "NAV Grenland (fagsystem)"
    assert directory.client_name("client-borte") == "Et fagsystem"
