"""Settings of the case service (``STAFETT_CASE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class CaseSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_CASE_", extra="ignore")

    port: int = Field(default=8101, ge=1, le=65535)
