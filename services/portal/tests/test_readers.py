"""Who read the case, on the staff's and the families' pages, with the services answered by a
stand-in: an agency's system is named by its organisation («NAV Grenland (fagsystem)»), with
the system's own name and the basis in words (decision 0039)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stafett_portal.app import create_app
from stafett_portal.backend import ApiError, Backend, Reply
from stafett_portal.settings import PortalSettings
from stafett_shared.settings import CommonSettings

CASE = "01J0000000000000000000000C"
GUARDIAN = "01J0000000000000000000000G"
NAV = "client-nav-grenland"
DIRECTORY = {
    "region": "test",
    "organisations": [
        {"id": "nav-grenland", "name": "NAV Grenland", "units": []},
        {
            "id": "siljan",
            "name": "Siljan kommune",
            "units": [{"id": "siljan-skole", "name": "Siljan skole", "sector": "school"}],
        },
    ],
    "staff": [
        {
            "id": "laerer",
            "name": "Lærer Lund",
            "roles": [{"unit_id": "siljan-skole", "role": "teacher"}],
        }
    ],
    "clients": [
        {"id": NAV, "name": "NAV Grenlands saksbehandlingssystem", "org_id": "nav-grenland"}
    ],
}
READS = [
    {
        "seq": 12,
        "reader_id": NAV,
        "reader_kind": "client",
        "basis": "client_consent",
        "what": "entries",
        "entries": 1,
        "service": "log",
        "read_at": "2026-12-01T09:30:00Z",
    },
    {
        "seq": 9,
        "reader_id": "laerer",
        "reader_kind": "person",
        "basis": "holder",
        "what": "case",
        "entries": 0,
        "service": "case",
        "read_at": "2026-12-01T08:00:00Z",
    },
]
CARDS = [
    {
        "id": NAV,
        "name": "NAV Grenlands saksbehandlingssystem",
        "roles": [],
        "client": {"org_id": "nav-grenland", "org_name": "NAV Grenland"},
    },
    {
        "id": "laerer",
        "name": "Lærer Lund",
        "roles": [
            {
                "role": "teacher",
                "unit_id": "siljan-skole",
                "unit_name": "Siljan skole",
                "sector": "school",
                "org_id": "siljan",
                "org_name": "Siljan kommune",
            }
        ],
    },
]


@pytest.fixture
def staff_asked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    asked: list[Any] = []

    async def call(_self: Backend, method: str, service: str, path: str, **kwargs: Any) -> Reply:
        if path == "/api/v1/directory":
            return Reply(200, DIRECTORY)
        if path == f"/api/v1/logs/{CASE}/access":
            return Reply(200, {"items": READS, "next_cursor": None})
        if path == "/api/v1/staff":
            asked.append(kwargs.get("params"))
            return Reply(200, {"items": CARDS})
        raise ApiError(404, "not_found")

    monkeypatch.setattr(Backend, "call", call)
    return asked


@pytest.fixture
def client(tmp_path: Path, staff_asked: list[Any]) -> Iterator[TestClient]:
    app = create_app(PortalSettings(), CommonSettings(data_dir=tmp_path))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def _sign_in(client: TestClient, person: str) -> None:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/logg-inn").text)
    assert match is not None
    signed = client.post("/logg-inn", data={"person_id": person, "csrf": match.group(1)})
    assert signed.status_code == 303


def test_staff_see_the_agencys_system_under_its_organisations_name(client: TestClient) -> None:
    _sign_in(client, "laerer")
    page = client.get(f"/saker/{CASE}/lest")
    assert page.status_code == 200, page.text
    assert "NAV Grenland (fagsystem)" in page.text
    assert "som fagsystem for en tjeneste som et samtykke dekker" in page.text
    assert NAV not in page.text.replace(f"/saker/{CASE}", "")


def test_the_family_sees_the_agencys_system_with_its_own_name(
    client: TestClient, staff_asked: list[Any]
) -> None:
    _sign_in(client, GUARDIAN)
    page = client.get(f"/familie/{CASE}/lest")
    assert page.status_code == 200, page.text
    assert "NAV Grenland (fagsystem)" in page.text
    assert "NAV Grenlands saksbehandlingssystem" in page.text
    assert "som fagsystem for en tjeneste som et samtykke dekker" in page.text
    assert "Lærer Lund" in page.text
    # The system was looked up with the staff, by id.
    assert any(("id", NAV) in params for params in staff_asked)
