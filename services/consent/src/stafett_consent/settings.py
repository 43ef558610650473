"""Settings of the consent service (``STAFETT_CONSENT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_CONSENT_", extra="ignore")

    port: int = Field(default=8103, ge=1, le=65535)
