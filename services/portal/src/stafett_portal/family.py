"""The families' pages (issue 18): guardians and youth read the child's case and log, see
who read it, and answer consents, on a phone, in plain words.

The same rule as every other page: what is shown comes from the services' APIs with the
signed-in person's own token, so the consent service decides (a guardian without parental
responsibility sees nothing, restricted entries stay hidden) and every view of case content
is recorded where the family can see it. Staff names, roles and units come from the consent
service's ``/staff`` and ``/organisations`` (decision 0031), never from the staff directory.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stafett_portal import texts
from stafett_portal.actions import OSLO
from stafett_portal.app import (
    ULID,
    CaseId,
    Page,
    SignInRequired,
    _api,
    _form,
    _key,
    _log_entries,
    _portal,
    redirect,
    render,
)
from stafett_portal.backend import ApiError
from stafett_portal.directory import Directory
from stafett_portal.forms import Field
from stafett_shared.paging import CURSOR_PATTERN

__all__ = ["People", "routes"]

ConsentId = Annotated[str, PathParam(pattern=ULID)]
Answer = Annotated[str, PathParam(pattern="^(signer|nekt|trekk|forny)$")]
MAX_CASES = 20  # a family's cases on one page: each one's case and consents are read
_STAFF_BATCH = 50  # what GET /api/v1/staff answers at once
_MAX_STAFF = 200  # names looked up for one page at most
_REASON_MAX = 2000
OWN_VOICE_MAX = 4000  # the log service's limit on the youth's own words (decision 0033)
NoticeId = Annotated[str, PathParam(pattern=r"^n-[0-9a-f]{40}$")]
NOTICES = "/api/v1/notifications"
PREFERENCES = "/api/v1/preferences"
MAX_UNREAD = 100  # unread notices the menu counts
NOTICE_PAGE = 20  # notices on one page of «Varsler»
CONSENT_NOTICES = ("consent_requested", "consent_expires_soon")

EMAIL_CHOICE = Field(
    "email",
    "Vil du også få varslene på e-post?",
    kind="radio",
    options=(("ja", "Ja, send meg en e-post også"), ("nei", "Nei, bare her i Stafett")),
)
EMAIL_ADDRESS = Field(
    "email_address",
    "E-postadresse",
    kind="email",
    required=False,
    needed_when="må fylles ut for e-post",
    hint="E-posten sier bare at noe har skjedd, aldri hva som står i saken.",
    max_length=320,
    inputmode="email",
    autocomplete="email",
)


@dataclass
class People:
    """Staff and organisations by name, as the families' pages say them."""

    me: str
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)

    def name(self, person_id: str | None) -> str:
        if person_id == self.me:
            return "Du"
        card = self.staff.get(person_id or "")
        return str(card.get("name") or "En ansatt") if card else "En ansatt"

    def work(self, person_id: str | None, unit_id: str | None = None) -> str:
        """«helsesykepleier ved Helsestasjonen i Siljan»: the role at the unit (the given
        unit's role first), or every role the person has."""
        card = self.staff.get(person_id or "")
        if not card:
            return f"ved {self.unit(unit_id)}" if unit_id else ""
        roles = card.get("roles") or []
        chosen = [r for r in roles if r.get("unit_id") == unit_id] or roles
        return ", ".join(
            f"{texts.ROLES.get(r.get('role'), r.get('role'))} ved {r.get('unit_name')}"
            for r in chosen
        )

    def system(self, client_id: str | None) -> str:
        """An agency's system by its organisation: «NAV Grenland (fagsystem)»."""
        card = self.staff.get(client_id or "") or {}
        client = card.get("client")
        if isinstance(client, dict) and client.get("org_name"):
            return f"{client['org_name']} (fagsystem)"
        return "Et fagsystem"

    def system_name(self, client_id: str | None) -> str:
        """The system's own name, as the region document gives it."""
        card = self.staff.get(client_id or "") or {}
        return str(card.get("name") or "") if card.get("client") else ""

    def unit(self, unit_id: str | None) -> str:
        unit = self.units.get(unit_id or "")
        return str(unit["name"]) if unit else "en enhet"

    def contact(self, unit_id: str | None) -> dict[str, str]:
        """The unit's own phone and e-mail as the families' pages link them: ``phone`` and
        ``tel`` (digits and + only), ``email``; empty when the unit gave none."""
        unit = self.units.get(unit_id or "") or {}
        out: dict[str, str] = {}
        phone, email = unit.get("phone"), unit.get("email")
        if isinstance(phone, str) and (tel := "".join(c for c in phone if c in "+0123456789")):
            out |= {"phone": phone, "tel": tel}
        if isinstance(email, str) and email:
            out["email"] = email
        return out

    def org(self, org_id: str | None) -> str:
        org = self.orgs.get(org_id or "")
        return str(org["name"]) if org else "en virksomhet"


async def _people(page: Page, person_ids: list[str | None], *, orgs: bool = False) -> People:
    people = People(me=page.session.person_id or "")
    wanted = sorted({p for p in person_ids if p and p != people.me})[:_MAX_STAFF]
    for start in range(0, len(wanted), _STAFF_BATCH):
        batch = tuple(("id", p) for p in wanted[start : start + _STAFF_BATCH])
        with contextlib.suppress(ApiError):  # names are a courtesy: the page stands without
            answer = await _api(page, "GET", "consent", "/api/v1/staff", params=batch)
            for card in answer.get("items", []) if isinstance(answer, dict) else []:
                if isinstance(card, dict) and isinstance(card.get("id"), str):
                    people.staff[card["id"]] = card
    if orgs:
        with contextlib.suppress(ApiError):
            answer = await _api(page, "GET", "consent", "/api/v1/organisations")
            for org in answer.get("items", []) if isinstance(answer, dict) else []:
                if isinstance(org, dict) and isinstance(org.get("id"), str):
                    people.orgs[org["id"]] = org
                    for unit in org.get("units") or []:
                        if isinstance(unit, dict) and isinstance(unit.get("id"), str):
                            people.units[unit["id"]] = unit
    return people


async def _family_page(request: Request) -> Page:
    """A signed-in guardian or youth with their unread notices (the menu counts them);
    staff are sent to their own pages."""
    portal = _portal(request)
    session = portal.sealer.open(request.cookies.get(portal.sealer.cookie_name))
    if not session.signed_in():
        raise SignInRequired
    if not session.citizen:
        raise StarletteHTTPException(404)
    page = Page(request, session, Directory(), None)
    try:
        answer = await _api(
            page, "GET", "notify", NOTICES, params={"unread": "true", "limit": MAX_UNREAD}
        )
    except ApiError as exc:
        if exc.status == 401:
            raise SignInRequired from None
        return page  # the count is a courtesy: the page stands without the notify service
    items = answer.get("items", []) if isinstance(answer, dict) else []
    page.unread_notices = [n for n in items if isinstance(n, dict)]
    return page


async def _consents(page: Page, case_id: str) -> list[dict[str, Any]]:
    answer = await _api(
        page, "GET", "consent", "/api/v1/consents", params={"case_id": case_id, "limit": 100}
    )
    items = answer.get("items", []) if isinstance(answer, dict) else []
    return [c for c in items if isinstance(c, dict)]


def _members(consent: dict[str, Any]) -> list[str]:
    return [m for g in consent.get("grantors") or [] for m in g.get("members") or []]


def _mine(consent: dict[str, Any], me: str | None) -> dict[str, bool]:
    """What this person may do with a consent: sign or refuse it, or withdraw it."""
    member = me in _members(consent)
    status = consent.get("status")
    signed = me in (consent.get("signed") or [])
    return {
        "member": member,
        "signed": signed,
        "answer": member and status == "pending" and not signed,
        "withdraw": member and (status == "active" or (status == "pending" and signed)),
        # About to lapse and not yet renewed: the grantor renews it (decision 0032).
        "renew": member and status == "active" and consent.get("expires_soon") is True,
    }


def _asker(consent: dict[str, Any], me: str | None) -> str | None:
    """Who asked for the consent, as the family's page says it: ``me``, the ``youth`` or
    ``guardian`` who renewed it, ``staff`` (named from the staff lookup), or None when the
    consent service does not know (a consent from before it kept who asked)."""
    asker = consent.get("requested_by")
    if not isinstance(asker, str) or not asker:
        return None
    if asker == me:
        return "me"
    for group in consent.get("grantors") or []:
        if asker in (group.get("members") or []):
            return "youth" if group.get("kind") in ("youth", "person") else "guardian"
    return "staff"


def _in_force(consent: dict[str, Any], me: str | None) -> bool:
    """A consent this person is a grantor of that is pending or active: one they may end."""
    return me in _members(consent) and consent.get("status") in ("pending", "active")


def _waiting(consents: list[dict[str, Any]], me: str | None) -> list[dict[str, Any]]:
    return [c for c in consents if _mine(c, me)["answer"]]


def _lapsing(consents: list[dict[str, Any]], me: str | None) -> list[dict[str, Any]]:
    return [c for c in consents if _mine(c, me)["renew"]]


async def _case(page: Page, case_id: str) -> dict[str, Any]:
    case = await _api(page, "GET", "case", f"/api/v1/cases/{case_id}")
    return case if isinstance(case, dict) else {}


def _child_name(case: dict[str, Any], me: str | None) -> str:
    child = case.get("child") or {}
    if child.get("id") and child.get("id") == me:
        return "Deg"
    return str(child.get("name") or "Barnet")


def _today() -> str:
    return datetime.now(OSLO).date().isoformat()


def _preference_errors(exc: ApiError) -> dict[str, str]:
    """The notify service's 4xx on the e-mail choice as a sentence beside the field."""
    if exc.code == "email_address_required":
        return {"email_address": "Skriv e-postadressen du vil få varslene på."}
    for error in exc.errors:
        loc = error.get("loc") if isinstance(error, dict) else None
        if loc and "email_address" in loc:
            return {
                "email_address": "Skriv en gyldig e-postadresse, for eksempel navn@eksempel.no."
            }
    return {"_form": texts.problem_sentence(exc.code, exc.status)}


_ANSWERS: dict[str, dict[str, str]] = {
    "signer": {
        "title": "Signer samtykket",
        "lead": "Når du signerer, kan tjenestene samarbeide slik samtykket sier.",
        "submit": "Ja, jeg samtykker",
        "path": "signatures",
        "done": "Du har signert samtykket. Det gjelder når alle som må signere, har gjort det.",
    },
    "nekt": {
        "title": "Si nei til samtykket",
        "lead": "Sier du nei, gjelder ikke samtykket, og tjenestene får ikke samarbeide slik "
        "det ble bedt om. Stafettholderen ser svaret ditt i saken.",
        "submit": "Ja, jeg sier nei",
        "path": "refusals",
        "done": "Du har sagt nei til samtykket. Stafettholderen ser svaret ditt i saken.",
    },
    "trekk": {
        "title": "Trekk samtykket",
        "lead": "Trekker du samtykket, mister tjenestene det gjaldt tilgangen med en gang. Det "
        "som allerede er skrevet, blir stående i loggen.",
        "submit": "Ja, trekk samtykket",
        "path": "withdrawals",
        "done": "Samtykket er trukket. Tjenestene det gjaldt, har ikke lenger tilgang. "
        "Stafettholderen får beskjed.",
    },
    "forny": {
        "title": "Forny samtykket",
        "lead": "Samtykket utløper snart. Fornyer du det, lages et nytt samtykke med det samme "
        "innholdet, som gjelder fra det gamle utløper. Alle som må signere, signerer det nye.",
        "submit": "Ja, forny samtykket",
        "path": "renewals",
        "done": "Et nytt samtykke er laget. Signer det, så fortsetter samarbeidet uten opphold "
        "når det gamle utløper.",
    },
}


def routes(app: FastAPI) -> None:  # noqa: PLR0915 - one place lists the families' pages
    @app.get("/familie", include_in_schema=False)
    async def my_children(request: Request) -> Response:
        page = await _family_page(request)
        me = page.session.person_id
        listing = await _api(page, "GET", "case", "/api/v1/cases", params={"limit": MAX_CASES})
        children: list[dict[str, Any]] = []
        for item in listing.get("items", []) if isinstance(listing, dict) else []:
            case = await _case(page, str(item.get("id")))
            consents = await _consents(page, case["id"])
            children.append(
                {"case": case, "name": _child_name(case, me), "waiting": _waiting(consents, me)}
            )
        people = await _people(
            page, [c["case"].get("holder", {}).get("person_id") for c in children]
        )
        own = bool(children) and all(c["name"] == "Deg" for c in children)
        return render(
            page,
            "family/children.html",
            title="Min sak" if own else "Mine barn",
            own=own,
            section="barn",
            children=children,
            people=people,
        )

    @app.get("/familie/om", include_in_schema=False)
    async def about(request: Request) -> Response:
        page = await _family_page(request)
        return render(page, "family/about.html", title="Om Stafett", section="om")

    async def notices_view(
        page: Page,
        cursor: str | None = None,
        status: int = 200,
        *,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        params: dict[str, Any] = {"limit": NOTICE_PAGE}
        if cursor:
            params["cursor"] = cursor
        answer = await _api(page, "GET", "notify", NOTICES, params=params)
        items = answer.get("items", []) if isinstance(answer, dict) else []
        if values is None:
            chosen = await _api(page, "GET", "notify", PREFERENCES)
            chosen = chosen if isinstance(chosen, dict) else {}
            email = bool((chosen.get("channels") or {}).get("email"))
            values = {
                "email": "ja" if email else "nei",
                "email_address": str(chosen.get("email_address") or ""),
            }
        return render(
            page,
            "family/notices.html",
            status,
            title="Varsler",
            section="varsler",
            items=[n for n in items if isinstance(n, dict)],
            next_cursor=answer.get("next_cursor") if isinstance(answer, dict) else None,
            older=cursor is not None,
            email_choice=EMAIL_CHOICE,
            email_address=EMAIL_ADDRESS,
            values=values,
            errors=errors or {},
        )

    @app.get("/familie/varsler", include_in_schema=False)
    async def notices_page(
        request: Request, fra: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None
    ) -> Response:
        page = await _family_page(request)
        return await notices_view(page, fra)

    @app.post("/familie/varsler", include_in_schema=False)
    async def choose_email(request: Request) -> Response:
        """E-mail on or off and the address: the other channels stay as they were."""
        page = await _family_page(request)
        form = await _form(request, page)
        email = form.get("email") == "ja"
        address = str(form.get("email_address") or "").strip()
        current = await _api(page, "GET", "notify", PREFERENCES)
        current = current if isinstance(current, dict) else {}
        body = {
            "channels": {
                "inbox": True,
                "email": email,
                "webhook": bool((current.get("channels") or {}).get("webhook")),
            },
            "email_address": address or None,
            "daily_digest": bool(current.get("daily_digest")),
        }
        try:
            await _api(page, "PUT", "notify", PREFERENCES, json=body)
        except ApiError as exc:
            if exc.status == 401 or exc.status >= 500:
                raise
            return await notices_view(
                page,
                status=422,
                errors=_preference_errors(exc),
                values={"email": "ja" if email else "nei", "email_address": address[:320]},
            )
        return redirect(
            page,
            "/familie/varsler",
            "Valget ditt er lagret. Du får varslene her i Stafett og på e-post."
            if email
            else "Valget ditt er lagret. Du får varslene bare her i Stafett.",
        )

    @app.post("/familie/varsler/{notice_id}", include_in_schema=False)
    async def open_notice(request: Request, notice_id: NoticeId) -> Response:
        """Marks the notice read; «open» goes on to what it is about: the consent that waits
        for the person's answer or is about to lapse now, else the child's page (a notice
        names only the case, never the consent)."""
        page = await _family_page(request)
        form = await _form(request, page)
        await _api(page, "POST", "notify", f"{NOTICES}/{notice_id}/read", key=_key(form))
        case_id = str(form.get("case_id") or "")
        if not form.get("open") or not re.fullmatch(ULID, case_id):
            return redirect(page, "/familie/varsler", "Varselet er merket som lest.")
        target = f"/familie/{case_id}"
        kind = form.get("kind")
        if kind in CONSENT_NOTICES:
            me = page.session.person_id
            with contextlib.suppress(ApiError):  # else the child's page says what is left
                consents = await _consents(page, case_id)
                found = (_waiting if kind == "consent_requested" else _lapsing)(consents, me)
                if found:
                    target = f"/familie/{case_id}/samtykke/{found[0]['id']}"
        return redirect(page, target)

    @app.get("/familie/{case_id}", include_in_schema=False)
    async def child_page(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        me = page.session.person_id
        case = await _case(page, case_id)
        consents = await _consents(page, case_id)
        holder = case.get("holder", {})
        ids = [holder.get("person_id")]
        ids += [m.get("responsible_person_id") for m in case.get("measures", [])]
        ids += [m.get("person_id") for m in case.get("team", [])]
        people = await _people(page, ids, orgs=True)
        return render(
            page,
            "family/child.html",
            title="Barnets sak",
            section="barn",
            case=case,
            name=_child_name(case, me),
            own=(case.get("child") or {}).get("id") == me,
            consents=consents,
            mine={c["id"]: _mine(c, me) for c in consents},
            waiting=_waiting(consents, me),
            lapsing=_lapsing(consents, me),
            can_end=any(_in_force(c, me) for c in consents),
            people=people,
            today=_today(),
        )

    @app.get("/familie/{case_id}/logg", include_in_schema=False)
    async def family_log(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        entries = list(reversed(await _log_entries(page, case_id)))
        people = await _people(page, [e.get("author", {}).get("person_id") for e in entries])
        return render(
            page,
            "family/log.html",
            title="Loggen",
            section="barn",
            case_id=case_id,
            entries=entries,
            people=people,
        )

    async def own_voice_view(
        page: Page,
        case_id: str,
        status: int = 200,
        *,
        errors: dict[str, str] | None = None,
        text: str = "",
    ) -> Response:
        case = await _case(page, case_id)
        if (case.get("child") or {}).get("id") != page.session.person_id:
            # The youth's own words are the youth's: a guardian has nothing to write here.
            raise StarletteHTTPException(404)
        people = await _people(page, [case.get("holder", {}).get("person_id")], orgs=True)
        return render(
            page,
            "family/own_voice.html",
            status,
            title="Hva er viktig for meg?",
            section="barn",
            case=case,
            people=people,
            errors=errors or {},
            text=text,
            limit=OWN_VOICE_MAX,
        )

    @app.get("/familie/{case_id}/hva-er-viktig", include_in_schema=False)
    async def own_voice_page(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        return await own_voice_view(page, case_id)

    @app.post("/familie/{case_id}/hva-er-viktig", include_in_schema=False)
    async def own_voice_write(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        form = await _form(request, page)
        text = str(form.get("text") or "").strip()
        message = None
        if not text:
            message = "Skriv noen ord før du sender."
        elif len(text) > OWN_VOICE_MAX:
            message = f"Teksten kan være på høyst {OWN_VOICE_MAX} tegn. Gjør den litt kortere."
        if message is None:
            try:
                await _api(
                    page,
                    "POST",
                    "log",
                    f"/api/v1/logs/{case_id}/own-voice",
                    json={"text": text},
                    key=_key(form),
                )
            except ApiError as exc:
                if exc.status in (401, 404):
                    raise
                message = (
                    "Du har skrevet mange ganger i dag. Prøv igjen i morgen."
                    if exc.status == 429
                    else texts.problem_sentence(exc.code, exc.status)
                )
        if message is not None:
            return await own_voice_view(
                page, case_id, 422, errors={"text": message}, text=text[: OWN_VOICE_MAX * 2]
            )
        return redirect(
            page,
            f"/familie/{case_id}/logg",
            "Takk! Det du skrev, står nå i loggen din, merket som skrevet av deg.",
        )

    @app.get("/familie/{case_id}/lest", include_in_schema=False)
    async def family_readers(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        answer = await _api(
            page, "GET", "log", f"/api/v1/logs/{case_id}/access", params={"limit": 200}
        )
        items = answer.get("items", []) if isinstance(answer, dict) else []
        people = await _people(
            page,
            [r.get("reader_id") for r in items if r.get("reader_kind") in ("person", "client")],
        )
        return render(
            page,
            "family/readers.html",
            title="Hvem har lest",
            section="barn",
            case_id=case_id,
            items=items,
            people=people,
        )

    async def consent_of(page: Page, case_id: str, consent_id: str) -> dict[str, Any]:
        """The consent with who asked and, for its grantors, what it is for (decision
        0034); a consent of another case is as one that does not exist."""
        consent = await _api(page, "GET", "consent", f"/api/v1/consents/{consent_id}")
        if not isinstance(consent, dict) or consent.get("case_id") != case_id:
            raise ApiError(404, "not_found")
        return consent

    async def consent_view(
        page: Page,
        case_id: str,
        consent_id: str,
        template: str,
        status: int = 200,
        **values: Any,
    ) -> Response:
        me = page.session.person_id
        case = await _case(page, case_id)
        consent = await consent_of(page, case_id, consent_id)
        asker = consent.get("requested_by")
        people = await _people(page, [case.get("holder", {}).get("person_id"), asker], orgs=True)
        return render(
            page,
            template,
            status,
            section="samtykke",
            case=case,
            name=_child_name(case, me),
            consent=consent,
            mine=_mine(consent, me),
            asker=_asker(consent, me),
            people=people,
            **values,
        )

    @app.get("/familie/{case_id}/samtykke/{consent_id}", include_in_schema=False)
    async def consent_page(request: Request, case_id: CaseId, consent_id: ConsentId) -> Response:
        page = await _family_page(request)
        return await consent_view(
            page, case_id, consent_id, "family/consent.html", title="Samtykke"
        )

    @app.get("/familie/{case_id}/samtykke/{consent_id}/{answer}", include_in_schema=False)
    async def consent_confirm(
        request: Request, case_id: CaseId, consent_id: ConsentId, answer: Answer
    ) -> Response:
        page = await _family_page(request)
        words = _ANSWERS[answer]
        return await consent_view(
            page,
            case_id,
            consent_id,
            "family/confirm.html",
            title=words["title"],
            answer=answer,
            words=words,
            errors={},
            values={},
        )

    @app.post("/familie/{case_id}/samtykke/{consent_id}/{answer}", include_in_schema=False)
    async def consent_answer(
        request: Request, case_id: CaseId, consent_id: ConsentId, answer: Answer
    ) -> Response:
        page = await _family_page(request)
        form = await _form(request, page)
        words = _ANSWERS[answer]
        reason = str(form.get("reason") or "").strip()
        body: dict[str, Any] | None = {"grantor_person_id": page.session.person_id}
        if answer == "forny":
            body = None  # a renewal asks again for the same consent: nothing to say
        elif answer != "signer" and reason:
            body = {**(body or {}), "reason": reason[:_REASON_MAX]}
        try:
            written = await _api(
                page,
                "POST",
                "consent",
                f"/api/v1/consents/{consent_id}/{words['path']}",
                json=body,
                key=_key(form),
            )
        except ApiError as exc:
            if exc.status in (401, 404):
                raise
            return await consent_view(
                page,
                case_id,
                consent_id,
                "family/confirm.html",
                409 if exc.status == 409 else 422,
                title=words["title"],
                answer=answer,
                words=words,
                errors={"_form": texts.problem_sentence(exc.code, exc.status)},
                values={"reason": reason},
            )
        if answer == "forny" and isinstance(written, dict) and isinstance(written.get("id"), str):
            # The new consent waits for the family's signatures: show it.
            consent_id = written["id"]
        return redirect(page, f"/familie/{case_id}/samtykke/{consent_id}", words["done"])

    async def ending(page: Page, case_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        me = page.session.person_id
        case = await _case(page, case_id)
        return case, [c for c in await _consents(page, case_id) if _in_force(c, me)]

    @app.get("/familie/{case_id}/avslutt", include_in_schema=False)
    async def end_page(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        case, in_force = await ending(page, case_id)
        people = await _people(page, [case.get("holder", {}).get("person_id")], orgs=True)
        return render(
            page,
            "family/end.html",
            title="Avslutt samarbeidet",
            section="barn",
            case=case,
            name=_child_name(case, page.session.person_id),
            in_force=in_force,
            people=people,
            errors={},
        )

    @app.post("/familie/{case_id}/avslutt", include_in_schema=False)
    async def end_cooperation(request: Request, case_id: CaseId) -> Response:
        page = await _family_page(request)
        await _form(request, page)
        _case_view, in_force = await ending(page, case_id)
        failed = 0
        for consent in in_force:
            try:
                await _api(
                    page,
                    "POST",
                    "consent",
                    f"/api/v1/consents/{consent['id']}/withdrawals",
                    json={"grantor_person_id": page.session.person_id},
                    key=None,
                )
            except ApiError as exc:
                if exc.status == 401:
                    raise
                failed += 1
        if failed:
            return redirect(
                page,
                f"/familie/{case_id}",
                f"{failed} av {len(in_force)} samtykker kunne ikke trekkes. Prøv igjen, eller "
                "kontakt stafettholderen.",
            )
        return redirect(
            page,
            f"/familie/{case_id}",
            "Du har trukket samtykkene dine. Tjenestene de gjaldt, har ikke lenger tilgang.",
        )
