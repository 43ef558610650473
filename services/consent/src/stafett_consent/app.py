"""Composition root of the consent service."""

from __future__ import annotations

from pathlib import Path

from stafett_consent.projections import ConsentProjection
from stafett_consent.settings import ConsentSettings
from stafett_shared.service import ServiceSpec, run_service

SPEC = ServiceSpec(
    name="consent",
    title="Stafett – samtykke og tilgang",
    description=(
        "Katalog over virksomheter, enheter og ansatte, samtykker og "
        "tilgangsbeslutninger (taushetsplikt)."
    ),
    contexts=("consent", "directory"),
    projection=ConsentProjection,
    migrations=Path(__file__).parent / "alembic",
    settings_type=ConsentSettings,
)


def main() -> int:
    return run_service(SPEC)
