"""The holder's unit's contact line on the families' case page: only what the unit gave,
with a tel: link of digits and + only."""

from __future__ import annotations

from stafett_portal.family import People


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
