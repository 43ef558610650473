"""The emergency access pages on their own: how a typed or pasted case reference is read,
and that the pages are for signed-in staff only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stafett_portal.app import create_app
from stafett_portal.emergency import FIELDS, GROUNDS, case_reference
from stafett_portal.settings import PortalSettings
from stafett_shared.contracts.consent import EmergencyGround
from stafett_shared.embedded import free_port
from stafett_shared.settings import CommonSettings

CASE = "01JDQ7Y3ZK5V9W2X4M6N8P0R1S"


@pytest.mark.parametrize(
    "typed",
    [
        CASE,
        f"  {CASE.lower()} ",
        f"https://stafett.example.no/saker/{CASE}",
        f"https://stafett.example.no/saker/{CASE}/logg?fra=x",
        f"Sak {CASE}",
    ],
)
def test_a_case_id_or_a_pasted_link_names_the_case(typed: str) -> None:
    assert case_reference(typed) == CASE


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "Arne i 10B",
        CASE[:-1],
        CASE + "X",
        "01JDQ7Y3ZK5V9W2X4M6N8P0R1U",  # U is no ULID letter
        f"/saker/{CASE}/overforinger/01JDQ7Y3ZK5V9W2X4M6N8P0R1T",  # two ids: which one?
    ],
)
def test_anything_else_is_no_case_reference(typed: str) -> None:
    assert case_reference(typed) is None


def test_the_grounds_are_the_consent_services_list_in_plain_words() -> None:
    assert [value for value, _ in GROUNDS] == [g.value for g in EmergencyGround]
    (ground,) = [f for f in FIELDS if f.name == "ground"]
    assert ground.kind == "radio" and ground.required


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = PortalSettings(
        case_url=closed, log_url=closed, consent_url=closed, notify_url=closed
    )
    with TestClient(
        create_app(settings, CommonSettings(data_dir=tmp_path)), follow_redirects=False
    ) as test_client:
        yield test_client


def test_the_pages_are_for_signed_in_staff(client: TestClient) -> None:
    for path in ("/nodtilgang", "/nodtilgang/venter", "/nodtilgang/godkjenn"):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/logg-inn"), path
    answer = client.post(f"/nodtilgang/godkjenn/{CASE}", data={})
    assert (answer.status_code, answer.headers["location"]) == (303, "/logg-inn")
    assert client.get("/nodtilgang/godkjenn/not-an-id").status_code in (404, 405)
