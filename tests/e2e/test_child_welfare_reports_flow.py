"""A report of concern in the browser (decision 0026): the Siljan teacher sends it from the
case, Skien's child welfare intake (which also serves Siljan) finds it in «Bekymringsmeldinger»,
reads it and confirms it arrived, and the teacher sees «Mottatt av barneverntjenesten». axe-core
checks every page; at 320 px the intake does it all without JavaScript."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from stafett_shared.ids import new_id

from .conftest import DESKTOP, PHONE, Running, synthetic_id
from .test_portal_flows import NOT_FOUND, Visit
from .test_portal_layout import NARROW, measure

TEACHER = "ann-kristin-allum"
INTAKE = "sissel-mottak"  # Barneverntjenesten i Skien takes in Siljan's reports
OTHER_SERVICE = "berit-barnevern"  # Siljan's own child welfare unit: not where it was sent
TEXT = "Arne sa i dag at han gruer seg til å gå hjem. Han har blåmerker på armen."


def _case(stafett: Running, seed: int) -> str:
    """A level 1 case at Siljan ungdomsskole for a registered child, made through the API."""
    with stafett.api(TEACHER) as api:
        registered = api.post(
            f"{stafett.urls['consent']}/api/v1/children",
            json={
                "national_id": synthetic_id(11, seed),
                "name": "Arne Meldingsen",
                "guardians": [
                    {
                        "national_id": synthetic_id(39, seed + 1),
                        "name": "Guri Meldingsen",
                        "parental_responsibility": True,
                    }
                ],
            },
        )
        assert registered.status_code == 201, registered.text
        seq = registered.headers.get("stafett-seq")
        opened = api.post(
            f"{stafett.urls['case']}/api/v1/cases",
            json={
                "unit_id": "siljan-ungdomsskole",
                "level": 1,
                "child": {"national_id": synthetic_id(11, seed)},
                "concern": "Arne virker redd og trekker seg unna.",
            },
            headers={"Stafett-Min-Seq": seq} if seq else {},
        )
        assert opened.status_code == 201, opened.text
        return str(opened.json()["id"])


def _own_reports(stafett: Running, case_id: str) -> list[dict[str, Any]]:
    with stafett.api(TEACHER) as api:
        answer = api.get(f"{stafett.urls['case']}/api/v1/cases/{case_id}/child-welfare-reports")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def _until_listed(page: Page, portal: str, report_id: str) -> None:
    """The intake's list, read again until the case service has the report (bounded): the
    teacher's write and the intake's read are two people's sessions."""
    link = page.locator(f"a[href='/barnevern/meldinger/{report_id}']")
    deadline = time.monotonic() + 20
    while link.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        page.goto(portal + "/barnevern/meldinger")
    assert link.count() == 1, "the report never reached the intake's list"


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP, NARROW], ids=["telefon", "pc", "320px"])
def test_a_report_goes_from_the_teacher_to_the_child_welfare_intake(
    browser: Browser, stafett: Running, screenshots: Any, viewport: ViewportSize
) -> None:
    seed = int(time.time()) % 1000 + (
        100 if viewport is PHONE else 400 if viewport is DESKTOP else 700
    )
    case_id = _case(stafett, seed)
    views: Counter[tuple[str, str, str]] = Counter()
    shots = screenshots if viewport is not NARROW else None

    # The teacher sends the report from the case; no consent is needed.
    teacher = Visit(browser, stafett, TEACHER, viewport, shots, views)
    teacher.sign_in()
    teacher.goto(f"/saker/{case_id}/barnevern")
    teacher.page.get_by_label("Hva er du bekymret for?").fill(TEXT)
    teacher.click("button", "Send meldingen")
    expect(teacher.page.get_by_role("status")).to_contain_text("sendt til barnevernet")
    mine = teacher.page.get_by_role("region", name="Dine bekymringsmeldinger til barnevernet")
    expect(mine).to_contain_text("Sendt")
    expect(mine).to_contain_text("Barneverntjenesten i Skien")
    teacher.check()
    (report,) = _own_reports(stafett, case_id)
    report_id = report["id"]
    assert report["status"] == "sent" and report["unit_id"] == "skien-barnevern"

    # Skien's intake finds it under «Bekymringsmeldinger», without the text in the list.
    if viewport is NARROW:  # a phone without JavaScript: every step is a link or a form
        context = browser.new_context(
            viewport=viewport, locale="nb-NO", timezone_id="Europe/Oslo", java_script_enabled=False
        )
        page = context.new_page()
        page.goto(stafett.portal + "/logg-inn")
        page.locator(f"form:has(input[value='{INTAKE}']) button").click()
        page.get_by_role("navigation", name="Hovedmeny").get_by_role(
            "link", name="Bekymringsmeldinger"
        ).click()
        _until_listed(page, stafett.portal, report_id)
        measure(page)
        assert TEXT not in page.content()
        page.locator(f"a[href='/barnevern/meldinger/{report_id}']").click()
        expect(page.get_by_text(TEXT)).to_be_visible()
        measure(page)
        page.get_by_role("button", name="Bekreft mottatt").click()
        expect(page.get_by_role("status")).to_contain_text("Meldingen er bekreftet mottatt")
        measure(page)
        context.close()
    else:
        intake = Visit(browser, stafett, INTAKE, viewport, shots, views)
        intake.sign_in()
        intake.click("link", "Bekymringsmeldinger")
        _until_listed(intake.page, stafett.portal, report_id)
        intake.check("bekymringsmeldinger")
        assert TEXT not in intake.page.content()
        item = intake.page.locator(
            "li", has=intake.page.locator(f"a[href='/barnevern/meldinger/{report_id}']")
        )
        expect(item).to_contain_text("Siljan ungdomsskole")
        expect(item).to_contain_text("Sendt")
        intake.page.locator(f"a[href='/barnevern/meldinger/{report_id}']").click()
        intake.page.wait_for_load_state()
        intake.check("bekymringsmelding")
        expect(intake.page.get_by_text(TEXT)).to_be_visible()
        expect(intake.page.get_by_text("Arne Meldingsen")).to_be_visible()
        expect(intake.page.get_by_text("Ann Kristin Allum").first).to_be_visible()
        intake.click("button", "Bekreft mottatt")
        expect(intake.page.get_by_role("status")).to_contain_text("Meldingen er bekreftet mottatt")
        expect(intake.page.get_by_role("button", name="Bekreft mottatt")).to_have_count(0)

        # The report, not the case: the case stays closed to the intake.
        intake.goto(f"/saker/{case_id}")
        expect(intake.page.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)

        # Another child welfare service gets the page an unknown report gets.
        other = Visit(browser, stafett, OTHER_SERVICE, viewport, None, views)
        other.sign_in()
        other.goto(f"/barnevern/meldinger/{report_id}")
        expect(other.page.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)
        refused = other.page.locator("main").inner_text()
        assert TEXT not in other.page.content()
        other.goto(f"/barnevern/meldinger/{new_id()}")
        assert other.page.locator("main").inner_text() == refused

    # The teacher sees that it arrived.
    teacher.goto(f"/saker/{case_id}")
    deadline = time.monotonic() + 20
    while "Mottatt av barneverntjenesten" not in mine.inner_text():
        assert time.monotonic() < deadline, "the receipt never reached the teacher's case page"
        time.sleep(0.2)
        teacher.goto(f"/saker/{case_id}")
    expect(mine).to_contain_text("Mottatt av barneverntjenesten")
    teacher.check("bekymringsmelding-status")
    (report,) = _own_reports(stafett, case_id)
    assert report["status"] == "received"
