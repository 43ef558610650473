"""Event builders for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stafett_shared.envelope import CloudEvent


def make_event(
    aggregate_id: str,
    event_type: str = "no.stafett.case.opened.v1",
    data: dict[str, Any] | None = None,
    *,
    source: str = "stafett/case",
    tenant: str = "4010",
    actor: str = "ann-kristin-allum",
) -> CloudEvent:
    return CloudEvent(
        source=source,
        type=event_type,
        subject=aggregate_id,
        time=datetime.now(UTC),
        tenant=tenant,
        actor=actor,
        data=data if data is not None else {"level": 0},
    )
