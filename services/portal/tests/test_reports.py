"""The pages for reports of concern to child welfare, with the services answered by a stand-in:
what the intake and the reporter see, the receipt as a form without JavaScript, and the same
404 page for an unknown report, someone else's and a malformed id."""

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

REPORT = "01J00000000000000000000R01"
OTHER = "01J00000000000000000000R02"
CASE = "01J0000000000000000000000C"
DIRECTORY = {
    "region": "test",
    "organisations": [
        {
            "id": "siljan",
            "name": "Siljan kommune",
            "units": [{"id": "siljan-skole", "name": "Siljan skole", "sector": "school"}],
        },
        {
            "id": "skien",
            "name": "Skien kommune",
            "units": [{"id": "skien-bv", "name": "Barnevernet i Skien", "sector": "child_welfare"}],
        },
    ],
    "staff": [
        {
            "id": "laerer",
            "name": "Lærer Lund",
            "roles": [{"unit_id": "siljan-skole", "role": "teacher"}],
        },
        {
            "id": "mottak",
            "name": "Mottak Moe",
            "roles": [{"unit_id": "skien-bv", "role": "child_welfare_worker"}],
        },
    ],
}
SUMMARY = {
    "id": REPORT,
    "case_id": CASE,
    "unit_id": "skien-bv",
    "from_org_id": "siljan",
    "from_unit_id": "siljan-skole",
    "reported_by": "laerer",
    "reported_at": "2026-12-01T09:30:00Z",
    "status": "sent",
    "received_at": None,
}

NOTICE = {
    "id": "n-" + "b" * 40,
    "kind": "child_welfare_report",
    "case_id": CASE,
    "title": "Ny bekymringsmelding til barneverntjenesten",
    "link": "/barnevern/meldinger",
    "created_at": "2026-12-01T09:31:00Z",
    "read_at": None,
}


class Services:
    """The four services as the portal's backend sees them: a few fixed answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.received = False
        self.intake = True  # the case service lists reports to the intake only

    async def call(self, method: str, service: str, path: str, **kwargs: Any) -> Reply:
        self.calls.append((method, path, kwargs.get("params")))
        if path == "/api/v1/directory":
            return Reply(200, DIRECTORY)
        if path == "/api/v1/notifications":
            return Reply(200, {"items": [NOTICE], "next_cursor": None})
        if path.startswith("/api/v1/notifications/") and path.endswith("/read"):
            return Reply(204, None)
        status = "received" if self.received else "sent"
        if path == "/api/v1/child-welfare-reports":
            wanted = (kwargs.get("params") or {}).get("status")
            items = [dict(SUMMARY, status=status)] if wanted == status and self.intake else []
            return Reply(200, {"items": items, "next_cursor": "c" * 30 if items else None})
        if path == f"/api/v1/child-welfare-reports/{REPORT}":
            child = {"id": "01J0000000000000000000000B", "name": "Arne A", "national_id": None}
            return Reply(200, dict(SUMMARY, status=status, text="Fravær hver mandag.", child=child))
        if path == f"/api/v1/child-welfare-reports/{REPORT}/receipt":
            if self.received:
                raise ApiError(409, "report_received")
            self.received = True
            return Reply(200, {"id": REPORT, "status": "received"}, {"stafett-seq": "7"})
        raise ApiError(404, "not_found")


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Services:
    fake = Services()

    async def call(_self: Backend, method: str, service: str, path: str, **kwargs: Any) -> Reply:
        return await fake.call(method, service, path, **kwargs)

    monkeypatch.setattr(Backend, "call", call)
    return fake


@pytest.fixture
def client(tmp_path: Path, services: Services) -> Iterator[TestClient]:
    app = create_app(PortalSettings(), CommonSettings(data_dir=tmp_path))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _sign_in(client: TestClient, person: str) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    assert client.post("/logg-inn", data={"person_id": person, "csrf": csrf}).status_code == 303


def _main(html: str) -> str:
    return html.split('<main id="innhold" tabindex="-1">', 1)[1].split("</main>", 1)[0]


def test_the_menu_shows_the_reports_to_the_intake_only(client: TestClient) -> None:
    _sign_in(client, "mottak")
    assert 'href="/barnevern/meldinger"' in client.get("/innboks").text
    _sign_in(client, "laerer")
    assert 'href="/barnevern/meldinger"' not in client.get("/innboks").text


def test_the_intake_lists_opens_and_acknowledges_a_report(
    client: TestClient, services: Services
) -> None:
    _sign_in(client, "mottak")
    listing = client.get("/barnevern/meldinger")
    assert listing.status_code == 200
    assert "Melding fra Siljan skole" in listing.text
    assert f'href="/barnevern/meldinger/{REPORT}"' in listing.text
    assert "Fravær" not in listing.text  # never the text in the list
    assert "/barnevern/meldinger?status=sent&fra=" in listing.text  # «Flere»
    assert ("GET", "/api/v1/child-welfare-reports", {"status": "sent", "limit": 25}) in (
        services.calls
    )

    page = client.get(f"/barnevern/meldinger/{REPORT}")
    assert page.status_code == 200
    assert "Fravær hver mandag." in page.text and "Arne A" in page.text
    assert "Bekreft mottatt" in page.text
    form = re.search(r'name="idempotency_key" value="([0-9A-Z]{26})"', page.text)
    assert form is not None
    done = client.post(
        f"/barnevern/meldinger/{REPORT}/mottatt",
        data={"csrf": _csrf(page.text), "idempotency_key": form.group(1)},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/barnevern/meldinger/{REPORT}"
    after = client.get(f"/barnevern/meldinger/{REPORT}")
    assert "Meldingen er bekreftet mottatt" in after.text  # the flash, announced
    assert "Mottatt av barneverntjenesten" in after.text
    assert "Bekreft mottatt</button>" not in after.text

    again = client.post(f"/barnevern/meldinger/{REPORT}/mottatt", data={"csrf": _csrf(after.text)})
    assert again.status_code == 303
    assert "allerede bekreftet mottatt" in client.get(f"/barnevern/meldinger/{REPORT}").text


def test_a_receipt_without_the_forms_token_is_refused(
    client: TestClient, services: Services
) -> None:
    _sign_in(client, "mottak")
    response = client.post(f"/barnevern/meldinger/{REPORT}/mottatt", data={})
    assert response.status_code == 400
    assert not services.received


def test_an_unknown_report_someone_elses_and_a_malformed_id_are_the_same_page(
    client: TestClient,
) -> None:
    _sign_in(client, "laerer")
    pages = [
        client.get(f"/barnevern/meldinger/{OTHER}"),  # the service answers 404
        client.get("/barnevern/meldinger/ikke-en-id"),
        client.post(f"/barnevern/meldinger/{OTHER}/mottatt", data={"csrf": "x"}),
    ]
    assert [p.status_code for p in pages[:2]] == [404, 404]
    assert _main(pages[0].text) == _main(pages[1].text)
    assert "Finnes ikke, eller du har ikke tilgang" in pages[0].text
    assert pages[2].status_code == 400  # a form without the session's token is read nowhere


def test_a_list_filter_that_is_not_offered_is_a_page_not_found(client: TestClient) -> None:
    _sign_in(client, "mottak")
    assert client.get("/barnevern/meldinger?status=alle").status_code == 404
    assert client.get("/barnevern/meldinger?fra=%3Cscript%3E").status_code == 404


def test_someone_who_takes_in_no_reports_gets_an_empty_list(
    client: TestClient, services: Services
) -> None:
    services.intake = False
    _sign_in(client, "laerer")
    page = client.get("/barnevern/meldinger")
    assert page.status_code == 200
    assert "Ingen nye meldinger" in page.text and "Melding fra" not in page.text


def test_a_child_welfare_notice_opens_the_reports_not_the_case(client: TestClient) -> None:
    _sign_in(client, "mottak")
    inbox = client.get("/innboks").text
    assert "Se bekymringsmeldingene" in inbox and "Åpne saken" not in inbox
    csrf = _csrf(inbox)
    opened = client.post(
        "/innboks/n-" + "a" * 40, data={"csrf": csrf, "open": "meldinger", "case_id": CASE}
    )
    assert opened.status_code == 303
    assert opened.headers["location"] == "/barnevern/meldinger"
