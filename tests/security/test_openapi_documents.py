"""Each service's OpenAPI document validates as OpenAPI 3.1 and says how the service answers
errors, authenticates and reads its headers (the running services are fuzzed against it in
test_openapi_fuzz.py). The documents are built without starting the services."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from stafett_shared.service import ServiceSpec, create_app
from stafett_shared.settings import CommonSettings

SERVICES = ["case", "log", "consent", "notify"]
METHODS = {"get", "put", "post", "delete", "patch"}


def document(name: str, tmp_path: Path) -> dict[str, Any]:
    spec: ServiceSpec = importlib.import_module(f"stafett_{name}.app").SPEC
    settings = CommonSettings(nats_url="nats://127.0.0.1:1", data_dir=tmp_path)
    doc: dict[str, Any] = create_app(spec, settings, spec.settings_type()).openapi()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@pytest.mark.parametrize("name", SERVICES)
def test_the_document_is_valid_openapi_3_1_with_every_reference_resolved(
    name: str, tmp_path: Path
) -> None:
    doc = document(name, tmp_path)
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()
    text = json.dumps(doc)
    assert "$defs" not in text
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/components/"), ref
        resolve(doc, {"$ref": ref})


@pytest.mark.parametrize("name", SERVICES)
def test_every_error_is_a_documented_problem_and_every_operation_names_its_statuses(
    name: str, tmp_path: Path
) -> None:
    doc = document(name, tmp_path)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "errors" in problem["properties"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, operation in operations(doc):
        responses = operation["responses"]
        statuses = {int(status) for status in responses}
        assert {400, 413} <= statuses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = resolve(doc, response)["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
        if operation.get("security"):
            assert {401, 403, 429, 503} <= statuses, (method, path)
            assert "Retry-After" in resolve(doc, responses["429"])["headers"]
            assert "Retry-After" in resolve(doc, responses["503"])["headers"]
            assert "WWW-Authenticate" in resolve(doc, responses["401"])["headers"]
        if "{" in path and operation.get("security"):
            assert 404 in statuses, (method, path)


@pytest.mark.parametrize("name", SERVICES)
def test_enforced_headers_are_described_with_their_formats(name: str, tmp_path: Path) -> None:
    doc = document(name, tmp_path)
    parameters = doc["components"]["parameters"]
    assert parameters["Idempotency-Key"]["schema"]["pattern"] == "^[A-Za-z0-9._:-]{8,128}$"
    assert parameters["Stafett-Min-Seq"]["schema"]["minimum"] == 0
    assert parameters["If-Match"]["schema"]["type"] == "string"
    for method, path, operation in operations(doc):
        names = [resolve(doc, p)["name"] for p in operation["parameters"]]
        assert "Stafett-Min-Seq" in names, (method, path)
        assert len(names) == len(set(names)), (method, path)
        for param in operation["parameters"]:
            if resolve(doc, param)["name"] in parameters:
                assert "$ref" in param, (method, path)
        if not operation.get("x-stafett-event-sourced", True):
            # A write to the service's own database (notify): idempotent, but no event.
            assert "Idempotency-Key" in names, (method, path)
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    assert "Stafett-Seq" not in response.get("headers", {}), (method, path)
        elif {"Idempotency-Key", "If-Match"} & set(names):
            assert 409 in {int(status) for status in operation["responses"]}, (method, path)
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    assert {"Stafett-Seq", "ETag"} <= set(response["headers"]), (method, path)
        if name == "notify" and method == "POST":
            assert "Idempotency-Key" in names, (method, path)  # as on the other services


def test_the_directory_document_refers_to_components_not_to_nested_defs(tmp_path: Path) -> None:
    doc = document("consent", tmp_path)
    body = doc["paths"]["/api/v1/directory"]["put"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert "$defs" not in schema
    assert "#/components/schemas/" in json.dumps(schema)
    put = doc["paths"]["/api/v1/directory"]["put"]
    assert {"415", "422"} <= set(put["responses"])
