"""Every service's /docs works without internet: Swagger UI's files come from the service
itself, and the page's Content-Security-Policy lets it load nothing from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from stafett_shared.crypto import FieldCipher
from stafett_shared.projector import Projection
from stafett_shared.service import ServiceSpec, create_app
from stafett_shared.settings import CommonSettings, ServiceSettings


def no_projection(_cipher: FieldCipher, _service: ServiceSettings) -> Projection:
    raise AssertionError("the docs page needs no running service")


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    spec = ServiceSpec(
        name="probe",
        title="Stafett probe",
        description="A service with nothing but the common routes.",
        contexts=(),
        projection=no_projection,
        migrations=tmp_path,
    )
    app = create_app(spec, CommonSettings(data_dir=tmp_path), ServiceSettings())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_docs_names_no_other_host_and_every_file_it_names_answers(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) == 3  # the script, the style sheet, the icon
    for url in [*urls, "/openapi.json"]:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert "url: '/openapi.json'" in page.text
    assert '"validatorUrl": null' in page.text


async def test_docs_allows_only_this_origin_and_its_own_start_script(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    policy = dict(
        part.strip().split(" ", 1)
        for part in page.headers["content-security-policy"].split(";")
        if part.strip()
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    (start,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(start.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe" not in page.headers["content-security-policy"]


async def test_only_the_files_the_page_needs_are_served(client: httpx.AsyncClient) -> None:
    for name in ("redoc.standalone.js", "core.py", "..%2Fcore.py", "__init__.py"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/docs/assets/../core.py")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/docs") for path in paths)


async def test_the_assets_have_the_types_a_browser_enforces(client: httpx.AsyncClient) -> None:
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in script.text[:2000]
    style = await client.get("/docs/assets/swagger-ui.css")
    assert style.headers["content-type"].startswith("text/css")
    icon = await client.get("/docs/assets/favicon.png")
    assert icon.headers["content-type"] == "image/png"
    assert icon.content.startswith(b"\x89PNG")
