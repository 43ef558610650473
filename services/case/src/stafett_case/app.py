"""Composition root of the case service."""

from __future__ import annotations

from pathlib import Path

from stafett_case.projections import CaseProjection
from stafett_case.settings import CaseSettings
from stafett_shared.service import ServiceSpec, run_service

SPEC = ServiceSpec(
    name="case",
    title="Stafett – sak",
    description=(
        "Saker, BTI-nivå, stafettholder, overføringer, team og tiltak."
    ),
    contexts=("case",),
    projection=lambda _cipher, _settings: CaseProjection(),
    migrations=Path(__file__).parent / "alembic",
    settings_type=CaseSettings,
)


def main() -> int:
    return run_service(SPEC)
