"""Settings of the case service (``STAFETT_CASE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class CaseSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_CASE_", extra="ignore")

    port: int = Field(default=8101, ge=1, le=65535)
    level0_days: int = Field(default=14, ge=1, le=365)
    evaluation_warning_days: int = Field(default=7, ge=0, le=60)
    handover_days: int = Field(default=3, ge=1, le=60)
    inactive_days: int = Field(default=60, ge=1, le=365)
    deadline_check_interval_s: float = Field(default=3600.0, ge=1.0, le=86400.0)
    permit_cache_s: float = Field(default=1.0, ge=0.0, le=1.0)
