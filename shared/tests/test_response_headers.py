"""Every response of a service carries the safety headers, and every request one log line
with the route template, never the path."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from stafett_shared.service import ResponseHeadersMiddleware


async def plain(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def cached(_request: Request) -> Response:
    return PlainTextResponse("ok", headers={"Cache-Control": "max-age=60"})


async def broken(_request: Request) -> Response:
    raise RuntimeError("a defect")


def app() -> ServerErrorMiddleware:
    routes = [
        Route("/cases/{case_id}", plain),
        Route("/cached", cached),
        Route("/broken", broken),
    ]
    # As in a service: the error middleware outside, answering 500 for a defect.
    return ServerErrorMiddleware(ResponseHeadersMiddleware(Starlette(routes=routes)))


@pytest.fixture
def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(), raise_app_exceptions=False),
        base_url="http://service",
    )


async def test_a_response_is_not_cached_and_not_sniffed_and_its_request_is_logged_by_route(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        response = await client.get("/cases/01JSECRETCASE0000000000000")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    (line,) = [entry for entry in logs if entry["event"] == "http_request"]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/cases/{case_id}", 200)
    assert "01JSECRETCASE" not in str(logs)


async def test_a_route_that_sets_its_own_caching_keeps_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/cached")
    assert response.headers["cache-control"] == "max-age=60"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_request_that_fails_is_logged_as_500_and_unknown_paths_as_unmatched(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        failed = await client.get("/broken")
        missing = await client.get("/no/such/path/01JSECRET")
    assert failed.status_code == 500
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"
    lines = [(e["route"], e["status"]) for e in logs if e["event"] == "http_request"]
    assert lines == [("/broken", 500), ("unmatched", 404)]
    assert "01JSECRET" not in str(logs)
