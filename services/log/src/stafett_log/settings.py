"""Settings of the log service (``STAFETT_LOG_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class LogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_LOG_", extra="ignore")

    port: int = Field(default=8102, ge=1, le=65535)
