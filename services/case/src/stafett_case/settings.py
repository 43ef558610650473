"""Settings of the case service (``STAFETT_CASE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ReminderTimes, ServiceSettings


class CaseSettings(ServiceSettings, ReminderTimes):
    """The reminder times (``level0_days``, ``evaluation_warning_days``, ``handover_days``,
    ``inactive_days``) are the region's; an organisation's settings may replace each."""

    model_config = SettingsConfigDict(env_prefix="STAFETT_CASE_", extra="ignore")

    port: int = Field(default=8101, ge=1, le=65535)
    deadline_check_interval_s: float = Field(default=3600.0, ge=1.0, le=86400.0)
    permit_cache_s: float = Field(default=1.0, ge=0.0, le=1.0)
