"""Settings shared by every Stafett process, read from ``STAFETT_*`` environment variables.

Development is the default and generates its keys in the data folder at first start.
Production refuses the development issuer and development keys: it needs configured
issuers and a key-encryption key supplied by the operator.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "IssuerSettings", "ServiceSettings", "SettingsError"]


class SettingsError(ValueError):
    """The settings are unsafe or incomplete for the chosen environment."""


class IssuerSettings(BaseModel):
    """A trusted token issuer (an OIDC provider or an agency's client-credentials server)."""

    issuer: str = Field(min_length=1)
    audience: str = "stafett"
    jwks_uri: str | None = None  # found by OIDC discovery when not given
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA", "PS256"])


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    nats_url: str = "nats://127.0.0.1:14222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    stream: str = "EVENTS"
    subject_prefix: str = "stafett.ev"
    create_stream: bool | None = None  # default: create in development, verify only in production
    stream_replicas: int = Field(default=1, ge=1, le=5)
    kek: SecretStr | None = None  # base64 of 32 bytes
    kek_id: str = "kek-1"
    dev_issuer: bool | None = None  # default: on in development, refused in production
    issuers: list[IssuerSettings] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=lambda: ["admin"])
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter: Literal["none", "console"] = "none"
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    consent_timeout_s: float = Field(default=2.0, gt=0, le=30)
    min_seq_wait_s: float = Field(default=2.0, ge=0, le=30)
    rate_limit_per_s: float = Field(default=20.0, ge=0, le=100_000)
    """Requests per second one principal may make to one service instance, over time
    (0: no limit). Every read of case content is an event, so this bounds how fast one
    caller can grow the append-only stream."""
    rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)
    """Requests one principal may make at once before the rate applies."""

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def dev_issuer_enabled(self) -> bool:
        return (not self.production) if self.dev_issuer is None else self.dev_issuer

    @property
    def may_create_stream(self) -> bool:
        return (not self.production) if self.create_stream is None else self.create_stream

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> CommonSettings:
        if self.kek is not None:
            self.kek_bytes()  # a malformed key is refused at start, not at first use
        if not self.production:
            return self
        if self.dev_issuer:
            raise SettingsError("production refuses the development token issuer")
        if self.kek is None:
            raise SettingsError("production needs STAFETT_KEK (development keys are refused)")
        if not self.issuers:
            raise SettingsError("production needs at least one issuer in STAFETT_ISSUERS")
        return self

    def kek_bytes(self) -> bytes | None:
        if self.kek is None:
            return None
        try:
            raw = base64.b64decode(self.kek.get_secret_value(), validate=True)
        except ValueError as exc:
            raise SettingsError("STAFETT_KEK must be base64") from exc
        if len(raw) != 32:
            raise SettingsError("STAFETT_KEK must be base64 of exactly 32 bytes")
        return raw


class ServiceSettings(BaseSettings):
    """Per-service settings; each service subclasses with ``env_prefix="STAFETT_<NAME>_"``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)
    database_url: str | None = None  # default: SQLite in the data folder
    projector_batch: int = Field(default=256, ge=1, le=5000)
