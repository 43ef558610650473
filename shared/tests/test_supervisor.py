"""The embedded runner's supervisor: a process that dies is started again after a growing,
capped wait, and one that keeps dying is reported with its log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from stafett_shared.embedded import Backoff, ServiceProcess, Supervisor


def test_the_wait_doubles_from_the_first_and_stops_at_the_cap() -> None:
    backoff = Backoff(first_s=0.5, cap_s=5.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def _exits(code: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    process.wait()
    return process


class _Nats:
    """nats-server that stays up (a real process that sleeps)."""

    log_file = None

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


class _System:
    """An embedded system of one service whose every start dies at once."""

    def __init__(self, folder: Path) -> None:
        self.nats = _Nats()
        self.running = [ServiceProcess("case", 1, _exits(3))]
        self.spawned = 0
        self.folder = folder

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def spawn(self, _name: str) -> subprocess.Popen[bytes]:
        self.spawned += 1
        return _exits(3)


@pytest.fixture
def system(tmp_path: Path) -> Any:
    made = _System(tmp_path)
    yield made
    made.nats.process.kill()
    made.nats.process.wait()


def test_a_process_that_keeps_dying_is_restarted_later_and_later_and_reported(
    system: _System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stafett_shared.embedded.port_in_use", lambda _port: False)
    now = [100.0]
    lines: list[str] = []
    supervisor = Supervisor(
        cast("Any", system),
        lines.append,
        Backoff(first_s=1.0, cap_s=4.0, stable_s=30.0, keeps_dying=3),
        clock=lambda: now[0],
    )
    waits = []
    for _ in range(5):
        supervisor.step()  # notes the death
        death = lines[-1]
        assert death.startswith("case stoppet uventet (avslutningskode 3).")
        waits.append(death.split("om ")[1].split(" på")[0])
        supervisor.step()  # too early: nothing
        assert system.spawned == len(waits) - 1
        now[0] += 4.0
        supervisor.step()  # restarts
        assert lines[-1] == "Starter case igjen …"
    assert waits == ["1,0 s", "2,0 s", "4,0 s", "4,0 s", "4,0 s"]
    keeps_dying = [line for line in lines if "ganger på rad" in line]
    assert len(keeps_dying) == 3
    assert str(system.log_path("case")) in keeps_dying[0]
    assert "NATS" not in "".join(lines)  # the server that stays up is left alone

    # A process that ran for a while before it died starts the row anew.
    now[0] += 31.0
    supervisor.step()
    assert "om 1,0 s" in lines[-1]
    assert "ganger på rad" not in lines[-1]
    assert [r.exit_code for r in supervisor.recoveries] == [3] * 6
