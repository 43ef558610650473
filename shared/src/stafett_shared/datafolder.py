"""Which data folder a command that needs the running system's development keys should use.

``stafett up`` announces its data folder in a small marker file while it runs; ``stafett
token`` and ``stafett demo`` look, in order, at ``STAFETT_DATA_DIR``, at that marker (when
the process that wrote it still lives) and at ``./var``, and use the first one that holds the
development issuer's key. They never make a key: a key made anywhere else than in the
running system's folder gives tokens that the system refuses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stafett_shared.settings import CommonSettings

__all__ = [
    "DataFolderNotFound",
    "RunningSystem",
    "announce_running",
    "find_data_folder",
    "marker_path",
    "read_running",
    "withdraw_running",
]

DEV_KEY = Path("keys") / "dev-issuer.pem"


class DataFolderNotFound(Exception):
    """No data folder with the development key: the message says where it was looked for."""


@dataclass(frozen=True)
class RunningSystem:
    data_dir: Path
    pid: int


def marker_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/stafett/running.json`` (gone at log-out), else the same file in
    ``$XDG_STATE_HOME`` (``~/.local/state``)."""
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        return Path(runtime) / "stafett" / "running.json"
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "stafett" / "running.json"


def announce_running(data_dir: Path, *, pid: int | None = None, marker: Path | None = None) -> Path:
    """Write the marker: this process runs Stafett on ``data_dir``. Returns its path."""
    marker = marker or marker_path()
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = marker.with_name(f".{marker.name}.{os.getpid()}")
    body = {"data_dir": str(data_dir.resolve()), "pid": os.getpid() if pid is None else pid}
    partial.write_text(json.dumps(body) + "\n", encoding="utf-8")
    partial.replace(marker)
    return marker


def withdraw_running(marker: Path, *, pid: int | None = None) -> None:
    """Remove the marker if it is still this process's (a later ``up`` may have replaced it)."""
    running = read_running(marker)
    if running is not None and running.pid == (os.getpid() if pid is None else pid):
        marker.unlink(missing_ok=True)


def read_running(marker: Path) -> RunningSystem | None:
    """The marker's contents, or None if it is missing or unreadable."""
    try:
        body = json.loads(marker.read_text(encoding="utf-8"))
        return RunningSystem(Path(body["data_dir"]), int(body["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def find_data_folder(
    settings: CommonSettings, *, marker: Path | None = None, cwd: Path | None = None
) -> Path:
    """The data folder of the system the development tokens are for; never makes a key."""
    marker = marker or marker_path()
    looked: list[str] = []
    if "data_dir" in settings.model_fields_set:
        folder = settings.data_dir.resolve()
        if (folder / DEV_KEY).is_file():
            return folder
        raise DataFolderNotFound(
            f"STAFETT_DATA_DIR er satt til {folder}, men der er ingen utviklingsnøkkel "
            f"({DEV_KEY}). Start Stafett med `stafett up` i den mappen, eller rett "
            "STAFETT_DATA_DIR til datamappen til systemet som kjører."
        )
    looked.append("STAFETT_DATA_DIR: ikke satt")
    running = read_running(marker)
    if running is None:
        looked.append(f"{marker}: finnes ikke (ingen `stafett up` kjører)")
    elif not _alive(running.pid):
        looked.append(f"{marker}: prosess {running.pid} kjører ikke lenger")
    elif (running.data_dir / DEV_KEY).is_file():
        return running.data_dir
    else:
        looked.append(f"{running.data_dir}: ingen {DEV_KEY}")
    folder = ((cwd or Path.cwd()) / "var").resolve()
    if (folder / DEV_KEY).is_file():
        return folder
    looked.append(f"{folder}: ingen {DEV_KEY}")
    raise DataFolderNotFound(
        "Fant ikke datamappen til en kjørende Stafett. Så etter:\n"
        + "\n".join(f"  - {place}" for place in looked)
        + "\nStart Stafett med `stafett up`, eller sett STAFETT_DATA_DIR til datamappen "
        "til systemet som kjører. Ingen ny nøkkel er laget."
    )
