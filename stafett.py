#!/usr/bin/env python3
"""Stafett's launcher: needs only Python 3.11+ and the package registry.

    python3 stafett.py up      start Stafett (NATS and the four services) on this machine
    python3 stafett.py test    run the whole test suite: ruff, mypy --strict, pytest

It makes the virtual environment ``.venv`` on first use and installs the workspace's
distributions pinned by ``constraints.txt``; later runs reinstall only when a pyproject or
the constraints changed. Any other arguments go to the ``stafett`` command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
DISTRIBUTIONS = [
    "shared[dev]",
    "services/case",
    "services/log",
    "services/consent",
    "services/notify",
]
MYPY_TARGETS = [
    "shared/src/stafett_shared",
    "services/case/src/stafett_case",
    "services/log/src/stafett_log",
    "services/consent/src/stafett_consent",
    "services/notify/src/stafett_notify",
    "shared/tests",
    "tests",
    "bench",
    "deploy",
]


def _python() -> Path:
    return VENV / "bin" / "python"


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted(
        [
            ROOT / "constraints.txt",
            *ROOT.glob("shared/pyproject.toml"),
            *ROOT.glob("services/*/pyproject.toml"),
        ]
    ):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - the launcher may meet an older Python
        sys.exit("Stafett needs Python 3.11 or newer.")
    stamp_file = VENV / ".stafett-installed"
    stamp = _stamp()
    if stamp_file.exists() and stamp_file.read_text() == stamp and _python().exists():
        return
    if not _python().exists():
        print("Lager virtuelt miljø i .venv …", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("Installerer avhengigheter (låst i constraints.txt) …", flush=True)
    command = [
        str(_python()),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    for dist in DISTRIBUTIONS:
        folder, _, extras = dist.partition("[")
        command += ["-e", str(ROOT / folder) + (f"[{extras}" if extras else "")]
    env = dict(os.environ, PIP_CONSTRAINT=str(ROOT / "constraints.txt"))
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    stamp_file.write_text(stamp)


def _run(*args: str) -> int:
    print("$ " + " ".join(args), flush=True)
    tool = str(VENV / "bin" / args[0])
    return subprocess.run([tool, *args[1:]], cwd=ROOT, check=False).returncode


def run_tests(extra: list[str]) -> int:
    if _run("ruff", "check", ".") != 0 or _run("ruff", "format", "--check", ".") != 0:
        return 1
    targets = [t for t in MYPY_TARGETS if (ROOT / t).exists()]
    targets += sorted(
        p.relative_to(ROOT).as_posix() for p in ROOT.glob("services/*/tests") if any(p.glob("*.py"))
    )
    if _run("mypy", *targets) != 0:
        return 1
    code = _run("pytest", *extra)
    if code == 5:  # pytest found no test: that is a failure here, not a pass
        print("pytest collected no tests", file=sys.stderr)
        return 1
    return code


def main(argv: list[str]) -> int:
    ensure_venv()
    if argv[:1] == ["test"]:
        return run_tests(argv[1:])
    os.execv(str(VENV / "bin" / "stafett"), ["stafett", *argv])  # noqa: S606
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
