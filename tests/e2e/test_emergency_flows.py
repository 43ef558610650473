"""Emergency access in the portal (issue 17, item 5; decision 0027), in Chromium at a phone's
size and a desktop's: a health nurse of the case's municipality asks for emergency access
with a ground and a reason and reads the case; her repeat within 30 days on another case
waits; the school's leader approves it on the approval page, and then she reads that case
too. axe-core checks every page they see; the form and the approval page fit 320 px, with
targets of 44 px and visible focus."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from stafett_consent.testing import past_emergency_grant
from stafett_shared.envelope import registry
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id

from .conftest import DESKTOP, PHONE, Running
from .test_portal_flows import Visit
from .test_portal_layout import FOCUS_SEEN, NARROW, SMALL_TARGETS

HOLDER = "ann-kristin-allum"  # teacher, Siljan ungdomsskole
NURSE = "hanne-helse"  # health nurse, Helsestasjonen i Siljan: the same municipality
LEADER = "rolf-rektor"  # leader, Siljan ungdomsskole: the unit that owns the cases
NOT_FOUND = "Finnes ikke, eller du har ikke tilgang"
REASON = "Mor ringer og sier at eleven ikke kom hjem etter skolen. Holderen svarer ikke."


def _open_case(stafett: Running, concern: str) -> str:
    with stafett.api(HOLDER) as api:
        opened = api.post(
            f"{stafett.urls['case']}/api/v1/cases",
            json={
                "unit_id": "siljan-ungdomsskole",
                "level": 0,
                "child": {"pseudonym": "Elev N"},
                "concern": concern,
            },
        )
        assert opened.status_code == 201, opened.text
        case_id: str = opened.json()["id"]
    _seen_by_consent(stafett, case_id, int(opened.headers["Stafett-Seq"]))
    return case_id


def _seen_by_consent(stafett: Running, case_id: str, seq: int) -> None:
    """Wait until the consent service's read models hold ``seq`` (the nurse may not read)."""
    with stafett.api(NURSE) as api:
        asked = api.post(
            f"{stafett.urls['consent']}/api/v1/decisions",
            json={
                "principal": NURSE,
                "action": "case:read",
                "resource": {"case_id": case_id},
                "min_seq": seq,
            },
        )
        assert asked.status_code == 200, asked.text
        assert asked.json()["decision"] == "deny"


def _past_grant(stafett: Running, case_id: str, days_ago: int) -> None:
    """The nurse had emergency access to the case ``days_ago`` days ago, for a day: what
    makes a new request a repeat. Written on the stream as the consent service writes it."""
    granted = past_emergency_grant(NURSE, case_id, days_ago=days_ago)
    grant_id, start = granted.grant_id, granted.valid_from

    async def publish() -> int:
        nc = await nats.connect(stafett.system.nats.url)
        try:
            store = EventStore(nc)
            event = registry.envelope(
                granted,
                subject=grant_id,
                source="stafett/consent",
                tenant="4010",
                actor=NURSE,
                time=start,
            )
            result = await store.append(
                store.subject("consent", grant_id), [event], expected_version=0
            )
            return result.seq
        finally:
            await nc.drain()

    # Playwright's synchronous API keeps an event loop in this thread: publish in another.
    with ThreadPoolExecutor(1) as pool:
        seq = pool.submit(asyncio.run, publish()).result()
    _seen_by_consent(stafett, case_id, seq)


class Person(Visit):
    """One person in the browser, as in the portal's flows, who also asks for access."""

    def ask(self, case_ref: str, ground: str, reason: str, shot: str | None = None) -> None:
        page = self.page
        page.goto(self.stafett.portal + "/nodtilgang")
        page.get_by_label("Saksreferanse").fill(case_ref)
        page.get_by_label(ground).check()
        page.get_by_label("Beskriv situasjonen").fill(reason)
        self.check(shot)
        page.get_by_role("button", name="Be om nødtilgang").click()
        page.wait_for_load_state()

    def until(self, path: str, seen: str, tries: int = 100) -> None:
        """Open ``path`` until ``seen`` is on it: the consent service's read models follow
        the stream a moment after a write by someone else."""
        for _ in range(tries):
            self.page.goto(self.stafett.portal + path)
            if seen in self.page.content():
                return
            time.sleep(0.1)
        raise AssertionError(f"{path}: never showed {seen!r}")


def _fits(page: Page) -> None:
    """At 320 px: nothing scrolls sideways, targets are 44 px, the keyboard's focus shows."""
    page.set_viewport_size(NARROW)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"{page.url} scrolls sideways"
    assert page.evaluate(SMALL_TARGETS) == [], page.url
    for _ in range(3):
        page.keyboard.press("Tab")
    focus = page.evaluate(FOCUS_SEEN)
    assert focus is not None and focus["outline"], (page.url, focus)


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["telefon", "pc"])
def test_a_nurse_reads_a_case_in_an_emergency_and_a_leader_approves_her_repeat(
    browser: Browser, stafett: Running, screenshots: Path | None, viewport: ViewportSize
) -> None:
    first = _open_case(stafett, "Eleven har vært borte flere dager.")
    second = _open_case(stafett, "Eleven virker redd for å gå hjem.")
    _past_grant(stafett, second, days_ago=3)

    nurse = Person(browser, stafett, NURSE, viewport, screenshots, Counter())
    nurse.sign_in()
    # The way in is a small link on Mine saker.
    nurse.page.get_by_role("link", name="Be om nødtilgang til en sak").click()
    expect(nurse.page.get_by_role("heading", level=1, name="Be om nødtilgang")).to_be_visible()
    expect(nurse.page.get_by_text("Tilgangen varer i 24 timer.")).to_be_visible()
    expect(nurse.page.get_by_text("de foresatte får beskjed")).to_be_visible()

    # Nothing filled in: every message at once, beside its field; nothing was asked.
    nurse.page.get_by_role("button", name="Be om nødtilgang").click()
    expect(nurse.page.get_by_role("heading", name="Dette må rettes")).to_be_visible()
    expect(nurse.page.get_by_text("Velg hvorfor du trenger nødtilgang.").first).to_be_visible()
    nurse.check("nodtilgang-feil")

    # A case she has no relation to, or none at all: the same words, nothing revealed.
    nurse.ask(new_id(), "Barnet er savnet", REASON)
    expect(nurse.page.get_by_text("Vi fant ingen sak du kan be om nødtilgang til")).to_be_visible()
    nurse.check()

    # A pasted link to the case's page names the case.
    nurse.ask(f"{stafett.portal}/saker/{first}", "Barnet er savnet", REASON, shot="nodtilgang")
    expect(nurse.page).to_have_url(re.compile(f"/saker/{first}$"))
    expect(nurse.page.get_by_text("Du har nødtilgang til saken i 24 timer")).to_be_visible()
    assert NOT_FOUND not in nurse.page.content()
    nurse.check("nodtilgang-saken")

    # One at a time: asking again while the grant holds is said in plain words.
    nurse.ask(first, "Barnet er savnet", REASON)
    expect(nurse.page.get_by_text("Du har allerede nødtilgang til saken.")).to_be_visible()

    # A repeat within 30 days (she had access to the second case three days ago) waits.
    nurse.ask(second, "Mistanke om vold eller overgrep", REASON)
    expect(nurse.page).to_have_url(re.compile("/nodtilgang/venter$"))
    expect(nurse.page.get_by_role("heading", level=1, name="En leder må godkjenne")).to_be_visible()
    nurse.check("nodtilgang-venter")
    nurse.page.goto(f"{stafett.portal}/saker/{second}")
    expect(nurse.page.get_by_text(NOT_FOUND)).to_be_visible()

    # The school's leader approves it on the approval page.
    leader = Person(browser, stafett, LEADER, viewport, screenshots, Counter())
    leader.sign_in()
    # Her notice in the leader's inbox leads to the approval page.
    leader.until("/innboks", "Se forespørselen")
    leader.page.get_by_role("link", name="Se forespørselen").first.click()
    expect(leader.page).to_have_url(re.compile("/nodtilgang/godkjenn$"))
    leader.until("/nodtilgang/godkjenn", f"Sak {second[-6:]}")
    item = leader.page.locator("li", has_text=f"Sak {second[-6:]}")
    expect(item.get_by_text("Mistanke om vold eller overgrep")).to_be_visible()
    expect(item.get_by_text("Hanne")).to_be_visible()
    leader.check("nodtilgang-godkjenn")
    item.get_by_role("button", name=re.compile("^Godkjenn")).click()
    leader.page.wait_for_load_state()
    expect(leader.page.get_by_text("Nødtilgangen er godkjent")).to_be_visible()
    leader.check()
    leader.until("/nodtilgang/godkjenn", "Ingen forespørsler venter på deg.")

    # Now she reads the second case too.
    nurse.until(f"/saker/{second}", "Stafettholder")
    assert NOT_FOUND not in nurse.page.content()
    nurse.check()

    if viewport is PHONE:
        _fits(nurse.page)
        nurse.page.goto(f"{stafett.portal}/nodtilgang")
        _fits(nurse.page)
        leader.page.goto(f"{stafett.portal}/nodtilgang/godkjenn")
        _fits(leader.page)
