"""Common settings: safe development defaults, and production refusing unsafe settings."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from stafett_shared.settings import DEV_ISSUER, CommonSettings, IssuerSettings, SettingsError

KEK = base64.b64encode(bytes(range(32))).decode()
ISSUER = IssuerSettings(issuer="https://login.example.no")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read STAFETT_* variables; a developer's own must not leak into the tests."""
    for name in list(os.environ):
        if name.upper().startswith("STAFETT_"):
            monkeypatch.delenv(name)


def _production(**overrides: object) -> CommonSettings:
    fields: dict[str, object] = {
        "env": "production",
        "kek": SecretStr(KEK),
        "issuers": [ISSUER],
        "admins": ["https://login.example.no|0c1f-admin-oid"],
    }
    fields.update(overrides)
    return CommonSettings.model_validate(fields)


def test_development_is_the_default_environment() -> None:
    settings = CommonSettings()

    assert settings.env == "development"
    assert not settings.production


def test_development_enables_the_dev_issuer_and_may_create_the_stream() -> None:
    settings = CommonSettings()

    assert settings.dev_issuer_enabled
    assert settings.may_create_stream


def test_development_needs_no_kek_and_no_issuers() -> None:
    settings = CommonSettings()

    assert settings.kek is None
    assert settings.kek_bytes() is None
    assert settings.issuers == []


def test_development_defaults_match_the_embedded_setup() -> None:
    settings = CommonSettings()

    assert settings.nats_url == "nats://127.0.0.1:14222"
    assert settings.stream == "EVENTS"
    assert settings.subject_prefix == "stafett.ev"
    assert settings.admins == ["admin"]
    assert settings.data_dir == Path("var")


def test_development_may_turn_the_dev_issuer_off() -> None:
    settings = CommonSettings(dev_issuer=False, create_stream=False)

    assert not settings.dev_issuer_enabled
    assert not settings.may_create_stream


def test_production_with_a_kek_and_an_issuer_is_accepted() -> None:
    settings = _production()

    assert settings.production
    assert settings.kek_bytes() == bytes(range(32))
    assert settings.issuers == [ISSUER]


def test_production_turns_the_dev_issuer_and_stream_creation_off_by_default() -> None:
    settings = _production()

    assert not settings.dev_issuer_enabled
    assert not settings.may_create_stream


def test_production_may_be_allowed_to_create_the_stream() -> None:
    assert _production(create_stream=True).may_create_stream


def test_production_refuses_the_dev_issuer() -> None:
    with pytest.raises(ValidationError, match="development token issuer"):
        _production(dev_issuer=True)


def test_production_accepts_the_dev_issuer_explicitly_turned_off() -> None:
    assert not _production(dev_issuer=False).dev_issuer_enabled


def test_production_refuses_a_service_without_a_kek() -> None:
    settings = _production(kek=None)  # the portal's settings: it holds no key

    with pytest.raises(SettingsError, match="STAFETT_KEK"):
        settings.check_kek()


def test_production_with_a_kek_and_development_without_pass_the_kek_check() -> None:
    _production().check_kek()
    CommonSettings().check_kek()


def test_production_refuses_to_run_without_issuers() -> None:
    with pytest.raises(ValidationError, match="at least one issuer"):
        _production(issuers=[])


def test_production_refusals_are_settings_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        _production(issuers=[])

    assert isinstance(caught.value.errors()[0]["ctx"]["error"], SettingsError)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_kek_that_is_not_32_bytes_is_refused_at_start(size: int) -> None:
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        CommonSettings(kek=SecretStr(base64.b64encode(b"k" * size).decode()))


def test_a_kek_that_is_not_base64_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="base64"):
        CommonSettings(kek=SecretStr("this is not base64!"))


def test_the_kek_does_not_appear_in_the_settings_repr() -> None:
    settings = _production()

    assert KEK not in repr(settings)
    assert KEK not in str(settings.model_dump())


def test_settings_are_read_from_stafett_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFETT_ENV", "production")
    monkeypatch.setenv("STAFETT_KEK", KEK)
    monkeypatch.setenv(
        "STAFETT_ISSUERS", '[{"issuer": "https://login.example.no", "audience": "region"}]'
    )
    monkeypatch.setenv(
        "STAFETT_ADMINS", '["https://login.example.no|ola", "https://login.example.no|kari"]'
    )

    settings = CommonSettings()

    assert settings.production
    assert settings.kek_bytes() == bytes(range(32))
    assert settings.issuers[0].issuer == "https://login.example.no"
    assert settings.issuers[0].audience == "region"
    assert settings.admin_logins == {
        ("https://login.example.no", "ola"),
        ("https://login.example.no", "kari"),
    }


def test_production_from_the_environment_refuses_the_dev_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFETT_ENV", "production")
    monkeypatch.setenv("STAFETT_KEK", KEK)
    monkeypatch.setenv("STAFETT_ISSUERS", '[{"issuer": "https://login.example.no"}]')
    monkeypatch.setenv("STAFETT_DEV_ISSUER", "true")

    with pytest.raises(ValidationError, match="development token issuer"):
        CommonSettings()


def test_production_from_the_environment_refuses_a_missing_kek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFETT_ENV", "production")
    monkeypatch.setenv("STAFETT_ISSUERS", '[{"issuer": "https://login.example.no"}]')
    monkeypatch.setenv("STAFETT_ADMINS", '["https://login.example.no|0c1f-admin-oid"]')

    with pytest.raises(SettingsError, match="STAFETT_KEK"):
        CommonSettings().check_kek()


def test_an_unknown_environment_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAFETT_ENV", "staging")

    with pytest.raises(ValidationError):
        CommonSettings()


def test_an_issuer_defaults_to_the_stafett_audience_and_asymmetric_algorithms() -> None:
    issuer = IssuerSettings(issuer="https://login.example.no")

    assert issuer.audience == "stafett"
    assert issuer.jwks_uri is None
    assert issuer.algorithms == ["RS256", "ES256", "EdDSA", "PS256"]
    assert not any(algorithm.startswith("HS") for algorithm in issuer.algorithms)


def test_an_issuer_needs_a_name() -> None:
    with pytest.raises(ValidationError):
        IssuerSettings(issuer="")


@pytest.mark.parametrize("value", [512, 32 * 1024 * 1024])
def test_a_body_limit_outside_its_bounds_is_refused(value: int) -> None:
    with pytest.raises(ValidationError):
        CommonSettings(max_body_bytes=value)


# --- identity: issuers' kinds and administrators as (issuer, subject) -------------------------


def test_an_issuer_may_assert_staff_by_default_and_must_assert_something() -> None:
    assert ISSUER.kinds == ["staff"]
    assert IssuerSettings(issuer="https://mp.example.no", kinds=["client"]).kinds == ["client"]
    with pytest.raises(ValidationError):
        IssuerSettings(issuer="https://login.example.no", kinds=[])
    with pytest.raises(ValidationError):
        IssuerSettings.model_validate({"issuer": "https://login.example.no", "kinds": ["root"]})


def test_a_bare_admin_id_is_the_development_issuers() -> None:
    settings = CommonSettings(admins=["admin", "https://login.example.no|a|b"])

    assert settings.admin_logins == {
        (DEV_ISSUER, "admin"),
        ("https://login.example.no|a", "b"),
    }
    assert settings.dev_admin == "admin"
    assert settings.is_admin(DEV_ISSUER, "admin")
    assert not settings.is_admin("https://login.example.no", "admin")
    assert not settings.is_admin(DEV_ISSUER, None)


@pytest.mark.parametrize("entry", ["", "|kari", "https://login.example.no|", " admin"])
def test_a_malformed_admin_entry_is_refused(entry: str) -> None:
    with pytest.raises(ValidationError, match="STAFETT_ADMINS"):
        CommonSettings(admins=[entry])


@pytest.mark.parametrize(
    "admins",
    [["admin"], ["kari"], ["https://other.example.no|kari"]],
    ids=["the-default", "a-development-login", "an-issuer-not-configured"],
)
def test_production_refuses_administrators_it_cannot_trust(admins: list[str]) -> None:
    with pytest.raises(ValidationError, match="STAFETT_ADMINS"):
        _production(admins=admins)


def test_an_organisations_administrators_are_logins_of_that_organisation() -> None:
    settings = CommonSettings(
        org_admins={"4010": ["kari", "https://login.example.no|ola"], "40": ["kari"]}
    )
    assert settings.org_admin_logins == {
        (DEV_ISSUER, "kari"): frozenset({"4010", "40"}),
        ("https://login.example.no", "ola"): frozenset({"4010"}),
    }
    assert (DEV_ISSUER, "kari") in settings.every_admin_login
    assert not settings.is_admin(DEV_ISSUER, "kari")  # not the region's administrator


@pytest.mark.parametrize(
    "org_admins",
    [{"4010": [""]}, {"not an org": ["kari"]}, {"4010": ["kari"] * 51}],
    ids=["empty-entry", "bad-org-id", "too-many"],
)
def test_a_malformed_organisation_administrator_is_refused(
    org_admins: dict[str, list[str]],
) -> None:
    with pytest.raises(ValidationError):
        CommonSettings(org_admins=org_admins)


@pytest.mark.parametrize(
    "org_admins",
    [{"4010": ["kari"]}, {"4010": ["https://other.example.no|kari"]}],
    ids=["a-development-login", "an-issuer-not-configured"],
)
def test_production_refuses_organisation_administrators_it_cannot_trust(
    org_admins: dict[str, list[str]],
) -> None:
    with pytest.raises(ValidationError, match=r"organisation administrators|STAFETT_ORG_ADMINS"):
        _production(org_admins=org_admins)


def test_a_kek_change_without_the_blind_index_key_is_refused_in_production() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    common: dict[str, Any] = {
        "env": "production",
        "kek": key,
        "kek_id": "kek-2",
        "issuers": [{"issuer": "https://login.example.org", "audience": "stafett"}],
        "admins": ["https://login.example.org|admin"],
    }
    with pytest.raises(ValueError, match="STAFETT_BLIND_INDEX_KEY"):
        CommonSettings(**common, other_keks={"kek-1": SecretStr(key)})
    with pytest.raises(ValueError, match="current"):
        CommonSettings(
            **common, other_keks={"kek-2": SecretStr(key)}, blind_index_key=SecretStr(key)
        ).kek_ring(bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        CommonSettings(
            **common, other_keks={"kek-1": SecretStr("c2hvcnQ=")}, blind_index_key=SecretStr(key)
        )
    settings = CommonSettings(
        **common, other_keks={"kek-1": SecretStr(key)}, blind_index_key=SecretStr(key)
    )
    assert set(settings.kek_ring(bytes(32))) == {"kek-1", "kek-2"}


def test_empty_kek_change_settings_are_none_and_a_malformed_one_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFETT_OTHER_KEKS", "")
    monkeypatch.setenv("STAFETT_BLIND_INDEX_KEY", " ")
    settings = CommonSettings()
    assert settings.other_keks == {} and settings.blind_index_key is None
    secret = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("STAFETT_OTHER_KEKS", "{kek-0: " + secret + "}")
    with pytest.raises(ValidationError) as caught:
        CommonSettings()
    assert secret not in str(caught.value)
