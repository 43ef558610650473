"""Settings shared by every Stafett process, read from ``STAFETT_*`` environment variables.

Development is the default and generates its keys in the data folder at first start.
Production refuses the development issuer and development keys: it needs configured
issuers and a key-encryption key supplied by the operator.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "DEV_ISSUER",
    "REMINDER_FIELDS",
    "CommonSettings",
    "IssuerKind",
    "IssuerSettings",
    "RegionReminderTimes",
    "ReminderTimes",
    "ServiceSettings",
    "SettingsError",
    "admin_logins",
    "org_admin_logins",
]


DEFAULT_ADMINS = ("admin",)


class SettingsError(ValueError):
    """The settings are unsafe or incomplete for the chosen environment."""


DEV_ISSUER = "urn:stafett:dev-issuer"
"""The development issuer's name (``iss``): a bare admin id in ``STAFETT_ADMINS`` is its."""

IssuerKind = Literal["staff", "citizen", "client"]
_STAFF: IssuerKind = "staff"


class IssuerSettings(BaseModel):
    """A trusted token issuer (an OIDC provider or an agency's client-credentials server).

    ``kinds`` says what its tokens may assert: ``staff`` (a subject the directory binds to a
    staff member), ``citizen`` (a guardian or youth, by the national id in ``pid``, through
    the directory's blind index), ``client`` (an agency's system the directory registers, by
    ``client_id`` and the consumer's organisation number). A token asserting anything else is
    refused, and what the directory does not know is nobody."""

    issuer: str = Field(min_length=1)
    audience: str = "stafett"
    jwks_uri: str | None = None  # found by OIDC discovery when not given
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA", "PS256"])
    kinds: list[IssuerKind] = Field(default_factory=lambda: [_STAFF], min_length=1)


class CommonSettings(BaseSettings):
    # Settings hold secrets (the KEK, passwords): an error names the field, never the value.
    model_config = SettingsConfigDict(
        env_prefix="STAFETT_", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    nats_url: str = "nats://127.0.0.1:14222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_creds_file: Path | None = None
    """A NATS credentials file (a user JWT and its nkey seed, decentralised auth): instead
    of a user and password."""
    nats_nkey_file: Path | None = None
    """A file holding an nkey seed (``SU…``): instead of a user and password."""
    nats_tls_ca: Path | None = None
    """PEM file of the CA that signed the NATS servers' certificates. Set, the connection
    is TLS and the server's certificate is verified against it."""
    nats_tls_cert: Path | None = None
    """PEM client certificate, for a server that verifies clients (``verify: true``)."""
    nats_tls_key: Path | None = None
    """PEM private key of ``nats_tls_cert``."""
    stream: str = "EVENTS"
    subject_prefix: str = "stafett.ev"
    create_stream: bool | None = None  # default: create in development, verify only in production
    stream_replicas: int = Field(default=1, ge=1, le=5)
    kek: SecretStr | None = None  # base64 of 32 bytes
    kek_id: str = "kek-1"
    other_keks: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    """Key-encryption keys besides the current one that still unwrap data keys, never wrap
    one (``STAFETT_OTHER_KEKS``: JSON, id to base64). Used while a KEK is changed
    (docs/operators.md, "Key rotation"): the coming one before it becomes current, the old
    one until ``stafett keys rewrap`` has wrapped every data key under the new one."""
    blind_index_key: SecretStr | None = None
    """Base64 of the 32-byte key of the blind indexes (``STAFETT_BLIND_INDEX_KEY``). Without
    it the key is derived from the KEK, which is right until the KEK is first changed: blind
    indexes are in events and subjects and can never change, so before a KEK is changed the
    derived key is set here (``stafett keys blind-index-key``) and kept for good."""
    dev_issuer: bool | None = None  # default: on in development, refused in production
    issuers: list[IssuerSettings] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=lambda: list(DEFAULT_ADMINS))
    """Administrators as ``issuer|subject`` (the subject as that issuer names it); a bare
    id is the development issuer's. Production refuses the default."""
    org_admins: dict[str, list[str]] = Field(default_factory=dict)
    """Administrators of one organisation each, ``{"<org_id>": ["issuer|subject", …]}``
    (``STAFETT_ORG_ADMINS`` as JSON). An organisation's administrator grants audit scopes in
    that organisation only, and may read the directory and register children; loading the
    region document and making checkpoints stay with the region's (``admins``)."""
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
    lookup_limit_per_hour: float = Field(default=60.0, gt=0, le=100_000)
    """Look-ups of a person by national id (registering a child, opening a case or
    identifying a child by national id) one person may make an hour, over time: beyond it,
    429. Each look-up is also recorded (decision 0029)."""
    lookup_limit_burst: int = Field(default=20, ge=1, le=10_000)
    """Look-ups by national id one person may make at once before the hourly rate applies."""
    login_cache_s: float = Field(default=60.0, ge=0, le=60)
    """How long a service takes a login's binding in the directory (issuer and subject to a
    staff member), and a token verified through it, on trust: a login the region document
    no longer binds stops working within this time."""

    @field_validator("other_keks", mode="before")
    @classmethod
    def _other_keks(cls, value: object) -> object:
        """JSON from the environment; empty (a compose file's unset default) is none."""
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("blind_index_key", mode="before")
    @classmethod
    def _blind_index_key(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def admin_logins(self) -> frozenset[tuple[str, str]]:
        """The administrators as (issuer, subject) pairs."""
        return admin_logins(self.admins)

    @property
    def dev_admin(self) -> str | None:
        """The first administrator of the development issuer: the id the launcher, the demo
        and the portal's development sign-in use to load the region document."""
        return next((s for i, s in map(_admin_login, self.admins) if i == DEV_ISSUER), None)

    @property
    def org_admin_logins(self) -> dict[tuple[str, str], frozenset[str]]:
        """Each organisation administrator's login and the organisations it administers."""
        return org_admin_logins(self.org_admins)

    @property
    def every_admin_login(self) -> frozenset[tuple[str, str]]:
        """The logins of every administrator, of the region or of an organisation."""
        return self.admin_logins | frozenset(self.org_admin_logins)

    def is_admin(self, issuer: str, subject: str | None) -> bool:
        """Whether ``subject`` of ``issuer`` (as the token said it) is an administrator."""
        return subject is not None and (issuer, subject) in self.admin_logins

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
        self.kek_ring(bytes(32))  # so are other keys and the blind index key
        self.blind_index_secret(bytes(32))
        for entry in self.admins:
            _admin_login(entry)  # a malformed entry is refused at start
        org_admin_logins(self.org_admins)  # so is a malformed organisation administrator
        if not self.production:
            return self
        if self.dev_issuer:
            raise SettingsError("production refuses the development token issuer")
        if self.other_keks and self.blind_index_key is None:
            raise SettingsError(
                "a KEK is being changed (STAFETT_OTHER_KEKS): set STAFETT_BLIND_INDEX_KEY "
                "first (stafett keys blind-index-key), or every blind index would change"
            )
        if not self.issuers:
            raise SettingsError("production needs at least one issuer in STAFETT_ISSUERS")
        if tuple(self.admins) == DEFAULT_ADMINS or any(
            issuer == DEV_ISSUER for issuer, _ in self.admin_logins
        ):
            raise SettingsError(
                "production needs STAFETT_ADMINS as issuer|subject of a configured issuer"
            )
        configured = {i.issuer for i in self.issuers}
        if unknown := sorted({i for i, _ in self.admin_logins} - configured):
            raise SettingsError(f"STAFETT_ADMINS names issuers not configured: {unknown}")
        org_issuers = {i for i, _ in self.org_admin_logins}
        if DEV_ISSUER in org_issuers:
            raise SettingsError("production refuses development-issuer organisation administrators")
        if unknown := sorted(org_issuers - configured):
            raise SettingsError(f"STAFETT_ORG_ADMINS names issuers not configured: {unknown}")
        return self

    def check_kek(self) -> None:
        """Refuse, in production, a process that holds keys without ``STAFETT_KEK``: it would
        otherwise make a development key of its own. Called by every service before it
        connects; not in the validator, because the portal shares these settings and never
        holds a key, so it is not given the KEK."""
        if self.production and self.kek is None:
            raise SettingsError("production needs STAFETT_KEK (development keys are refused)")

    def check_nats_credentials(self) -> None:
        """Refuse, in production, a NATS connection without credentials of its own (a user
        and password, a credentials file or an nkey seed), and a client certificate without
        its key. Called by every process that connects to NATS, before it connects; not in the
        validator, because processes without NATS (the portal) share these settings."""
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise SettingsError("STAFETT_NATS_TLS_CERT and STAFETT_NATS_TLS_KEY go together")
        if not self.production:
            return
        password = self.nats_user and self.nats_password and self.nats_password.get_secret_value()
        if not (password or self.nats_creds_file or self.nats_nkey_file):
            raise SettingsError(
                "production needs NATS credentials: STAFETT_NATS_USER and "
                "STAFETT_NATS_PASSWORD, STAFETT_NATS_CREDS_FILE or STAFETT_NATS_NKEY_FILE"
            )

    def kek_bytes(self) -> bytes | None:
        if self.kek is None:
            return None
        return _key32(self.kek, "STAFETT_KEK")

    def kek_ring(self, current: bytes) -> dict[str, bytes]:
        """Every key-encryption key by id: the current one (``current``, the bytes of
        ``STAFETT_KEK`` or the development key) and ``STAFETT_OTHER_KEKS``."""
        ring = {self.kek_id: current}
        for kid, key in self.other_keks.items():
            if kid == self.kek_id:
                raise SettingsError("STAFETT_OTHER_KEKS names the current STAFETT_KEK_ID")
            if not kid or len(kid) > 64 or not kid.isprintable() or '"' in kid:
                raise SettingsError("a KEK id is 1 to 64 printable characters")
            ring[kid] = _key32(key, f"STAFETT_OTHER_KEKS[{kid}]")
        return ring

    def blind_index_secret(self, kek: bytes) -> bytes:
        """The key of the blind indexes: ``STAFETT_BLIND_INDEX_KEY``, else derived from
        ``kek`` (the current KEK)."""
        if self.blind_index_key is not None:
            return _key32(self.blind_index_key, "STAFETT_BLIND_INDEX_KEY")
        # Imported here: the settings are read by domain modules, which load no I/O library,
        # and the crypto module holds the key store on NATS.
        from stafett_shared.crypto import derive_blind_index_key

        return derive_blind_index_key(kek)


def _key32(value: SecretStr, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.get_secret_value(), validate=True)
    except ValueError as exc:
        raise SettingsError(f"{name} must be base64") from exc
    if len(raw) != 32:
        raise SettingsError(f"{name} must be base64 of exactly 32 bytes")
    return raw


REMINDER_FIELDS = ("level0_days", "evaluation_warning_days", "handover_days", "inactive_days")
"""The reminder times of the case service's deadlines an organisation may set for itself."""


class ReminderTimes(BaseModel):
    """The region's reminder times of the case service's deadlines (``STAFETT_CASE_*``);
    an organisation's settings may replace each (decision 0030)."""

    level0_days: int = Field(default=14, ge=1, le=365)
    evaluation_warning_days: int = Field(default=7, ge=0, le=60)
    handover_days: int = Field(default=3, ge=1, le=60)
    inactive_days: int = Field(default=60, ge=1, le=365)

    def in_force(self, own: Mapping[str, object]) -> ReminderTimes:
        """These times with an organisation's own (``None``: the region's) in their place."""
        return self.model_copy(
            update={name: own[name] for name in REMINDER_FIELDS if own.get(name) is not None}
        )


class RegionReminderTimes(ReminderTimes, BaseSettings):
    """The region's reminder times where another service shows them (the consent service's
    ``settings_in_force``): the same ``STAFETT_CASE_*`` variables the case service reads."""

    model_config = SettingsConfigDict(env_prefix="STAFETT_CASE_", extra="ignore")


class ServiceSettings(BaseSettings):
    """Per-service settings; each service subclasses with ``env_prefix="STAFETT_<NAME>_"``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)
    database_url: str | None = None  # default: SQLite in the data folder
    projector_batch: int = Field(default=256, ge=1, le=5000)


def admin_logins(entries: Iterable[str]) -> frozenset[tuple[str, str]]:
    """``STAFETT_ADMINS`` entries as (issuer, subject) pairs."""
    return frozenset(_admin_login(entry) for entry in entries)


MAX_ORG_ADMINS = 50
"""Administrators one organisation may have in ``STAFETT_ORG_ADMINS``."""


def org_admin_logins(
    by_org: Mapping[str, Iterable[str]],
) -> dict[tuple[str, str], frozenset[str]]:
    """``STAFETT_ORG_ADMINS`` as login → the organisations it administers."""
    logins: dict[tuple[str, str], set[str]] = {}
    for org_id, given in by_org.items():
        if not re.fullmatch(r"[A-Za-z0-9-]{1,32}", org_id):
            raise SettingsError("STAFETT_ORG_ADMINS keys are organisation ids")
        entries = list(given)
        if len(entries) > MAX_ORG_ADMINS:
            raise SettingsError(f"at most {MAX_ORG_ADMINS} administrators per organisation")
        for entry in entries:
            logins.setdefault(_admin_login(entry), set()).add(org_id)
    return {login: frozenset(orgs) for login, orgs in logins.items()}


def _admin_login(entry: str) -> tuple[str, str]:
    """``issuer|subject`` → (issuer, subject); a bare id is the development issuer's."""
    issuer, bar, subject = entry.rpartition("|")
    if not bar:
        issuer = DEV_ISSUER
    if not issuer or not subject or subject != subject.strip():
        raise SettingsError("STAFETT_ADMINS entries are issuer|subject or a bare id")
    return issuer, subject
