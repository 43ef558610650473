"""The composition shared by the four services: one place that wires NATS, the event store,
keys, the database, the projector and the HTTP app, so each service's ``app.py`` only says
what is its own."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.metadata
import math
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import sqlalchemy.exc
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stafett_shared import rpc
from stafett_shared.access import REQUEST_MIN_SEQ, AccessClient, AccessUnavailable
from stafett_shared.auth import DevIssuer, IdentityUnavailable, PrincipalDep, TokenVerifier
from stafett_shared.crypto import (
    KEY_SUBJECT,
    BlindIndex,
    FieldCipher,
    KeyShredded,
    KeyStore,
    KeyUnavailable,
    load_or_create_kek,
)
from stafett_shared.db import create_engine, create_sync_engine, run_migrations, sessionmaker
from stafett_shared.envelope import registry
from stafett_shared.eventstore import EventStore, StoreUnavailable
from stafett_shared.logging import configure_logging, get_logger
from stafett_shared.logins import LoginDirectory
from stafett_shared.loopdb import loop_engine
from stafett_shared.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from stafett_shared.metrics import configure_metrics, exposition, unwatch, watch_projector
from stafett_shared.openapi import install_openapi
from stafett_shared.problems import (
    BodySizeLimitMiddleware,
    Problem,
    install_problem_handlers,
    problem_response,
)
from stafett_shared.projector import Projection, ProjectionBehind, Projector
from stafett_shared.ratelimit import RateLimiter
from stafett_shared.schemas import schemas_router
from stafett_shared.settings import CommonSettings, ServiceSettings
from stafett_shared.telemetry import FASTAPI_TELEMETRY, TracingMiddleware, configure_tracing

__all__ = [
    "UNAVAILABLE_ERRORS",
    "Runtime",
    "ServiceSpec",
    "connect_nats",
    "create_app",
    "install_unavailable_handlers",
    "is_unavailable",
    "run_service",
    "stop_tasks",
]

_log = get_logger("stafett.service")

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    KeyUnavailable,
    AccessUnavailable,
    IdentityUnavailable,
    rpc.RpcUnavailable,
    # NATS gone, going or not answering (nats.errors.TimeoutError is a TimeoutError).
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.ServiceUnavailableError,
    # The database gone or busy: a lost connection, a lock not had in time, a full pool.
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
)
"""What a service raises when the event store, NATS, the database or another service is
unavailable for a moment: answered 503 with ``Retry-After`` (never 500), on every route, by
:func:`install_unavailable_handlers`. Nothing else means "try again"."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or, for a group, every exception in it) says a dependency is
    unavailable for a moment rather than that Stafett has a defect."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_unavailable(inner) for inner in exc.exceptions)
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated or _unavailable_sqlstate(exc)
    ):
        return True
    return isinstance(exc, UNAVAILABLE_ERRORS)


_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
"""PostgreSQL's own words for "not now": shut down by an administrator or by a crash, not yet
accepting connections (starting or recovering), too many connections. Class 08 (a
connection exception) counts as well."""


def _unavailable_sqlstate(exc: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether the driver's error carries a SQLSTATE that says the server is unavailable for a
    moment (asyncpg's adapted errors and psycopg's carry ``sqlstate``)."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and (state in _UNAVAILABLE_SQLSTATES or state.startswith("08"))


def install_unavailable_handlers(app: FastAPI) -> None:
    """503 ``unavailable`` with ``Retry-After: 1`` (application/problem+json) for every error
    of :data:`UNAVAILABLE_ERRORS` raised in a route or a dependency. Add
    :class:`UnavailableMiddleware` too for what surfaces in a middleware."""

    async def _unavailable(_request: Request, exc: Exception) -> Response:
        return unavailable_response(exc)

    for error in UNAVAILABLE_ERRORS:
        if issubclass(error, Exception):
            app.add_exception_handler(error, _unavailable)


def unavailable_response(exc: BaseException) -> Response:
    """The answer to an unavailable dependency. The log line names the error's type, never
    its message (which may hold an id)."""
    _log.warning("dependency_unavailable", error_type=type(exc).__name__)
    return problem_response(
        503,
        "unavailable",
        "En tjeneste Stafett trenger svarer ikke akkurat nå; prøv igjen om litt.",
        headers={"Retry-After": "1"},
    )


class UnavailableMiddleware:
    """For an unavailable dependency met outside the routes' handlers (in a middleware such
    as ``Stafett-Min-Seq``'s, a lost database connection of any kind, a group of errors):
    the same 503, if no answer has started; anything else goes on to the 500 handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception as exc:
            if started or not is_unavailable(exc):
                raise
            await unavailable_response(exc)(scope, receive, send)


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """What makes one service itself."""

    name: str
    title: str
    description: str
    contexts: Sequence[str]
    projection: Callable[[FieldCipher, ServiceSettings], Projection]
    migrations: Path
    routers: Sequence[APIRouter] = ()  # mounted under /api/v1
    extra_routers: Sequence[APIRouter] = ()  # mounted at the root (standard paths)
    settings_type: type[ServiceSettings] = ServiceSettings
    on_start: Callable[[Runtime], Awaitable[None]] | None = None
    on_stop: Callable[[Runtime], Awaitable[None]] | None = None
    body_limits: Mapping[str, int] = field(default_factory=dict)  # path prefix -> bytes
    writes_keys: bool = False
    """Whether the service writes the key bucket (the consent service alone); the others
    ask it for a key that does not exist yet (stafett_shared.crypto.KEY_SUBJECT)."""
    # Extra process commands (`python -m stafett_<name> <command>`), run on a wired runtime.
    commands: Mapping[str, Callable[[Runtime], Awaitable[int]]] = field(default_factory=dict)


@dataclass
class Runtime:
    """The wired collaborators of a running service (``app.state.runtime``)."""

    spec: ServiceSpec
    settings: CommonSettings
    service: ServiceSettings
    nc: NATS
    store: EventStore
    keys: KeyStore
    cipher: FieldCipher
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    projector: Projector
    verifier: TokenVerifier
    blocking_engine: Engine
    """A blocking engine on the same database: for a unit of work in one call in a thread
    (the projector applies blocking projections on it)."""
    loop_engine: Engine | None = None
    """On a SQLite file: an engine for small reads and writes on the event loop itself
    (:mod:`stafett_shared.loopdb`); None on PostgreSQL."""
    extras: dict[str, Any] = field(default_factory=dict)

    async def access_client(self, *, permit_cache_s: float) -> AccessClient:
        """The service's client of the consent service's decisions: asking in the service's
        own name, with the deployment's timeout, and listening for announcements that
        access changed, so a permit taken away is never answered from its cache."""
        access = AccessClient(
            self.nc,
            service=self.spec.name,
            timeout_s=self.settings.consent_timeout_s,
            permit_cache_s=permit_cache_s,
        )
        await access.listen()
        return access


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel background tasks until they end: a library's ``wait_for`` can swallow one
    cancellation (Python 3.11) when it lands as the awaited message arrives."""
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()


async def connect_nats(settings: CommonSettings, name: str, *, wait_s: float = 30.0) -> NATS:
    """Connect, retrying the first connection for ``wait_s``; reconnect for ever after."""

    async def _error(exc: Exception) -> None:
        _log.warning("nats_error", error_type=type(exc).__name__)

    async def _disconnected() -> None:
        _log.warning("nats_disconnected")

    async def _reconnected() -> None:
        _log.info("nats_reconnected")

    settings.check_nats_credentials()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await nats.connect(
                servers=[url.strip() for url in settings.nats_url.split(",") if url.strip()],
                name=f"stafett-{name}",
                user=settings.nats_user,
                password=(
                    settings.nats_password.get_secret_value() if settings.nats_password else None
                ),
                user_credentials=(
                    str(settings.nats_creds_file) if settings.nats_creds_file else None
                ),
                nkeys_seed=str(settings.nats_nkey_file) if settings.nats_nkey_file else None,
                tls=nats_tls_context(settings),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                error_cb=_error,
                disconnected_cb=_disconnected,
                reconnected_cb=_reconnected,
            )
        except (nats.errors.NoServersError, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def nats_tls_context(settings: CommonSettings) -> ssl.SSLContext | None:
    """TLS to NATS when a CA is configured (``STAFETT_NATS_TLS_CA``): the server's
    certificate is verified against it and its name checked; a client certificate is
    presented when one is configured (``STAFETT_NATS_TLS_CERT``, ``…_KEY``)."""
    if settings.nats_tls_ca is None and settings.nats_tls_cert is None:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.nats_tls_cert is not None and settings.nats_tls_key is not None:
        context.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
    return context


def database_url(settings: CommonSettings, service: ServiceSettings, name: str) -> str:
    if service.database_url:
        return service.database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.data_dir / f'{name}.db').resolve()}"


def current_kek(settings: CommonSettings) -> bytes:
    """The current key-encryption key: ``STAFETT_KEK``, or the development key."""
    return settings.kek_bytes() or load_or_create_kek(settings.data_dir / "keys" / "kek")


def blind_index(settings: CommonSettings) -> BlindIndex:
    """The blind index of national ids and names: under ``STAFETT_BLIND_INDEX_KEY``, or
    the key derived from the current KEK."""
    return BlindIndex.with_key(settings.blind_index_secret(current_kek(settings)))


def key_store(
    settings: CommonSettings, nc: NATS, *, service: str, writes: bool = False
) -> KeyStore:
    """The service's key store: the consent service's writes the bucket; every other
    service's only reads it and has the consent service make a key it lacks."""
    kek = current_kek(settings)

    async def ask_consent(owner: str) -> None:
        try:
            await rpc.request(
                nc,
                rpc.asked_on(KEY_SUBJECT, service),
                {"owner": owner, "asked_by": service},
                timeout=settings.consent_timeout_s,
            )
        except rpc.RpcRemoteError as exc:
            if exc.code == "shredded":
                raise KeyShredded(owner) from exc
            raise KeyUnavailable(f"the consent service made no key: {exc.code}") from exc
        except rpc.RpcError as exc:
            raise KeyUnavailable("the consent service did not answer") from exc

    return KeyStore(
        nc.jetstream(),
        settings.kek_ring(kek),
        settings.kek_id,
        replicas=settings.stream_replicas,
        create_via=None if writes else ask_consent,
    )


@contextlib.asynccontextmanager
async def open_runtime(
    spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings
) -> AsyncIterator[Runtime]:
    """Wire a service's collaborators; the caller decides whether to serve or to rebuild."""
    settings.check_kek()
    nc = await connect_nats(settings, spec.name)
    url = database_url(settings, service, spec.name)
    engine = create_engine(url)
    # For projections written against a blocking connection (a batch in one call), and on
    # SQLite for small batches on the event loop (stafett_shared.loopdb).
    blocking = create_sync_engine(url)
    on_loop = loop_engine(url, writes=True)
    projector: Projector | None = None
    logins = LoginDirectory(
        nc,
        service=spec.name,
        timeout_s=settings.consent_timeout_s,
        cache_s=settings.login_cache_s,
    )
    verifier = TokenVerifier(
        settings.issuers,
        dev_issuer=DevIssuer.load_or_create(settings.data_dir)
        if settings.dev_issuer_enabled
        else None,
        admins=settings.every_admin_login,
        # A configured staff issuer's subject is a person through the directory's logins,
        # a citizen issuer's pid through the blind index of the directory's national ids,
        # a client issuer's client through the directory's clients: all asked of the
        # consent service (which answers its own from its read model).
        logins=logins,
        citizens=logins.citizen,
        clients=logins.client,
        blind_index=blind_index(settings),
        verified_for_s=settings.login_cache_s,
    )
    try:
        store = EventStore(nc, stream=settings.stream, subject_prefix=settings.subject_prefix)
        await store.ensure_stream(
            create=settings.may_create_stream, replicas=settings.stream_replicas
        )
        keys = key_store(settings, nc, service=spec.name, writes=spec.writes_keys)
        await keys.ensure_bucket()
        await run_migrations(engine, spec.migrations)
        cipher = FieldCipher(keys)
        projector = Projector(
            spec.projection(cipher, service),
            store,
            engine,
            batch=service.projector_batch,
            blocking_engine=blocking,
            loop_engine=on_loop,
        )
        watch_projector(projector)
        yield Runtime(
            spec=spec,
            settings=settings,
            service=service,
            nc=nc,
            store=store,
            keys=keys,
            cipher=cipher,
            engine=engine,
            sessions=sessionmaker(engine),
            projector=projector,
            verifier=verifier,
            blocking_engine=blocking,
            loop_engine=on_loop,
        )
    finally:
        await verifier.aclose()
        # Drain briefly, then close: a shutdown must not wait on a subscriber that hangs.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await nc.drain()
        with contextlib.suppress(Exception):
            await nc.close()
        if projector is not None:
            unwatch(projector)
            await projector.aclose()
        await asyncio.to_thread(blocking.dispose)
        if on_loop is not None:
            await asyncio.to_thread(on_loop.dispose)
        await engine.dispose()


def _whoami_router() -> APIRouter:
    router = APIRouter(tags=["identitet"])

    @router.get("/whoami", summary="Hvem tokenet ditt gjør deg til (etter koblingen i katalogen)")
    async def whoami(principal: PrincipalDep) -> dict[str, str]:
        # The portal asks this after an OpenID Connect sign-in: the person id is what the
        # services make of (issuer, subject), never the ID token's subject as it stands.
        return {"kind": principal.kind, "id": principal.id}

    return router


class _ReadinessProbe:
    """The stream's and the database's state for ``/readyz``, asked at most once a second
    (callers at the same moment share one probe) and each within a short timeout, so that
    readiness answers at once whatever is down."""

    def __init__(self, *, every_s: float = 1.0, timeout_s: float = 1.0) -> None:
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._checked_at = -math.inf
        self._checks: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def checks(self, runtime: Runtime) -> dict[str, str]:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.every_s:
                self._checks = {
                    "stream": await self._check(runtime.projector.refresh_stream_position()),
                    "database": await self._check(_select_one(runtime)),
                }
                self._checked_at = time.monotonic()
            return dict(self._checks)

    async def _check(self, probe: Awaitable[None]) -> str:
        try:
            async with asyncio.timeout(self.timeout_s):
                await probe
        except Exception:  # noqa: BLE001 - any failure means not ready
            return "unavailable"
        return "ok"


async def _select_one(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        await session.execute(text("SELECT 1"))


def _health_router() -> APIRouter:
    router = APIRouter(tags=["drift"])
    probe = _ReadinessProbe()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # Counts, positions and durations only, labelled by projection, reason or service
        # (stafett_shared.metrics); for the scraper on the internal network.
        return Response(content=exposition(), media_type=METRICS_CONTENT_TYPE)

    @router.get("/healthz", summary="Prosessen lever")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Klar: database, NATS, strøm og lesemodell",
        responses={503: {"description": "Ikke klar"}},
    )
    async def readyz(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        checks = {
            "nats": "ok" if runtime.nc.is_connected else "disconnected",
            **await probe.checks(runtime),
        }
        caught_up = runtime.projector.caught_up_within(5.0)
        checks["projection"] = "ok" if caught_up else f"behind by {runtime.projector.lag}"
        if all(value == "ok" for value in checks.values()):
            return Response(
                content=f'{{"status":"ready","position":{runtime.projector.known_position}}}',
                media_type="application/json",
            )
        return problem_response(
            503,
            "unavailable",
            "Tjenesten er ikke klar ennå.",
            headers={"Retry-After": "1"},
            extra={"checks": checks},
        )

    return router


# The Swagger UI files /docs needs, from the installed fastapi-offline package; nothing else
# in its folder is served.
_DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_policy(page: bytes) -> str:
    """A Content-Security-Policy for the /docs page: this origin only, and of inline script
    only the page's own start script (by its hash)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _docs_router(title: str, openapi_url: str) -> APIRouter:
    """Swagger UI at /docs, its files served by the service itself: the page works without
    internet, under its own strict Content-Security-Policy."""
    import fastapi_offline

    folder = Path(fastapi_offline.__file__).parent / "static"
    version = importlib.metadata.version("fastapi-offline")  # in the asset URLs, for caches
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        assets = f"{root}/docs/assets"
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} – API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js?v={version}",
            swagger_css_url=f"{assets}/swagger-ui.css?v={version}",
            swagger_favicon_url=f"{assets}/favicon.png?v={version}",
            # Swagger UI would otherwise send the spec's address to its online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = docs_policy(bytes(page.body))
        return page

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str) -> FileResponse:
        media_type = _DOCS_ASSETS.get(name)
        if media_type is None:
            raise Problem(404, "not_found", "Finnes ikke.")
        return FileResponse(
            folder / name,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return router


def asyncapi_document(spec: ServiceSpec) -> dict[str, Any]:
    """AsyncAPI 3.0 description of the events this service owns."""
    messages: dict[str, Any] = {}
    for event_type in registry.types():
        if event_type.split(".")[2] not in spec.contexts:
            continue
        model = registry.model_for(event_type)
        messages[event_type.replace(".", "_")] = {
            "name": event_type,
            "contentType": "application/cloudevents-batch+json",
            "payload": model.model_json_schema(),
        }
    channels = {
        context: {
            "address": "stafett.ev." + context + ".{aggregateId}",
            "parameters": {"aggregateId": {"description": "ULID of the aggregate"}},
            "messages": {
                key: {"$ref": f"#/components/messages/{key}"}
                for key in messages
                if messages[key]["name"].split(".")[2] == context
            },
        }
        for context in spec.contexts
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": spec.title, "version": "1"},
        "defaultContentType": "application/cloudevents-batch+json",
        "channels": channels,
        "components": {"messages": messages},
    }


class ResponseHeadersMiddleware:
    """Every HTTP response gets ``Cache-Control: no-store`` (unless the route set one) and
    ``X-Content-Type-Options: nosniff``, and every request one log line: method, route
    template (never the path, which holds ids), status and duration. Plain ASGI: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a pair of streams per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the application fails before it answers

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _log.info(
                "http_request",
                method=scope["method"],
                route=getattr(scope.get("route"), "path", "unmatched"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


class MinSeqMiddleware:
    """``Stafett-Min-Seq`` on any request, a read (every list) as much as a write: the
    service's own read model and every access decision taken while serving it wait
    (bounded) until they have reached that sequence, so a client's next step after a write
    is never answered from, or refused by, a projection that lags; 503 with Retry-After
    when the read model does not get there in time (CONTRACT.md: a consistency token).
    The one wait for a request: handlers do not wait again."""

    def __init__(self, app: ASGIApp, wait_s: float) -> None:
        self.app = app
        self.wait_s = wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"stafett-min-seq", b"")
        if not raw:
            await self.app(scope, receive, send)
            return
        if not raw.isdigit() or len(raw) > 18:
            response = problem_response(
                400, "bad_request", "Stafett-Min-Seq må være et ikke-negativt heltall."
            )
            await response(scope, receive, send)
            return
        seq = int(raw)
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if runtime is not None and seq > runtime.projector.known_position:
            try:
                beyond = seq > await runtime.store.last_seq()
            except StoreUnavailable:
                beyond = False  # the wait below decides, and answers 503 if it must
            if beyond:
                # No write has that sequence yet: waiting could not help, and the client
                # should hear so at once rather than after the wait as a 503.
                response = problem_response(
                    400,
                    "min_seq_beyond_stream",
                    "Stafett-Min-Seq er høyere enn den siste sekvensen i hendelsesloggen.",
                )
                await response(scope, receive, send)
                return
        if runtime is not None and seq > 0:
            try:
                await runtime.projector.wait_for(seq, self.wait_s)
            except ProjectionBehind:
                response = problem_response(
                    503,
                    "unavailable",
                    "Lesemodellen har ikke nådd den etterspurte sekvensen ennå.",
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, send)
                return
        token = REQUEST_MIN_SEQ.set(seq or None)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_MIN_SEQ.reset(token)


def create_app(spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings) -> FastAPI:
    configure_metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(spec, settings, service) as runtime:
            app.state.runtime = runtime
            app.state.token_verifier = runtime.verifier
            app.state.rate_limiter = (
                RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
                if settings.rate_limit_per_s > 0
                else None
            )
            await runtime.projector.check_not_ahead()  # after a restore of an older stream
            await runtime.projector.catch_up()
            runtime.projector.start()
            if spec.on_start is not None:
                await spec.on_start(runtime)
            _log.info("service_started", port=service.port)
            try:
                yield
            finally:
                if spec.on_stop is not None:
                    await spec.on_stop(runtime)
                await runtime.projector.stop()

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="1",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # our own /docs: Swagger UI from an installed package, not a CDN
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY,
    )
    install_problem_handlers(app)
    install_unavailable_handlers(app)
    install_openapi(app)  # errors, headers and security as the service really answers

    @app.exception_handler(ProjectionBehind)
    async def _behind(_request: Request, _exc: ProjectionBehind) -> Response:
        # A read model too far behind to answer from (a decision on stale facts, a
        # Stafett-Min-Seq not reached): fail closed, and say when to ask again.
        return problem_response(
            503,
            "unavailable",
            "Lesemodellen henger etter; prøv igjen om litt.",
            headers={"Retry-After": "1"},
        )

    app.include_router(_health_router())
    app.include_router(_whoami_router(), prefix="/api/v1")
    app.include_router(_docs_router(spec.title, "/openapi.json"))
    for router in spec.routers:
        app.include_router(router, prefix="/api/v1")
    for router in spec.extra_routers:
        app.include_router(router)

    @app.get("/asyncapi.json", tags=["drift"], summary="Hendelsene tjenesten eier (AsyncAPI 3)")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(spec)

    app.include_router(schemas_router(spec.contexts))  # the same events' JSON Schema

    app.add_middleware(MinSeqMiddleware, wait_s=settings.min_seq_wait_s)
    app.add_middleware(UnavailableMiddleware)  # outside Stafett-Min-Seq's wait
    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, overrides=spec.body_limits
    )
    app.add_middleware(TracingMiddleware)
    return app


def run_service(spec: ServiceSpec, argv: Sequence[str] | None = None) -> int:
    """Entry point of a service process: ``serve`` (default), ``migrate``, ``rebuild``,
    ``quarantine`` or one of the service's own commands."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings = CommonSettings()
    service = spec.settings_type()
    configure_logging(spec.name, settings.log_level, json=settings.log_json)
    configure_tracing(spec.name, settings.otel_exporter)
    command = args[0] if args else "serve"
    if command == "migrate":
        return asyncio.run(_migrate(spec, settings, service))
    if command == "rebuild":
        return asyncio.run(_rebuild(spec, settings, service))
    if command == "quarantine":
        return asyncio.run(_quarantine(spec, settings, service))
    if command in spec.commands:
        return asyncio.run(_command(spec, settings, service, command))
    if command != "serve":
        usage = "|".join(["serve", "migrate", "rebuild", "quarantine", *spec.commands])
        print(f"usage: python -m stafett_{spec.name} [{usage}]", file=sys.stderr)  # noqa: T201
        return 2
    app = create_app(spec, settings, service)
    uvicorn.run(
        app,
        host=service.host,
        port=service.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


async def _command(
    spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings, command: str
) -> int:
    async with open_runtime(spec, settings, service) as runtime:
        return await spec.commands[command](runtime)


async def _migrate(spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings) -> int:
    """Bring the service's database schema to the newest revision and stop: the deployment's
    migration job, run before new processes start. Needs the database only, not NATS; a
    service also migrates at start, where this finds nothing left to do."""
    engine = create_engine(database_url(settings, service, spec.name))
    try:
        await run_migrations(engine, spec.migrations)
    finally:
        await engine.dispose()
    print(f"{spec.name}: database schema up to date")  # noqa: T201
    return 0


async def _rebuild(spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings) -> int:
    async with open_runtime(spec, settings, service) as runtime:
        position = await runtime.projector.rebuild()
    print(f"{spec.name}: read models rebuilt up to sequence {position}")  # noqa: T201
    return 0


async def _quarantine(spec: ServiceSpec, settings: CommonSettings, service: ServiceSettings) -> int:
    """Print the stream messages the service's projection refused, one a line:
    ``<service> <seq> <subject> <reason> <event index or -> <time>``, tab-separated."""
    async with open_runtime(spec, settings, service) as runtime:
        rows = await runtime.projector.quarantine()
    for row in rows:
        index = "-" if row.event_index is None else str(row.event_index)
        when = row.quarantined_at.isoformat().replace("+00:00", "Z")
        sys.stdout.write(f"{spec.name}\t{row.seq}\t{row.subject}\t{row.reason}\t{index}\t{when}\n")
    sys.stderr.write(f"{spec.name}: {len(rows)} melding(er) i karantene\n")
    return 0
