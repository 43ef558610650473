"""RFC 9457 problem details: the one shape of every error Stafett answers with.

Titles are Norwegian (bokmål) for people; ``code`` is for machines. Validation problems list
where and why input was refused but never echo the input, which may be personal data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stafett_shared.logging import get_logger
from stafett_shared.validation_texts import bokmal_message

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "BodySizeLimitMiddleware",
    "Problem",
    "install_problem_handlers",
    "not_visible",
    "problem_response",
    "unavailable",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "urn:stafett:problem:"
_TITLES: dict[str, str] = {
    "bad_request": "Ugyldig forespørsel",
    "validation_error": "Ugyldige data",
    "unauthenticated": "Mangler gyldig innlogging",
    "forbidden": "Ingen tilgang",
    "not_found": "Finnes ikke",
    "method_not_allowed": "Metoden er ikke tillatt",
    "conflict": "Konflikt",
    "version_conflict": "Saken er endret av noen andre",
    "payload_too_large": "Forespørselen er for stor",
    "unsupported_media_type": "Ukjent innholdstype",
    "rate_limited": "For mange forespørsler",
    "unavailable": "Tjenesten er midlertidig utilgjengelig",
    "internal_error": "Intern feil",
}
_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}
_log = get_logger("stafett.problems")


class Problem(Exception):
    """Raise to answer with a problem document. ``detail`` must name no personal data."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _TITLES.get(code) or _TITLES[_STATUS_CODES.get(status, "bad_request")]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def not_visible() -> Problem:
    """404 for a resource that does not exist *or* that the caller has no basis to see: the
    answer never reveals that a case exists (CONTRACT.md)."""
    return Problem(404, "not_found", "Finnes ikke, eller du har ikke tilgang.")


def unavailable(detail: str = "En tjeneste Stafett trenger svarer ikke; prøv igjen.") -> Problem:
    """503 with ``Retry-After``: a dependency is down or a read model is behind."""
    return Problem(503, "unavailable", detail, headers={"Retry-After": "1"})


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": title or _TITLES.get(code, _TITLES["bad_request"]),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    sent = dict(headers or {})
    if status == 503 and not any(name.lower() == "retry-after" for name in sent):
        sent["Retry-After"] = "1"  # a 503 always says when to ask again
    return JSONResponse(body, status_code=status, headers=sent, media_type=PROBLEM_CONTENT_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors()[:50]:
        errors.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "type": str(error.get("type", "invalid")),
                "msg": bokmal_message(str(error.get("type", "")), error.get("ctx")),
            }
        )
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error as problem+json; nothing a client sends yields a 500."""

    async def _problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status, exc.code, exc.detail, title=exc.title, headers=exc.headers, extra=exc.extra
        )

    async def _validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(400, "bad_request", "Forespørselen er ikke gyldig JSON.")
        return problem_response(
            422,
            "validation_error",
            "Forespørselen har felt som mangler eller er ugyldige.",
            extra={"errors": errors},
        )

    async def _http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "bad_request")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES[code]
        return problem_response(exc.status_code, code, detail, headers=exc.headers)

    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Only a defect in Stafett reaches here; the log names the type, not the content.
        _log.error("unhandled_error", error_type=type(exc).__name__)
        return problem_response(500, "internal_error", "Noe gikk galt hos oss. Prøv igjen senere.")

    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


class BodySizeLimitMiddleware:
    """Answers 413 for a body over ``max_bytes``, before the application reads it."""

    def __init__(
        self, app: Any, max_bytes: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max = max_bytes
        self.overrides = dict(overrides or {})

    def _limit(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.default_max

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(str(scope.get("path", "")))
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._reject(scope, receive, send, limit)
                    return
        received = 0
        too_large = False
        started = False

        async def _receive() -> Any:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def _send(message: Any) -> None:
            nonlocal started
            # FastAPI turns an error while reading the body into its own 400; once the body
            # is known to be too large, the application's answer is replaced by the 413.
            if too_large:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, _receive, _send)
        if too_large and not started:
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        response = problem_response(
            413, "payload_too_large", f"Forespørselen kan være høyst {limit} byte."
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
