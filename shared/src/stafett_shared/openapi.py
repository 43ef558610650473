"""The OpenAPI document a service publishes, made to say what the service really does.

FastAPI describes the routes as it sees them: successes, and a 422 as ``application/json``.
A Stafett service answers every error as ``application/problem+json`` (RFC 9457,
:mod:`stafett_shared.problems`), enforces headers FastAPI knows only as strings
(``Idempotency-Key``, ``If-Match``, ``Stafett-Min-Seq``), authenticates with Bearer tokens,
and answers errors from its middleware (400, 413, 503) and its access checks (401, 403, 404,
429) on routes that never name them. :func:`install_openapi` makes ``app.openapi`` post-process
FastAPI's document once, so ``/openapi.json``, ``/docs`` and the API tests read the same truth.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from stafett_shared.idempotency import IF_MATCH_PATTERN
from stafett_shared.problems import PROBLEM_CONTENT_TYPE

__all__ = ["NOT_EVENT_SOURCED", "answers", "complete_document", "install_openapi"]

_SCHEMAS = "#/components/schemas/"
_PARAMETERS = "#/components/parameters/"
_HEADERS = "#/components/headers/"
_RESPONSES = "#/components/responses/"
EVENT_SOURCED = "x-stafett-event-sourced"
NOT_EVENT_SOURCED: dict[str, Any] = {EVENT_SOURCED: False}
"""``openapi_extra`` of a write to the service's own database, not to the event stream: it
takes ``Idempotency-Key`` but answers no ``Stafett-Seq`` or ``ETag`` and no version 409."""
# The largest Stafett-Min-Seq the middleware accepts: up to 18 digits.
_MAX_SEQ = 999_999_999_999_999_999

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. `title` is for people (Norwegian), `code` for "
    "machines; `detail` never holds the input, which may be personal data.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri", "pattern": "^urn:stafett:problem:"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[a-z_]{1,64}$"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "On 422 for invalid input: where and why, never the value.",
            "maxItems": 50,
            "items": {"$ref": _SCHEMAS + "ProblemFieldError"},
        },
        "checks": {
            "type": "object",
            "description": "On 503 from /readyz: the state of each dependency.",
            "additionalProperties": {"type": "string"},
        },
    },
    "additionalProperties": True,
}
FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["loc", "type", "msg"],
    "properties": {
        "loc": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string"},
        "msg": {"type": "string"},
    },
}

PARAMETERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A repeat with the same key (same caller, route and body) gets the "
        "first answer and writes nothing new; the same key on another request is 422.",
        "schema": {
            "type": "string",
            "minLength": 8,
            "maxLength": 128,
            "pattern": "^[A-Za-z0-9._:-]{8,128}$",
        },
    },
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'The aggregate version from an ETag (`"12"` or `W/"12"`): the '
        "write is refused with 409 when the aggregate has moved on.",
        "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
    },
    "Stafett-Min-Seq": {
        "name": "Stafett-Min-Seq",
        "in": "header",
        "required": False,
        "description": "A consistency token (the Stafett-Seq of an earlier write), on any "
        "request, every list included: the read model and access decisions wait, bounded, "
        "until they have reached it; 503 with Retry-After when they do not in time. Not a "
        "non-negative integer, or beyond the stream's last sequence: 400.",
        "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_SEQ},
    },
}

HEADERS: dict[str, dict[str, Any]] = {
    "Stafett-Seq": {
        "description": "The stream sequence of the write: send it as Stafett-Min-Seq to read "
        "your own write.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    "ETag": {
        "description": "The aggregate's version, for If-Match on the next write.",
        "required": True,
        "schema": {"type": "string", "pattern": '^(W/)?"[0-9]{1,18}"$'},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
    },
    "WWW-Authenticate": {
        "description": "The Bearer challenge (RFC 6750).",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer "},
    },
}

_ERRORS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    400: ("BadRequest", "Malformed request: JSON, or a header's format.", ()),
    401: ("Unauthenticated", "No valid Bearer token.", ("WWW-Authenticate",)),
    403: ("Forbidden", "Authenticated, but the policy does not permit it.", ()),
    404: ("NotFound", "Does not exist, or the caller has no basis to see it.", ()),
    409: ("Conflict", "The aggregate has moved on (If-Match) or its state refuses it.", ()),
    413: ("PayloadTooLarge", "The body is larger than the service accepts.", ()),
    415: ("UnsupportedMediaType", "A body of a content type the operation does not take.", ()),
    422: ("ValidationProblem", "Invalid input; `errors` says where and why.", ()),
    429: ("RateLimited", "Too many requests from this caller.", ("Retry-After",)),
    503: (
        "Unavailable",
        "A dependency is down or a read model is behind.",
        ("Retry-After",),
    ),
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's ``responses=``: error statuses it answers that cannot be told from its
    parameters (a case named in the body or query that the caller may not see: 404). The
    problem content and headers are filled in by :func:`install_openapi`."""
    return {status: {"description": _ERRORS[status][1]} for status in statuses}


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in list(node.values()):
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _lift_defs(document: dict[str, Any]) -> None:
    """Move every nested ``$defs`` (a Pydantic schema embedded by hand, as ``openapi_extra``
    does) into ``components/schemas`` and point its ``$ref``s there: ``#/$defs/X`` resolves
    against the document's root, where there is no ``$defs``."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    pending: list[dict[str, Any]] = []

    def collect(node: dict[str, Any]) -> None:
        defs = node.pop("$defs", None)
        if not isinstance(defs, dict):
            return
        for name, schema in defs.items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two different schemas are both named {name!r}")
            schemas[name] = schema
            pending.append(schema)

    _walk(document, collect)
    while pending:
        _walk(pending.pop(), collect)

    def rewrite(node: dict[str, Any]) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = _SCHEMAS + ref.removeprefix("#/$defs/")

    _walk(document, rewrite)


def _error_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (name, description, headers) in _ERRORS.items():
        schema: dict[str, Any] = {
            "allOf": [
                {"$ref": _SCHEMAS + "Problem"},
                {"properties": {"status": {"const": status}}},
            ]
        }
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        if headers:
            response["headers"] = {header: {"$ref": _HEADERS + header} for header in headers}
        responses[name] = response
    return responses


def _operation_statuses(
    operation: dict[str, Any],
    *,
    authenticated: bool,
    header_names: set[str],
    own_input: bool,
) -> set[int]:
    """The error statuses an operation can answer, beyond those its route declares."""
    # Any request: a malformed Stafett-Min-Seq, a body over the limit, and the bounded
    # wait for Stafett-Min-Seq (503 when the read model does not reach it in time).
    statuses = {400, 413, 503}
    if authenticated:
        statuses |= {401, 403, 429, 503}
    if own_input:
        statuses.add(422)  # FastAPI's validation of the operation's own input
    if any(p.get("in") == "path" for p in operation.get("parameters", [])) and authenticated:
        statuses.add(404)
    if header_names & {"Idempotency-Key", "If-Match"} and operation.get(EVENT_SOURCED, True):
        statuses.add(409)  # an event-sourced write: the aggregate may have moved on
    return statuses


def _complete_operation(operation: dict[str, Any], *, authenticated: bool) -> None:
    params: list[dict[str, Any]] = []
    header_names: set[str] = set()
    own_input = "requestBody" in operation
    for param in operation.get("parameters", []):
        name = param.get("name")
        if param.get("in") == "header" and name in PARAMETERS:
            header_names.add(name)
            own_input = own_input or name != "Stafett-Min-Seq"
            continue
        own_input = True
        params.append(param)
    header_names.add("Stafett-Min-Seq")  # the middleware reads it on every request
    for name in sorted(header_names):
        params.append({"$ref": _PARAMETERS + name})
    operation["parameters"] = params
    responses: dict[str, Any] = operation.setdefault("responses", {})
    writes = bool(header_names & {"Idempotency-Key", "If-Match"}) and operation.get(
        EVENT_SOURCED, True
    )
    for status, response in responses.items():
        if writes and status.startswith("2"):
            response.setdefault("headers", {}).update(
                {header: {"$ref": _HEADERS + header} for header in ("Stafett-Seq", "ETag")}
            )
    statuses = _operation_statuses(
        operation,
        authenticated=authenticated,
        header_names=header_names,
        own_input=own_input,
    )
    statuses |= {int(status) for status in responses if status[:1] in "45"}
    for code in sorted(statuses):
        if code not in _ERRORS:
            raise ValueError(f"no problem response is described for status {code}")
        responses[str(code)] = {"$ref": _RESPONSES + _ERRORS[code][0]}
    operation["responses"] = dict(sorted(responses.items()))


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """Post-process FastAPI's document (in place) and return it."""
    _lift_defs(document)
    components: dict[str, Any] = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    schemas["ProblemFieldError"] = copy.deepcopy(FIELD_ERROR_SCHEMA)
    components["parameters"] = copy.deepcopy(PARAMETERS)
    components["headers"] = copy.deepcopy(HEADERS)
    components["responses"] = _error_responses()
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                _complete_operation(
                    operation,
                    # FastAPI names the scheme where current_principal is a dependency.
                    authenticated=bool(operation.get("security")),
                )
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) return the completed document."""
    base = app.openapi
    completed: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not completed:
            completed.update(complete_document(copy.deepcopy(base())))
            app.openapi_schema = completed
        return completed

    app.openapi = openapi  # type: ignore[method-assign]
