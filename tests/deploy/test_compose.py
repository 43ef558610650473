"""deploy/compose.yaml: valid against the Compose specification (the schema check-jsonschema
vendors), and every process it starts gets what production needs to start: with the file's
variables filled in as an operator's env file would, each process's own settings accept
the environment Compose gives it. No Docker is needed for either."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stafett_portal.settings import PortalSettings
from stafett_shared.settings import CommonSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "stafett.env.example"
SERVICES = ("case", "log", "consent", "notify")
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<op>[?-])(?P<arg>[^}]*))?\}")
ISSUER = "https://login.example.org/realms/stafett"
CHECK_COMPOSE = (
    sys.executable,
    "-m",
    "check_jsonschema",
    "--builtin-schema",
    "vendor.compose-spec",
)

# An operator's env file, filled in (deploy/README.md shows how to make each value).
FILLED = {
    **{f"STAFETT_{u}_NATS_PASSWORD": f"p{u.lower()}" for u in ("ROUTE", "SYSTEM", "ADMIN")},
    **{f"STAFETT_{s.upper()}_NATS_PASSWORD": f"pnats{s}" for s in SERVICES},
    **{f"STAFETT_{s.upper()}_DB_PASSWORD": f"pdb{s}" for s in SERVICES},
    "STAFETT_POSTGRES_PASSWORD": "ppostgres",
    "STAFETT_KEK": base64.b64encode(bytes(range(32))).decode(),
    "STAFETT_KEK_ID": "kek-1",
    "STAFETT_ISSUERS": json.dumps([{"issuer": ISSUER, "audience": "stafett"}]),
    "STAFETT_ADMINS": json.dumps([f"{ISSUER}|0c1f-admin-oid"]),
    "STAFETT_LOG_SIGNING_KEY_PATH": "/etc/stafett/log-signing.pem",
    "STAFETT_PORTAL_PUBLIC_URL": "https://stafett.example.org",
    "STAFETT_PORTAL_SESSION_KEY": base64.b64encode(bytes(range(32, 64))).decode(),
    "STAFETT_PORTAL_OIDC": json.dumps({"issuer": ISSUER, "client_id": "stafett-portal"}),
    "STAFETT_NOTIFY_SMTP_HOST": "smtp.example.org",
    "STAFETT_NOTIFY_SMTP_SENDER": "stafett@example.org",
    "STAFETT_NOTIFY_SMTP_USERNAME": "",
    "STAFETT_NOTIFY_SMTP_PASSWORD": "",
}


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (the forms the file uses)."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        given = env.get(name, "")
        if op == "?" and not given:
            raise KeyError(f"{name}: {arg}")
        return given or (arg if op == "-" else "")

    return VARIABLE.sub(value, text)


def _filled(node: Any, env: dict[str, str]) -> Any:
    """Compose interpolates the values of the parsed file, not its text."""
    if isinstance(node, dict):
        return {k: _filled(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_filled(v, env) for v in node]
    return _interpolate(node, env) if isinstance(node, str) else node


def _compose(env: dict[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = _filled(yaml.safe_load(COMPOSE.read_text()), env)
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _compose(FILLED)


def _environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][name]["environment"].items()}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process's environment is the container's alone."""
    for name in list(os.environ):
        if name.startswith("STAFETT_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHECK_COMPOSE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = _check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_specification_refuses_a_misspelt_key(tmp_path: Path) -> None:
    wrong = tmp_path / "compose.yaml"
    text = COMPOSE.read_text()
    wrong.write_text(text.replace("    healthcheck: *readyz", "    helthcheck: *readyz"))
    result = _check(wrong)
    assert result.returncode == 1
    assert "helthcheck" in result.stdout


def test_the_env_file_template_names_every_variable_compose_requires() -> None:
    required = {m["name"] for m in VARIABLE.finditer(COMPOSE.read_text()) if m["op"] in ("?", None)}
    listed = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert required <= listed, required - listed
    for name in required:
        with pytest.raises(KeyError, match=name):
            _compose({k: v for k, v in FILLED.items() if k != name})


def test_compose_runs_the_four_services_and_the_portal(compose: dict[str, Any]) -> None:
    assert {*SERVICES, "portal", "stream-setup", "postgres"} <= set(compose["services"])
    for name in (*SERVICES, "portal"):
        service = compose["services"][name]
        assert service["build"]["args"]["SERVICE"] == name
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "readyz" in " ".join(service["healthcheck"]["test"])


def test_every_stafett_variable_is_a_setting_a_process_reads(
    compose: dict[str, Any], known_settings: frozenset[str]
) -> None:
    for name in (*SERVICES, "portal"):
        names = {n for n in _environment(compose, name) if n.startswith("STAFETT_")}
        assert names <= known_settings, (name, names - known_settings)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_what_production_needs(
    compose: dict[str, Any], environ: pytest.MonkeyPatch, name: str
) -> None:
    env = _environment(compose, name)
    for key, value in env.items():
        environ.setenv(key, value)
    settings = CommonSettings()
    assert settings.production
    settings.check_kek()
    settings.check_nats_credentials()
    assert settings.nats_user == name
    assert settings.nats_tls_ca is not None
    assert not settings.may_create_stream
    assert settings.stream_replicas == 3
    assert env[f"STAFETT_{name.upper()}_DATABASE_URL"].startswith(
        f"postgresql://stafett_{name}:pdb{name}@postgres:5432/stafett_{name}"
    )


def test_the_log_service_gets_its_signing_key(compose: dict[str, Any]) -> None:
    log = compose["services"]["log"]
    (secret,) = log["secrets"]
    assert _environment(compose, "log")["STAFETT_LOG_SIGNING_KEY_FILE"] == f"/run/secrets/{secret}"
    assert compose["secrets"][secret]["file"] == FILLED["STAFETT_LOG_SIGNING_KEY_PATH"]


def test_the_portal_gets_what_production_needs_and_no_key(
    compose: dict[str, Any], environ: pytest.MonkeyPatch
) -> None:
    env = _environment(compose, "portal")
    assert not {n for n in env if n.startswith(("STAFETT_KEK", "STAFETT_NATS"))}
    for key, value in env.items():
        environ.setenv(key, value)
    assert CommonSettings().production
    portal = PortalSettings()
    portal.check_production()
    for service in SERVICES:
        assert getattr(portal, f"{service}_url") == f"http://{service}:8080"
