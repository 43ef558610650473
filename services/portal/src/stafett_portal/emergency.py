"""Emergency access in the portal (issue 17, item 5; docs/decisions/0027): staff ask to read a
case for 24 hours with a ground and a written reason, and a leader approves a repeat.

The consent service decides everything: who may ask (staff related to the case's organisation
or sector), one grant at a time, a repeat within 30 days waits for a leader of the case's
unit. The portal only asks, with the person's own token, and says the answer in plain words;
a case one may not ask about is told in the same words whether it exists or not.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from stafett_portal.app import ULID, Page, _api, _field_errors, _form, _key, _page, redirect, render
from stafett_portal.backend import ApiError
from stafett_portal.forms import Field, FormResult, read_form

__all__ = ["GROUNDS", "case_reference", "routes"]

GrantId = Annotated[str, PathParam(pattern=ULID)]

GROUNDS: tuple[tuple[str, str], ...] = (
    ("danger_to_life_or_health", "Fare for barnets liv eller helse"),
    ("acute_child_welfare", "Akutt situasjon for barnevernet"),
    ("missing_child", "Barnet er savnet"),
    ("suspected_violence_or_abuse", "Mistanke om vold eller overgrep"),
)
GROUND_LABELS = dict(GROUNDS)
REASON_MIN, REASON_MAX = 10, 2000

_ULID_IN_TEXT = re.compile(r"(?<![0-9A-Z])[0-9A-HJKMNP-TV-Z]{26}(?![0-9A-Z])")

FIELDS: list[Field] = [
    Field(
        "case_ref",
        "Saksreferanse",
        hint="Få den av stafettholderen på telefon, eller lim inn lenken til saken.",
        max_length=500,
        autocomplete="off",
        missing="Skriv saksreferansen eller lim inn lenken til saken.",
    ),
    Field(
        "ground",
        "Hvorfor trenger du nødtilgang?",
        kind="radio",
        options=GROUNDS,
        missing="Velg hvorfor du trenger nødtilgang.",
    ),
    Field(
        "reason",
        "Beskriv situasjonen",
        kind="textarea",
        hint=f"Hva har skjedd, og hvorfor kan det ikke vente? Minst {REASON_MIN} tegn.",
        max_length=REASON_MAX,
        missing="Skriv kort hva som har skjedd og hvorfor det haster.",
    ),
]

ASK_PROBLEMS = {
    # Unknown and unrelated cases get the same words (decision 0025).
    404: "Vi fant ingen sak du kan be om nødtilgang til med denne referansen. "
    "Sjekk referansen med stafettholderen.",
    403: "Du kan lese saken, men ikke be om nødtilgang til den. Nødtilgang er for ansatte i "
    "samme kommune eller samme fagområde som saken.",
}
ASK_CONFLICTS = {
    "emergency_access_active": "Du har allerede nødtilgang til saken. Du finner den under "
    "Mine saker.",
    "emergency_access_pending": "Du har allerede bedt om nødtilgang til saken. Den venter på "
    "at en leder godkjenner den.",
    "access_exists": "Du har allerede tilgang til saken og trenger ikke nødtilgang. Du finner "
    "den under Mine saker.",
    "no_approver": "Du har hatt nødtilgang til saken de siste 30 dagene. En ny må godkjennes "
    "av en leder, men enheten som eier saken har ingen leder i Stafett. Ring enheten.",
}
APPROVAL_PROBLEMS = {
    "not_pending": "Forespørselen er allerede godkjent.",
    "request_lapsed": "Forespørselen er eldre enn et døgn og kan ikke godkjennes lenger. "
    "Den som ba om tilgang, må be på nytt.",
    "not_unit_leader": "Bare en leder ved enheten som eier saken, kan godkjenne.",
}


def case_reference(text: str) -> str | None:
    """The case id in what was typed: the id itself, or a pasted link to the case's page.
    None when there is not exactly one id in it."""
    found = set(_ULID_IN_TEXT.findall(text.strip().upper()))
    return found.pop() if len(found) == 1 else None


def _check(result: FormResult) -> None:
    ref = result.values.get("case_ref") or ""
    if ref and "case_ref" not in result.errors and case_reference(ref) is None:
        result.errors["case_ref"] = (
            "Saksreferansen er 26 tegn, tall og store bokstaver. Sjekk den med stafettholderen."
        )
    reason = result.values.get("reason") or ""
    if reason and "reason" not in result.errors and len(reason) < REASON_MIN:
        result.errors["reason"] = f"Skriv litt mer, minst {REASON_MIN} tegn."


def _ask_form(page: Page, values: dict[str, Any], errors: dict[str, str], status: int) -> Response:
    return render(
        page,
        "pages/emergency.html",
        status,
        title="Nødtilgang",
        section="saker",
        fields=FIELDS,
        values=values,
        errors=errors,
    )


def routes(app: FastAPI) -> None:
    @app.get("/nodtilgang", include_in_schema=False)
    async def ask_page(request: Request) -> Response:
        page = await _page(request)
        return _ask_form(page, {}, {}, 200)

    @app.post("/nodtilgang", include_in_schema=False)
    async def ask(request: Request) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        result = read_form(FIELDS, form, extra=_check)
        if not result.ok:
            return _ask_form(page, result.values, result.errors, 422)
        case_id = case_reference(result.values["case_ref"])
        try:
            answer = await _api(
                page,
                "POST",
                "consent",
                "/api/v1/emergency-access",
                key=_key(form),
                json={
                    "case_id": case_id,
                    "ground": result.values["ground"],
                    "reason": result.values["reason"],
                },
            )
        except ApiError as exc:
            if exc.status == 409:
                sentence = ASK_CONFLICTS.get(exc.code, ASK_CONFLICTS["emergency_access_active"])
                errors = {"_form": sentence}
            elif exc.status in ASK_PROBLEMS:
                errors = {"_form": ASK_PROBLEMS[exc.status]}
            elif exc.status == 422:
                errors = _field_errors(exc, FIELDS)
            else:
                raise
            return _ask_form(page, result.values, errors, exc.status)
        if isinstance(answer, dict) and answer.get("status") == "pending":
            return redirect(page, "/nodtilgang/venter")
        return redirect(
            page,
            f"/saker/{case_id}",
            "Du har nødtilgang til saken i 24 timer. Stafettholderen, lederen og de foresatte "
            "får beskjed.",
        )

    @app.get("/nodtilgang/venter", include_in_schema=False)
    async def waiting_page(request: Request) -> Response:
        page = await _page(request)
        return render(page, "pages/emergency_waiting.html", title="Venter på godkjenning")

    @app.get("/nodtilgang/godkjenn", include_in_schema=False)
    async def approvals_page(request: Request) -> Response:
        page = await _page(request)
        answer = await _api(
            page, "GET", "consent", "/api/v1/emergency-access", params={"status": "pending"}
        )
        items = answer.get("items", []) if isinstance(answer, dict) else []
        return render(
            page,
            "pages/emergency_approvals.html",
            title="Nødtilgang som venter på deg",
            section="innboks",
            items=[i for i in items if isinstance(i, dict)],
            grounds=GROUND_LABELS,
        )

    @app.post("/nodtilgang/godkjenn/{grant_id}", include_in_schema=False)
    async def approve(request: Request, grant_id: GrantId) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        try:
            await _api(
                page,
                "POST",
                "consent",
                f"/api/v1/emergency-access/{grant_id}/approval",
                key=_key(form),
            )
        except ApiError as exc:
            if exc.code not in APPROVAL_PROBLEMS:
                raise
            return redirect(page, "/nodtilgang/godkjenn", APPROVAL_PROBLEMS[exc.code])
        return redirect(
            page,
            "/nodtilgang/godkjenn",
            "Nødtilgangen er godkjent og gjelder i 24 timer. Den som ba om den, stafettholderen "
            "og de foresatte får beskjed.",
        )
