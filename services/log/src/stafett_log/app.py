"""Composition root of the log service."""

from __future__ import annotations

from pathlib import Path

from stafett_log.projections import LogProjection
from stafett_log.settings import LogSettings
from stafett_shared.service import ServiceSpec, run_service

SPEC = ServiceSpec(
    name="log",
    title="Stafett – stafettlogg",
    description=(
        "Den uforanderlige stafettloggen: innføringer, rettelser, hashkjeder, "
        "signerte sjekkpunkter og hvem som har lest."
    ),
    contexts=("log", "access"),
    projection=lambda _cipher, _settings: LogProjection(),
    migrations=Path(__file__).parent / "alembic",
    settings_type=LogSettings,
)


def main() -> int:
    return run_service(SPEC)
