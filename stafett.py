#!/usr/bin/env python3
"""Stafett's launcher: needs only Python 3.11+ and the package registry.

    python3 stafett.py up      start Stafett (NATS and the four services) on this machine
    python3 stafett.py test    run the whole test suite: ruff, mypy --strict, pytest

It makes the virtual environment ``.venv`` on first use and installs the workspace's
distributions pinned by ``constraints.txt``; later runs reinstall only when a pyproject or
the constraints changed. Any other arguments go to the ``stafett`` command.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
ASYNCAPI_CHECK = ROOT / "tests" / "asyncapi"
DISTRIBUTIONS = [
    "shared[dev]",
    "services/case",
    "services/log",
    "services/consent",
    "services/notify",
    "services/portal",
]
MYPY_TARGETS = [
    "shared/src/stafett_shared",
    "services/case/src/stafett_case",
    "services/log/src/stafett_log",
    "services/consent/src/stafett_consent",
    "services/notify/src/stafett_notify",
    "services/portal/src/stafett_portal",
    "shared/tests",
    "tests",
    "bench",
    "deploy",
    "examples",
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


class PipProgress:
    """Turns pip's line for every step into a few lines a person can follow.

    On a terminal one line counts the packages as pip finds and downloads them; elsewhere
    (a CI log) a line per phase and one per twenty packages. pip's own lines are kept back,
    and the last of them shown if it fails; its warnings and errors (stderr) pass through.
    """

    EVERY = 20  # packages between two counting lines when the output is not a terminal

    def __init__(self, out: TextIO, *, live: bool, expected: int) -> None:
        self.out = out
        self.live = live
        self.expected = expected
        self.found = 0
        self.downloaded = 0
        self.phase = ""
        self.status_shown = False
        self.started = time.monotonic()
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def _say(self, text: str) -> None:
        self._end_status()
        self.out.write(text + "\n")
        self.out.flush()

    def _status(self, text: str) -> None:
        width = shutil.get_terminal_size().columns - 1
        self.out.write("\r" + text[:width] + "\x1b[K")
        self.out.flush()
        self.status_shown = True

    def _end_status(self) -> None:
        if self.status_shown:  # the next line takes the counting line's place
            self.out.write("\r\x1b[K")
            self.status_shown = False

    def _enter(self, phase: str, text: str) -> None:
        if self.phase != phase:
            self.phase = phase
            self._say(text)

    def _counted(self) -> str:
        if self.found <= self.expected:
            return f"{self.found} av ca. {self.expected}"
        return str(self.found)

    def feed(self, line: str) -> None:
        line = line.rstrip()
        self.tail.append(line)
        found = re.match(
            r"(Collecting|Processing|Obtaining|Requirement already satisfied:) (\S+)", line
        )
        if found:
            self._enter("find", "  Finner og henter pakker …")
            self.found += 1
            name = found.group(2).rsplit("/", 1)[-1]
            if name.endswith(".whl"):  # a wheel file: its name up to the version
                name = name.partition("-")[0]
            if self.live:
                self._status(f"  {self._counted()} pakker: {name}")
            elif self.found % self.EVERY == 0:
                self._say(f"  … {self.found} pakker")
            return
        download = re.match(r"\s+Downloading (?:\S*/)?(\S+?)(?:-\d\S*)? \((.+)\)$", line)
        if download:
            self.downloaded += 1
            if self.live:
                name, size = download.groups()
                self._status(f"  {self._counted()} pakker: laster ned {name} ({size})")
            return
        if line.startswith(("Building wheels for collected packages", "  Building editable")):
            self._summarise_found()
            self._enter("build", "  Bygger Stafett-pakkene …")
        elif line.startswith("Installing collected packages:"):
            self._summarise_found()
            count = len(line.partition(":")[2].split(","))
            self._enter("install", f"  Installerer {_packages(count)} …")

    def _summarise_found(self) -> None:
        if self.phase == "find":
            self.phase = "found"
            self._say(f"  {_packages(self.found)} funnet, {self.downloaded} lastet ned.")

    def finish(self, returncode: int) -> None:
        self._summarise_found()
        if returncode == 0:
            self._say(f"  Ferdig på {time.monotonic() - self.started:.0f} s.")
            return
        self._say("  Siste linjer fra pip:")
        for line in self.tail:
            self._say("    " + line)


def _packages(count: int) -> str:
    return f"{count} pakke" if count == 1 else f"{count} pakker"


def _expected_packages() -> int:
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    return len([p for p in pins if p.strip() and not p.startswith("#")]) + len(DISTRIBUTIONS)


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
        print(
            "Installerer avhengigheter (låst i constraints.txt); "
            "første gang tar det et minutt eller to …",
            flush=True,
        )
    else:
        print(
            "Oppdaterer avhengigheter (en pyproject.toml eller constraints.txt er endret) …",
            flush=True,
        )
    command = [
        str(_python()),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    for dist in DISTRIBUTIONS:
        folder, _, extras = dist.partition("[")
        command += ["-e", str(ROOT / folder) + (f"[{extras}" if extras else "")]
    env = dict(os.environ, PIP_CONSTRAINT=str(ROOT / "constraints.txt"), PYTHONUNBUFFERED="1")
    progress = PipProgress(sys.stdout, live=sys.stdout.isatty(), expected=_expected_packages())
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            progress.feed(line)
    progress.finish(pip.returncode)
    if pip.returncode != 0:
        sys.exit(f"Installasjonen stoppet: pip avsluttet med kode {pip.returncode}.")
    stamp_file.write_text(stamp)


def _run(*args: str) -> int:
    print("$ " + " ".join(args), flush=True)
    tool = str(VENV / "bin" / args[0])
    return subprocess.run([tool, *args[1:]], cwd=ROOT, check=False).returncode


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium (Playwright's own browser download cannot
    be used): install it with apt when it is missing and this runs as root, as in CI."""
    if os.environ.get("STAFETT_CHROMIUM") or shutil.which("chromium"):
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "Chromium mangler, og nettlesertestene hoppes over. Installer pakken «chromium» "
            "(som root gjør testkommandoen det selv).",
            flush=True,
        )
        return
    print("Installerer Chromium for nettlesertestene (apt-get) …", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, env=env, check=False)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        stdout=subprocess.DEVNULL,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        print("Kunne ikke installere Chromium med apt-get.", file=sys.stderr, flush=True)


def ensure_asyncapi_schemas() -> None:
    """tests/asyncapi validates docs/asyncapi.yaml against the official AsyncAPI JSON Schemas,
    which only the npm package @asyncapi/specs ships: install it with npm, at the version
    tests/asyncapi/package-lock.json pins, when it is missing (Debian's npm by apt as root,
    as in CI, when npm itself is missing)."""
    lock = json.loads((ASYNCAPI_CHECK / "package-lock.json").read_text(encoding="utf-8"))
    wanted = lock["packages"]["node_modules/@asyncapi/specs"]["version"]
    installed = ASYNCAPI_CHECK / "node_modules" / "@asyncapi" / "specs" / "package.json"
    if (
        installed.exists()
        and json.loads(installed.read_text(encoding="utf-8")).get("version") == wanted
    ):
        return
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not shutil.which("npm") and root and shutil.which("apt-get"):
        print("Installerer npm for kontrollen av AsyncAPI-dokumentet (apt-get) …", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(
            ["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, env=env, check=False
        )
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "npm"],
            stdout=subprocess.DEVNULL,
            env=env,
            check=False,
        )
    npm = shutil.which("npm")
    if npm is None:
        print(
            "npm mangler: AsyncAPI-dokumentet kan ikke kontrolleres.", file=sys.stderr, flush=True
        )
        return
    print("$ npm ci (tests/asyncapi: @asyncapi/specs)", flush=True)
    result = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=ASYNCAPI_CHECK,
        check=False,
    )
    if result.returncode != 0:
        print("Kunne ikke installere @asyncapi/specs med npm.", file=sys.stderr, flush=True)


def run_tests(extra: list[str]) -> int:
    if _run("ruff", "check", ".") != 0 or _run("ruff", "format", "--check", ".") != 0:
        return 1
    targets = [t for t in MYPY_TARGETS if (ROOT / t).exists()]
    targets += sorted(
        p.relative_to(ROOT).as_posix() for p in ROOT.glob("services/*/tests") if any(p.glob("*.py"))
    )
    if _run("mypy", *targets) != 0:
        return 1
    ensure_chromium()
    ensure_asyncapi_schemas()
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
