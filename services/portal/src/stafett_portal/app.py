"""Composition root and pages of the portal.

Every page that shows case content gets it from a service's public API with the signed-in
person's token: the service asks the consent service for a decision and records the read,
exactly as for any other client. The portal keeps no case data and writes no events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from stafett_portal import texts
from stafett_portal.actions import ACTIONS, OSLO, Action, CaseContext
from stafett_portal.backend import ApiError, Backend, ServiceName
from stafett_portal.charts import bar_chart
from stafett_portal.directory import Directory, Me
from stafett_portal.forms import Field, FormResult, national_id_field, read_form
from stafett_portal.oidc import LoginFailed, OidcClient
from stafett_portal.security import SecurityHeadersMiddleware, protect
from stafett_portal.session import Session, SessionSealer
from stafett_portal.settings import PortalSettings
from stafett_shared.auth import DevIssuer
from stafett_shared.crypto import load_or_create_kek
from stafett_shared.demo import read_citizens
from stafett_shared.ids import PERSON_ID_PATTERN, new_id
from stafett_shared.logging import configure_logging, get_logger
from stafett_shared.paging import CURSOR_PATTERN
from stafett_shared.problems import BodySizeLimitMiddleware
from stafett_shared.settings import CommonSettings

__all__ = ["create_app", "main"]

_log = get_logger("stafett.portal")
HERE = Path(__file__).parent
ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
CITIZEN_ID = re.compile(ULID)
CaseId = Annotated[str, PathParam(pattern=ULID)]
ReportId = Annotated[str, PathParam(pattern=ULID)]
Ref = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9-]{1,64}$")]
MAX_FORM_BYTES = 64 * 1024
CITIZEN_START = "/logg-inn/innbygger"
CITIZEN_ANSWER = "/logg-inn/innbygger/svar"


class SignInRequired(Exception):
    """The person is not signed in (or the session ended with the token)."""


class BadForm(Exception):
    """The form came without the session's CSRF token."""


class FamilyArea(Exception):
    """A guardian or youth asked for a staff page: the families have their own (/familie)."""


@dataclass
class Page:
    request: Request
    session: Session
    directory: Directory
    me: Me | None
    unread_notices: list[dict[str, Any]] = field(default_factory=list)
    """The person's unread notices, read once per page: the header counts them and Mine
    saker counts them per case."""

    @property
    def unread(self) -> int:
        return len(self.unread_notices)

    @property
    def token(self) -> str | None:
        return self.session.token


@dataclass
class Portal:
    settings: PortalSettings
    common: CommonSettings
    sealer: SessionSealer
    templates: Jinja2Templates
    backend: Backend
    http: httpx.AsyncClient
    dev: DevIssuer | None
    oidc: OidcClient | None
    citizen_oidc: OidcClient | None = None
    """Guardians and youth sign in here (an ID-porten style issuer), staff at ``oidc``."""
    directory: Directory | None = None

    async def load_directory(self, token: str | None) -> Directory:
        fresh = self.directory is not None and (
            time.monotonic() - self.directory.fetched_at < self.settings.directory_cache_s
        )
        if fresh and self.directory is not None:
            return self.directory
        if token is None:
            return self.directory or Directory()
        try:
            reply = await self.backend.call("GET", "consent", "/api/v1/directory", token=token)
        except ApiError as exc:
            if exc.status in (401, 403, 404):  # not staff: no directory for this person
                return self.directory or Directory()
            raise
        self.directory = Directory.from_answer(reply.body)
        return self.directory


# --- formatting ----------------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


_MONTHS = [
    "jan.",
    "feb.",
    "mars",
    "apr.",
    "mai",
    "juni",
    "juli",
    "aug.",
    "sep.",
    "okt.",
    "nov.",
    "des.",
]


def when(value: Any) -> str:
    moment = _moment(value)
    if moment is None:
        return "–"
    local = moment.astimezone(OSLO)
    return f"{local.day}. {_MONTHS[local.month - 1]} {local.year} kl. {local:%H:%M}"


def day(value: Any) -> str:
    if isinstance(value, str) and len(value) == 10:
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            return value
        return f"{parsed.day}. {_MONTHS[parsed.month - 1]} {parsed.year}"
    moment = _moment(value)
    if moment is None:
        return "–"
    local = moment.astimezone(OSLO)
    return f"{local.day}. {_MONTHS[local.month - 1]} {local.year}"


def through(value: Any) -> str:
    """The last day an end time covers: a consent valid «through 30 June» ends at midnight
    Norwegian time, which is already 1 July."""
    moment = _moment(value)
    if moment is None:
        return "–"
    return day(moment - timedelta(microseconds=1))


def iso(value: Any) -> str:
    moment = _moment(value)
    return moment.isoformat() if moment else ""


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(when=when, day=day, iso=iso, through=through)
    env.globals.update(texts=texts)
    return templates


# --- composition ---------------------------------------------------------------------------


def _session_key(settings: PortalSettings, common: CommonSettings) -> bytes:
    key = settings.session_key_bytes()
    if key is not None:
        return key
    return load_or_create_kek(common.data_dir / "keys" / "portal-session")


def create_app(
    settings: PortalSettings | None = None, common: CommonSettings | None = None
) -> FastAPI:
    settings = settings or PortalSettings()
    common = common or CommonSettings()
    if common.production:
        settings.check_production()
    templates = _templates()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            timeout=settings.backend_timeout_s, follow_redirects=False
        ) as http:
            app.state.portal = Portal(
                settings=settings,
                common=common,
                sealer=SessionSealer(
                    _session_key(settings, common), secure=settings.secure_cookies
                ),
                templates=templates,
                backend=Backend(
                    {
                        "case": settings.case_url,
                        "log": settings.log_url,
                        "consent": settings.consent_url,
                        "notify": settings.notify_url,
                    },
                    http,
                ),
                http=http,
                dev=(
                    DevIssuer.load_or_create(common.data_dir)
                    if common.dev_issuer_enabled and not common.production
                    else None
                ),
                oidc=(
                    OidcClient(
                        settings.oidc, settings.public_url.rstrip("/") + "/logg-inn/svar", http
                    )
                    if settings.oidc is not None
                    else None
                ),
                citizen_oidc=(
                    OidcClient(
                        settings.citizen_oidc,
                        settings.public_url.rstrip("/") + CITIZEN_ANSWER,
                        http,
                    )
                    if settings.citizen_oidc is not None
                    else None
                ),
            )
            _log.info("service_started", port=settings.port)
            yield

    app = FastAPI(
        title="Stafett – portal",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _routes(app)
    # The families' pages use this module's plumbing, so they are imported once it exists.
    from stafett_portal import emergency, family

    family.routes(app)
    emergency.routes(app)
    _error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_FORM_BYTES)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies)
    return app


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


# --- page plumbing -------------------------------------------------------------------------


async def _page(request: Request, *, signed_in: bool = True) -> Page:
    portal = _portal(request)
    session = portal.sealer.open(request.cookies.get(portal.sealer.cookie_name))
    if signed_in and not session.signed_in():
        raise SignInRequired
    if session.citizen and session.signed_in():
        raise FamilyArea
    directory = await portal.load_directory(session.token)
    me = directory.me(session.person_id) if session.person_id and session.signed_in() else None
    page = Page(request, session, directory, me)
    if me is not None and session.token is not None:
        try:
            reply = await portal.backend.call(
                "GET",
                "notify",
                "/api/v1/notifications",
                token=session.token,
                params={"unread": "true", "limit": 200},
            )
            items = reply.body.get("items", []) if isinstance(reply.body, dict) else []
            page.unread_notices = [n for n in items if isinstance(n, dict)]
        except ApiError as exc:
            if exc.status == 401:
                raise SignInRequired from None
    return page


def _bare_page(request: Request) -> Page:
    """The session alone, without asking any service: for signing in and out."""
    portal = _portal(request)
    session = portal.sealer.open(request.cookies.get(portal.sealer.cookie_name))
    return Page(request, session, portal.directory or Directory(), None)


def _store(portal: Portal, response: Response, session: Session) -> Response:
    try:
        sealed = portal.sealer.seal(session)
    except ValueError:  # a token too large for a cookie: refused, never split or stored
        session.sign_out()
        session.flash = "Innloggingen kunne ikke fullføres. Kontakt brukerstøtte."
        sealed = portal.sealer.seal(session)
    max_age = max(int(session.expires_at - time.time()), 60) if session.token else 3600
    response.set_cookie(value=sealed, **portal.sealer.cookie_args(max_age))
    return response


def render(page: Page, template: str, status: int = 200, **values: Any) -> Response:
    portal = _portal(page.request)
    flash, page.session.flash = page.session.flash, None
    response = portal.templates.TemplateResponse(
        page.request,
        template,
        {
            "me": page.me,
            "csrf": page.session.csrf,
            "unread": page.unread,
            "flash": flash,
            "directory": page.directory,
            "new_key": new_id,
            **values,
        },
        status_code=status,
    )
    if status == 503:
        response.headers["Retry-After"] = "1"  # a service Stafett needs is down for a moment
    return _store(portal, response, page.session)


def redirect(page: Page, url: str, flash: str | None = None) -> Response:
    if flash:
        page.session.flash = flash
    return _store(_portal(page.request), RedirectResponse(url, status_code=303), page.session)


async def _form(request: Request, page: Page) -> Any:
    form = await request.form()
    token = form.get("csrf")
    if not page.session.valid_csrf(token if isinstance(token, str) else None):
        raise BadForm
    return form


async def _api(
    page: Page,
    method: str,
    service: Any,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | tuple[tuple[str, str], ...] | None = None,
    key: str | None = None,
) -> Any:
    portal = _portal(page.request)
    reply = await portal.backend.call(
        method,
        service,
        path,
        token=page.token,
        json=json,
        params=params,
        min_seq=page.session.min_seq,
        idempotency_key=key,
    )
    if reply.seq is not None:
        page.session.min_seq = max(page.session.min_seq, reply.seq)
    return reply.body


def _field_errors(exc: ApiError, fields: list[Field]) -> dict[str, str]:
    """Problem details' ``errors`` on the fields the person filled in, else a sentence."""
    names = {f.name for f in fields}
    errors: dict[str, str] = {}
    for error in exc.errors:
        loc = error.get("loc") if isinstance(error, dict) else None
        for part in reversed(loc or []):
            if part in names and part not in errors:
                errors[str(part)] = "Sjekk dette feltet."
                break
    errors["_form"] = texts.problem_sentence(exc.code, exc.status)
    return errors


async def _to_issuer(page: Page, oidc: OidcClient) -> Response:
    """Send the person to an issuer (staff or citizen), keeping state, nonce, verifier and
    which issuer it was in the session."""
    portal = _portal(page.request)
    try:
        url, kept = await oidc.begin()
        kept["issuer"] = "citizen" if oidc is portal.citizen_oidc else "staff"
    except LoginFailed:
        _log.warning("issuer_unavailable")
        return render(
            page,
            "pages/error.html",
            503,
            title="Innloggingen er ikke tilgjengelig",
            message="Innloggingstjenesten svarer ikke nå. Prøv igjen om litt.",
        )
    page.session.login_state = kept
    return _store(portal, RedirectResponse(url, status_code=303), page.session)


async def _finish_sign_in(
    page: Page, oidc: OidcClient, code: str, state: str, *, citizen: bool
) -> Response:
    """The issuer's answer: the code exchanged, the person found by the services (staff by
    (issuer, subject), a citizen by the ``pid``'s blind index) and the session begun."""
    portal = _portal(page.request)
    issuer = "citizen" if citizen else "oidc"
    kept = page.session.login_state or {}
    page.session.login_state = None
    try:
        if kept.get("issuer", "staff") != ("citizen" if citizen else "staff"):
            raise LoginFailed("the answer came back to the other issuer's address")
        signed = await oidc.finish(code, state, kept)
    except LoginFailed:
        _log.info("sign_in_failed", issuer=issuer)
        return _sign_in_failed(page, "Innloggingen ble ikke fullført. Prøv å logge inn på nytt.")
    page.session.sign_out()
    # Who the person is, is the services' word (decisions 0022 and 0023).
    try:
        who = await portal.backend.call(
            "GET", "consent", "/api/v1/whoami", token=signed.access_token
        )
    except ApiError as exc:
        if exc.status in (401, 403):
            _log.info("sign_in_unbound", issuer=issuer)
            return _sign_in_failed(
                page,
                (
                    "Vi fant deg ikke i Stafett. Foresatte og ungdom kommer inn når skolen "
                    "eller tjenesten har registrert barnet. Spør dem om du mener det er feil."
                )
                if citizen
                else (
                    "Du er ikke registrert i Stafett ennå. Be lederen din eller brukerstøtte "
                    "om å legge deg inn."
                ),
                403,
            )
        raise
    body = who.body if isinstance(who.body, dict) else {}
    if body.get("kind") != "person" or not isinstance(body.get("id"), str):
        return _sign_in_failed(page, "Innloggingen gjelder ikke en person.", 403)
    page.session.person_id = str(body["id"])
    page.session.citizen = citizen
    page.session.token = signed.access_token
    page.session.expires_at = min(signed.expires_at, time.time() + portal.settings.session_max_s)
    try:
        portal.sealer.seal(page.session)
    except ValueError:  # too large for a cookie: said here, not looped through the issuer
        _log.warning("sign_in_token_too_large", issuer=issuer)
        page.session.sign_out()
        return _sign_in_failed(page, "Innloggingen kunne ikke fullføres. Kontakt brukerstøtte.")
    _log.info("signed_in", issuer=issuer)
    return redirect(page, "/familie" if citizen else "/saker")


def _sign_in_failed(page: Page, message: str, status: int = 400) -> Response:
    return render(page, "pages/error.html", status, title="Innloggingen mislyktes", message=message)


# --- routes --------------------------------------------------------------------------------


def _routes(app: FastAPI) -> None:  # noqa: PLR0915 - one place lists every page
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        portal = _portal(request)
        names: tuple[ServiceName, ...] = ("case", "log", "consent", "notify")
        # At once and together: one service that does not answer costs its timeout once.
        healthy = await asyncio.gather(*(portal.backend.healthy(name) for name in names))
        checks = dict(zip(names, healthy, strict=True))
        if all(checks.values()):
            return Response('{"status":"ready"}', media_type="application/json")
        body = ",".join(f'"{k}":"{"ok" if v else "unavailable"}"' for k, v in checks.items())
        return Response(
            '{"status":"unavailable","checks":{' + body + "}}",
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": "1"},
        )

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        page = _bare_page(request)
        if page.session.signed_in():
            return redirect(page, "/familie" if page.session.citizen else "/saker")
        return redirect(page, "/logg-inn")

    # --- sign-in ---------------------------------------------------------------------------

    @app.get("/logg-inn", include_in_schema=False)
    async def sign_in_page(request: Request) -> Response:
        portal = _portal(request)
        page = _bare_page(request)
        if portal.dev is None and portal.oidc is not None and portal.citizen_oidc is not None:
            return render(page, "pages/signin_choice.html", title="Logg inn")
        if portal.dev is None and (portal.oidc or portal.citizen_oidc) is not None:
            only = portal.oidc or portal.citizen_oidc
            assert only is not None
            return await _to_issuer(page, only)
        if portal.dev is None:
            return render(
                page,
                "pages/error.html",
                503,
                title="Innlogging er ikke satt opp",
                message="Ingen innloggingstjeneste er satt opp for portalen.",
            )
        admin = portal.common.dev_admin
        directory = Directory()
        with contextlib.suppress(ApiError):
            directory = await portal.load_directory(
                portal.dev.issue(admin, ttl_s=300) if admin else None
            )
        page.directory = directory
        return render(
            page,
            "pages/signin.html",
            title="Logg inn",
            groups=directory.people_by_org(),
            citizens=read_citizens(portal.common.data_dir),
            oidc=portal.oidc is not None,
            citizen_oidc=portal.citizen_oidc is not None,
        )

    @app.post("/logg-inn", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        portal = _portal(request)
        page = _bare_page(request)
        form = await _form(request, page)
        if portal.dev is None:
            raise StarletteHTTPException(404)
        person = str(form.get("person_id") or "").strip()
        if not PERSON_ID_PATTERN.fullmatch(person):
            return render(
                page,
                "pages/signin.html",
                422,
                title="Logg inn",
                groups=page.directory.people_by_org(),
                citizens=read_citizens(portal.common.data_dir),
                oidc=portal.oidc is not None,
                citizen_oidc=portal.citizen_oidc is not None,
                errors={"person_id": "Skriv en gyldig person-id (bokstaver, tall og bindestrek)."},
                values={"person_id": person},
            )
        ttl = portal.settings.session_max_s
        page.session.sign_out()
        page.session.person_id = person
        # Guardians and children get ULIDs, staff the ids of the region document.
        page.session.citizen = CITIZEN_ID.fullmatch(person) is not None
        page.session.token = portal.dev.issue(person, ttl_s=ttl)
        page.session.expires_at = time.time() + ttl - 60
        _log.info("signed_in", issuer="development")
        return redirect(page, "/familie" if page.session.citizen else "/saker")

    @app.get("/logg-inn/oidc", include_in_schema=False)
    @app.get(CITIZEN_START, include_in_schema=False)
    async def sign_in_oidc(request: Request) -> Response:
        portal = _portal(request)
        oidc = portal.citizen_oidc if request.url.path == CITIZEN_START else portal.oidc
        if oidc is None:
            raise StarletteHTTPException(404)
        return await _to_issuer(_bare_page(request), oidc)

    @app.get("/logg-inn/svar", include_in_schema=False)
    @app.get(CITIZEN_ANSWER, include_in_schema=False)
    async def sign_in_answer(
        request: Request,
        code: Annotated[str, Query(max_length=2048)] = "",
        state: Annotated[str, Query(max_length=256)] = "",
    ) -> Response:
        portal = _portal(request)
        citizen = request.url.path == CITIZEN_ANSWER
        oidc = portal.citizen_oidc if citizen else portal.oidc
        if oidc is None:
            raise StarletteHTTPException(404)
        return await _finish_sign_in(_bare_page(request), oidc, code, state, citizen=citizen)

    @app.post("/logg-ut", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        portal = _portal(request)
        page = _bare_page(request)  # signing out never waits for a service
        await _form(request, page)
        issuer = portal.citizen_oidc if page.session.citizen else portal.oidc
        page.session.sign_out()
        target = "/logg-inn"
        if issuer is not None and portal.dev is None:
            target = await issuer.logout_url(portal.settings.public_url) or target
        return redirect(page, target, "Du er logget ut.")

    # --- cases ---------------------------------------------------------------------------

    @app.get("/saker", include_in_schema=False)
    async def my_cases(
        request: Request,
        niva: Annotated[str, Query(pattern="^[0-3]?$")] = "",
        visning: Annotated[str, Query(pattern="^(mine|alle)$")] = "mine",
        status: Annotated[str, Query(pattern="^(open|closed)$")] = "open",
        fra: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    ) -> Response:
        page = await _page(request)
        level = int(niva) if niva else None  # "" is the form's «Alle nivåer»
        params: dict[str, Any] = {"status": status, "limit": 20}
        if visning == "mine":
            params["member"] = "me"
        if level is not None:
            params["level"] = level
        if fra:
            params["cursor"] = fra
        listing = await _api(page, "GET", "case", "/api/v1/cases", params=params)
        waiting: list[dict[str, Any]] = []
        with contextlib.suppress(ApiError):
            answer = await _api(page, "GET", "case", "/api/v1/handovers", params={"to": "me"})
            waiting = answer.get("items", []) if isinstance(answer, dict) else []
        notices = Counter(n.get("case_id") for n in page.unread_notices)
        return render(
            page,
            "pages/cases.html",
            title="Mine saker",
            section="saker",
            items=listing.get("items", []),
            next_cursor=listing.get("next_cursor"),
            level=level,
            view=visning,
            case_status=status,
            waiting=waiting,
            notices=notices,
            today=datetime.now(OSLO).date().isoformat(),
        )

    new_case_fields = _new_case_fields

    @app.get("/saker/ny", include_in_schema=False)
    async def new_case_page(request: Request) -> Response:
        page = await _page(request)
        fields = new_case_fields(page)
        return _standalone_form(page, _NEW_CASE, fields, {}, {}, 200)

    @app.post("/saker/ny", include_in_schema=False)
    async def new_case(request: Request) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        fields = new_case_fields(page)
        result = read_form(fields, form, extra=_check_new_case)
        if result.ok:
            child = (
                {"pseudonym": result.values["pseudonym"]}
                if result.values["who"] == "anonymous"
                else {"national_id": result.values["national_id"]}
            )
            try:
                opened = await _api(
                    page,
                    "POST",
                    "case",
                    "/api/v1/cases",
                    key=_key(form),
                    json={
                        "unit_id": result.values["unit_id"],
                        "level": int(result.values["level"]),
                        "child": child,
                        "concern": result.values["concern"],
                    },
                )
            except ApiError as exc:
                if exc.status in (401,):
                    raise
                result.errors = _field_errors(exc, list(fields))
            else:
                return redirect(
                    page, f"/saker/{opened['id']}", "Saken er opprettet. Du er stafettholder."
                )
        return _standalone_form(page, _NEW_CASE, fields, result.values, result.errors, 422)

    @app.get("/barn/ny", include_in_schema=False)
    async def new_child_page(request: Request) -> Response:
        page = await _page(request)
        values = {"g1_responsibility": True, "g2_responsibility": True}
        return _standalone_form(page, _NEW_CHILD, _CHILD_FIELDS, values, {}, 200)

    @app.post("/barn/ny", include_in_schema=False)
    async def new_child(request: Request) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        result = read_form(_CHILD_FIELDS, form, extra=_check_child)
        if result.ok:
            v = result.values
            guardians = [
                {
                    "national_id": v[f"{g}_national_id"],
                    "name": v[f"{g}_name"],
                    "parental_responsibility": bool(v[f"{g}_responsibility"]),
                }
                for g in ("g1", "g2")
                if v.get(f"{g}_national_id")
            ]
            try:
                await _api(
                    page,
                    "POST",
                    "consent",
                    "/api/v1/children",
                    key=_key(form),
                    json={
                        "national_id": v["national_id"],
                        "name": v["name"],
                        "guardians": guardians,
                    },
                )
            except ApiError as exc:
                if exc.status == 401:
                    raise
                result.errors = _field_errors(exc, list(_CHILD_FIELDS))
            else:
                return redirect(
                    page, "/saker/ny", "Barnet er registrert. Nå kan du opprette saken."
                )
        return _standalone_form(page, _NEW_CHILD, _CHILD_FIELDS, result.values, result.errors, 422)

    @app.get("/saker/{case_id}", include_in_schema=False)
    async def case_page(request: Request, case_id: CaseId) -> Response:
        page = await _page(request)
        try:
            case = await _api(page, "GET", "case", f"/api/v1/cases/{case_id}")
        except ApiError as exc:
            if exc.status == 404:
                waiting = await _waiting_handover(page, case_id)
                if waiting is not None:
                    return redirect(page, f"/overforinger/{case_id}/{waiting}")
            raise
        consents: list[dict[str, Any]] = []
        with contextlib.suppress(ApiError):
            answer = await _api(
                page, "GET", "consent", "/api/v1/consents", params={"case_id": case_id}
            )
            consents = answer.get("items", answer) if isinstance(answer, dict) else answer
        org = page.directory.organisation(case.get("org_id")) or {}
        guide = (org.get("guide") or {}).get(str(case.get("level")), [])
        may = _may(page, case)
        return render(
            page,
            "pages/case.html",
            title="Saken",
            section="saker",
            case=case,
            consents=consents,
            reports=await _own_reports(page, case_id) if may.get("report") else [],
            guide=guide,
            may=may,
            today=datetime.now(OSLO).date().isoformat(),
        )

    @app.get("/saker/{case_id}/logg", include_in_schema=False)
    async def log_page(request: Request, case_id: CaseId) -> Response:
        page = await _page(request)
        return await _log_page(page, case_id, {}, {}, 200)

    @app.get("/saker/{case_id}/lest", include_in_schema=False)
    async def readers_page(request: Request, case_id: CaseId) -> Response:
        page = await _page(request)
        answer = await _api(
            page, "GET", "log", f"/api/v1/logs/{case_id}/access", params={"limit": 200}
        )
        items = answer.get("items", []) if isinstance(answer, dict) else answer
        return render(
            page,
            "pages/readers.html",
            title="Hvem har lest",
            section="saker",
            case_id=case_id,
            items=items,
        )

    @app.get("/saker/{case_id}/{slug}", include_in_schema=False)
    @app.get("/saker/{case_id}/{slug}/{ref}", include_in_schema=False)
    async def action_page(
        request: Request, case_id: CaseId, slug: Ref, ref: Ref | None = None
    ) -> Response:
        page, action, ctx = await _acting(request, case_id, slug, ref)
        return _action_form(page, action, ctx=ctx, values={}, errors={}, status=200)

    @app.post("/saker/{case_id}/{slug}", include_in_schema=False)
    @app.post("/saker/{case_id}/{slug}/{ref}", include_in_schema=False)
    async def action_post(
        request: Request, case_id: CaseId, slug: Ref, ref: Ref | None = None
    ) -> Response:
        page, action, ctx = await _acting(request, case_id, slug, ref)
        form = await _form(request, page)
        fields = list(action.fields(ctx))
        check = action.check

        def checked(result: FormResult) -> None:
            if check is not None:
                check(result, ctx)

        result = read_form(fields, form, extra=checked)
        if result.ok:
            call = action.build(result.values, ctx)
            try:
                await _api(
                    page, call.method, call.service, call.path, json=call.body, key=_key(form)
                )
            except ApiError as exc:
                if exc.status in (401, 404):
                    raise
                result.errors = _field_errors(exc, fields)
            else:
                back = f"/saker/{case_id}/logg" if action.back == "log" else f"/saker/{case_id}"
                return redirect(page, back, action.done)
        if slug == "skriv":
            return await _log_page(page, case_id, result.values, result.errors, 422)
        return _action_form(
            page, action, ctx=ctx, values=result.values, errors=result.errors, status=422
        )

    # --- handovers -------------------------------------------------------------------------

    @app.get("/overforinger/{case_id}/{handover_id}", include_in_schema=False)
    async def handover_page(
        request: Request, case_id: CaseId, handover_id: Annotated[str, PathParam(pattern=ULID)]
    ) -> Response:
        page = await _page(request)
        handover = await _api(
            page, "GET", "case", f"/api/v1/cases/{case_id}/handovers/{handover_id}"
        )
        return render(
            page,
            "pages/handover.html",
            title="Overta stafetten",
            section="innboks",
            handover=handover,
            errors={},
            values={},
        )

    @app.post("/overforinger/{case_id}/{handover_id}/{answer}", include_in_schema=False)
    async def handover_answer(
        request: Request,
        case_id: CaseId,
        handover_id: Annotated[str, PathParam(pattern=ULID)],
        answer: Annotated[str, PathParam(pattern="^(godta|avsla)$")],
    ) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        path = f"/api/v1/cases/{case_id}/handovers/{handover_id}"
        reason = str(form.get("reason") or "").strip()[:4000]
        if answer == "avsla" and not reason:
            missing = "Skriv hvorfor du avslår, så avsenderen kan finne en annen løsning."
            return await _handover_again(page, path, reason, {"reason": missing}, 422)
        try:
            if answer == "godta":
                await _api(page, "POST", "case", path + "/accept", key=_key(form))
            else:
                await _api(
                    page, "POST", "case", path + "/decline", json={"reason": reason}, key=_key(form)
                )
        except ApiError as exc:
            if exc.status in (401, 404):
                raise
            sentence = texts.problem_sentence(exc.code, exc.status)
            return await _handover_again(page, path, reason, {"_form": sentence}, 409)
        if answer == "godta":
            return redirect(page, f"/saker/{case_id}", "Du er nå stafettholder for saken.")
        return redirect(page, "/innboks", "Du har avslått overføringen. Avsenderen får beskjed.")

    # --- inbox ---------------------------------------------------------------------------

    @app.get("/innboks", include_in_schema=False)
    async def inbox_page(
        request: Request, fra: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None
    ) -> Response:
        page = await _page(request)
        params: dict[str, Any] = {"limit": 30}
        if fra:
            params["cursor"] = fra
        answer = await _api(page, "GET", "notify", "/api/v1/notifications", params=params)
        waiting: list[dict[str, Any]] = []
        with contextlib.suppress(ApiError):
            found = await _api(page, "GET", "case", "/api/v1/handovers", params={"to": "me"})
            waiting = found.get("items", []) if isinstance(found, dict) else []
        return render(
            page,
            "pages/inbox.html",
            title="Innboks",
            section="innboks",
            items=answer.get("items", []),
            next_cursor=answer.get("next_cursor"),
            waiting=waiting,
        )

    @app.post("/innboks/{notice_id}", include_in_schema=False)
    async def open_notice(
        request: Request, notice_id: Annotated[str, PathParam(pattern=r"^n-[0-9a-f]{40}$")]
    ) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        await _api(page, "POST", "notify", f"/api/v1/notifications/{notice_id}/read")
        case_id = str(form.get("case_id") or "")
        if form.get("open") == "meldinger":  # the intake never sees the case, only the report
            return redirect(page, "/barnevern/meldinger")
        if form.get("open") and len(case_id) == 26 and case_id.isalnum():
            return redirect(page, f"/saker/{case_id}")
        return redirect(page, "/innboks", "Varselet er merket som lest.")

    # --- reports of concern to child welfare (decision 0026) -------------------------------

    @app.get("/barnevern/meldinger", include_in_schema=False)
    async def reports_page(
        request: Request,
        status: Annotated[str, Query(pattern="^(sent|received)$")] = "sent",
        fra: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    ) -> Response:
        page = await _page(request)
        params: dict[str, Any] = {"status": status, "limit": _REPORTS_PAGE}
        if fra:
            params["cursor"] = fra
        # Anyone who does not take in reports gets an empty list from the case service.
        answer = await _api(page, "GET", "case", "/api/v1/child-welfare-reports", params=params)
        items = answer.get("items", []) if isinstance(answer, dict) else []
        return render(
            page,
            "pages/reports.html",
            title="Bekymringsmeldinger",
            section="barnevern",
            items=[i for i in items if isinstance(i, dict)],
            next_cursor=answer.get("next_cursor") if isinstance(answer, dict) else None,
            report_status=status,
        )

    @app.get("/barnevern/meldinger/{report_id}", include_in_schema=False)
    async def report_page(request: Request, report_id: ReportId) -> Response:
        page = await _page(request)
        report = await _api(page, "GET", "case", f"/api/v1/child-welfare-reports/{report_id}")
        return render(
            page,
            "pages/report.html",
            title="Bekymringsmelding",
            section="barnevern",
            report=report if isinstance(report, dict) else {},
        )

    @app.post("/barnevern/meldinger/{report_id}/mottatt", include_in_schema=False)
    async def receive_report(request: Request, report_id: ReportId) -> Response:
        page = await _page(request)
        form = await _form(request, page)
        here = f"/barnevern/meldinger/{report_id}"
        try:
            await _api(
                page,
                "POST",
                "case",
                f"/api/v1/child-welfare-reports/{report_id}/receipt",
                key=_key(form),
            )
        except ApiError as exc:
            if exc.code != "report_received":
                raise
            return redirect(page, here, texts.PROBLEMS["report_received"])
        return redirect(
            page,
            here,
            "Meldingen er bekreftet mottatt. Den som meldte, ser nå at den har kommet fram.",
        )

    # --- guide and indicators -------------------------------------------------------------

    @app.get("/veileder", include_in_schema=False)
    async def guide_page(
        request: Request, org: Annotated[str | None, Query(max_length=32)] = None
    ) -> Response:
        page = await _page(request)
        mine = page.me.units[0].org_id if page.me and page.me.units else None
        chosen = page.directory.organisation(org or mine) or (
            page.directory.organisations[0] if page.directory.organisations else None
        )
        return render(
            page,
            "pages/guide.html",
            title="Handlingsveileder",
            section="veileder",
            org=chosen,
            organisations=page.directory.organisations,
        )

    @app.get("/indikatorer", include_in_schema=False)
    async def indicators_page(
        request: Request,
        org: Annotated[str | None, Query(max_length=32)] = None,
        periode: Annotated[str, Query(pattern="^(month|term|year)$")] = "term",
        dato: Annotated[date | None, Query()] = None,
    ) -> Response:
        page = await _page(request)
        if page.me is None or not page.me.leads:
            raise ApiError(403, "forbidden")
        org_id = org if org in page.me.leads else page.me.leads[0]
        start, end, label = _period(periode, dato or datetime.now(OSLO).date())
        result = await _api(
            page,
            "GET",
            "case",
            "/api/v1/indicators",
            params={"org_id": org_id, "from": start.isoformat(), "to": end.isoformat()},
        )
        levels = result.get("cases_opened_by_level", {})
        chart = bar_chart(
            f"Saker opprettet per nivå, {label}",
            [(texts.LEVEL_SHORT[n], levels.get(str(n), 0)) for n in range(4)],
            ident="chart-levels",
        )
        outcomes = result.get("outcomes", {})
        outcome_chart = bar_chart(
            f"Resultat av evalueringer, {label}",
            [(texts.OUTCOMES[k], outcomes.get(k, 0)) for k in texts.OUTCOMES],
            ident="chart-outcomes",
        )
        return render(
            page,
            "pages/indicators.html",
            title="Indikatorer",
            section="indikatorer",
            result=result,
            chart=chart,
            outcome_chart=outcome_chart,
            label=label,
            period=periode,
            org_id=org_id,
            day=(dato or datetime.now(OSLO).date()).isoformat(),
            previous=_shift(periode, start, -1),
            following=_shift(periode, start, 1),
        )


# --- helpers for the routes ---------------------------------------------------------------

_NEW_CASE_INTRO = (
    "En sak begynner med en bekymring. På nivå 0 kan du drøfte den anonymt, uten navn. "
    "Fra nivå 1 må du først registrere barnet med foresatte, også om andre har gjort det."
)
_CHILD_INTRO = (
    "Registrer barnet og foresatte med foreldreansvar. De får da se loggen og hvem som har "
    "lest den, og det er de som gir samtykke."
)


@dataclass(frozen=True)
class FormPage:
    """A form of its own, not about one case: its title, where it posts, its words."""

    title: str
    action: str
    submit: str
    intro: str
    back: tuple[str, str]
    aside: tuple[str, str] | None = None


_NEW_CASE = FormPage(
    "Ny sak",
    "/saker/ny",
    "Opprett saken",
    _NEW_CASE_INTRO,
    ("/saker", "Mine saker"),
    ("/barn/ny", "Registrer et barn med foresatte"),
)
_NEW_CHILD = FormPage(
    "Registrer barn", "/barn/ny", "Registrer barnet", _CHILD_INTRO, ("/saker/ny", "Ny sak")
)


def _standalone_form(  # noqa: PLR0917 - the form, its fields, what was written, what is wrong
    page: Page,
    form: FormPage,
    fields: list[Field],
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
) -> Response:
    return render(
        page,
        "pages/form.html",
        status,
        title=form.title,
        section="saker",
        fields=fields,
        values=values,
        errors=errors,
        action=form.action,
        submit=form.submit,
        intro=form.intro,
        back=form.back,
        aside=form.aside,
    )


def _new_case_fields(page: Page) -> list[Field]:
    units = page.me.units if page.me else ()
    return [
        Field(
            "unit_id",
            "Enhet",
            "select",
            options=[(u.id, u.name) for u in units],
            default=units[0].id if units else None,
        ),
        Field(
            "who",
            "Gjelder saken et registrert barn?",
            "radio",
            options=[
                ("anonymous", "Nei, drøft anonymt (nivå 0)"),
                ("registered", "Ja, barnet er registrert"),
            ],
            default="anonymous",
        ),
        Field(
            "pseudonym",
            "Kallenavn",
            required=False,
            max_length=100,
            hint="For eksempel «Elev B». Ikke barnets navn.",
            needed_when="når saken er anonym",
        ),
        replace(
            national_id_field("national_id", "Barnets fødselsnummer", required=False),
            needed_when="når barnet er registrert",
        ),
        Field(
            "level",
            "Nivå",
            "radio",
            options=[("0", texts.LEVELS[0]), ("1", texts.LEVELS[1])],
            default="0",
        ),
        Field(
            "concern",
            "Hva er du bekymret for?",
            "textarea",
            hint="Beskriv det du har sett og hørt. Skriv ikke mer enn det som trengs.",
        ),
    ]


def _check_new_case(result: FormResult) -> None:
    v = result.values
    if v.get("who") == "anonymous":
        if not v.get("pseudonym"):
            result.errors["pseudonym"] = "Skriv et kallenavn for den anonyme saken."
        if v.get("level") == "1":
            result.errors["level"] = "En anonym sak kan bare være på nivå 0."
    elif v.get("who") == "registered":
        national = v.get("national_id", "")
        if not (len(national) == 11 and national.isdigit()):
            result.errors["national_id"] = "Fødselsnummeret må være 11 siffer."


_CHILD_FIELDS = [
    national_id_field("national_id", "Barnets fødselsnummer"),
    Field("name", "Barnets navn", max_length=200, autocomplete="off"),
    national_id_field("g1_national_id", "Foresatt 1: fødselsnummer"),
    Field("g1_name", "Foresatt 1: navn", max_length=200, autocomplete="off"),
    Field("g1_responsibility", "Foresatt 1 har foreldreansvar", "checkbox", required=False),
    national_id_field("g2_national_id", "Foresatt 2: fødselsnummer", required=False),
    Field("g2_name", "Foresatt 2: navn", required=False, max_length=200, autocomplete="off"),
    Field("g2_responsibility", "Foresatt 2 har foreldreansvar", "checkbox", required=False),
]


def _check_child(result: FormResult) -> None:
    v = result.values
    for name in ("national_id", "g1_national_id", "g2_national_id"):
        value = v.get(name, "")
        if value and not (len(value) == 11 and value.isdigit()):
            result.errors[name] = "Fødselsnummeret må være 11 siffer."
    if v.get("g2_national_id") and not v.get("g2_name"):
        result.errors["g2_name"] = "Skriv navnet til foresatt 2."


def _key(form: Any) -> str | None:
    value = form.get("idempotency_key")
    return value if isinstance(value, str) and len(value) == 26 and value.isalnum() else None


def _may(page: Page, case: dict[str, Any]) -> dict[str, bool]:
    """Which actions to offer: a guess from the person's place in the case. The services
    decide; an action offered in error is refused there with a page that says why."""
    me = page.me
    if me is None:
        return {}
    holder = case.get("holder", {}).get("person_id") == me.id
    leader = any(u == case.get("unit_id") and r == "leader" for u, r in me.roles)
    own_unit = any(u == case.get("unit_id") for u, _ in me.roles)
    writer = (
        holder
        or own_unit
        or any(
            m.get("person_id") == me.id and m.get("access") == "write" for m in case.get("team", [])
        )
    )
    is_open = case.get("status") == "open"
    return {
        "manage": (holder or leader) and is_open,
        "write": writer and is_open,
        "restrict": leader,
        "reopen": (holder or leader) and not is_open,
        "report": me.staff,
    }


async def _own_reports(page: Page, case_id: str) -> list[dict[str, Any]]:
    """The reports of concern the person sent in the case, newest first, with their status
    (the case service lists only the caller's own). A page of them: a reporter sends few."""
    with contextlib.suppress(ApiError):
        answer = await _api(
            page,
            "GET",
            "case",
            f"/api/v1/cases/{case_id}/child-welfare-reports",
            params={"limit": _REPORTS_PAGE},
        )
        items = answer.get("items", []) if isinstance(answer, dict) else []
        return [i for i in reversed(items) if isinstance(i, dict)]
    return []


async def _waiting_handover(page: Page, case_id: str) -> str | None:
    with contextlib.suppress(ApiError):
        found = await _api(page, "GET", "case", "/api/v1/handovers", params={"to": "me"})
        for item in found.get("items", []) if isinstance(found, dict) else []:
            if item.get("case_id") == case_id and item.get("status", "pending") == "pending":
                return str(item["id"])
    return None


async def _handover_again(
    page: Page, path: str, reason: str, errors: dict[str, str], status: int
) -> Response:
    """The handover page once more, with what was wrong and the reason as written."""
    handover = await _api(page, "GET", "case", path)
    return render(
        page,
        "pages/handover.html",
        status,
        title="Overta stafetten",
        section="innboks",
        handover=handover,
        values={"reason": reason},
        errors=errors,
    )


async def _acting(
    request: Request, case_id: str, slug: str, ref: str | None
) -> tuple[Page, Action, CaseContext]:
    """The page, the action a path names and the case it acts on (404 for no such action)."""
    page = await _page(request)
    action = ACTIONS.get(slug)
    if action is None:
        raise StarletteHTTPException(404)
    ctx = await _case_context(page, case_id, ref, needs_consents=slug == "signatur")
    return page, action, ctx


async def _case_context(
    page: Page, case_id: str, ref: str | None, *, needs_consents: bool
) -> CaseContext:
    case = await _api(page, "GET", "case", f"/api/v1/cases/{case_id}")
    consents: list[dict[str, Any]] = []
    if needs_consents:
        answer = await _api(page, "GET", "consent", "/api/v1/consents", params={"case_id": case_id})
        consents = answer.get("items", answer) if isinstance(answer, dict) else answer
    assert page.me is not None
    return CaseContext(case, page.directory, page.me, datetime.now(OSLO).date(), consents, ref)


def _action_form(
    page: Page,
    action: Any,
    *,
    ctx: CaseContext,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
) -> Response:
    suffix = f"/{ctx.ref}" if ctx.ref else ""
    case_id = ctx.case["id"]
    back = (
        (f"/saker/{case_id}/logg", "Stafettloggen")
        if action.back == "log"
        else (f"/saker/{case_id}", "Saken")
    )
    return render(
        page,
        "pages/form.html",
        status,
        title=action.title,
        section="saker",
        fields=list(action.fields(ctx)),
        values=values,
        errors=errors,
        action=f"/saker/{case_id}/{action.slug}{suffix}",
        submit=action.submit,
        intro=action.intro,
        back=back,
        danger=action.danger,
    )


_REPORTS_PAGE = 25
_LOG_PAGE = 100  # entries a page: a page of long entries stays well under _MAX_ANSWER
_LOG_PAGES = 50


async def _log_entries(page: Page, case_id: str) -> list[Any]:
    """The case's log as the reader may see it, oldest first, page after page."""
    items: list[Any] = []
    params: dict[str, str | int] = {"limit": _LOG_PAGE}
    for _ in range(_LOG_PAGES):
        answer = await _api(page, "GET", "log", f"/api/v1/logs/{case_id}/entries", params=params)
        if not isinstance(answer, dict):
            break
        items.extend(answer.get("items", []))
        cursor = answer.get("next_cursor")
        if not isinstance(cursor, str):
            break
        params = {"limit": _LOG_PAGE, "cursor": cursor}
    return items


async def _log_page(
    page: Page, case_id: str, values: dict[str, Any], errors: dict[str, str], status: int
) -> Response:
    entries = list(reversed(await _log_entries(page, case_id)))
    case: dict[str, Any] = {"id": case_id, "holder": {}, "team": [], "status": "open"}
    with contextlib.suppress(ApiError):
        case = await _api(page, "GET", "case", f"/api/v1/cases/{case_id}")
    assert page.me is not None
    ctx = CaseContext(case, page.directory, page.me, datetime.now(OSLO).date())
    return render(
        page,
        "pages/log.html",
        status,
        title="Stafettloggen",
        section="saker",
        case_id=case_id,
        case=case,
        entries=entries,
        fields=list(ACTIONS["skriv"].fields(ctx)),
        values=values,
        errors=errors,
        may=_may(page, case),
    )


def _period(kind: str, day_in: date) -> tuple[date, date, str]:
    if kind == "month":
        start = day_in.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        months = [
            "januar",
            "februar",
            "mars",
            "april",
            "mai",
            "juni",
            "juli",
            "august",
            "september",
            "oktober",
            "november",
            "desember",
        ]
        return start, following - timedelta(days=1), f"{months[start.month - 1]} {start.year}"
    if kind == "year":
        return date(day_in.year, 1, 1), date(day_in.year, 12, 31), str(day_in.year)
    if day_in.month <= 6:
        return date(day_in.year, 1, 1), date(day_in.year, 6, 30), f"vårhalvåret {day_in.year}"
    return date(day_in.year, 7, 1), date(day_in.year, 12, 31), f"høsthalvåret {day_in.year}"


def _shift(kind: str, start: date, steps: int) -> str:
    if kind == "month":
        month = start.month - 1 + steps
        return date(start.year + month // 12, month % 12 + 1, 1).isoformat()
    if kind == "year":
        return date(start.year + steps, 1, 1).isoformat()
    month = start.month - 1 + 6 * steps
    return date(start.year + month // 12, month % 12 + 1, 1).isoformat()


# --- errors --------------------------------------------------------------------------------


def _error_handlers(app: FastAPI) -> None:
    async def error_page(request: Request, status: int, code: str) -> Response:
        portal = _portal(request)
        session = portal.sealer.open(request.cookies.get(portal.sealer.cookie_name))
        directory = portal.directory or Directory()
        person = session.person_id if session.signed_in() else None
        family = person is not None and session.citizen  # the families' menu, not the staff's
        me = directory.me(person) if person is not None and not family else None
        page = Page(request, session, directory, me)
        shown = 404 if status == 404 else status
        return render(
            page,
            "pages/error.html",
            shown,
            title=texts.STATUS_TITLES.get(shown, "Noe gikk galt"),
            message=texts.problem_sentence(code, shown),
            family=family,
        )

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status == 401:
            return await on_sign_in(request, SignInRequired())
        status = exc.status if exc.status in texts.STATUS_TITLES else 503
        return await error_page(request, status, exc.code)

    async def on_sign_in(request: Request, _exc: Exception) -> Response:
        portal = _portal(request)
        session = portal.sealer.open(request.cookies.get(portal.sealer.cookie_name))
        if session.token is not None:
            session.sign_out()
            session.flash = "Økten din er utløpt. Logg inn igjen."
        return _store(portal, RedirectResponse("/logg-inn", status_code=303), session)

    async def on_bad_form(request: Request, _exc: Exception) -> Response:
        return await error_page(request, 400, "bad_request")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return await error_page(
            request,
            exc.status_code if exc.status_code in (404, 405) else 400,
            "not_found" if exc.status_code in (404, 405) else "bad_request",
        )

    async def on_validation(request: Request, _exc: Exception) -> Response:
        # A malformed id in a path or query is a page that is not there.
        return await error_page(request, 404, "not_found")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(SignInRequired, on_sign_in)
    app.add_exception_handler(BadForm, on_bad_form)

    async def on_family(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/familie", status_code=303)

    app.add_exception_handler(FamilyArea, on_family)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # A fault of the portal's own: a page in words, the exception's type in the log
        # (never its message, which could hold what a service answered).
        _log.error("page_failed", error_type=type(exc).__name__)
        response = await error_page(request, 500, "error")
        # This answer leaves outside the middleware that sets the headers on every other.
        protect(response.headers, hsts=_portal(request).settings.secure_cookies)
        return response

    app.add_exception_handler(Exception, on_unexpected)


def main() -> int:
    common = CommonSettings()
    settings = PortalSettings()
    configure_logging("portal", common.log_level, json=common.log_json)
    # httpx logs each request's URL at INFO: the portal logs its own lines instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings, common),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0
