"""What a webhook delivery carries: the notify service's signed POST of one notice.

Not a stream event: a notice is told to the person or system that registered the webhook
(``POST /api/v1/webhooks``), never case content, only its kind, the case's reference and a
link. The notify service builds every delivery's body and headers from these models, and the
AsyncAPI document (``stafett asyncapi``) describes them from the same models, so the two
cannot differ. Add, never rename (decision 0021).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WebhookHeaders", "WebhookNotice"]

_NOTICE_ID = r"^n-[0-9a-f]{40}$"
_DELIVERY_ID = r"^w-[0-9a-f]{40}$"


class WebhookNotice(BaseModel):
    """The JSON body of a webhook delivery: one notice, without case content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_NOTICE_ID, description="The notice's id, the same on every channel.")
    kind: str = Field(
        pattern=r"^[a-z0-9_]{1,64}$",
        description="What happened, e.g. `handover_requested`, `entry_appended`, "
        "`consent_withdrawn`: the names a webhook's `event_types` filter on.",
    )
    case_id: str = Field(description="The case's reference (a random id that names no child).")
    title: str = Field(description="A short sentence in bokmål for a person to read.")
    link: str = Field(description="The portal page the notice is about.")
    delivery_id: str = Field(
        pattern=_DELIVERY_ID,
        description="The same on every retry of this delivery: drop a repeated one.",
    )


class WebhookHeaders(BaseModel):
    """The HTTP headers of a webhook delivery that a receiver checks."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    content_type: Literal["application/json"] = Field(
        default="application/json", alias="Content-Type"
    )
    signature: str = Field(
        alias="Stafett-Signature",
        pattern=r"^t=[0-9]+,v1=[0-9a-f]{64}$",
        description='`t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` with the '
        "secret given when the webhook was registered. Check it over the raw body and refuse "
        "an old `t`.",
    )
    delivery_id: str = Field(
        alias="Stafett-Delivery-Id",
        pattern=_DELIVERY_ID,
        description="The body's `delivery_id`.",
    )
