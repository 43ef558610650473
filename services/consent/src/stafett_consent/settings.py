"""Settings of the consent service (``STAFETT_CONSENT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stafett_shared.contracts.directory import MAX_REMINDER_DAYS
from stafett_shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_CONSENT_", extra="ignore")

    port: int = Field(default=8103, ge=1, le=65535)
    self_access_age: int = Field(default=15, ge=12, le=18)
    youth_consent_age: int = Field(default=15, ge=12, le=18)
    health_youth_consent_age: int = Field(default=16, ge=12, le=18)
    one_guardian_enough: bool = False
    consent_reminder_days: int = Field(default=30, ge=1, le=MAX_REMINDER_DAYS)
    """How many days before a consent ends its grantors are reminded to renew it, where the
    organisation has set nothing itself (decision 0032)."""
    guardian_changes: bool = True
    """Administrators add and remove guardians and change parental responsibility over HTTP
    (the embedded setup). Off where an adapter of the population register publishes the
    same events: the routes then refuse (403) and the register is the only source
    (docs/decisions/0028-guardians-change.md)."""
    expiry_check_interval_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    decision_max_lag_s: float = Field(default=5.0, gt=0.0, le=60.0)
    """Decisions answer 503 while the projection lags the stream longer (decisions.MAX_LAG_S)."""
    region_document_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
