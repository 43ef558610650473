"""RFC 9457 problem details for every error, body size limits, and no echoed input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from stafett_shared.problems import (
    PROBLEM_CONTENT_TYPE,
    BodySizeLimitMiddleware,
    Problem,
    install_problem_handlers,
    problem_response,
)

LIMIT = 2048
NATIONAL_ID = "01010012345"


class Child(BaseModel):
    national_id: str


class NewCase(BaseModel):
    unit_id: str
    level: int
    child: Child
    urgent: bool = False


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)

    @app.post("/cases")
    async def open_case(body: NewCase) -> dict[str, Any]:
        return {"unit_id": body.unit_id, "level": body.level}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"database password hunter2 for {NATIONAL_ID}")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Problem(
            409,
            "conflict",
            "Saken er lukket.",
            headers={"ETag": '"7"'},
            extra={"current_version": 7},
        )

    @app.get("/teapot")
    async def teapot() -> None:
        raise Problem(418, "teapot", "Kjelen koker.")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://stafett.test") as http:
        yield http


def _is_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:stafett:problem:{code}"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    return body


VALID = {"unit_id": "siljan-ungdomsskole", "level": 0, "child": {"national_id": NATIONAL_ID}}


async def test_a_valid_body_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases", json=VALID)

    assert response.status_code == 200
    assert response.json() == {"unit_id": "siljan-ungdomsskole", "level": 0}


async def test_a_body_that_is_not_json_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cases", content=b'{"unit_id": "x", "level":', headers={"content-type": "application/json"}
    )

    body = _is_problem(response, 400, "bad_request")
    assert body["title"] == "Ugyldig forespørsel"
    assert "errors" not in body


async def test_a_missing_field_is_a_validation_error_naming_where_and_why(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/cases", json={"unit_id": "x", "child": {"national_id": "1"}})

    body = _is_problem(response, 422, "validation_error")
    assert body["title"] == "Ugyldige data"
    assert body["errors"] == [
        {"loc": ["body", "level"], "type": "missing", "msg": "Feltet mangler."}
    ]


async def test_a_validation_error_does_not_echo_the_submitted_values(
    client: httpx.AsyncClient,
) -> None:
    submitted = {
        "unit_id": "x",
        "level": 0,
        "child": {"national_id": NATIONAL_ID},
        "urgent": NATIONAL_ID,
    }

    response = await client.post("/cases", json=submitted)

    body = _is_problem(response, 422, "validation_error")
    assert NATIONAL_ID not in response.text
    assert [error["loc"] for error in body["errors"]] == [["body", "urgent"]]
    for error in body["errors"]:
        assert set(error) == {"loc", "type", "msg"}
        assert "input" not in error


async def test_every_invalid_field_is_listed(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases", json={"level": "høy", "child": {}})

    body = _is_problem(response, 422, "validation_error")
    locations = sorted(tuple(error["loc"]) for error in body["errors"])
    assert locations == [
        ("body", "child", "national_id"),
        ("body", "level"),
        ("body", "unit_id"),
    ]
    assert "høy" not in response.text


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    oversized = json.dumps({**VALID, "unit_id": "x" * (LIMIT + 1)}).encode()

    response = await client.post(
        "/cases", content=oversized, headers={"content-type": "application/json"}
    )

    body = _is_problem(response, 413, "payload_too_large")
    assert str(LIMIT) in body["detail"]


async def test_a_chunked_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"unit_id": "'
        for _ in range(LIMIT // 256 + 1):
            yield b"x" * 256
        yield b'", "level": 0, "child": {"national_id": "1"}}'

    response = await client.post(
        "/cases", content=chunks(), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    _is_problem(response, 413, "payload_too_large")


async def test_a_chunked_body_over_the_limit_is_refused_on_a_raw_route(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * LIMIT

    response = await client.post("/raw", content=chunks())

    _is_problem(response, 413, "payload_too_large")


async def test_a_chunked_body_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        yield b"y" * 1000

    response = await client.post("/raw", content=chunks())

    assert response.status_code == 200
    assert response.json() == {"size": 2000}


async def test_a_body_of_exactly_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=b"x" * LIMIT)

    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_an_unknown_path_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    body = _is_problem(response, 404, "not_found")
    assert body["title"] == "Finnes ikke"


async def test_a_wrong_method_is_a_method_not_allowed_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/cases")

    _is_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_an_unexpected_error_is_a_generic_internal_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom")

    body = _is_problem(response, 500, "internal_error")
    assert body["detail"] == "Noe gikk galt hos oss. Prøv igjen senere."
    assert body["title"] == "Intern feil"
    for leaked in ("hunter2", NATIONAL_ID, "RuntimeError", "database password"):
        assert leaked not in response.text


async def test_a_raised_problem_renders_every_member_and_its_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/conflict")

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["etag"] == '"7"'
    assert response.json() == {
        "type": "urn:stafett:problem:conflict",
        "title": "Konflikt",
        "status": 409,
        "detail": "Saken er lukket.",
        "code": "conflict",
        "current_version": 7,
    }


async def test_a_problem_with_an_unknown_code_gets_a_generic_title(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/teapot")

    body = _is_problem(response, 418, "teapot")
    assert body["title"] == "Ugyldig forespørsel"


def test_a_problem_takes_its_title_from_its_code_or_status() -> None:
    assert Problem(409, "version_conflict", "x").title == "Saken er endret av noen andre"
    assert Problem(503, "nats_down", "x").title == "Tjenesten er midlertidig utilgjengelig"
    assert Problem(409, "conflict", "x", title="Egen tittel").title == "Egen tittel"


def test_problem_response_is_problem_json_with_the_rfc_9457_members() -> None:
    response = problem_response(409, "conflict", "Saken er lukket.", instance="/cases/1")

    assert response.status_code == 409
    assert response.media_type == PROBLEM_CONTENT_TYPE
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert json.loads(bytes(response.body)) == {
        "type": "urn:stafett:problem:conflict",
        "title": "Konflikt",
        "status": 409,
        "detail": "Saken er lukket.",
        "code": "conflict",
        "instance": "/cases/1",
    }
