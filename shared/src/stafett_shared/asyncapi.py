"""The AsyncAPI 3.0 document of everything an agency's system can receive from Stafett.

Generated, never written by hand: each message's payload and headers are the JSON Schema of
the typed contract the sender itself builds the message from (``model_json_schema`` through
pydantic's ``models_json_schema``, every model once under ``components.schemas``), and each
example is an instance of that model. ``stafett asyncapi --out docs/asyncapi.yaml`` writes the
committed copy; a test keeps the copy equal to what this module makes and valid against the
official AsyncAPI 3.0 JSON Schema (docs/decisions/0042-asyncapi-for-clients.md).

The document is written from the receiver's side: every operation is ``receive``. What it
describes (:data:`CHANNELS`):

* the notify service's **webhook deliveries**, a signed HTTP POST of one notice to the URL a
  caller registered (:mod:`stafett_shared.contracts.webhook`);
* **``stafett.access.changed``** on NATS, the empty message that tells a system which caches
  access decisions to forget them;
* the **event feed** (``GET /api/v1/feed``), one CloudEvents message per integration event
  type (:mod:`stafett_shared.contracts.feed`).

The event stream (``stafett.ev.>``) is not here: it tells which cases exist, so no agency
subscribes to it; each service's ``/asyncapi.json`` describes it for the services inside a
deployment. The feed's integration events (decision 0041), one message per type in
:class:`~stafett_shared.contracts.feed.FeedCloudEvent`'s envelope, are its third channel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, create_model
from pydantic.json_schema import models_json_schema

from stafett_shared.contracts.feed import FEED_TYPES, FeedCloudEvent
from stafett_shared.contracts.webhook import WebhookHeaders, WebhookNotice
from stafett_shared.envelope import CloudEvent

__all__ = [
    "ASYNCAPI_VERSION",
    "CHANNELS",
    "SERVERS",
    "Channel",
    "Message",
    "asyncapi_document",
    "asyncapi_yaml",
    "cloudevents_channel",
]

ASYNCAPI_VERSION = "3.0.0"
SCHEMA_REF = "#/components/schemas/{model}"
HTTP_BINDING = "0.3.0"
CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True, slots=True)
class Message:
    """One kind of message: its payload (and headers) are contract models, its example an
    instance of them."""

    key: str
    name: str
    title: str
    summary: str
    content_type: str | None = None
    payload: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    examples: tuple[tuple[BaseModel | None, BaseModel | None], ...] = ()
    """``(payload, headers)`` pairs, each a model instance (or None)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """Where messages arrive, and the one ``receive`` operation on it."""

    key: str
    address: str | None
    server: str
    title: str
    description: str
    operation: str
    operation_summary: str
    messages: tuple[Message, ...]
    operation_bindings: Mapping[str, Any] = field(default_factory=dict)


SERVERS: Mapping[str, Mapping[str, Any]] = {
    "webhook": {
        "host": "{host}",
        "protocol": "https",
        "title": "Your webhook endpoint",
        "description": "The URL you gave in `POST /api/v1/webhooks` (notify service): the "
        "notify service connects to it. HTTPS to a public address in production.",
        "variables": {"host": {"description": "The host of the URL you registered."}},
    },
    "api": {
        "host": "{host}",
        "protocol": "https",
        "title": "Stafett's API",
        "description": "The consent service's API, with a client token (docs/integrators.md, "
        '"Agency systems").',
        "variables": {"host": {"description": "The host the region gives its API."}},
    },
    "nats": {
        "host": "{host}:4222",
        "protocol": "nats",
        "title": "The deployment's NATS",
        "description": "A system inside the deployment, with a NATS user whose subscribe "
        "permission the operator gives (deploy/nats/cluster.conf).",
        "variables": {"host": {"description": "The NATS server the operator names."}},
    },
}


def _example_notice() -> tuple[WebhookNotice, WebhookHeaders]:
    notice = WebhookNotice(
        id="n-" + "3f" * 20,
        kind="handover_requested",
        case_id="01JD8Z6W3K9Q4V7N2B5X8C1M0R",
        title="Du er bedt om å overta som stafettholder",
        link="https://stafett.kommune.no/saker/01JD8Z6W3K9Q4V7N2B5X8C1M0R",
        delivery_id="w-" + "a1" * 20,
    )
    headers = WebhookHeaders(
        signature="t=1767225600,v1=" + "0c" * 32, delivery_id=notice.delivery_id
    )
    return notice, headers


WEBHOOK_NOTICES = Channel(
    key="webhookNotice",
    address=None,
    server="webhook",
    title="Webhook deliveries",
    description="The notify service POSTs each notice for the webhook's owner to the URL they "
    "registered, the kinds in its `event_types` (all when empty). A notice never holds case "
    "content: fetch the case through the API with your own token. Answer 2xx; anything else "
    "is retried with backoff and, after the last attempt, parked in the dead-letter queue "
    "until an operator re-drives it (`GET /api/v1/webhooks/{id}/deliveries` shows each).",
    operation="receiveWebhookNotice",
    operation_summary="Receive a signed notice: check `Stafett-Signature`, drop a repeated "
    "`Stafett-Delivery-Id`, answer 2xx.",
    messages=(
        Message(
            key="webhookNotice",
            name="notice",
            title="A notice",
            summary="One notice (kind, case reference, link), signed with the webhook's secret.",
            content_type="application/json",
            payload=WebhookNotice,
            headers=WebhookHeaders,
            examples=(_example_notice(),),
        ),
    ),
    operation_bindings={"http": {"method": "POST", "bindingVersion": HTTP_BINDING}},
)

ACCESS_CHANGED = Channel(
    key="accessChanged",
    address="stafett.access.changed",
    server="nats",
    title="Who may read has changed",
    description="Core NATS (not JetStream). The consent service publishes an empty message "
    "whenever it has indexed a change of who may read (a role, a team, a holder, a guardian, "
    "a consent), before it answers the change. It names no case and no person.",
    operation="receiveAccessChanged",
    operation_summary="Forget every cached permit at once.",
    messages=(
        Message(
            key="accessChanged",
            name="access_changed",
            title="Access changed",
            summary="An empty message: drop all cached access decisions.",
        ),
    ),
)

FEED = Channel(
    key="feed",
    address="/api/v1/feed",
    server="api",
    title="The event feed",
    description="`GET /api/v1/feed?after=<cursor>&types=…&limit=…&wait=…` answers "
    '`{"events": [...], "next": <cursor>}`: each event one of the messages here, in CloudEvents '
    "structured JSON, of the cases where the client's basis holds (decision 0041). Keep `next` "
    "and send it as `after`; an event may come again after a lost answer: drop a repeated `id`.",
    operation="receiveFeedEvent",
    operation_summary="Follow the feed: long-poll with `wait`, de-duplicate on the event's `id`.",
    messages=(),
    operation_bindings={"http": {"method": "GET", "bindingVersion": HTTP_BINDING}},
)
"""The feed's channel without its messages: :func:`cloudevents_channel` adds one per
integration event type, from the feed's models and its envelope model."""


def cloudevents_channel(
    channel: Channel,
    models: Iterable[type[BaseModel]],
    event_type: Callable[[type[BaseModel]], str],
    *,
    envelope: type[BaseModel] = CloudEvent,
    content_type: str = CLOUDEVENT_CONTENT_TYPE,
) -> Channel:
    """``channel`` with one message per model: a CloudEvent of ``envelope`` (its attributes
    described by the envelope model) whose ``type`` is ``event_type(model)`` and whose
    ``data`` is the model."""
    messages = []
    for model in models:
        name = event_type(model)
        fixed: Any = Literal[name]  # the one `type` this message has
        typed = create_model(
            f"{model.__name__}CloudEvent",
            __base__=envelope,
            __doc__=f"A CloudEvent of type `{name}`; `data` is {model.__name__}.",
            type=(fixed, ...),
            data=(model, ...),
        )
        messages.append(
            Message(
                key=name.replace(".", "_"),
                name=name,
                title=model.__name__,
                summary=" ".join(inspect.cleandoc(model.__doc__ or name).split("\n\n")[0].split()),
                content_type=content_type,
                payload=typed,
            )
        )
    return Channel(
        key=channel.key,
        address=channel.address,
        server=channel.server,
        title=channel.title,
        description=channel.description,
        operation=channel.operation,
        operation_summary=channel.operation_summary,
        messages=(*channel.messages, *messages),
        operation_bindings=channel.operation_bindings,
    )


def _schemas(channels: Iterable[Channel]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every payload and header model's schema once, by model name, and each model's
    ``$ref``. The models' own ``$defs`` land beside them under ``components.schemas``."""
    models: list[type[BaseModel]] = []
    for channel in channels:
        for message in channel.messages:
            for model in (message.payload, message.headers):
                if model is not None and model not in models:
                    models.append(model)
    keys, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=SCHEMA_REF
    )
    refs = {model.__name__: keys[(model, "validation")]["$ref"] for model in models}
    return dict(top.get("$defs", {})), refs


def _message(message: Message, refs: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": message.name,
        "title": message.title,
        "summary": message.summary,
    }
    if message.content_type is not None:
        body["contentType"] = message.content_type
    if message.headers is not None:
        body["headers"] = {"$ref": refs[message.headers.__name__]}
    if message.payload is not None:
        body["payload"] = {"$ref": refs[message.payload.__name__]}
    examples = []
    for payload, headers in message.examples:
        example: dict[str, Any] = {}
        if headers is not None:
            example["headers"] = headers.model_dump(mode="json", by_alias=True)
        if payload is not None:
            example["payload"] = payload.model_dump(mode="json")
        examples.append(example)
    if examples:
        body["examples"] = examples
    return body


def _feed_type(model: type[BaseModel]) -> str:
    return str(getattr(model, "feed_type"))  # noqa: B009 - a ClassVar of every FeedEvent


CHANNELS: tuple[Channel, ...] = (
    WEBHOOK_NOTICES,
    ACCESS_CHANGED,
    cloudevents_channel(FEED, FEED_TYPES.values(), _feed_type, envelope=FeedCloudEvent),
)
"""Everything a client can receive, in the document's order."""


def asyncapi_document(channels: Iterable[Channel] = CHANNELS) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``channels``, as JSON-ready data."""
    chosen = tuple(channels)
    schemas, refs = _schemas(chosen)
    messages: dict[str, Any] = {}
    document_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in chosen:
        for message in channel.messages:
            messages[message.key] = _message(message, refs)
        document_channels[channel.key] = {
            "address": channel.address,
            "title": channel.title,
            "description": channel.description,
            "servers": [{"$ref": f"#/servers/{channel.server}"}],
            "messages": {
                m.key: {"$ref": f"#/components/messages/{m.key}"} for m in channel.messages
            },
        }
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel.key}"},
            "summary": channel.operation_summary,
            "messages": [
                {"$ref": f"#/channels/{channel.key}/messages/{m.key}"} for m in channel.messages
            ],
        }
        if channel.operation_bindings:
            operation["bindings"] = dict(channel.operation_bindings)
        operations[channel.operation] = operation
    used = {channel.server for channel in chosen}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Stafett: what an agency's system receives",
            "version": "1",
            "description": "Everything Stafett sends to another agency's system, from the "
            "receiver's side. Generated from Stafett's typed contracts by `stafett asyncapi`; "
            "docs/integrators.md explains each part.",
            "license": {"name": "EUPL-1.2"},
        },
        "defaultContentType": "application/json",
        "servers": {name: dict(server) for name, server in SERVERS.items() if name in used},
        "channels": document_channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def asyncapi_yaml(channels: Iterable[Channel] = CHANNELS) -> str:
    """The document as YAML, in a stable order: what docs/asyncapi.yaml holds."""
    return yaml.safe_dump(
        asyncapi_document(channels), sort_keys=False, allow_unicode=True, width=100
    )
