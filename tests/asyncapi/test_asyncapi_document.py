"""docs/asyncapi.yaml is what ``stafett asyncapi`` makes from the typed contracts, and a valid
AsyncAPI 3.0 document: valid against the official JSON Schema (the npm package
@asyncapi/specs, installed here by ``python3 stafett.py test``), every reference resolves,
every operation receives messages of its own channel, and every example is valid against its
message's schema (docs/decisions/0042-asyncapi-for-clients.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from typer.testing import CliRunner

from stafett_shared import cli
from stafett_shared.asyncapi import (
    CHANNELS,
    FEED,
    WEBHOOK_NOTICES,
    asyncapi_document,
    asyncapi_yaml,
    cloudevents_channel,
)
from stafett_shared.contracts.webhook import WebhookHeaders, WebhookNotice
from stafett_shared.envelope import CloudEvent

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
SPECS = Path(__file__).parent / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
DOCUMENT_URI = "urn:stafett:asyncapi"


@pytest.fixture(scope="module")
def official_schema() -> dict[str, Any]:
    if not SPECS.exists():
        pytest.fail(
            "The official AsyncAPI 3.0 JSON Schema is missing: `python3 stafett.py test` "
            "installs it (npm ci in tests/asyncapi)."
        )
    schema: dict[str, Any] = json.loads(SPECS.read_text(encoding="utf-8"))
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a reference within the document"
    node: Any = document
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def _validator(document: dict[str, Any], ref: str) -> jsonschema.Draft7Validator:
    """A validator of the schema at ``ref``, whose own references resolve in the document."""
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator({"$ref": DOCUMENT_URI + ref}, registry=registry)


def test_the_committed_document_is_what_the_generator_makes() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == asyncapi_yaml(), (
        "docs/asyncapi.yaml is out of date: run `stafett asyncapi --out docs/asyncapi.yaml`"
    )


def test_the_command_writes_the_document_to_a_file_or_to_standard_output(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"

    written = CliRunner().invoke(cli.app, ["asyncapi", "--out", str(out)])
    printed = CliRunner().invoke(cli.app, ["asyncapi"])

    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8") == asyncapi_yaml()
    assert printed.exit_code == 0
    assert printed.stdout == asyncapi_yaml()


def test_the_document_is_valid_against_the_official_asyncapi_3_schema(
    official_schema: dict[str, Any],
) -> None:
    document = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(official_schema)

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]

    assert errors == []
    assert document["asyncapi"] == "3.0.0"


def test_the_official_schema_refuses_a_document_that_is_not_asyncapi_3(
    official_schema: dict[str, Any],
) -> None:
    # The check can fail: an operation that neither sends nor receives, and a message with a
    # field AsyncAPI does not have, are each refused.
    validator = jsonschema.Draft7Validator(official_schema)
    for spoil in ("action", "message"):
        document = asyncapi_document()
        if spoil == "action":
            document["operations"]["receiveWebhookNotice"]["action"] = "listen"
        else:
            document["components"]["messages"]["webhookNotice"]["contentTyp"] = "x"
        assert list(validator.iter_errors(document)), spoil


def test_every_reference_resolves_and_every_operation_receives_its_channels_messages() -> None:
    document = asyncapi_document()

    for ref in _refs(document):
        _pointer(document, ref)
    for name, operation in document["operations"].items():
        assert operation["action"] == "receive", name
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name
    servers = {ref["$ref"] for c in document["channels"].values() for ref in c["servers"]}
    assert servers == {f"#/servers/{name}" for name in document["servers"]}


def test_payloads_and_headers_are_the_contract_models_schemas() -> None:
    schemas = asyncapi_document()["components"]["schemas"]
    for model in (WebhookNotice, WebhookHeaders):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        assert schemas[model.__name__] == generated
    message = asyncapi_document()["components"]["messages"]["webhookNotice"]
    assert message["contentType"] == "application/json"
    assert message["payload"] == {"$ref": "#/components/schemas/WebhookNotice"}
    assert message["headers"] == {"$ref": "#/components/schemas/WebhookHeaders"}


def test_every_example_is_valid_against_its_messages_schemas() -> None:
    document = asyncapi_document()
    checked = 0
    for key, message in document["components"]["messages"].items():
        for example in message.get("examples", []):
            for part in ("payload", "headers"):
                if part in example:
                    validator = _validator(document, message[part]["$ref"])
                    assert list(validator.iter_errors(example[part])) == [], (key, part)
                    checked += 1
    assert checked >= 2
    # A wrong example would be caught: a notice with a field the model lacks.
    example = document["components"]["messages"]["webhookNotice"]["examples"][0]["payload"]
    validator = _validator(document, "#/components/schemas/WebhookNotice")
    assert list(validator.iter_errors({**example, "child": "x"}))


class _Probe(BaseModel):
    """Something happened in a case.

    More words that stay out of the summary."""

    kind: ClassVar[str] = "no.stafett.probe.happened.v1"
    case_id: str
    level: int


def test_a_cloudevents_channel_describes_the_envelope_with_each_models_type_and_data(
    official_schema: dict[str, Any],
) -> None:
    channel = cloudevents_channel(FEED, [_Probe], lambda model: model.kind)  # type: ignore[attr-defined]
    document = asyncapi_document((*CHANNELS, channel))

    assert list(jsonschema.Draft7Validator(official_schema).iter_errors(document)) == []
    message = document["components"]["messages"]["no_stafett_probe_happened_v1"]
    assert message["contentType"] == "application/cloudevents+json"
    assert message["summary"] == "Something happened in a case."
    envelope = _pointer(document, message["payload"]["$ref"])
    # Every CloudEvents attribute of the envelope model is described, `type` fixed to the
    # model's and `data` its schema.
    assert set(envelope["properties"]) == set(CloudEvent.model_fields)
    assert envelope["properties"]["type"]["const"] == "no.stafett.probe.happened.v1"
    assert envelope["properties"]["data"] == {"$ref": "#/components/schemas/_Probe"}
    assert set(envelope["required"]) >= {"source", "type", "subject", "time", "data"}
    event = {
        "specversion": "1.0",
        "id": "01JD8Z6W3K9Q4V7N2B5X8C1M0R",
        "source": "stafett/feed",
        "type": "no.stafett.probe.happened.v1",
        "subject": "01JD8Z6W3K9Q4V7N2B5X8C1M0R",
        "time": "2026-12-03T10:00:00Z",
        "tenant": "4010",
        "actor": "system",
        "data": {"case_id": "01JD8Z6W3K9Q4V7N2B5X8C1M0R", "level": 2},
    }
    validator = _validator(document, message["payload"]["$ref"])
    assert list(validator.iter_errors(event)) == []
    assert list(validator.iter_errors({**event, "type": "no.stafett.probe.other.v1"}))
    assert list(validator.iter_errors({**event, "data": {"case_id": "x"}}))
    assert document["channels"]["feed"]["address"] == "/api/v1/feed"
    assert document["servers"]["api"]["protocol"] == "https"
    # The channels given before are kept as they were.
    assert document["channels"][WEBHOOK_NOTICES.key]["address"] is None
