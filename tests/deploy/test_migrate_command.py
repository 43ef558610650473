"""`python -m stafett_<service> migrate`: the deployment's migration job, on SQLite and
PostgreSQL. In production it needs the database only (no NATS, no KEK), brings the schema to
the newest revision, and a second run finds nothing to do. Every other command of a service
refuses to start in production without the KEK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import stafett_case
import stafett_consent
import stafett_log
import stafett_notify

PACKAGES = {
    "case": stafett_case,
    "log": stafett_log,
    "consent": stafett_consent,
    "notify": stafett_notify,
}


def _head(service: str) -> str:
    config = Config()
    folder = Path(PACKAGES[service].__file__ or "").parent / "alembic"
    config.set_main_option("script_location", str(folder))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


ISSUER = "https://login.example.no"
PRODUCTION = {
    "STAFETT_ENV": "production",
    "STAFETT_ISSUERS": f'[{{"issuer": "{ISSUER}"}}]',
    "STAFETT_ADMINS": f'["{ISSUER}|admin-oid"]',
    # Nothing here may reach NATS: an address where nothing listens proves it.
    "STAFETT_NATS_URL": "nats://127.0.0.1:9",
    "STAFETT_NATS_USER": "case",
    "STAFETT_NATS_PASSWORD": "pcase",
}


def _run(
    service: str, command: str, data_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    return subprocess.run(
        [sys.executable, "-m", f"stafett_{service}", command],
        env={**clean, **PRODUCTION, "STAFETT_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _migrate(service: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return _run(service, "migrate", data_dir, **{f"STAFETT_{service.upper()}_DATABASE_URL": url})


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", sorted(PACKAGES))
def test_migrate_brings_the_schema_to_the_newest_revision_without_nats(
    service: str, database_url: str, tmp_path: Path
) -> None:
    first = _migrate(service, database_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"{service}: database schema up to date" in first.stdout
    assert _revision(database_url) == _head(service)

    again = _migrate(service, database_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _revision(database_url) == _head(service)


def test_an_unknown_command_names_migrate_among_the_commands(tmp_path: Path) -> None:
    result = _run("case", "migrat", tmp_path)
    assert result.returncode == 2
    assert "migrate" in result.stderr


@pytest.mark.parametrize("command", ["rebuild", "quarantine"])
def test_a_service_refuses_to_start_in_production_without_the_kek(
    command: str, tmp_path: Path
) -> None:
    result = _run("case", command, tmp_path, STAFETT_CASE_DATABASE_URL=f"sqlite:///{tmp_path}/c.db")
    assert result.returncode != 0
    assert "production needs STAFETT_KEK" in result.stderr
    assert not (tmp_path / "keys").exists()  # and made no development key of its own
