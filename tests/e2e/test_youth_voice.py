"""«Hva er viktig for meg?» on a phone (issue 18, item 5): a youth of 16 signs in, writes
what matters to them in their own log, and sees it there marked as theirs; the holder sees
it in the staff's log page marked as the youth's own words, and the guardian in the
family's. axe-core checks every page. See docs/decisions/0033-the-youths-own-voice.md."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from .conftest import PHONE, Guardian, Running, accessible, family_case, new_page
from .test_family_flows import Family

HOLDER = "ann-kristin-allum"
WORDS = "Jeg vil fortsette med fotball, og jeg vil at noen spør meg før de bestemmer."
NOT_FOUND = "Finnes ikke, eller du har ikke tilgang"


@pytest.mark.slow
def test_a_youth_of_16_writes_what_matters_and_the_holder_sees_it_as_his_own(
    browser: Browser, stafett: Running, screenshots: Path | None
) -> None:
    seed = int(time.time()) % 1000 + 850
    # Arne, 16, with his mother; the school opens a case.
    case_id = family_case(
        stafett,
        seed,
        child="Arne Stemme",
        age=16,
        child_what="Ungdom, 16 år",
        guardians=[Guardian("Guri Stemme", 44, what="Foresatt til Arne")],
        concern="Arne har sluttet på fotballen og er mye borte.",
    ).case_id

    arne = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    arne.sign_in("Arne Stemme", home="Min sak")
    arne.click("link", "Deg")
    arne.click("link", "Skriv hva som er viktig for meg", "hva-er-viktig")
    expect(arne.page.get_by_text("Hvem leser det du skriver?")).to_be_visible()
    expect(arne.page.get_by_text("Ann Kristin Allum").first).to_be_visible()

    # Sent empty: the message at the top and beside the field, nothing written.
    arne.click("button", "Send til loggen", "hva-er-viktig-feil")
    expect(arne.page.get_by_role("alert")).to_contain_text("Skriv noen ord før du sender.")

    arne.page.get_by_label("Hva er viktig for deg?").fill(WORDS)
    arne.click("button", "Send til loggen", "loggen-egne-ord")
    expect(arne.page.get_by_role("status")).to_contain_text("står nå i loggen din")
    entry = arne.page.locator("li.entry", has_text=WORDS)
    expect(entry).to_contain_text("Skrevet av deg")
    arne.page.context.close()

    # The holder, on her phone, sees it in the staff's log page as the youth's own words.
    holder = new_page(browser, PHONE)
    holder.goto(stafett.portal + "/logg-inn")
    holder.locator(f"form:has(input[value='{HOLDER}']) button").click()
    holder.goto(f"{stafett.portal}/saker/{case_id}/logg")
    staff_entry = holder.locator("li.entry", has_text=WORDS)
    expect(staff_entry).to_contain_text("Skrevet av ungdommen selv")
    expect(staff_entry).not_to_contain_text("Skrevet av deg")
    accessible(holder)
    holder.context.close()

    # His mother reads it in the family's log, as his; she has nothing to write there.
    guri = Family(new_page(browser, PHONE), stafett, None, "telefon")
    guri.sign_in("Guri Stemme")
    guri.goto(f"/familie/{case_id}/logg")
    expect(guri.page.locator("li.entry", has_text=WORDS)).to_contain_text(
        "Skrevet av ungdommen selv"
    )
    guri.goto(f"/familie/{case_id}")
    expect(guri.page.get_by_text("Skriv hva som er viktig for meg")).to_have_count(0)
    guri.goto(f"/familie/{case_id}/hva-er-viktig")
    expect(guri.page.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)
    guri.page.context.close()
