"""Settings of the notify service (``STAFETT_NOTIFY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_NOTIFY_", extra="ignore")

    port: int = Field(default=8104, ge=1, le=65535)
