"""Browser tests: the embedded system (NATS from the wheel, the five services as processes on
SQLite) and Debian's Chromium driven by Playwright. ``python3 stafett.py test`` installs
Chromium when it is missing and the machine allows it; CI always runs these tests."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from stafett_shared.auth import DevIssuer
from stafett_shared.demo import record_citizens
from stafett_shared.embedded import SERVICES, EmbeddedSystem, free_port
from stafett_shared.nationalid import control_digits

REGION = Path(__file__).resolve().parents[2] / "data" / "grenland.yaml"
AXE = Axe()
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    return os.environ.get("STAFETT_CHROMIUM") or shutil.which("chromium")


@dataclass
class Running:
    system: EmbeddedSystem
    issuer: DevIssuer
    urls: dict[str, str]

    @property
    def portal(self) -> str:
        return self.urls["portal"]

    def api(self, person: str) -> httpx.Client:
        return httpx.Client(
            headers={"Authorization": f"Bearer {self.issuer.issue(person)}"}, timeout=20
        )


@pytest.fixture(scope="session")
def stafett(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data = tmp_path_factory.mktemp("stafett-e2e") / "data"
    ports = {name: free_port() for name in SERVICES}
    system = EmbeddedSystem(
        data,
        nats_port=free_port(),
        ports=ports,
        # The browser flows write many reads as one person in a short time.
        env={"STAFETT_RATE_LIMIT_PER_S": "0", "STAFETT_LOG_LEVEL": "WARNING"},
    )
    system.start(ready_timeout_s=180)
    try:
        issuer = DevIssuer.load_or_create(data)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        response = httpx.put(
            f"{urls['consent']}/api/v1/directory",
            content=REGION.read_bytes(),
            headers={
                "Authorization": f"Bearer {issuer.issue('admin')}",
                "Content-Type": "application/yaml",
            },
            timeout=60,
        )
        assert response.status_code == 200, response.text
        yield Running(system, issuer, urls)
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not for the session: Playwright's synchronous API runs
    an event loop of its own while it is started, and the asyncio tests after these must not
    find it running."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `python3 stafett.py test` installs it with apt")
        pytest.skip("Chromium is not installed (python3 stafett.py test installs it as root)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshots() -> Path | None:
    """Where to keep screenshots of the pages (docs/screenshots is made this way)."""
    folder = os.environ.get("STAFETT_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_page(browser: Browser, viewport: ViewportSize) -> Page:
    context = browser.new_context(viewport=viewport, locale="nb-NO", timezone_id="Europe/Oslo")
    context.set_default_timeout(20_000)
    return context.new_page()


def fields(page: Page, values: dict[str, Any]) -> None:
    for label, value in values.items():
        # An optional field's label ends in «(valgfritt)».
        page.get_by_label(re.compile("^" + re.escape(label))).fill(str(value))


def accessible(page: Page) -> None:
    """axe-core finds nothing serious or critical, and nothing scrolls sideways."""
    results = AXE.run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert not serious, f"{page.url}: {serious}"
    width = page.evaluate("document.documentElement.scrollWidth")
    size = page.viewport_size
    assert size is not None and width <= size["width"], f"{page.url} scrolls sideways"


def synthetic_id(age: int, seed: int) -> str:
    """A synthetic national id (month + 80), never a real person's number."""
    year = datetime.now(UTC).year - age
    # The individual number tells the century: 500–999 for births from 2000 on.
    individual = (500 if year >= 2000 else 100) + seed % 400
    while True:
        first = f"{seed % 28 + 1:02d}{(seed % 12) + 81:02d}{year % 100:02d}{individual:03d}"
        digits = control_digits(first)
        if digits is not None:
            return first + digits
        individual += 1


def after(answer: httpx.Response) -> dict[str, str]:
    """Read your writes: the next call waits until its service has seen this write."""
    seq = answer.headers.get("stafett-seq")
    return {"Stafett-Min-Seq": seq} if seq else {}


@dataclass(frozen=True)
class Guardian:
    """A guardian to register with the child; ``what`` is their line on the development
    sign-in page (None: not offered there)."""

    name: str
    age: int
    responsible: bool = True
    what: str | None = None


@dataclass(frozen=True)
class FamilyCase:
    case_id: str
    child_id: str
    guardian_ids: list[str]
    consent_id: str | None
    last: httpx.Response
    """The last write, for :func:`after`."""


def family_case(
    stafett: Running,
    seed: int,
    *,
    child: str,
    age: int,
    guardians: Sequence[Guardian],
    concern: str,
    child_what: str | None = None,
    writes: Sequence[tuple[str, str, dict[str, Any]]] = (),
    purpose: str | None = None,
    until: date | None = None,
) -> FamilyCase:
    """A family's world as the school builds it over the APIs: the child of ``age`` is
    registered with ``guardians`` (synthetic national ids from ``seed``), the holder opens a
    case at Siljan ungdomsskole, makes ``writes`` (service, path with ``{case_id}``, body)
    and, given a ``purpose``, asks for consent to work with Siljan's health service through
    ``until``. The child (given ``child_what``) and the guardians given a ``what`` are
    offered on the development sign-in page."""
    with stafett.api("ann-kristin-allum") as api:
        registered = api.post(
            f"{stafett.urls['consent']}/api/v1/children",
            json={
                "national_id": synthetic_id(age, seed),
                "name": child,
                "guardians": [
                    {
                        "national_id": synthetic_id(g.age, seed + i + 1),
                        "name": g.name,
                        "parental_responsibility": g.responsible,
                    }
                    for i, g in enumerate(guardians)
                ],
            },
        )
        assert registered.status_code == 201, registered.text
        opened = api.post(
            f"{stafett.urls['case']}/api/v1/cases",
            json={
                "unit_id": "siljan-ungdomsskole",
                "level": 1,
                "child": {"national_id": synthetic_id(age, seed)},
                "concern": concern,
            },
            headers=after(registered),
        )
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["id"]
        calls = [(service, path.format(case_id=case_id), body) for service, path, body in writes]
        if purpose is not None:
            consent: dict[str, Any] = {
                "case_id": case_id,
                "scope": {"org_ids": ["4010"], "sectors": ["health"], "purpose": purpose},
                "evidence": {"method": "digital_signature"},
            }
            if until is not None:
                consent["valid_until"] = until.isoformat()
            calls.append(("consent", "/api/v1/consents", consent))
        last = opened
        for service, path, body in calls:
            last = api.post(f"{stafett.urls[service]}{path}", json=body, headers=after(last))
            assert last.status_code in (200, 201), (path, last.text)
    child_id = registered.json()["id"]
    guardian_ids = [g["id"] for g in registered.json()["guardians"]]
    citizens: list[dict[str, str]] = []
    if child_what is not None:
        citizens.append({"id": child_id, "name": child, "what": child_what})
    citizens += [
        {"id": person_id, "name": g.name, "what": g.what}
        for person_id, g in zip(guardian_ids, guardians, strict=True)
        if g.what is not None
    ]
    record_citizens(stafett.system.data_dir, citizens)
    return FamilyCase(
        case_id=case_id,
        child_id=child_id,
        guardian_ids=guardian_ids,
        consent_id=last.json()["id"] if purpose is not None else None,
        last=last,
    )
