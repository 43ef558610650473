"""Agency clients in the region document: strict validation (ids apart from staff ids, an
organisation number, bounded), and the events a load yields (registered, unregistered,
registered again when it changes, none when nothing changed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from stafett_consent.domain import (
    MAX_CLIENTS,
    ClientAccess,
    DirectoryState,
    RegionDocument,
    StaffName,
    diff_directory,
)
from stafett_shared.contracts.directory import ClientRegistered, ClientUnregistered, OrgKind
from stafett_shared.envelope import registry
from stafett_shared.settings import DEV_ISSUER

MASKINPORTEN = "https://maskinporten.no/"
ORG = "889640782"
OTHER_ORG = "974760673"


def _document(*clients: dict[str, Any], staff: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "region": "grenland",
        "organisations": [
            {"id": "4010", "name": "Siljan kommune", "kind": "municipality"},
            {"id": "nav-vest", "name": "NAV Vestfold og Telemark", "kind": "state_agency"},
        ],
        "staff": list(staff),
        "clients": list(clients),
    }


def _client(client: str = "client-nav-tiltak", **fields: Any) -> dict[str, Any]:
    return {
        "id": client,
        "name": "NAVs tiltakssystem",
        "org_id": "nav-vest",
        "issuer": MASKINPORTEN,
        "client_id": "nav-system",
        "consumer_org": ORG,
        **fields,
    }


def _names(document: RegionDocument) -> dict[str, StaffName]:
    return {person.id: StaffName("", f"index-{person.id}") for person in document.staff}


def _known(*clients: tuple[str, str, str, str, str, str]) -> DirectoryState:
    """The directory with the document's organisations and ``clients`` registered:
    (client id, organisation, name, issuer, client id of the issuer, consumer)."""
    return DirectoryState(
        organisations={
            "4010": ("Siljan kommune", OrgKind.MUNICIPALITY),
            "nav-vest": ("NAV Vestfold og Telemark", OrgKind.STATE_AGENCY),
        },
        clients={client[0]: client[1:] for client in clients},
    )


NAV = ("client-nav-tiltak", "nav-vest", "NAVs tiltakssystem", MASKINPORTEN, "nav-system", ORG)


FIELDS = ("client", "org_id", "name", "issuer", "client_id", "consumer_org")


def _registered(**fields: Any) -> ClientRegistered:
    values = dict(zip(FIELDS, NAV, strict=True))
    return ClientRegistered.model_validate({**values, **fields})


def _unregistered(**fields: Any) -> ClientUnregistered:
    values = dict(zip(FIELDS, NAV, strict=True))
    del values["name"]
    return ClientUnregistered.model_validate({**values, **fields})


def test_clients_are_optional_and_kept_as_written() -> None:
    document = RegionDocument.model_validate(_document(_client()))
    (client,) = document.clients
    assert (client.id, client.org_id, client.issuer, client.client_id, client.consumer_org) == (
        "client-nav-tiltak",
        "nav-vest",
        MASKINPORTEN,
        "nav-system",
        ORG,
    )
    without = RegionDocument.model_validate(
        {"region": "grenland", "organisations": [{"id": "4010", "name": "S", "kind": "county"}]}
    )
    assert without.clients == ()


def test_the_limits_themselves_are_accepted() -> None:
    clients = [_client(f"client-{i:04d}", client_id=f"c{i}") for i in range(MAX_CLIENTS)]
    clients[0] = _client(
        "client-" + "a" * 57, issuer="https://" + "i" * 492, client_id="c" * 255, name="N" * 200
    )
    document = RegionDocument.model_validate(_document(*clients))
    assert len(document.clients) == MAX_CLIENTS == 1000


@pytest.mark.parametrize(
    "clients",
    [
        [_client("nav-tiltak")],  # no client- prefix
        [_client("client-")],
        [_client("client-NAV")],  # capitals
        [_client("client-" + "a" * 58)],  # 65 characters
        [_client(consumer_org="88964078")],
        [_client(consumer_org="889640783")],  # the check digit is wrong
        [_client(consumer_org="0192:889640782")],
        [_client(issuer=DEV_ISSUER)],  # its client id is the client's id itself
        [_client(issuer="https://" + "i" * 493)],
        [_client(client_id="c" * 256)],
        [_client(client_id="nav system")],
        [_client(org_id="9999")],  # no such organisation
        [_client(name="")],
        [{**_client(), "scopes": ["case:read"]}],  # scopes are the token's, never the document's
        [_client(), _client()],  # the same id twice
        [_client(), _client("client-nav-2")],  # the same issuer, client id and consumer twice
        [_client(f"client-{i:04d}", client_id=f"c{i}") for i in range(MAX_CLIENTS + 1)],
    ],
    ids=[
        "no-prefix",
        "prefix-only",
        "capitals",
        "long-id",
        "eight-digits",
        "check-digit",
        "iso6523-prefixed",
        "development-issuer",
        "long-issuer",
        "long-client-id",
        "client-id-with-space",
        "unknown-organisation",
        "no-name",
        "unknown-field",
        "id-twice",
        "registered-twice",
        "too-many",
    ],
)
def test_a_bad_client_is_refused(clients: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        RegionDocument.model_validate(_document(*clients))


def test_a_client_registered_twice_names_neither_in_the_refusal() -> None:
    with pytest.raises(ValidationError) as refused:
        RegionDocument.model_validate(_document(_client(), _client("client-nav-2")))
    assert "nav-system" not in str(refused.value)
    assert "registrert to ganger" in str(refused.value)


def test_no_staff_id_is_a_client_id() -> None:
    with pytest.raises(ValidationError, match="kan ikke begynne med 'client-'"):
        RegionDocument.model_validate(
            _document(staff=({"id": "client-nav-tiltak", "name": "Ikke en klient"},))
        )


def test_one_client_id_for_two_consumers_is_two_clients() -> None:
    """A supplier's system acting for two organisations (Maskinporten's delegation)."""
    document = RegionDocument.model_validate(
        _document(_client(), _client("client-siljan", org_id="4010", consumer_org=OTHER_ORG))
    )
    assert len(document.clients) == 2


def test_a_new_client_is_registered_on_its_own_aggregate() -> None:
    document = RegionDocument.model_validate(_document(_client()))
    changes = diff_directory(_known(), document, _names(document))
    assert changes == {"client-nav-tiltak": [_registered()]}


def test_an_unchanged_client_yields_nothing() -> None:
    document = RegionDocument.model_validate(_document(_client()))
    assert diff_directory(_known(NAV), document, _names(document)) == {}


def test_a_renamed_client_is_registered_again() -> None:
    document = RegionDocument.model_validate(_document(_client(name="NAV tiltak")))
    changes = diff_directory(_known(NAV), document, _names(document))
    assert changes == {"client-nav-tiltak": [_registered(name="NAV tiltak")]}


@pytest.mark.parametrize(
    "changed",
    [
        {"issuer": "https://test.maskinporten.no/"},
        {"client_id": "nav-system-2"},
        {"consumer_org": OTHER_ORG},
        {"org_id": "4010"},
    ],
    ids=["issuer", "client-id", "consumer", "organisation"],
)
def test_a_client_named_otherwise_is_unregistered_as_it_was_then_registered(
    changed: dict[str, str],
) -> None:
    document = RegionDocument.model_validate(_document(_client(**changed)))
    changes = diff_directory(_known(NAV), document, _names(document))
    assert changes == {"client-nav-tiltak": [_unregistered(), _registered(**changed)]}


def test_a_client_left_out_is_unregistered() -> None:
    document = RegionDocument.model_validate(_document())
    changes = diff_directory(_known(NAV), document, _names(document))
    assert changes == {"client-nav-tiltak": [_unregistered()]}


def test_the_client_events_round_trip_through_the_event_registry() -> None:
    for event in (_registered(), _unregistered()):
        envelope = registry.envelope(
            event,
            subject="client-nav-tiltak",
            source="stafett/consent",
            tenant="nav-vest",
            actor="admin",
            time=datetime.now(UTC),
        )
        assert envelope.type == event.event_type
        assert registry.payload(envelope) == event
        assert event.subject() == "stafett.ev.directory.client-nav-tiltak"
    assert ClientRegistered.owner == ClientUnregistered.owner == "consent"


READS = ["stafett:case.read", "stafett:log.read"]


def test_what_a_client_may_use_is_registered_with_it_and_a_change_registers_it_again() -> None:
    """Decision 0039: scopes, services and legal grounds travel in the registration; the
    same lists in another order are no change."""
    access: dict[str, Any] = {"scopes": READS, "sectors": ["nav"], "purposes": ["consent"]}
    document = RegionDocument.model_validate(_document(_client(**access)))
    (registered,) = diff_directory(_known(NAV), document, _names(document))["client-nav-tiltak"]
    assert isinstance(registered, ClientRegistered)
    assert (registered.scopes, registered.sectors, registered.purposes) == (
        tuple(READS),
        ("nav",),
        ("consent",),
    )
    known = replace(
        _known(NAV),
        client_access={
            "client-nav-tiltak": ClientAccess(
                registered.scopes, registered.sectors, registered.purposes
            )
        },
    )
    same = RegionDocument.model_validate(
        _document(_client(**{**access, "scopes": list(reversed(READS))}))
    )
    assert diff_directory(known, same, _names(same)) == {}
    fewer = RegionDocument.model_validate(_document(_client(**{**access, "scopes": READS[:1]})))
    (again,) = diff_directory(known, fewer, _names(fewer))["client-nav-tiltak"]
    assert isinstance(again, ClientRegistered) and again.scopes == (READS[0],)


@pytest.mark.parametrize(
    "field",
    [
        {"scopes": ["stafett:case.write"]},
        {"sectors": ["police"]},
        {"purposes": ["law"]},
        {"scopes": [*READS, READS[0]]},  # more than there are
    ],
)
def test_an_unknown_scope_service_or_ground_refuses_the_document(field: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RegionDocument.model_validate(_document(_client(**field)))


def test_a_registration_from_before_0039_still_reads() -> None:
    """An event without the new fields (published before them) reads as no scopes, no
    services and no grounds: no case data."""
    payload = ClientRegistered.model_validate(
        {
            "client": "client-nav-tiltak",
            "org_id": "nav-vest",
            "name": "NAVs tiltakssystem",
            "issuer": MASKINPORTEN,
            "client_id": "nav-system",
            "consumer_org": ORG,
        }
    )
    assert (payload.scopes, payload.sectors, payload.purposes) == ((), (), ())
