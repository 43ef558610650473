"""Sessions in a sealed cookie: AES-256-GCM over a small JSON document.

The cookie holds the signed-in person's access token, so the portal keeps no session table
and any instance behind a load balancer can serve any request. The cookie is HttpOnly,
SameSite=Lax, Secure (and ``__Host-``) behind HTTPS; it is sealed, not just signed, so the
token cannot be read from it. A session ends when its token does.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Session", "SessionSealer"]

_MAX_COOKIE = 3900  # browsers keep 4096 bytes for name, value and attributes together
_AAD = b"stafett-portal-session-v1"


class Session(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    person_id: str | None = None
    citizen: bool = False
    """A guardian or youth: the families' pages (``/familie``), not the staff's."""
    token: str | None = None
    expires_at: float = 0.0
    min_seq: int = 0
    """The stream position of this person's last write: reads wait for it (read your writes)."""
    flash: str | None = None
    login_state: dict[str, str] | None = None
    """OpenID Connect: state, nonce and PKCE verifier while the issuer is asked."""

    def signed_in(self, now: float | None = None) -> bool:
        current = time.time() if now is None else now
        return self.token is not None and current < self.expires_at

    def sign_out(self) -> None:
        self.person_id = None
        self.citizen = False
        self.token = None
        self.expires_at = 0.0
        self.min_seq = 0
        self.login_state = None
        self.csrf = secrets.token_urlsafe(24)

    def valid_csrf(self, value: str | None) -> bool:
        # as bytes: compare_digest refuses non-ASCII str, and a form may send anything
        return value is not None and secrets.compare_digest(value.encode(), self.csrf.encode())


class SessionSealer:
    """Seals and opens session cookies with one 32-byte key."""

    def __init__(self, key: bytes, *, secure: bool) -> None:
        if len(key) != 32:
            raise ValueError("the session key must be 32 bytes")
        self._aead = AESGCM(key)
        self.secure = secure
        self.cookie_name = "__Host-stafett" if secure else "stafett_session"

    def seal(self, session: Session) -> str:
        nonce = secrets.token_bytes(12)
        body = orjson.dumps(session.model_dump(exclude_defaults=False))
        sealed = nonce + self._aead.encrypt(nonce, body, _AAD)
        value = base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        if len(value) > _MAX_COOKIE:
            raise ValueError("the session does not fit in a cookie")
        return value

    def open(self, value: str | None) -> Session:
        """The session in the cookie, or a fresh one when it is missing, forged or stale."""
        if not value or len(value) > _MAX_COOKIE:
            return Session()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = self._aead.decrypt(raw[:12], raw[12:], _AAD)
            data: Any = orjson.loads(body)
            session = Session.model_validate(data)
        except (binascii.Error, ValueError, InvalidTag, ValidationError, orjson.JSONDecodeError):
            return Session()
        if session.token is not None and not session.signed_in():
            session.sign_out()
        return session

    def cookie_args(self, max_age_s: int) -> dict[str, Any]:
        return {
            "key": self.cookie_name,
            "max_age": max_age_s,
            "path": "/",
            "httponly": True,
            "secure": self.secure,
            "samesite": "lax",
        }
