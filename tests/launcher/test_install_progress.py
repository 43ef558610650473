"""The launcher's first install: pip's output condensed into lines a person can follow."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

import pytest

PIP_OUTPUT = """\
Obtaining file:///checkout/shared
  Installing build dependencies: started
  Installing build dependencies: finished with status 'done'
Collecting nats-py>=2.16 (from stafett-shared==0.1.0)
  Downloading nats_py-2.16.0-py3-none-any.whl (93 kB)
Processing /wheels/uvicorn-0.54.0-py3-none-any.whl (from stafett-shared==0.1.0)
Requirement already satisfied: pip in ./.venv/lib/python3.11/site-packages (23.2.1)
Building wheels for collected packages: stafett-shared
  Building editable for stafett-shared (pyproject.toml): started
  Building editable for stafett-shared (pyproject.toml): finished with status 'done'
Successfully built stafett-shared
Installing collected packages: nats-py, uvicorn, stafett-shared
Successfully installed nats-py-2.16.0 uvicorn-0.54.0 stafett-shared-0.1.0
"""


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "stafett.py"
    spec = importlib.util.spec_from_file_location("stafett_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_log_gets_a_line_per_phase_and_none_of_pips_own(launcher: ModuleType) -> None:
    out = io.StringIO()
    progress = launcher.PipProgress(out, live=False, expected=10)
    progress.EVERY = 2
    for line in PIP_OUTPUT.splitlines(keepends=True):
        progress.feed(line)
    progress.finish(0)
    lines = out.getvalue().splitlines()
    assert lines[:6] == [
        "  Finner og henter pakker …",
        "  … 2 pakker",
        "  … 4 pakker",
        "  4 pakker funnet, 1 lastet ned.",
        "  Bygger Stafett-pakkene …",
        "  Installerer 3 pakker …",
    ]
    assert lines[6].startswith("  Ferdig på ")
    assert len(lines) == 7
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_one_line_that_counts_and_names_the_package(
    launcher: ModuleType,
) -> None:
    out = io.StringIO()
    progress = launcher.PipProgress(out, live=True, expected=10)
    for line in PIP_OUTPUT.splitlines(keepends=True)[:6]:
        progress.feed(line)
    text = out.getvalue()
    assert "\r  1 av ca. 10 pakker: shared" in text
    assert "\r  2 av ca. 10 pakker: laster ned nats_py (93 kB)" in text
    assert "\r  3 av ca. 10 pakker: uvicorn" in text
    assert text.count("\n") == 1  # only the phase line; the count is rewritten in place


def test_a_failure_shows_the_last_lines_pip_printed(launcher: ModuleType) -> None:
    out = io.StringIO()
    progress = launcher.PipProgress(out, live=False, expected=10)
    progress.feed("Collecting no-such-package==1.0\n")
    progress.finish(1)
    assert "Siste linjer fra pip:" in out.getvalue()
    assert "    Collecting no-such-package==1.0" in out.getvalue()
    assert "Ferdig" not in out.getvalue()
