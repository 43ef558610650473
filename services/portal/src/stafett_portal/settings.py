"""Settings of the portal (``STAFETT_PORTAL_*``).

The portal owns no events and no case data: it needs the four services' addresses, a key for
its session cookies and, in production, the OpenID Connect client it signs staff in with.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stafett_shared.settings import SettingsError

__all__ = ["OidcClientSettings", "PortalSettings"]


class OidcClientSettings(BaseModel):
    """The portal as an OpenID Connect client of one issuer (authorisation code + PKCE): the
    staff issuer, or the citizen issuer for guardians and youth."""

    issuer: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None  # none: a public client with PKCE alone
    scopes: list[str] = Field(default_factory=lambda: ["openid"])
    authorization_endpoint: str | None = None  # found by discovery when not given
    token_endpoint: str | None = None
    end_session_endpoint: str | None = None

    @model_validator(mode="after")
    def _asks_for_an_id_token(self) -> OidcClientSettings:
        if "openid" not in self.scopes:
            raise ValueError("the scopes of an OpenID Connect client must include openid")
        return self

    def endpoints(self) -> list[str]:
        given = (self.authorization_endpoint, self.token_endpoint, self.end_session_endpoint)
        return [self.issuer, *(e for e in given if e is not None)]


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAFETT_PORTAL_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8100"
    """The address people use, for the OpenID Connect redirect and for cookie security."""
    case_url: str = "http://127.0.0.1:8101"
    log_url: str = "http://127.0.0.1:8102"
    consent_url: str = "http://127.0.0.1:8103"
    notify_url: str = "http://127.0.0.1:8104"
    session_key: SecretStr | None = None
    """base64 of 32 bytes; development makes one in the data folder."""
    session_max_s: int = Field(default=8 * 3600, ge=60, le=24 * 3600)
    """A session ends when its token does, and never later than this."""
    oidc: OidcClientSettings | None = None
    citizen_oidc: OidcClientSettings | None = None
    """Guardians and youth: the citizen issuer (ID-porten style); its ``pid`` names them
    (decision 0023). Its issuer must be one of ``STAFETT_ISSUERS`` with ``citizen``."""
    backend_timeout_s: float = Field(default=10.0, gt=0, le=60)
    directory_cache_s: float = Field(default=60.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _key_is_well_formed(self) -> PortalSettings:
        if self.session_key is not None:
            self.session_key_bytes()
        return self

    def session_key_bytes(self) -> bytes | None:
        if self.session_key is None:
            return None
        try:
            raw = base64.b64decode(self.session_key.get_secret_value(), validate=True)
        except ValueError as exc:
            raise SettingsError("STAFETT_PORTAL_SESSION_KEY must be base64") from exc
        if len(raw) != 32:
            raise SettingsError("STAFETT_PORTAL_SESSION_KEY must be base64 of 32 bytes")
        return raw

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def check_production(self) -> None:
        """Production signs staff in with OpenID Connect, over HTTPS, with a key it is given."""
        if self.session_key is None:
            raise SettingsError("production needs STAFETT_PORTAL_SESSION_KEY")
        if self.oidc is None:
            raise SettingsError("production needs STAFETT_PORTAL_OIDC (the staff issuer)")
        if not self.secure_cookies:
            raise SettingsError("production needs an https:// STAFETT_PORTAL_PUBLIC_URL")
        if not all(url.startswith("https://") for url in self.oidc.endpoints()):
            raise SettingsError("production needs an https:// issuer in STAFETT_PORTAL_OIDC")
        citizen = self.citizen_oidc
        if citizen is not None and not all(u.startswith("https://") for u in citizen.endpoints()):
            raise SettingsError(
                "production needs an https:// issuer in STAFETT_PORTAL_CITIZEN_OIDC"
            )
