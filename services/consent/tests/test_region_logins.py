"""A staff member's logins in the region document: strict validation, and the events a load
yields (a login bound, a login unbound, none when nothing changed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from stafett_consent.domain import (
    MAX_LOGINS,
    DirectoryState,
    RegionDocument,
    StaffName,
    diff_directory,
)
from stafett_shared.contracts.directory import LoginBound, LoginUnbound
from stafett_shared.envelope import registry
from stafett_shared.settings import DEV_ISSUER

ENTRA = "https://login.microsoftonline.com/7a1c0e3b-0000-4000-8000-000000000001/v2.0"
FEIDE = "https://auth.dataporten.no"
OID = "5b0e1c9a-6f2d-4c1e-9b8a-2d4f6e8a0c11"


def _document(*staff: dict[str, Any]) -> dict[str, Any]:
    return {
        "region": "grenland",
        "organisations": [{"id": "4010", "name": "Siljan kommune", "kind": "municipality"}],
        "staff": list(staff),
    }


def _staff(person_id: str, *logins: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": person_id,
        "name": person_id.title(),
        "logins": [{"issuer": issuer, "subject": subject} for issuer, subject in logins],
    }


def _names(document: RegionDocument) -> dict[str, StaffName]:
    return {person.id: StaffName("", f"index-{person.id}") for person in document.staff}


def _known(document: RegionDocument, *logins: tuple[str, str, str]) -> DirectoryState:
    """The directory once ``document``'s staff are known, with ``logins`` bound."""
    return DirectoryState(
        organisations={"4010": ("Siljan kommune", document.organisations[0].kind)},
        staff={person.id: f"index-{person.id}" for person in document.staff},
        logins=frozenset(logins),
    )


def test_logins_are_optional_and_kept_as_written() -> None:
    document = RegionDocument.model_validate(
        _document(_staff("ann", (ENTRA, OID), (FEIDE, "ann@siljan.kommune.no")), _staff("bo"))
    )
    ann, bo = document.staff
    assert [(login.issuer, login.subject) for login in ann.logins] == [
        (ENTRA, OID),
        (FEIDE, "ann@siljan.kommune.no"),
    ]
    assert bo.logins == ()
    without = RegionDocument.model_validate(_document({"id": "bo", "name": "Bo"}))
    assert without.staff[0].logins == ()


def test_the_limits_themselves_are_accepted() -> None:
    logins = [("https://" + "i" * 492, f"{i:02d}" + "s" * 253) for i in range(MAX_LOGINS)]
    document = RegionDocument.model_validate(_document(_staff("ann", *logins)))
    assert len(document.staff[0].logins) == MAX_LOGINS == 10
    assert len(document.staff[0].logins[0].issuer) == 500
    assert len(document.staff[0].logins[0].subject) == 255


@pytest.mark.parametrize(
    "staff",
    [
        [_staff("ann", ("https://" + "i" * 493, OID))],  # issuer of 501 characters
        [_staff("ann", (ENTRA, "s" * 256))],  # subject of 256 characters
        [_staff("ann", *[(ENTRA, f"oid-{i}") for i in range(MAX_LOGINS + 1)])],
        [_staff("ann", ("", OID))],
        [_staff("ann", (ENTRA, ""))],
        [_staff("ann", (ENTRA, f" {OID}"))],
        [_staff("ann", (ENTRA, "ann nordmann"))],
        [_staff("ann", (DEV_ISSUER, "ann"))],  # its subject is the person id itself
        [_staff("ann", (ENTRA, OID), (ENTRA, OID))],  # the same login twice
        [_staff("ann", (ENTRA, OID)), _staff("bo", (ENTRA, OID))],  # bound to two people
        [{**_staff("ann"), "logins": [{"issuer": ENTRA, "subject": OID, "role": "admin"}]}],
        [{**_staff("ann"), "logins": [{"issuer": ENTRA}]}],
    ],
    ids=[
        "long-issuer",
        "long-subject",
        "eleven-logins",
        "empty-issuer",
        "empty-subject",
        "padded-subject",
        "subject-with-space",
        "development-issuer",
        "listed-twice",
        "two-people",
        "unknown-field",
        "no-subject",
    ],
)
def test_a_bad_login_is_refused(staff: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        RegionDocument.model_validate(_document(*staff))


def test_the_same_subject_from_two_issuers_is_two_logins() -> None:
    document = RegionDocument.model_validate(
        _document(_staff("ann", (ENTRA, "kari")), _staff("bo", (FEIDE, "kari")))
    )
    assert len(document.staff) == 2


def test_a_login_bound_to_two_people_names_neither_in_the_refusal() -> None:
    with pytest.raises(ValidationError) as refused:
        RegionDocument.model_validate(
            _document(_staff("ann", (ENTRA, OID)), _staff("bo", (ENTRA, OID)))
        )
    assert OID not in str(refused.value)
    assert "to ansatte" in str(refused.value)


@pytest.mark.parametrize(
    "person_id", ["login-0123456789abcdef0123456789abcdef", "login-", "login-x"]
)
def test_a_staff_id_shaped_like_a_derived_login_id_is_refused(person_id: str) -> None:
    with pytest.raises(ValidationError, match="kan ikke begynne med 'login-'"):
        RegionDocument.model_validate(_document({"id": person_id, "name": "Noen"}))


def test_ids_merely_containing_login_are_staff_ids_like_any() -> None:
    document = RegionDocument.model_validate(
        _document({"id": "logine-larsen", "name": "Logine"}, {"id": "per-login-1", "name": "Per"})
    )
    assert [person.id for person in document.staff] == ["logine-larsen", "per-login-1"]


def test_a_new_login_is_bound_on_its_staff_members_aggregate() -> None:
    document = RegionDocument.model_validate(_document(_staff("ann", (ENTRA, OID))))
    changes = diff_directory(_known(document), document, _names(document))
    assert changes == {"person-ann": [LoginBound(person_id="ann", issuer=ENTRA, sub=OID)]}


def test_an_unchanged_login_yields_nothing() -> None:
    document = RegionDocument.model_validate(_document(_staff("ann", (ENTRA, OID))))
    assert diff_directory(_known(document, ("ann", ENTRA, OID)), document, _names(document)) == {}


def test_a_login_left_out_or_its_staff_member_dropped_is_unbound() -> None:
    document = RegionDocument.model_validate(_document(_staff("ann")))
    state = _known(document, ("ann", ENTRA, OID), ("bo", FEIDE, "bo@siljan.kommune.no"))
    changes = diff_directory(state, document, _names(document))
    assert changes == {
        "person-ann": [LoginUnbound(person_id="ann", issuer=ENTRA, sub=OID)],
        "person-bo": [LoginUnbound(person_id="bo", issuer=FEIDE, sub="bo@siljan.kommune.no")],
    }


def test_a_login_moved_to_another_staff_member_is_unbound_and_bound() -> None:
    document = RegionDocument.model_validate(_document(_staff("ann"), _staff("bo", (ENTRA, OID))))
    changes = diff_directory(_known(document, ("ann", ENTRA, OID)), document, _names(document))
    assert changes == {
        "person-ann": [LoginUnbound(person_id="ann", issuer=ENTRA, sub=OID)],
        "person-bo": [LoginBound(person_id="bo", issuer=ENTRA, sub=OID)],
    }


def test_the_login_events_round_trip_through_the_event_registry() -> None:
    for event in (
        LoginBound(person_id="ann", issuer=ENTRA, sub=OID),
        LoginUnbound(person_id="ann", issuer=ENTRA, sub=OID),
    ):
        envelope = registry.envelope(
            event,
            subject="person-ann",
            source="stafett/consent",
            tenant="region",
            actor="admin",
            time=datetime.now(UTC),
        )
        assert envelope.type == event.event_type
        assert registry.payload(envelope) == event
    assert LoginBound.subject_pattern == "stafett.ev.directory.person-{person_id}"
    assert LoginBound.owner == "consent"
