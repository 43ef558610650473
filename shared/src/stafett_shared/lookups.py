"""Look-ups of a person by national id: limited per person and recorded (decision 0029).

A look-up by national id answers the same whether or not the person is known, and this module
keeps what is left of an oracle small and visible: each person may look up only so many
national ids an hour (429 with ``Retry-After`` beyond it), and each look-up is published as
``no.stafett.access.lookup_recorded.v1`` (who, when, which blind index, for what)
before it is answered, so that an auditor can read it. The national id itself is never
recorded, logged or traced.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from stafett_shared.auth import Principal
from stafett_shared.contracts.access import LookupPurpose, LookupRecorded
from stafett_shared.envelope import registry
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.problems import Problem
from stafett_shared.ratelimit import RateLimiter
from stafett_shared.settings import CommonSettings
from stafett_shared.telemetry import current_traceparent

__all__ = ["LookupLimit", "record_lookup"]


class LookupLimit:
    """How many look-ups by national id one person may make (settings
    ``lookup_limit_per_hour`` and ``lookup_limit_burst``)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> LookupLimit:
        return cls(RateLimiter(settings.lookup_limit_per_hour / 3600, settings.lookup_limit_burst))

    def take(self, principal: Principal) -> None:
        """Count one look-up by ``principal``; 429 when they have used up their look-ups."""
        wait = self._limiter.take(f"{principal.kind}:{principal.issuer}:{principal.id}")
        if wait is not None:
            raise Problem(
                429,
                "lookup_rate_limited",
                "Du har slått opp for mange fødselsnumre på kort tid. Vent litt og prøv igjen.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


async def record_lookup(
    store: EventStore,
    *,
    principal: Principal,
    national_id_index: str,
    purpose: LookupPurpose,
    service: str,
    tenant: str = "region",
    case_id: str | None = None,
) -> int:
    """Publish that ``principal`` looked up ``national_id_index``; answers its sequence. A
    look-up that cannot be recorded must not be answered (the caller lets this raise)."""
    payload = LookupRecorded(
        lookup_id=new_id(),
        person_id=principal.id,
        national_id_index=national_id_index,
        purpose=purpose,
        case_id=case_id,
        service="case" if service == "case" else "consent",
    )
    event = registry.envelope(
        payload,
        subject=payload.aggregate_id(),
        source=f"stafett/{service}",
        tenant=tenant,
        actor=principal.id,
        time=datetime.now(UTC),
        traceparent=current_traceparent(),
    )
    result = await store.append(
        store.subject("access", payload.aggregate_id()), [event], expected_version=None
    )
    return result.seq
