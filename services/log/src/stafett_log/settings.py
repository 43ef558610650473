"""Settings of the log service (``STAFETT_LOG_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.settings import ServiceSettings


class LogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_LOG_", extra="ignore")

    port: int = Field(default=8102, ge=1, le=65535)
    permit_cache_s: float = Field(default=1.0, ge=0.0, le=1.0)
    origin: str = Field(default="stafett.local/log", min_length=1, max_length=200)
    signing_key_file: Path | None = None  # Ed25519 PEM; development makes one in the data folder
    checkpoint_interval_s: float = Field(default=60.0, ge=1.0, le=86400.0)
