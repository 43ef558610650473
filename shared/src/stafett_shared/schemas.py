"""JSON Schema of the events a service publishes, generated from the contract models.

Served beside the AsyncAPI document (``/asyncapi.json``, whose messages embed the same
schemas): ``/schemas.json`` has every event type of the service's contexts and
``/schemas/<type>.json`` one of them. A schema never changes for a published type; a new
version is a new type with a schema of its own (docs/decisions/0021-event-contracts.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from stafett_shared.contracts.base import ContractEvent
from stafett_shared.envelope import registry
from stafett_shared.problems import Problem

__all__ = ["event_schema", "event_schemas", "schemas_router"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A schema is the same for as long as the process runs; integrators may cache it a day.
_CACHE = {"Cache-Control": "public, max-age=86400"}


@functools.cache
def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's ``data``, with its context, owning service and
    subject pattern as ``x-stafett-*`` keywords."""
    model = registry.model_for(event_type)
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"/schemas/{event_type}.json",
        **model.model_json_schema(),
        "x-stafett-type": event_type,
    }
    if issubclass(model, ContractEvent):
        schema["x-stafett-context"] = model.context
        schema["x-stafett-owner"] = model.owner
        schema["x-stafett-subject"] = model.subject_pattern
    return schema


def event_schemas(contexts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The schema of every registered event type of ``contexts``, by type."""
    return {
        event_type: event_schema(event_type)
        for event_type in registry.types()
        if event_type.split(".")[2] in contexts
    }


def schemas_router(contexts: Sequence[str]) -> APIRouter:
    """``GET /schemas.json`` and ``GET /schemas/{event_type}.json`` for ``contexts``."""
    router = APIRouter(tags=["drift"])
    owned = tuple(contexts)

    @router.get("/schemas.json", summary="JSON Schema for hendelsene tjenesten eier")
    async def all_schemas() -> JSONResponse:
        return JSONResponse(event_schemas(owned), headers=_CACHE)

    @router.get(
        "/schemas/{event_type}.json",
        summary="JSON Schema for én hendelsestype",
        responses={404: {"description": "Tjenesten eier ingen slik hendelsestype"}},
    )
    async def one_schema(event_type: str) -> JSONResponse:
        schemas = event_schemas(owned)
        if event_type not in schemas:
            raise Problem(404, "not_found", "Tjenesten eier ingen slik hendelsestype.")
        return JSONResponse(schemas[event_type], headers=_CACHE)

    return router
