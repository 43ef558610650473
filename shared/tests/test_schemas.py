"""Every service publishes the JSON Schema of the events it owns, generated from the contract
models: ``/schemas.json`` and ``/schemas/<type>.json`` beside ``/asyncapi.json``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from stafett_shared.contracts.case import CaseOpened
from stafett_shared.contracts.directory import ChildRegistered
from stafett_shared.crypto import FieldCipher
from stafett_shared.envelope import registry
from stafett_shared.projector import Projection
from stafett_shared.schemas import event_schemas
from stafett_shared.service import ServiceSpec, asyncapi_document, create_app
from stafett_shared.settings import CommonSettings, ServiceSettings


def no_projection(_cipher: FieldCipher, _service: ServiceSettings) -> Projection:
    raise AssertionError("the schemas need no running service")


def _spec(tmp_path: Path, contexts: tuple[str, ...]) -> ServiceSpec:
    return ServiceSpec(
        name="probe",
        title="Stafett probe",
        description="A service that owns some contexts.",
        contexts=contexts,
        projection=no_projection,
        migrations=tmp_path,
    )


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    spec = _spec(tmp_path, ("case",))
    app = create_app(spec, CommonSettings(data_dir=tmp_path), ServiceSettings())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_the_schemas_document_has_every_type_of_the_services_contexts(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/schemas.json")

    assert answer.status_code == 200
    schemas = answer.json()
    assert sorted(schemas) == [t for t in registry.types() if t.startswith("no.stafett.case.")]
    assert {s["x-stafett-owner"] for s in schemas.values()} == {"case"}


async def test_one_types_schema_is_its_models_with_its_context_owner_and_subject(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(f"/schemas/{CaseOpened.event_type}.json")

    assert answer.status_code == 200
    schema = answer.json()
    assert schema["$id"] == "/schemas/no.stafett.case.opened.v1.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(CaseOpened.model_fields)
    assert set(schema["required"]) == {
        name for name, field in CaseOpened.model_fields.items() if field.is_required()
    }
    assert schema["additionalProperties"] is False
    assert "HolderRef" in schema["$defs"]
    assert schema["x-stafett-context"] == "case"
    assert schema["x-stafett-subject"] == "stafett.ev.case.{case_id}"
    assert "public" in answer.headers["cache-control"]


async def test_a_type_the_service_does_not_own_is_not_found(client: httpx.AsyncClient) -> None:
    for event_type in (ChildRegistered.event_type, "no.stafett.case.nothing.v1"):
        answer = await client.get(f"/schemas/{event_type}.json")

        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


def test_the_asyncapi_document_embeds_the_same_schemas(tmp_path: Path) -> None:
    contexts = ("log", "access")
    messages = asyncapi_document(_spec(tmp_path, contexts))["components"]["messages"].values()
    schemas = event_schemas(contexts)

    assert sorted(m["name"] for m in messages) == sorted(schemas)
    for message in messages:
        assert message["payload"]["properties"] == schemas[message["name"]]["properties"]
