"""The pages a person sees, measured in Chromium at a phone's size, a desktop's and the
narrowest phone (320 px, also what 400 % zoom of a 1280 px window gives): nothing scrolls
sideways, what one taps is at least 44 px tall, and the keyboard's focus can be seen.
The core flow also works with JavaScript turned off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from .conftest import DESKTOP, PHONE, Running, new_page

NARROW: ViewportSize = {"width": 320, "height": 640}
HOLDER = "ann-kristin-allum"

# Interactive elements shorter than 44 px. Links inside running text are left out (WCAG
# 2.5.5 exempts them); a link counts when it stands alone in its line or list item.
SMALL_TARGETS = """() => {
  const small = [];
  const seen = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const short = (el) => seen(el) && el.getBoundingClientRect().height < 44;
  const fields = "input:not([type=hidden]):not([type=radio]):not([type=checkbox])";
  for (const el of document.querySelectorAll(`button, select, textarea, summary, ${fields}`)) {
    if (short(el)) small.push(el.outerHTML.slice(0, 80));
  }
  for (const a of document.querySelectorAll("a[href]")) {
    if (!seen(a) || a.classList.contains("skip")) continue;
    const block = a.closest("p, li, dd, h1, h2, h3, td, th, div");
    const alone = block !== null && block.textContent.trim() === a.textContent.trim();
    if ((alone || a.closest("nav") || a.classList.contains("row__action")) && short(a)) {
      small.push(a.outerHTML.slice(0, 80));
    }
  }
  // A radio button or check box is tapped through its row, label included.
  for (const row of document.querySelectorAll(".choice")) {
    if (short(row)) small.push(row.outerHTML.slice(0, 80));
  }
  return small;
}"""

FOCUS_SEEN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const r = el.getBoundingClientRect();
  return {
    what: el.outerHTML.slice(0, 60),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    inside: r.bottom > 0 && r.right > 0 && r.left < innerWidth && r.top < innerHeight,
  };
}"""


@pytest.fixture(scope="module")
def case_id(stafett: Running) -> str:
    """An anonymous level-0 case with an entry, a measure and a team member, made through
    the API so the pages have something on them."""
    with stafett.api(HOLDER) as api:
        opened = api.post(
            f"{stafett.urls['case']}/api/v1/cases",
            json={
                "unit_id": "siljan-ungdomsskole",
                "level": 0,
                "child": {"pseudonym": "Elev M"},
                "concern": "Trekker seg unna i friminuttene.",
            },
        )
        assert opened.status_code == 201, opened.text
        case = opened.json()["id"]
        calls = [
            (
                f"{stafett.urls['log']}/api/v1/logs/{case}/entries",
                {
                    "kind": "observation",
                    "text": "Satt alene i storefri tre dager denne uka.",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "participants": [],
                },
            ),
            (
                f"{stafett.urls['case']}/api/v1/cases/{case}/measures",
                {
                    "title": "Fast voksen i friminuttene",
                    "goal": "Eleven har noen å være sammen med.",
                    "responsible_person_id": HOLDER,
                    "start": datetime.now(UTC).date().isoformat(),
                    "evaluate_by": "2099-01-31",
                },
            ),
            (
                f"{stafett.urls['case']}/api/v1/cases/{case}/team",
                {"person_id": "rolf-rektor", "unit_id": "siljan-ungdomsskole", "access": "read"},
            ),
        ]
        for url, body in calls:
            answer = api.post(url, json=body)
            assert answer.status_code in (200, 201), (url, answer.text)
    return str(case)


@pytest.fixture
def holder(browser: Browser, stafett: Running, viewport: ViewportSize) -> Iterator[Page]:
    page = new_page(browser, viewport)
    page.goto(stafett.portal + "/logg-inn")
    measure(page)  # the sign-in page itself
    page.locator(f"form:has(input[value='{HOLDER}']) button").click()
    expect(page.get_by_role("heading", level=1, name="Mine saker")).to_be_visible()
    yield page
    page.context.close()


def measure(page: Page) -> None:
    sideways = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert sideways <= 0, f"{page.url} scrolls {sideways} px sideways"
    small = page.evaluate(SMALL_TARGETS)
    assert not small, f"{page.url}: shorter than 44 px: {small}"


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP, NARROW], ids=["telefon", "pc", "320px"])
def test_pages_fit_the_screen_and_are_easy_to_tap(
    holder: Page, stafett: Running, case_id: str, viewport: ViewportSize
) -> None:
    for path in (
        "/saker",
        "/saker/ny",
        "/barn/ny",
        f"/saker/{case_id}",
        f"/saker/{case_id}/logg",
        f"/saker/{case_id}/lest",
        f"/saker/{case_id}/team",
        f"/saker/{case_id}/barnevern",
        "/innboks",
        "/barnevern/meldinger",  # not intake: the empty list
        "/veileder",
        f"/saker/{case_id[:-1]}{'1' if case_id.endswith('0') else '0'}",  # refused
    ):
        holder.goto(stafett.portal + path)
        expect(holder.get_by_role("heading", level=1)).to_have_count(1)
        measure(holder)
    # A form with mistakes: the summary's links are tap targets too.
    holder.goto(stafett.portal + "/saker/ny")
    holder.get_by_role("button", name="Opprett saken").click()
    expect(holder.get_by_role("alert")).to_be_visible()
    measure(holder)


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["telefon", "pc"])
def test_keyboard_focus_is_visible(holder: Page, stafett: Running, case_id: str) -> None:
    holder.goto(f"{stafett.portal}/saker/{case_id}")
    focused = []
    for _ in range(8):
        holder.keyboard.press("Tab")
        seen = holder.evaluate(FOCUS_SEEN)
        assert seen is not None, "Tab left the page"
        assert seen["outline"] and seen["inside"], seen
        focused.append(seen["what"])
    assert "Hopp til innholdet" in focused[0], focused
    # The skip link takes the keyboard past the menu to the page's own content.
    holder.goto(f"{stafett.portal}/saker/{case_id}")
    holder.keyboard.press("Tab")
    holder.keyboard.press("Enter")
    holder.keyboard.press("Tab")
    seen = holder.evaluate(FOCUS_SEEN)
    assert seen is not None and "Mine saker" in seen["what"] and seen["outline"], seen


@pytest.mark.slow
def test_the_log_works_without_javascript(browser: Browser, stafett: Running, case_id: str) -> None:
    context = browser.new_context(viewport=PHONE, locale="nb-NO", java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(stafett.portal + "/logg-inn")
        page.locator(f"form:has(input[value='{HOLDER}']) button").click()
        page.get_by_role("link", name=f"Sak {case_id[-6:]}").first.click()
        page.get_by_role("link", name="Skriv i loggen").click()
        # Sent empty: the summary names the field, and the page says it in its title.
        page.get_by_role("button", name="Lagre innføringen").click()
        expect(page).to_have_title(f"Feil: Stafettloggen, sak {case_id[-6:]} – Stafett")
        page.get_by_role("alert").get_by_role("link", name="Fyll ut «Tekst».").click()
        assert page.url.endswith("#f-text")
        page.get_by_label("Tekst", exact=True).fill("Spiste lunsj sammen med to i klassen.")
        page.get_by_role("button", name="Lagre innføringen").click()
        expect(page.get_by_role("status")).to_contain_text("Innføringen er lagret")
        expect(page.get_by_text("Spiste lunsj sammen med to i klassen.")).to_be_visible()
        page.get_by_role("link", name="Hvem har lest loggen").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Hvem har lest")
        expect(page.get_by_text("som stafettholder").first).to_be_visible()
    finally:
        context.close()
