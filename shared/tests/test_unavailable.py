"""An unavailable dependency is answered 503 with Retry-After, wherever it surfaces; a
defect is still the 500 it is."""

from __future__ import annotations

import httpx
import nats.errors
import nats.js.errors
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from stafett_shared.access import AccessUnavailable
from stafett_shared.crypto import KeyUnavailable
from stafett_shared.eventstore import StoreUnavailable
from stafett_shared.problems import Problem, install_problem_handlers
from stafett_shared.rpc import RpcUnavailable
from stafett_shared.service import (
    UnavailableMiddleware,
    install_unavailable_handlers,
    is_unavailable,
)


class _Lost(Exception):
    """A driver's own error for a dropped connection."""


def _invalidated() -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, _Lost(), connection_invalidated=True)


class _PgError(Exception):
    """A driver's error with PostgreSQL's SQLSTATE, as asyncpg's and psycopg's carry it."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("a server error")
        self.sqlstate = sqlstate


def _pg(sqlstate: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, _PgError(sqlstate))


UNAVAILABLE: dict[str, BaseException] = {
    "store": StoreUnavailable("JetStream did not answer"),
    "key": KeyUnavailable("the key store did not answer"),
    "access": AccessUnavailable("the consent service did not answer"),
    "rpc": RpcUnavailable("not connected to NATS"),
    "nats-timeout": nats.errors.TimeoutError(),
    "asyncio-timeout": TimeoutError(),
    "no-responders": nats.errors.NoRespondersError(),
    "closed": nats.errors.ConnectionClosedError(),
    "reconnecting": nats.errors.ConnectionReconnectingError(),
    "jetstream-503": nats.js.errors.ServiceUnavailableError(code=503, description="down"),
    "database-locked": sqlalchemy.exc.OperationalError("UPDATE x", {}, _Lost()),
    "database-gone": sqlalchemy.exc.InterfaceError("SELECT 1", {}, _Lost()),
    "database-invalidated": _invalidated(),
    "database-starting": _pg("57P03"),
    "database-shut-down": _pg("57P01"),
    "database-connection-failure": _pg("08006"),
    "database-too-many": _pg("53300"),
    "group": ExceptionGroup("both", [StoreUnavailable("a"), nats.errors.TimeoutError()]),
}
DEFECTS: dict[str, Exception] = {
    "value": ValueError("a defect"),
    "integrity": sqlalchemy.exc.IntegrityError("INSERT", {}, _Lost()),
    "database-syntax": _pg("42601"),
    "mixed-group": ExceptionGroup("one defect", [StoreUnavailable("a"), KeyError("b")]),
}


class _RaisingMiddleware:
    """A middleware that fails before the routes, as ``Stafett-Min-Seq``'s wait can."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].rsplit("/", 1)[-1]
        if scope["type"] == "http" and scope["path"].startswith("/middleware/"):
            raise (UNAVAILABLE | DEFECTS)[name]
        await self.app(scope, receive, send)


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_unavailable_handlers(app)

    @app.post("/route/{name}")
    async def route(name: str) -> None:
        raise (UNAVAILABLE | DEFECTS)[name]

    app.add_middleware(_RaisingMiddleware)
    app.add_middleware(UnavailableMiddleware)
    return app


@pytest.mark.parametrize("where", ["route", "middleware"])
@pytest.mark.parametrize("name", sorted(UNAVAILABLE | DEFECTS))
async def test_an_unavailable_dependency_is_503_with_retry_after_a_defect_500(
    where: str, name: str
) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        answer = await client.post(f"/{where}/{name}")
    assert answer.headers["content-type"] == "application/problem+json"
    if name in UNAVAILABLE:
        assert is_unavailable(UNAVAILABLE[name])
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["code"] == "unavailable"
    else:
        assert not is_unavailable(DEFECTS[name])
        assert answer.status_code == 500
        assert "retry-after" not in answer.headers
        assert answer.json()["code"] == "internal_error"


async def test_every_503_says_when_to_ask_again() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise Problem(503, "unavailable", "Tilgangen kunne ikke registreres; prøv igjen.")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        answer = await client.get("/busy")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
