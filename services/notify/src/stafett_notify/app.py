"""Composition root of the notify service."""

from __future__ import annotations

from pathlib import Path

from stafett_notify.projections import NotifyProjection
from stafett_notify.settings import NotifySettings
from stafett_shared.service import ServiceSpec, run_service

SPEC = ServiceSpec(
    name="notify",
    title="Stafett – varsler",
    description=(
        "Innboks, e-post og webhooks som aldri bærer fortrolig innhold, "
        "påminnelser og nye forsøk."
    ),
    contexts=(),
    projection=lambda _cipher, _settings: NotifyProjection(),
    migrations=Path(__file__).parent / "alembic",
    settings_type=NotifySettings,
)


def main() -> int:
    return run_service(SPEC)
