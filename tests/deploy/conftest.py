"""What the deployment tests share: the names of every setting a Stafett process reads."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from stafett_case.settings import CaseSettings
from stafett_consent.settings import ConsentSettings
from stafett_log.settings import LogSettings
from stafett_notify.settings import NotifySettings
from stafett_portal.settings import PortalSettings
from stafett_shared.settings import CommonSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "CASE": CaseSettings,
    "LOG": LogSettings,
    "CONSENT": ConsentSettings,
    "NOTIFY": NotifySettings,
    "PORTAL": PortalSettings,
}


@pytest.fixture(scope="session")
def known_settings() -> frozenset[str]:
    """Every STAFETT_* variable some process reads, and the database password a deployment
    passes to build a service's database URL from."""
    known = {f"STAFETT_{name.upper()}" for name in CommonSettings.model_fields}
    for prefix, settings in SETTINGS.items():
        fields: dict[str, object] = dict(settings.model_fields)
        known |= {f"STAFETT_{prefix}_{name.upper()}" for name in fields}
        known.add(f"STAFETT_{prefix}_DB_PASSWORD")
    return frozenset(known)
