"""The holder's unit's contact line on the families' case page: only what the unit gave,
with a tel: link of digits and + only."""

from __future__ import annotations

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
