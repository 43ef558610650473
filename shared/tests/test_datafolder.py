"""`stafett token` and `stafett demo` find the running system's data folder, or say where
they looked; they never make a development key."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stafett_shared import cli
from stafett_shared.auth import DevIssuer, TokenVerifier
from stafett_shared.datafolder import (
    DataFolderNotFound,
    announce_running,
    find_data_folder,
    marker_path,
    read_running,
    withdraw_running,
)
from stafett_shared.settings import CommonSettings


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run-time folder for the marker and a working folder without ./var, both private."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("STAFETT_DATA_DIR", raising=False)
    monkeypatch.chdir(work)
    return tmp_path


def with_key(folder: Path) -> Path:
    DevIssuer.load_or_create(folder)
    return folder


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_marker_lives_in_the_runtime_folder_else_in_the_state_folder(tmp_path: Path) -> None:
    assert marker_path({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "stafett/running.json"
    state = tmp_path / "state"
    assert marker_path({"XDG_STATE_HOME": str(state)}) == state / "stafett/running.json"
    assert marker_path({"XDG_RUNTIME_DIR": "relative"}).parts[-4:] == (
        ".local",
        "state",
        "stafett",
        "running.json",
    )


def test_a_running_system_is_found_from_any_folder(places: Path) -> None:
    data = with_key(places / "data")
    marker = announce_running(data)
    assert marker == places / "run" / "stafett" / "running.json"
    assert find_data_folder(CommonSettings()) == data.resolve()


def test_the_data_folder_setting_comes_first_and_is_not_passed_over(
    places: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    announce_running(with_key(places / "running"))
    chosen = with_key(places / "chosen")
    monkeypatch.setenv("STAFETT_DATA_DIR", str(chosen))
    assert find_data_folder(CommonSettings()) == chosen.resolve()
    monkeypatch.setenv("STAFETT_DATA_DIR", str(places / "empty"))
    with pytest.raises(DataFolderNotFound, match="STAFETT_DATA_DIR er satt til"):
        find_data_folder(CommonSettings())
    assert not (places / "empty").exists()


def test_a_marker_whose_process_has_ended_is_passed_over_for_var(places: Path) -> None:
    announce_running(with_key(places / "old"), pid=a_dead_pid())
    local = with_key(places / "elsewhere" / "var")
    assert find_data_folder(CommonSettings()) == local.resolve()


def test_nothing_found_names_every_place_looked_and_makes_no_key(places: Path) -> None:
    announce_running(with_key(places / "old"), pid=a_dead_pid())
    with pytest.raises(DataFolderNotFound) as caught:
        find_data_folder(CommonSettings())
    message = str(caught.value)
    assert "STAFETT_DATA_DIR: ikke satt" in message
    assert "kjører ikke lenger" in message
    assert str(places / "elsewhere" / "var") in message
    assert "stafett up" in message
    assert not (places / "elsewhere" / "var").exists()


def test_the_marker_is_withdrawn_only_by_the_process_that_wrote_it(places: Path) -> None:
    marker = announce_running(places / "data", pid=12345)
    withdraw_running(marker)
    assert read_running(marker) is not None
    withdraw_running(marker, pid=12345)
    assert not marker.exists()
    withdraw_running(marker)  # already gone: nothing to do


async def test_stafett_token_from_another_folder_signs_with_the_running_systems_key(
    places: Path,
) -> None:
    data = with_key(places / "data")
    announce_running(data)
    result = CliRunner().invoke(cli.app, ["token", "admin"])
    assert result.exit_code == 0, result.output
    verifier = TokenVerifier(dev_issuer=DevIssuer.load(data))
    principal = await verifier.verify(result.output.strip())
    await verifier.aclose()
    assert principal.id == "admin"
    assert not (places / "elsewhere" / "var").exists()


def test_stafett_token_and_demo_refuse_without_a_running_system(places: Path) -> None:
    for command in (["token", "admin"], ["demo"]):
        result = CliRunner().invoke(cli.app, command)
        assert result.exit_code == 1, result.output
        assert "Fant ikke datamappen" in result.output
        assert "STAFETT_DATA_DIR" in result.output
    assert not (places / "elsewhere" / "var").exists()


@dataclass
class FakeService:
    name: str = "case"
    url: str = "http://127.0.0.1:1"


class FakeSystem:
    """Stands in for the embedded system: `up`'s own bookkeeping is what is tested."""

    last: FakeSystem | None = None

    def __init__(self, data_dir: Path, *, nats_port: int) -> None:
        self.data_dir = data_dir
        self.nats = type("Nats", (), {"url": f"nats://127.0.0.1:{nats_port}"})()
        self.running = [FakeService()]
        self.stopped = False
        self.seen: list[bool] = []
        FakeSystem.last = self

    def start(self) -> None:
        with_key(self.data_dir)

    def supervise(self, report: Callable[[str], None]) -> None:
        """Whether the folder is announced while `up` runs; then a Ctrl-C ends it."""
        del report
        self.seen.append(marker_path().exists())
        raise KeyboardInterrupt

    def stop(self) -> None:
        self.stopped = True


def test_up_announces_its_data_folder_while_it_runs(
    places: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "EmbeddedSystem", FakeSystem)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(cli.app, ["up", "--data-dir", "data", "--no-demo"])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert result.exit_code == 0, result.output
    system = FakeSystem.last
    assert system is not None and system.stopped
    assert system.seen == [True]
    assert not marker_path().exists()
