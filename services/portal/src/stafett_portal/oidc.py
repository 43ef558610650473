"""Signing staff in with OpenID Connect: the authorisation code flow with PKCE (RFC 7636).

The portal is a client of the staff issuer. It sends the person there, takes the code back,
exchanges it for tokens, checks the ID token (issuer, audience, nonce, signature) and passes
the access token on to the services, which decide for themselves who it is.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import jwt

from stafett_portal.settings import OidcClientSettings

__all__ = ["LoginFailed", "OidcClient", "SignedIn"]

_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class LoginFailed(Exception):
    """The issuer did not sign the person in, or its answer did not hold up."""


@dataclass(frozen=True)
class SignedIn:
    subject: str
    access_token: str
    expires_at: float


def _same(given: str, kept: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a forged query parameter)."""
    return secrets.compare_digest(given.encode(), kept.encode())


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OidcClient:
    def __init__(self, config: OidcClientSettings, redirect_uri: str, http: httpx.AsyncClient):
        self.config = config
        self.redirect_uri = redirect_uri
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None

    async def _meta(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                response = await self._http.get(url)
                response.raise_for_status()
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise LoginFailed("the issuer's configuration is unavailable") from exc
            if not isinstance(data, dict) or data.get("issuer") != self.config.issuer:
                raise LoginFailed("the issuer's configuration names another issuer")
            self._metadata = data
        return self._metadata

    async def begin(self) -> tuple[str, dict[str, str]]:
        """The address to send the person to, and what to keep until they come back."""
        meta = await self._meta()
        endpoint = self.config.authorization_endpoint or str(meta["authorization_endpoint"])
        state = {
            "state": secrets.token_urlsafe(24),
            "nonce": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48),
            "started": str(int(time.time())),
        }
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state["state"],
            "nonce": state["nonce"],
            "code_challenge": _challenge(state["verifier"]),
            "code_challenge_method": "S256",
        }
        return f"{endpoint}?{urlencode(query)}", state

    async def finish(self, code: str, state: str, kept: dict[str, str]) -> SignedIn:
        if not kept or not _same(state, kept.get("state", "")):
            raise LoginFailed("state does not match")
        if time.time() - int(kept.get("started", "0")) > 600:
            raise LoginFailed("the sign-in took too long")
        if not code:  # the issuer answered with ?error=… (declined, or asked the wrong way)
            raise LoginFailed("the issuer did not sign the person in")
        meta = await self._meta()
        endpoint = self.config.token_endpoint or str(meta["token_endpoint"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": kept["verifier"],
            "client_id": self.config.client_id,
        }
        secret = self.config.client_secret
        try:
            if secret is not None:  # client_secret_basic; a public client relies on PKCE alone
                # RFC 6749 2.3.1: both are form-encoded before they go into the Basic header.
                basic = httpx.BasicAuth(
                    quote_plus(self.config.client_id), quote_plus(secret.get_secret_value())
                )
                response = await self._http.post(endpoint, data=form, auth=basic)
            else:
                response = await self._http.post(endpoint, data=form)
            tokens = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LoginFailed("the token endpoint did not answer") from exc
        if response.status_code != 200 or not isinstance(tokens, dict):
            raise LoginFailed("the issuer refused the code")
        access, id_token = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise LoginFailed("the issuer's answer lacks tokens")
        claims = await self._id_claims(id_token, kept["nonce"])
        lifetime = tokens.get("expires_in")
        expires = time.time() + (float(lifetime) if isinstance(lifetime, int | float) else 3600)
        return SignedIn(str(claims["sub"]), access, expires)

    async def _id_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = await self._meta()
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = await self._key(str(meta["jwks_uri"]), kid)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=_ALGORITHMS,
                audience=self.config.client_id,
                issuer=self.config.issuer,
                leeway=30,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except (jwt.PyJWTError, KeyError) as exc:
            raise LoginFailed("the ID token does not hold up") from exc
        if not _same(str(claims.get("nonce", "")), nonce):
            raise LoginFailed("nonce does not match")
        return claims

    async def _key(self, jwks_uri: str, kid: str | None) -> jwt.PyJWK:
        for attempt in range(2):
            if self._keys is None or attempt == 1:
                try:
                    response = await self._http.get(jwks_uri)
                    response.raise_for_status()
                    self._keys = jwt.PyJWKSet.from_dict(response.json())
                except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
                    raise LoginFailed("the issuer's keys are unavailable") from exc
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise LoginFailed("unknown signing key")

    async def logout_url(self, post_logout: str) -> str | None:
        try:
            meta = await self._meta()
        except LoginFailed:
            return None
        endpoint = self.config.end_session_endpoint or meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = {"client_id": self.config.client_id, "post_logout_redirect_uri": post_logout}
        return f"{endpoint}?{urlencode(query)}"
