"""Guardians on their phones (issue 18): guardian one signs in, finds the consent the school
asks for among her notices, chooses e-mail notices, reads the log and who read it, and signs
the consent; guardian two signs (without JavaScript, at 320 px); the school nurse's access
follows; guardian two says no to another consent and guardian one withdraws a third;
guardian one ends the cooperation and the nurse's next read is refused. A guardian without
parental responsibility sees nothing of the child. axe-core checks every page, and each
page's reads are in the access records."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from stafett_portal.app import day
from stafett_shared.demo import load_demo
from stafett_shared.settings import CommonSettings

from .conftest import (
    PHONE,
    REGION,
    Guardian,
    Running,
    accessible,
    after,
    family_case,
    fields,
    new_page,
)
from .test_portal_layout import NARROW, measure

HOLDER = "ann-kristin-allum"
NURSE = "hanne-helse"
NOT_FOUND = "Finnes ikke, eller du har ikke tilgang"
UNTIL = datetime.now(UTC).date() + timedelta(days=365)
PURPOSE = "Skolen og helsesykepleier samarbeider om fraværet."


def _items(answer: Any) -> list[dict[str, Any]]:
    return list(answer.get("items", []) if isinstance(answer, dict) else answer)


def _world(stafett: Running, seed: int) -> dict[str, Any]:
    """The school registers Arne with three guardians (the third without parental
    responsibility), opens a case, writes in the log, adds the nurse to the team and asks
    for consent to work with the health service."""
    now = datetime.now(UTC).isoformat()
    built = family_case(
        stafett,
        seed,
        child="Arne Familiesen",
        age=12,
        guardians=[
            Guardian("Guri Familiesen", 41, what="Foresatt til Arne"),
            Guardian("Per Familiesen", 43, what="Foresatt til Arne"),
            Guardian("Ola Uten", 45, responsible=False, what="Uten foreldreansvar"),
        ],
        concern="Arne er borte hver mandag.",
        writes=[
            (
                "log",
                "/api/v1/logs/{case_id}/entries",
                {"kind": "observation", "text": "Arne var stille i timen.", "occurred_at": now},
            ),
            (
                "log",
                "/api/v1/logs/{case_id}/entries",
                {"kind": "child_voice", "text": "Jeg vil spille fotball.", "occurred_at": now},
            ),
            (
                "case",
                "/api/v1/cases/{case_id}/measures",
                {
                    "title": "Samtale hver fredag",
                    "goal": "Arne har en voksen å snakke med.",
                    "responsible_person_id": HOLDER,
                    "start": datetime.now(UTC).date().isoformat(),
                    "evaluate_by": "2099-01-31",
                },
            ),
            (
                "case",
                "/api/v1/cases/{case_id}/team",
                {"person_id": NURSE, "unit_id": "siljan-helsestasjon", "access": "read"},
            ),
        ],
        purpose=PURPOSE,
        until=UNTIL,
    )
    return {
        "case_id": built.case_id,
        "guardians": built.guardian_ids,
        "consent_id": built.consent_id,
    }


def _consent_status(
    stafett: Running, case_id: str, wanted: str, consent_id: str | None = None
) -> None:
    """Until the consent service's read model has the consent (the case's first, or
    ``consent_id``) at ``wanted`` (each service follows the event stream on its own; the
    browser's next page must find it there)."""
    with stafett.api(HOLDER) as api:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            listed = _items(
                api.get(
                    f"{stafett.urls['consent']}/api/v1/consents", params={"case_id": case_id}
                ).json()
            )
            status = next((c["status"] for c in listed if consent_id in (None, c["id"])), None)
            if status == wanted:
                return
            time.sleep(0.2)
    assert status == wanted


def _notices(stafett: Running, person: str, kind: str) -> list[dict[str, Any]]:
    """The person's notices once the notify service has one of ``kind`` (it follows the
    event stream on its own)."""
    with stafett.api(person) as api:
        deadline = time.monotonic() + 20
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            items = _items(api.get(f"{stafett.urls['notify']}/api/v1/notifications").json())
            if any(n["kind"] == kind for n in items):
                return items
            time.sleep(0.2)
    raise AssertionError(f"no {kind} notice: {[n['kind'] for n in items]}")


def _preferences(stafett: Running, person: str) -> dict[str, Any]:
    with stafett.api(person) as api:
        answer = api.get(f"{stafett.urls['notify']}/api/v1/preferences")
        assert answer.status_code == 200, answer.text
        chosen: dict[str, Any] = answer.json()
        return chosen


def _ask(
    stafett: Running, case_id: str, purpose: str, last: httpx.Response | None
) -> tuple[str, httpx.Response]:
    """The holder asks for one more consent with the health service; its id and the write."""
    with stafett.api(HOLDER) as api:
        asked = api.post(
            f"{stafett.urls['consent']}/api/v1/consents",
            json={
                "case_id": case_id,
                "scope": {"org_ids": ["4010"], "sectors": ["health"], "purpose": purpose},
                "evidence": {"method": "digital_signature"},
                "valid_until": UNTIL.isoformat(),
            },
            headers=after(last) if last is not None else {},
        )
        assert asked.status_code == 201, asked.text
        return str(asked.json()["id"]), asked


class Family:
    """A person in the browser; each page is checked, screenshots kept when asked."""

    def __init__(
        self, page: Page, stafett: Running, shots: Path | None, size: str, *, script: bool = True
    ) -> None:
        self.page = page
        self.stafett = stafett
        self.shots = shots
        self.size = size
        self.script = script  # axe and the measures run as script: not without JavaScript

    def seen(self, shot: str | None = None) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_count(1)
        if not self.script:
            return
        accessible(self.page)
        measure(self.page)
        if shot and self.shots is not None:
            path = self.shots / f"familie-{shot}-{self.size}.png"
            self.page.screenshot(path=str(path), full_page=True)

    def goto(self, path: str, shot: str | None = None) -> None:
        self.page.goto(self.stafett.portal + path)
        self.seen(shot)

    def click(self, role: str, name: str, shot: str | None = None) -> None:
        self.page.get_by_role(role, name=name).first.click()  # type: ignore[arg-type]
        self.page.wait_for_load_state()
        self.seen(shot)

    def sign_in(self, name: str, shot: str | None = None, *, home: str = "Mine barn") -> None:
        self.goto("/logg-inn", shot)
        self.page.get_by_role("button", name=f"Logg inn som {name}").click()
        expect(self.page.get_by_role("heading", level=1, name=home)).to_be_visible()


@pytest.mark.slow
def test_guardians_read_the_log_see_who_read_it_and_answer_the_consent(
    browser: Browser, stafett: Running, screenshots: Path | None
) -> None:
    seed = int(time.time()) % 1000 + 250
    world = _world(stafett, seed)
    case_id, (guri_id, per_id, ola_id) = world["case_id"], world["guardians"]

    # Guardian one signs in on her phone and finds Arne, with a consent waiting for her.
    guri = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    guri.sign_in("Guri Familiesen", "logg-inn")
    guri.seen("mine-barn")
    expect(guri.page.get_by_text("Et samtykke venter på svaret ditt")).to_be_visible()

    # Her notices: the consent that waits for her, and nothing from the case.
    (asked,) = [
        n for n in _notices(stafett, guri_id, "consent_requested") if n["case_id"] == case_id
    ]
    assert (asked["case_id"], asked["read_at"]) == (case_id, None)
    guri.goto("/familie")  # the menu counts the notice now that it is there
    expect(guri.page.get_by_role("link", name="Varsler 1 uleste")).to_be_visible()
    guri.click("link", "Varsler", "varsler")
    notice = guri.page.locator(".notice", has_text="Et samtykke venter på deg")
    expect(notice).to_contain_text("Ny")
    expect(notice).not_to_contain_text("Arne")
    # She wants e-mail too, and mistypes the address: the service's answer in plain words,
    # nothing saved.
    guri.page.get_by_label("Ja, send meg en e-post også").check()
    fields(guri.page, {"E-postadresse": "guri.familiesen"})
    guri.click("button", "Lagre valget", "varsler-feil")
    expect(guri.page.get_by_role("alert")).to_contain_text("Skriv en gyldig e-postadresse")
    expect(guri.page.get_by_label("E-postadresse")).to_have_attribute("aria-invalid", "true")
    assert _preferences(stafett, guri_id)["channels"]["email"] is False
    fields(guri.page, {"E-postadresse": "guri@familiesen.example"})
    guri.click("button", "Lagre valget")
    expect(guri.page.get_by_role("status")).to_contain_text("på e-post")
    chosen = _preferences(stafett, guri_id)
    assert chosen["channels"] == {"inbox": True, "email": True, "webhook": False}
    assert chosen["email_address"] == "guri@familiesen.example"
    expect(guri.page.get_by_label("E-postadresse")).to_have_value("guri@familiesen.example")
    # The notice opens the consent it is about, and is read.
    guri.click("button", "Se samtykket")
    expect(guri.page).to_have_url(
        f"{stafett.portal}/familie/{case_id}/samtykke/{world['consent_id']}"
    )
    (opened,) = [
        n for n in _notices(stafett, guri_id, "consent_requested") if n["id"] == asked["id"]
    ]
    assert opened["read_at"] is not None

    guri.goto("/familie")
    guri.click("link", "Arne Familiesen", "barnets-sak")
    expect(guri.page.get_by_text("Ann Kristin Allum").first).to_be_visible()
    expect(guri.page.get_by_text("lærer ved Siljan ungdomsskole").first).to_be_visible()
    # The school's own phone and e-mail, to call or write to about the holder.
    expect(guri.page.locator(".baton__contact")).to_have_text(
        "Kontakt: 35 00 00 00 · ungdomsskolen@siljan.kommune.no"
    )
    expect(guri.page.locator('.baton__contact a[href="tel:35000000"]')).to_be_visible()
    expect(
        guri.page.locator('.baton__contact a[href="mailto:ungdomsskolen@siljan.kommune.no"]')
    ).to_be_visible()
    expect(guri.page.get_by_text("Samtale hver fredag")).to_be_visible()

    # She reads the log: the child's own words marked as his.
    guri.click("link", "Les loggen", "loggen")
    expect(guri.page.get_by_text("Jeg vil spille fotball.")).to_be_visible()
    expect(guri.page.get_by_text("Barnets egne ord", exact=True)).to_be_visible()

    # She opens the consent, reads it in plain words and signs with a tap and a confirmation.
    guri.goto(f"/familie/{case_id}")
    guri.click("link", "Se samtykket og svar", "samtykke")
    expect(guri.page.get_by_text("Siljan kommune")).to_be_visible()
    expect(guri.page.get_by_text(f"til og med {day(UNTIL.isoformat())}").first).to_be_visible()
    # Who asks (name, role and unit), what it is for, and whom to call about it.
    expect(guri.page.locator(".asker")).to_have_text(
        "Ann Kristin Allum, lærer ved Siljan ungdomsskole, ber om samtykket."
    )
    expect(guri.page.get_by_text("Hen er også stafettholder i saken")).to_be_visible()
    expect(guri.page.locator(".purpose")).to_have_text(PURPOSE)
    expect(guri.page.locator(".baton__contact")).to_have_text(
        "Kontakt: 35 00 00 00 · ungdomsskolen@siljan.kommune.no"
    )
    expect(guri.page.locator('.baton__contact a[href="tel:35000000"]')).to_be_visible()
    guri.click("link", "Signer", "samtykke-bekreft")
    guri.click("button", "Ja, jeg samtykker")
    expect(guri.page.get_by_role("status")).to_contain_text("Du har signert samtykket")
    expect(guri.page.get_by_text("Har ikke svart ennå")).to_be_visible()  # the other guardian

    # Guardian two signs on the narrowest phone, without JavaScript, and sees Guri's signature
    # (the pages at 320 px are measured with JavaScript below).
    context = browser.new_context(
        viewport=NARROW, locale="nb-NO", timezone_id="Europe/Oslo", java_script_enabled=False
    )
    per = Family(context.new_page(), stafett, None, "320px", script=False)
    per.sign_in("Per Familiesen")
    per.goto(f"/familie/{case_id}")
    per.click("link", "Se samtykket og svar")
    expect(per.page.get_by_text("Har signert")).to_be_visible()
    per.click("link", "Signer")
    per.click("button", "Ja, jeg samtykker")
    expect(per.page.get_by_role("status")).to_contain_text("Du har signert samtykket")
    context.close()
    _consent_status(stafett, case_id, "active")

    # The nurse's access follows the consent: she reads the log.
    nurse = new_page(browser, PHONE)
    nurse.goto(stafett.portal + "/logg-inn")
    accessible(nurse)
    nurse.locator(f"form:has(input[value='{NURSE}']) button").click()
    nurse.goto(f"{stafett.portal}/saker/{case_id}/logg")
    expect(nurse.get_by_text("Jeg vil spille fotball.")).to_be_visible()
    accessible(nurse)

    # The school asks for two more consents; Guri signs the last one over the API.
    refused_id, last = _ask(stafett, case_id, "Skolen deler karakterene med helsesykepleier.", None)
    withdrawn_id, last = _ask(stafett, case_id, "Helsesykepleier deler notater med skolen.", last)
    with stafett.api(guri_id) as api:
        signed = api.post(
            f"{stafett.urls['consent']}/api/v1/consents/{withdrawn_id}/signatures",
            json={"grantor_person_id": guri_id},
            headers=after(last),
        )
        assert signed.status_code == 201, signed.text

    # Per, now with JavaScript (so axe checks the pages he saw without it), says no to one:
    # the consent page and its confirmations, with a reason for the holder.
    per = Family(new_page(browser, NARROW), stafett, None, "320px")
    per.sign_in("Per Familiesen")
    per.goto(f"/familie/{case_id}/samtykke/{world['consent_id']}")
    per.goto(f"/familie/{case_id}/samtykke/{world['consent_id']}/signer")
    per.goto(f"/familie/{case_id}/samtykke/{refused_id}")
    expect(per.page.locator(".purpose")).to_have_text(
        "Skolen deler karakterene med helsesykepleier."
    )
    per.click("link", "Si nei")
    fields(per.page, {"Vil du si hvorfor?": "Karakterene er Arnes egen sak."})
    per.click("button", "Ja, jeg sier nei")
    expect(per.page.get_by_role("status")).to_contain_text("Du har sagt nei til samtykket")
    per.page.context.close()
    _consent_status(stafett, case_id, "refused", refused_id)

    # Guri withdraws the one she signed, alone; the first consent stays in force.
    guri.goto(f"/familie/{case_id}/samtykke/{withdrawn_id}")
    guri.click("link", "Trekk samtykket", "samtykke-trekk")
    guri.click("button", "Ja, trekk samtykket")
    expect(guri.page.get_by_role("status")).to_contain_text("Samtykket er trukket")
    _consent_status(stafett, case_id, "withdrawn", withdrawn_id)
    _consent_status(stafett, case_id, "active", world["consent_id"])

    # Guri sees the nurse's read, with role and unit, and her own.
    guri.goto(f"/familie/{case_id}/lest", "hvem-har-lest")
    nurse_card = guri.page.locator(".readers li", has_text="Hanne Helse")
    expect(nurse_card).to_contain_text("helsesykepleier ved Helsestasjonen i Siljan")
    expect(nurse_card).to_contain_text("som medlem av teamet")
    expect(guri.page.locator(".readers li", has_text="Du").first).to_be_visible()

    # She ends the cooperation: every consent of hers withdrawn in one step.
    guri.goto(f"/familie/{case_id}")
    guri.click("link", "Avslutt samarbeidet – trekk alle samtykkene dine", "avslutt")
    expect(
        guri.page.get_by_text("mister tilgangen til saken og loggen med en gang")
    ).to_be_visible()
    guri.click("button", "Trekk alle samtykkene mine")
    expect(guri.page.get_by_role("status")).to_contain_text("Du har trukket samtykkene dine")
    _consent_status(stafett, case_id, "withdrawn", world["consent_id"])

    # The nurse's next read is refused, with the words for a case that does not exist.
    nurse.goto(f"{stafett.portal}/saker/{case_id}/logg")
    expect(nurse.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)
    accessible(nurse)
    nurse.context.close()

    # A guardian without parental responsibility sees nothing of the child.
    ola = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    ola.sign_in("Ola Uten")
    expect(ola.page.get_by_text("Det er ingen saker om barna dine i Stafett.")).to_be_visible()
    ola.seen("uten-foreldreansvar")
    for path in ("", "/logg", "/lest", "/avslutt"):
        ola.goto(f"/familie/{case_id}{path}")
        expect(ola.page.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)
    ola.page.context.close()

    # Her pages fit the narrowest phone too.
    guri.page.set_viewport_size(NARROW)
    for path in ("", f"/{case_id}", f"/{case_id}/logg", f"/{case_id}/lest", "/om"):
        guri.goto(f"/familie{path}")
    guri.goto(f"/familie/{case_id}/samtykke/{world['consent_id']}")

    # Every page Guri saw is in the access records, each a read of its own.
    with stafett.api(HOLDER) as api:
        records = _items(
            api.get(
                f"{stafett.urls['log']}/api/v1/logs/{case_id}/access", params={"limit": 500}
            ).json()
        )
    reads = Counter((r["reader_id"], r["what"]) for r in records)
    assert reads[(guri_id, "entries")] >= 1, reads
    assert reads[(guri_id, "case")] >= 6, reads  # Mine barn, the case (3), consent, ending
    assert reads[(guri_id, "consents")] >= 6, reads
    assert reads[(guri_id, "consent")] >= 3, reads  # the consent with its purpose, 3 times
    assert reads[(per_id, "consents")] >= 2, reads
    assert not any(r["reader_id"] == ola_id for r in records)
    guri.page.context.close()


@pytest.mark.slow
def test_a_youth_signs_the_health_consent_themselves(
    browser: Browser, stafett: Running, screenshots: Path | None
) -> None:
    """At 16 a consent that covers health needs the youth's own signature (the youth rule):
    the youth signs in, finds their own case and signs, and sees who read it; the guardian
    sees the youth's signature."""
    seed = int(time.time()) % 1000 + 650
    built = family_case(
        stafett,
        seed,
        child="Sara Ungdom",
        age=17,
        child_what="Ungdom, 17 år",
        guardians=[Guardian("Mona Ungdom", 47, what="Foresatt til Sara")],
        concern="Sara sover dårlig og er ofte sliten.",
        purpose="Helsesykepleier og skolen samarbeider.",
        until=UNTIL,
    )
    case_id, consent_id = built.case_id, built.consent_id

    sara = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    sara.sign_in("Sara Ungdom", home="Min sak")
    sara.click("link", "Deg")
    sara.click("link", "Se samtykket og svar", "samtykke-ungdom")
    expect(sara.page.get_by_text("Barnet er gammelt nok til å bestemme selv")).to_be_visible()
    expect(sara.page.locator(".purpose")).to_have_text("Helsesykepleier og skolen samarbeider.")
    sara.click("link", "Signer")
    sara.click("button", "Ja, jeg samtykker")
    expect(sara.page.get_by_role("status")).to_contain_text("Du har signert samtykket")
    # Who read her case: her own reads, as hers.
    sara.goto(f"/familie/{case_id}/lest", "hvem-har-lest-ungdom")
    expect(sara.page.locator(".readers li", has_text="Du").first).to_be_visible()
    sara.page.context.close()

    mona = Family(new_page(browser, PHONE), stafett, None, "telefon")
    mona.sign_in("Mona Ungdom")
    mona.goto(f"/familie/{case_id}/samtykke/{consent_id}")
    youth_row = mona.page.locator("li.row", has_text="Barnet selv")
    expect(youth_row).to_contain_text("Har signert")
    expect(mona.page.locator("li.row", has_text="Du")).to_contain_text("Har ikke svart ennå")
    mona.page.context.close()


def test_a_guardian_renews_a_consent_about_to_lapse_and_signs_the_renewal(
    browser: Browser, stafett: Running, screenshots: Path | None
) -> None:
    """A consent that ends within the reminder time (the region's 30 days) is marked on the
    child's page; the guardian renews it with one tap and a confirmation and signs the new
    one, which holds from the day the old one ends (decision 0032)."""
    seed = int(time.time()) % 1000 + 450
    soon = datetime.now(UTC).date() + timedelta(days=20)
    built = family_case(
        stafett,
        seed,
        child="Tor Fornyesen",
        age=9,
        guardians=[Guardian("Liv Fornyesen", 39, what="Foresatt til Tor")],
        concern="Tor er ofte borte.",
        purpose="Helsesykepleier og skolen samarbeider.",
        until=soon,
    )
    case_id, old_id, (guardian_id,) = built.case_id, built.consent_id, built.guardian_ids
    with stafett.api(guardian_id) as api:
        signed = api.post(
            f"{stafett.urls['consent']}/api/v1/consents/{old_id}/signatures",
            json={"grantor_person_id": guardian_id},
            headers=after(built.last),
        )
        assert signed.status_code == 201, signed.text
    _consent_status(stafett, case_id, "active")

    liv = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    liv.sign_in("Liv Fornyesen")
    liv.goto(f"/familie/{case_id}")
    expect(liv.page.get_by_role("heading", name="Et samtykke utløper snart")).to_be_visible()
    liv.click("link", "Forny samtykket", "samtykke-forny")
    liv.click("button", "Ja, forny samtykket")
    expect(liv.page.get_by_role("status")).to_contain_text("Et nytt samtykke er laget")
    liv.click("link", "Signer")
    liv.click("button", "Ja, jeg samtykker")
    expect(liv.page.get_by_role("status")).to_contain_text("Du har signert samtykket")
    liv.page.context.close()

    with stafett.api(HOLDER) as api:
        listed = _items(
            api.get(
                f"{stafett.urls['consent']}/api/v1/consents", params={"case_id": case_id}
            ).json()
        )
    old, new = sorted(listed, key=lambda c: c["id"])
    assert (old["id"], old["renewed_by"], old["expires_soon"]) == (old_id, new["id"], False)
    assert (new["renews"], new["status"]) == (old_id, "active")
    assert new["valid_from"] == old["valid_until"]


@pytest.mark.slow
def test_a_guardian_is_told_of_a_new_holder_and_opens_the_childs_page_from_the_notice(
    browser: Browser, stafett: Running, screenshots: Path | None
) -> None:
    """The holder hands the case over to the principal, who accepts: the guardian finds
    «Saken har fått en ny stafettholder» among her notices, never who, and the notice leads
    to the child's page, where the new holder is named."""
    seed = int(time.time()) % 1000 + 50
    built = family_case(
        stafett,
        seed,
        child="Eli Overtaksen",
        age=11,
        guardians=[Guardian("Siv Overtaksen", 40, what="Foresatt til Eli")],
        concern="Eli gruer seg til skolen.",
    )
    case_id, (guardian_id,) = built.case_id, built.guardian_ids
    with stafett.api(HOLDER) as api:
        asked = api.post(
            f"{stafett.urls['case']}/api/v1/cases/{case_id}/handovers",
            json={"to_person_id": "rolf-rektor", "to_unit_id": "siljan-ungdomsskole"},
            headers=after(built.last),
        )
        assert asked.status_code == 201, asked.text
    with stafett.api("rolf-rektor") as api:
        accepted = api.post(
            f"{stafett.urls['case']}/api/v1/cases/{case_id}/handovers/{asked.json()['id']}/accept",
            headers=after(asked),
        )
        assert accepted.status_code == 200, accepted.text
    _notices(stafett, guardian_id, "new_holder")

    siv = Family(new_page(browser, PHONE), stafett, screenshots, "telefon")
    siv.sign_in("Siv Overtaksen")
    siv.click("link", "Varsler")
    notice = siv.page.locator(".notice", has_text="Saken har fått en ny stafettholder")
    expect(notice).to_contain_text("Du ser hvem på barnets side.")
    expect(notice).not_to_contain_text("Eli")
    notice.get_by_role("button", name="Se saken").click()
    siv.page.wait_for_load_state()
    expect(siv.page).to_have_url(f"{stafett.portal}/familie/{case_id}")
    siv.seen()
    expect(siv.page.locator(".baton__holder")).to_contain_text("Rolf Rektor")
    # Read now: the menu counts nothing, and the notice has no «Ny».
    expect(siv.page.get_by_role("link", name="Varsler", exact=True)).to_be_visible()
    siv.page.context.close()
    (told,) = [n for n in _notices(stafett, guardian_id, "new_holder") if n["kind"] == "new_holder"]
    assert (told["case_id"], told["read_at"] is not None) == (case_id, True)


@pytest.mark.slow
def test_the_development_sign_in_lists_the_demos_guardians_and_youth(
    browser: Browser, stafett: Running
) -> None:
    """`stafett demo` registers a child with two guardians; the sign-in page lists them and
    the youth, and each lands on their own pages."""
    load_demo(
        CommonSettings(data_dir=stafett.system.data_dir),
        stafett.issuer,
        REGION,
        case_url=stafett.urls["case"],
        log_url=stafett.urls["log"],
        consent_url=stafett.urls["consent"],
    )
    father = Family(new_page(browser, PHONE), stafett, None, "telefon")
    father.sign_in("Demo Far")
    father.click("link", "Demo Elev")
    father.click("link", "Les loggen")
    expect(father.page.get_by_text("Jeg vil ha en fast voksen å snakke med.")).to_be_visible()
    father.page.context.close()
    youth = Family(new_page(browser, PHONE), stafett, None, "telefon")
    youth.sign_in("Demo Elev", home="Min sak")
    youth.page.context.close()
