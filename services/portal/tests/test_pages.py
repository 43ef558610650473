"""The portal on its own, with every service unreachable: pages a person understands, never a
stack trace; sign-in, CSRF and the security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from stafett_portal.app import create_app
from stafett_portal.settings import OidcClientSettings, PortalSettings
from stafett_shared.demo import record_citizens
from stafett_shared.embedded import free_port
from stafett_shared.settings import CommonSettings, IssuerSettings, SettingsError

TEMPLATES = Path(__file__).parents[1] / "src" / "stafett_portal" / "templates"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every service is down
    settings = PortalSettings(
        case_url=closed, log_url=closed, consent_url=closed, notify_url=closed
    )
    app = create_app(settings, CommonSettings(data_dir=tmp_path))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_a_person_who_is_not_signed_in_is_sent_to_sign_in(client: TestClient) -> None:
    for path in (
        "/",
        "/saker",
        "/innboks",
        "/saker/01J0000000000000000000000A",
        "/familie",
        "/familie/01J0000000000000000000000A/lest",
    ):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/logg-inn"


def test_every_page_carries_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/logg-inn")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_no_template_has_inline_script_or_style() -> None:
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert " style=" not in text and "<style" not in text, template
        assert "http://" not in text and "https://" not in text, template


def test_a_form_without_the_session_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/logg-inn")
    response = client.post("/logg-inn", data={"person_id": "ann-kristin-allum"})
    assert response.status_code == 400
    assert "Skjemaet kunne ikke leses" in response.text
    assert "saker" not in response.headers.get("location", "")


def test_development_sign_in_then_a_service_down_is_a_page_not_a_crash(
    client: TestClient,
) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    signed = client.post("/logg-inn", data={"person_id": "ann-kristin-allum", "csrf": csrf})
    assert signed.status_code == 303
    assert signed.headers["location"] == "/saker"
    response = client.get("/saker")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "Prøv igjen om litt" in response.text
    assert "Traceback" not in response.text


def test_a_malformed_id_is_the_same_page_as_a_case_one_may_not_see(client: TestClient) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    client.post("/logg-inn", data={"person_id": "ann-kristin-allum", "csrf": csrf})
    response = client.get("/saker/not-a-case-id/logg")
    assert response.status_code == 404
    assert "Finnes ikke, eller du har ikke tilgang" in response.text


def test_an_invalid_person_id_is_named_beside_the_field(client: TestClient) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    response = client.post("/logg-inn", data={"person_id": "<script>", "csrf": csrf})
    assert response.status_code == 422
    assert "gyldig person-id" in response.text
    assert "<script>" not in response.text


def test_a_citizen_gets_the_families_pages_and_staff_do_not(client: TestClient) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    guardian = "01J0000000000000000000000G"  # guardians and children have ULIDs
    signed = client.post("/logg-inn", data={"person_id": guardian, "csrf": csrf})
    assert signed.headers["location"] == "/familie"
    assert client.get("/").headers["location"] == "/familie"
    for staff_page in ("/saker", "/innboks", "/saker/01J0000000000000000000000A/logg"):
        assert client.get(staff_page).headers["location"] == "/familie", staff_page
    down = client.get("/familie")  # the services are down: a page, not a crash
    assert down.status_code == 503 and "Prøv igjen om litt" in down.text
    assert "Mine saker" not in down.text  # the families' pages never show the staff's menu
    bad = client.get("/familie/not-a-case/lest")
    assert bad.status_code == 404 and "Finnes ikke, eller du har ikke tilgang" in bad.text
    notices = client.get("/familie/varsler")  # the notify service is down too
    assert notices.status_code == 503 and "Prøv igjen om litt" in notices.text
    assert client.get("/familie/varsler?fra=not a cursor").status_code == 404

    csrf = _csrf(client.get("/logg-inn").text)
    client.post("/logg-inn", data={"person_id": "ann-kristin-allum", "csrf": csrf})
    staff = client.get("/familie/01J0000000000000000000000A")
    assert staff.status_code == 404
    assert client.get("/familie/varsler").status_code == 404  # staff keep /innboks


def test_the_development_sign_in_lists_the_demos_guardians(
    client: TestClient, tmp_path: Path
) -> None:
    record_citizens(
        tmp_path, [{"id": "01J0000000000000000000000G", "name": "Demo Mor", "what": "Foresatt"}]
    )
    page = client.get("/logg-inn").text
    assert "Logg inn som Demo Mor" in page
    assert 'value="01J0000000000000000000000G"' in page


def test_sign_out_ends_the_session(client: TestClient) -> None:
    csrf = _csrf(client.get("/logg-inn").text)
    client.post("/logg-inn", data={"person_id": "ann-kristin-allum", "csrf": csrf})
    page = client.get("/innboks")
    out = client.post("/logg-ut", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303
    assert client.get("/saker").headers["location"] == "/logg-inn"


def test_production_needs_oidc_https_and_a_session_key(tmp_path: Path) -> None:
    common = CommonSettings(
        env="production",
        data_dir=tmp_path,  # and no KEK: the portal holds no key and is not given one
        issuers=[IssuerSettings(issuer="https://login.example.no")],
        admins=["https://login.example.no|0c1f-admin-oid"],
    )
    with pytest.raises(SettingsError):
        create_app(PortalSettings(), common)
    good = PortalSettings(
        public_url="https://stafett.example.no",
        session_key=SecretStr("A" * 43 + "="),
        oidc=OidcClientSettings(issuer="https://login.example.no", client_id="stafett-portal"),
    )
    create_app(good, common)  # accepted: nothing else is needed to build it


def test_a_fault_of_the_portal_is_a_page_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stafett_portal import app as portal_app

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a detail that must not be shown")

    monkeypatch.setattr(portal_app, "_page", broken)
    app = create_app(PortalSettings(), CommonSettings(data_dir=tmp_path))
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as test_client:
        response = test_client.get("/saker")
    assert response.status_code == 500
    assert "Noe gikk galt hos oss" in response.text
    assert "must not be shown" not in response.text
    assert "content-security-policy" in response.headers
