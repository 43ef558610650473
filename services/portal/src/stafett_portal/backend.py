"""The portal's way to the four services: their public HTTP APIs, with the signed-in
person's own token, so every read is decided and recorded exactly as through the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

__all__ = ["ApiError", "Backend", "Reply", "ServiceName"]

ServiceName = Literal["case", "log", "consent", "notify"]
_MAX_ANSWER = 4 * 1024 * 1024


class ApiError(Exception):
    """A service answered with a problem (or did not answer): status, machine code, fields."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.errors = errors or []
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def seq(self) -> int | None:
        value = self.headers.get("stafett-seq")
        return int(value) if value is not None and value.isdigit() else None


class Backend:
    def __init__(self, urls: Mapping[ServiceName, str], http: httpx.AsyncClient) -> None:
        self._urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._http = http

    async def call(
        self,
        method: str,
        service: ServiceName,
        path: str,
        *,
        token: str | None,
        json: Any = None,
        params: Mapping[str, str | int] | tuple[tuple[str, str], ...] | None = None,
        min_seq: int = 0,
        idempotency_key: str | None = None,
    ) -> Reply:
        headers: dict[str, str] = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if min_seq > 0:
            headers["Stafett-Min-Seq"] = str(min_seq)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        url = self._urls[service] + path
        try:
            response = await self._http.request(
                method, url, headers=headers, json=json, params=params
            )
        except httpx.HTTPError:
            raise ApiError(503, "service_unreachable") from None
        if len(response.content) > _MAX_ANSWER:
            raise ApiError(502, "answer_too_large")
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code >= 400:
            problem = body if isinstance(body, dict) else {}
            code = problem.get("code")
            errors = problem.get("errors")
            raise ApiError(
                response.status_code,
                code if isinstance(code, str) else "error",
                errors=errors if isinstance(errors, list) else None,
                retry_after=response.headers.get("retry-after"),
            )
        return Reply(
            response.status_code, body, {k.lower(): v for k, v in response.headers.items()}
        )

    async def healthy(self, service: ServiceName) -> bool:
        try:
            response = await self._http.get(self._urls[service] + "/healthz", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
