"""A teacher, a school nurse, an upper secondary teacher, a principal and an outsider use the
portal in Chromium, at a phone's size and a desktop's. axe-core checks every page they see,
and afterwards the log's access records must hold each page view of case content."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from stafett_shared.ids import new_id

from .conftest import DESKTOP, PHONE, Running, accessible, fields, new_page, synthetic_id

NOT_FOUND = "Finnes ikke, eller du har ikke tilgang"


class Visit:
    """One person in the browser: every page is checked by axe, case pages are counted."""

    def __init__(
        self,
        browser: Browser,
        stafett: Running,
        person: str,
        viewport: ViewportSize,
        shots: Path | None,
        views: Counter[tuple[str, str, str]],
    ) -> None:
        self.page = new_page(browser, viewport)
        self.stafett = stafett
        self.person = person
        self.size = "telefon" if viewport is PHONE else "pc"
        self.shots = shots
        self.views = views

    def check(self, name: str | None = None) -> None:
        accessible(self.page)
        if name and self.shots is not None:
            self.page.screenshot(path=str(self.shots / f"{name}-{self.size}.png"), full_page=True)

    def goto(self, path: str, name: str | None = None) -> None:
        self.page.goto(self.stafett.portal + path)
        self.counted()
        self.check(name)

    def counted(self) -> None:
        """Count the views of case content this page made, by what the services record."""
        match = re.search(r"/saker/([0-9A-Z]{26})(/[a-z-]+)?", self.page.url)
        if match is None or NOT_FOUND in self.page.content():
            return
        case_id, rest = match.group(1), match.group(2) or ""
        self.views[(self.person, case_id, "case")] += 1
        if rest == "/logg":
            self.views[(self.person, case_id, "entries")] += 1

    def click(self, role: str, name: str, shot: str | None = None) -> None:
        self.page.get_by_role(role, name=name).first.click()  # type: ignore[arg-type]
        self.page.wait_for_load_state()
        self.counted()
        self.check(shot)

    def sign_in(self, shot: str | None = None) -> None:
        self.goto("/logg-inn", shot)
        self.page.locator(f"form:has(input[value='{self.person}']) button").click()
        expect(self.page.get_by_role("heading", level=1, name="Mine saker")).to_be_visible()
        self.check()


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["telefon", "pc"])
def test_a_case_goes_from_the_teacher_to_the_county_school(
    browser: Browser, stafett: Running, screenshots: Path | None, viewport: ViewportSize
) -> None:
    views: Counter[tuple[str, str, str]] = Counter()
    seed = int(time.time()) % 1000 + (0 if viewport is PHONE else 500)

    # Tove (here Ann Kristin), teacher, signs in, registers the child and opens a case.
    tove = Visit(browser, stafett, "ann-kristin-allum", viewport, screenshots, views)
    tove.sign_in("logg-inn")
    tove.check("mine-saker")
    tove.goto("/barn/ny", "registrer-barn")
    child = synthetic_id(10, seed)
    fields(
        tove.page,
        {
            "Barnets fødselsnummer": child,
            "Barnets navn": "Arne Testesen",
            "Foresatt 1: fødselsnummer": synthetic_id(40, seed + 1),
            "Foresatt 1: navn": "Guri Testesen",
            "Foresatt 2: fødselsnummer": synthetic_id(42, seed + 2),
            "Foresatt 2: navn": "Per Testesen",
        },
    )
    tove.click("button", "Registrer barnet")
    expect(tove.page.get_by_role("status")).to_contain_text("Barnet er registrert")
    # A form that forgives: a missing concern is named at the top and at the field.
    tove.page.get_by_label("Ja, barnet er registrert").check()
    tove.page.get_by_label("Barnets fødselsnummer").fill(child)
    tove.page.get_by_label(re.compile("^Nivå 1")).check()
    tove.click("button", "Opprett saken", "ny-sak-feil")
    expect(tove.page.get_by_role("alert")).to_contain_text("Fyll ut «Hva er du bekymret for?»")
    expect(tove.page.get_by_label("Barnets fødselsnummer")).to_have_value(child)
    tove.page.get_by_label("Hva er du bekymret for?").fill("Fravær hver mandag i en måned.")
    tove.click("button", "Opprett saken", "saken-opprettet")
    expect(tove.page.get_by_role("status")).to_contain_text("Saken er opprettet")
    case_id = tove.page.url.rstrip("/").rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9A-Z]{26}", case_id)
    expect(tove.page.get_by_text("Stafettholder").first).to_be_visible()

    # She writes an observation and the child's own words.
    tove.goto(f"/saker/{case_id}/logg")
    for kind, text in (
        ("Observasjon", "Arne var stille i friminuttet."),
        ("Barnets stemme – «Hva er viktig for meg?»", "Jeg vil fortsette med fotball."),
    ):
        tove.page.get_by_label("Hva slags innføring?").select_option(label=kind)
        tove.page.get_by_label("Tekst", exact=True).fill(text)
        tove.click("button", "Lagre innføringen")
        expect(tove.page.get_by_role("status")).to_contain_text("Innføringen er lagret")
    expect(tove.page.get_by_text("Barnets egne ord", exact=True)).to_be_visible()
    tove.check("stafettloggen")
    tove.goto(f"/saker/{case_id}/lest", "hvem-har-lest")
    expect(tove.page.get_by_text("som stafettholder").first).to_be_visible()

    # She adds the school nurse to the team and asks for consent (nurse and county school).
    tove.goto(f"/saker/{case_id}/team", "legg-til-i-teamet")
    tove.page.get_by_label("Hvem skal inn i teamet?").select_option(
        "hanne-helse|siljan-helsestasjon"
    )
    tove.click("button", "Legg til")
    expect(tove.page.get_by_role("status")).to_contain_text("lagt til i teamet")
    tove.goto(f"/saker/{case_id}/samtykke", "be-om-samtykke")
    tove.page.get_by_label(re.compile("^Helsestasjonen i Siljan")).check()
    tove.page.get_by_label(re.compile("^Skien videregående skole")).check()
    tove.page.get_by_label("Hva er formålet?").fill(
        "Skolen og helsesykepleier samarbeider om Arnes fravær, og videregående tar over."
    )
    tove.page.get_by_label(
        "Historikken kan følge med ved overføring til en annen virksomhet"
    ).check()
    tove.click("button", "Be om samtykke")
    expect(tove.page.get_by_role("status")).to_contain_text("venter på signatur")

    # Both guardians sign through the API (their own portal is another page).
    with stafett.api("ann-kristin-allum") as api:
        consents = api.get(
            f"{stafett.urls['consent']}/api/v1/consents", params={"case_id": case_id}
        ).json()
        consent = (consents.get("items", consents) if isinstance(consents, dict) else consents)[0]
        grantors = [m for g in consent["grantors"] for m in g["members"]]
        assert len(grantors) == 2, consent
        for guardian in grantors:
            with stafett.api(guardian) as own:
                signed = own.post(
                    f"{stafett.urls['consent']}/api/v1/consents/{consent['id']}/signatures",
                    json={"grantor_person_id": guardian, "method": "digital_signature"},
                )
                assert signed.status_code == 201, signed.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = api.get(
                f"{stafett.urls['consent']}/api/v1/consents", params={"case_id": case_id}
            ).json()
            items = listed.get("items", listed) if isinstance(listed, dict) else listed
            if items[0]["status"] == "active":
                break
            time.sleep(0.2)
        assert items[0]["status"] == "active"
    tove.goto(f"/saker/{case_id}", "saken")
    expect(tove.page.get_by_text("Gyldig", exact=True)).to_be_visible()

    # The nurse finds the case in her list and reads the log.
    nurse = Visit(browser, stafett, "hanne-helse", viewport, screenshots, views)
    nurse.sign_in()
    nurse.click("link", f"Sak {case_id[-6:]}")
    nurse.click("link", "Les stafettloggen")
    expect(nurse.page.get_by_text("Jeg vil fortsette med fotball.")).to_be_visible()

    # Tove asks Vidar at the county school to take over.
    tove.goto(f"/saker/{case_id}/overforing", "overforing")
    tove.page.get_by_label("Hvem skal overta stafetten?").select_option("vidar-vgs|skien-vgs")
    tove.page.get_by_label("Overføringsnotat").fill("Arne begynner på Skien vgs i august.")
    tove.click("button", "Send forespørselen")
    expect(tove.page.get_by_role("status")).to_contain_text("Forespørselen er sendt")

    # Vidar sees the handover waiting, reads the header and accepts.
    vidar = Visit(browser, stafett, "vidar-vgs", viewport, screenshots, views)
    vidar.sign_in()
    vidar.goto(f"/saker/{case_id}")  # not the holder yet: the header, not the case
    expect(vidar.page.get_by_role("heading", name="Overta stafetten?")).to_be_visible()
    expect(vidar.page.get_by_text("Arne begynner på Skien vgs i august.")).to_be_visible()
    vidar.check("overta-stafetten")
    vidar.goto("/innboks", "innboks")
    vidar.goto(f"/saker/{case_id}")
    vidar.click("button", "Godta og bli stafettholder")
    expect(vidar.page.get_by_role("status")).to_contain_text("Du er nå stafettholder")
    vidar.goto(f"/saker/{case_id}/logg")
    expect(vidar.page.get_by_text("Arne var stille i friminuttet.")).to_be_visible()

    # The principal sees the indicators for the term.
    leader = Visit(browser, stafett, "rolf-rektor", viewport, screenshots, views)
    leader.sign_in()
    leader.goto("/indikatorer", "indikatorer")
    expect(leader.page.get_by_role("heading", level=1)).to_contain_text("Indikatorer")
    expect(leader.page.locator("svg.chart").first).to_be_visible()
    leader.goto("/veileder", "handlingsveileder")

    # Someone without a basis gets the same page as for a case that does not exist.
    outsider = Visit(browser, stafett, "petter-ppt", viewport, screenshots, views)
    outsider.sign_in()
    outsider.goto(f"/saker/{case_id}", "ingen-tilgang")
    expect(outsider.page.get_by_role("heading", level=1)).to_have_text(NOT_FOUND)
    refused = outsider.page.locator("main").inner_text()
    outsider.goto(f"/saker/{new_id()}")
    assert outsider.page.locator("main").inner_text() == refused

    # Every page view of case content is in the access records, as for any API client.
    with stafett.api("vidar-vgs") as api:
        records = api.get(
            f"{stafett.urls['log']}/api/v1/logs/{case_id}/access", params={"limit": 500}
        ).json()
    rows = records.get("items", records) if isinstance(records, dict) else records
    found = Counter((r["reader_id"], case_id, r["what"]) for r in rows)
    for (person, viewed_case, what), count in views.items():
        if viewed_case != case_id:
            continue
        assert found[(person, case_id, what)] >= count, (person, what, count, found)
    assert not any(r["reader_id"] == "petter-ppt" for r in rows)
