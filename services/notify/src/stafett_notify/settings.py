"""Settings of the notify service (``STAFETT_NOTIFY_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_NOTIFY_", extra="ignore")

    port: int = Field(default=8104, ge=1, le=65535)
    link_base: str = "http://127.0.0.1:8100"  # the portal's case pages
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "stafett@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_s: float = Field(default=2.0, gt=0, le=600)
    retry_cap_s: float = Field(default=300.0, gt=0, le=86400)
    digest_interval_s: float = Field(default=86400.0, ge=1.0)
    expiry_warning_days: int = Field(default=30, ge=1, le=120)
    expiry_check_interval_s: float = Field(default=3600.0, ge=1.0)
    permit_cache_s: float = Field(default=1.0, ge=0.0, le=1.0)
    ack_wait_s: float = Field(default=30.0, ge=1.0, le=3600.0)
