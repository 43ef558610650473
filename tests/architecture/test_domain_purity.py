"""The domain modules stay pure: no database, broker, web, logging or tracing library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "sqlalchemy",
    "nats",
    "fastapi",
    "starlette",
    "structlog",
    "opentelemetry",
    "httpx",
    "asyncpg",
    "aiosqlite",
    "uvicorn",
)
DOMAIN_MODULES = sorted(ROOT.glob("services/*/src/stafett_*/domain.py"))


def forbidden_imports(source: str) -> list[str]:
    """Top-level packages from FORBIDDEN that ``source`` imports, directly or in a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def test_every_service_has_a_domain_module() -> None:
    assert {p.parts[-4] for p in DOMAIN_MODULES} == {"case", "log", "consent", "notify"}


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: p.parts[-4])
def test_domain_module_imports_no_io_library(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: p.parts[-4])
def test_importing_the_domain_module_loads_no_io_library(path: Path) -> None:
    module = f"{path.parts[-2]}.domain"
    probe = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_check_catches_an_impure_domain() -> None:
    impure = "import os\nfrom sqlalchemy import select\n\ndef f():\n    import nats.js\n"
    assert forbidden_imports(impure) == ["sqlalchemy", "nats.js"]
