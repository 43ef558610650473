"""`python -m stafett_<service> migrate`: the deployment's migration job, on SQLite and
PostgreSQL. It needs the database only (no NATS), brings the schema to the newest revision,
and a second run finds nothing to do."""

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


def _migrate(service: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STAFETT_DATA_DIR": str(data_dir),
        f"STAFETT_{service.upper()}_DATABASE_URL": url,
        # Nothing here may reach NATS: an address where nothing listens proves it.
        "STAFETT_NATS_URL": "nats://127.0.0.1:9",
    }
    return subprocess.run(
        [sys.executable, "-m", f"stafett_{service}", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    result = subprocess.run(
        [sys.executable, "-m", "stafett_case", "migrat"],
        env={**os.environ, "STAFETT_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "migrate" in result.stderr
