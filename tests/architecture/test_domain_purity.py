"""The domain modules stay pure: no database, broker, web, logging or tracing library. The
event contracts, which every service, the auditors' replay and other agencies' readers load,
import only pydantic, the standard library and the envelope, and nothing of a service."""

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
CONTRACT_MODULES = sorted((ROOT / "shared/src/stafett_shared/contracts").glob("*.py"))
CONTRACT_MAY_IMPORT = ("stafett_shared.envelope", "stafett_shared.ids", "stafett_shared.contracts")
SERVICES = ("stafett_case", "stafett_log", "stafett_consent", "stafett_notify", "stafett_portal")


def imports(source: str) -> list[str]:
    """The modules ``source`` imports, directly or in a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def forbidden_imports(source: str) -> list[str]:
    """Top-level packages from FORBIDDEN that ``source`` imports, directly or in a function."""
    return [n for n in imports(source) if n.split(".")[0] in FORBIDDEN]


def contract_outside_imports(source: str) -> list[str]:
    """What a contract module imports beyond the stdlib, pydantic and CONTRACT_MAY_IMPORT."""
    return [
        n
        for n in imports(source)
        if n.split(".")[0] not in sys.stdlib_module_names
        and n.split(".")[0] != "pydantic"
        and not n.startswith(CONTRACT_MAY_IMPORT)
    ]


def loaded_on_import(module: str, packages: tuple[str, ...]) -> str:
    """Which of ``packages`` a fresh interpreter has loaded after importing ``module``."""
    probe = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {packages!r})\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_every_service_has_a_domain_module() -> None:
    assert {p.parts[-4] for p in DOMAIN_MODULES} == {"case", "log", "consent", "notify"}


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: p.parts[-4])
def test_domain_module_imports_no_io_library(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: p.parts[-4])
def test_importing_the_domain_module_loads_no_io_library(path: Path) -> None:
    assert loaded_on_import(f"{path.parts[-2]}.domain", FORBIDDEN) == ""


def test_the_check_catches_an_impure_domain() -> None:
    impure = "import os\nfrom sqlalchemy import select\n\ndef f():\n    import nats.js\n"
    assert forbidden_imports(impure) == ["sqlalchemy", "nats.js"]


def test_there_is_a_contract_module_per_context() -> None:
    assert {p.stem for p in CONTRACT_MODULES} >= {"case", "log", "consent", "directory", "access"}


@pytest.mark.parametrize("path", CONTRACT_MODULES, ids=lambda p: p.stem)
def test_a_contract_module_imports_only_pydantic_the_stdlib_and_the_envelope(path: Path) -> None:
    assert contract_outside_imports(path.read_text()) == []


def test_importing_the_contracts_loads_no_service_and_no_io_library() -> None:
    assert loaded_on_import("stafett_shared.contracts", FORBIDDEN + SERVICES) == ""


def test_the_check_catches_a_contract_that_reaches_into_a_service() -> None:
    impure = "import json\nfrom pydantic import BaseModel\nfrom stafett_case.domain import X\n"
    assert contract_outside_imports(impure) == ["stafett_case.domain"]
