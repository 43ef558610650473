"""Create and verify Stafett's JetStream streams and key bucket; an operator's one-shot job.

Runs as the NATS operator user (``admin`` in deploy/nats/cluster.conf), because the services'
own users may neither create nor change a stream. Safe to run again: what exists is verified,
never changed. Reads:

    STAFETT_NATS_URL          nats://host:4222 (or several, comma-separated)
    STAFETT_NATS_USER         the operator user
    STAFETT_NATS_PASSWORD     its password
    STAFETT_NATS_TLS_CA       the CA of the servers' certificates (TLS when set)
    STAFETT_STREAM_REPLICAS   3 in a cluster, 1 on a single node
    STAFETT_STREAM            EVENTS (default)
    STAFETT_SUBJECT_PREFIX    stafett.ev (default)

Exit codes: 0 all present and safe; 1 a stream exists with unsafe settings (fix it by hand,
see deploy/README.md); 2 NATS did not answer in time; 3 the user lacks the operator's rights.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import sys
import time

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from stafett_shared.crypto import KEY_BUCKET, KeyStore
from stafett_shared.eventstore import (
    EventStore,
    StoreUnavailable,
    StreamMisconfigured,
    required_stream_config,
    stream_problems,
)

CHECKPOINTS = "CHECKPOINTS"
CHECKPOINTS_PREFIX = "stafett.checkpoints"
NOTIFY = "NOTIFY"
NOTIFY_PREFIX = "stafett.notify.work"
NOTIFY_DLQ = "NOTIFY_DLQ"
NOTIFY_DLQ_PREFIX = "stafett.notify.dlq"
WAIT_S = 120.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def checkpoints_config(replicas: int) -> StreamConfig:
    """Signed checkpoints are audit records: the same protection as EVENTS."""
    return dataclasses.replace(
        required_stream_config(CHECKPOINTS, CHECKPOINTS_PREFIX, replicas),
        description="Stafett signed checkpoints of the EVENTS Merkle tree",
    )


def notify_config(replicas: int) -> StreamConfig:
    """The notify service's work queue: not audit data, consumed and gone."""
    return StreamConfig(
        name=NOTIFY,
        description="Stafett notification work queue (not audit data)",
        subjects=[f"{NOTIFY_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
        max_msg_size=1024 * 1024,
    )


def notify_dlq_config(replicas: int) -> StreamConfig:
    """The notify service's dead letters, kept until ``stafett notify redrive`` moves them
    back to the work queue (stafett_notify.delivery: its own subjects, apart from the work
    queue's, which a work-queue stream may not share)."""
    return StreamConfig(
        name=NOTIFY_DLQ,
        description="Stafett notifications that could not be delivered (not audit data)",
        subjects=[f"{NOTIFY_DLQ_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
        max_msg_size=1024 * 1024,
    )


async def ensure(js: JetStreamContext, config: StreamConfig, prefix: str | None) -> None:
    """Create a missing stream; verify an existing one when ``prefix`` names its subjects."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
        say(f"{config.name}: exists ({info.config.num_replicas} replicas)")
    except nats.js.errors.NotFoundError:
        info = await js.add_stream(config)
        say(f"{config.name}: created ({config.num_replicas} replicas)")
    if info.config.num_replicas != config.num_replicas:
        say(
            f"{config.name}: note: {info.config.num_replicas} replicas, "
            f"{config.num_replicas} wanted"
        )
    if prefix is not None:
        problems = stream_problems(info.config, prefix)
        if problems:
            raise StreamMisconfigured(f"stream {config.name} is unsafe: " + "; ".join(problems))


DENIED: list[str] = []


async def _on_error(exc: Exception) -> None:
    # nats-py reports a refused publish here, not at the call that made it.
    if "permissions violation" in str(exc):
        DENIED.append(str(exc))


def _tls() -> ssl.SSLContext | None:
    """TLS to NATS when ``STAFETT_NATS_TLS_CA`` names the servers' CA, as the services do."""
    ca = os.environ.get("STAFETT_NATS_TLS_CA")
    if not ca:
        return None
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def connect() -> NATS:
    # One URL or several, comma-separated, as the services take them.
    urls = os.environ.get("STAFETT_NATS_URL", "nats://127.0.0.1:4222")
    return await nats.connect(
        [url.strip() for url in urls.split(",") if url.strip()],
        user=os.environ.get("STAFETT_NATS_USER") or None,
        password=os.environ.get("STAFETT_NATS_PASSWORD") or None,
        tls=_tls(),
        name="stafett-stream-setup",
        connect_timeout=5,
        max_reconnect_attempts=3,
        error_cb=_on_error,
    )


async def setup(replicas: int) -> None:
    nc = await connect()
    try:
        js = nc.jetstream(timeout=10.0)
        store = EventStore(
            nc,
            stream=os.environ.get("STAFETT_STREAM", "EVENTS"),
            subject_prefix=os.environ.get("STAFETT_SUBJECT_PREFIX", "stafett.ev"),
            timeout=10.0,
        )
        # Creates EVENTS with required_stream_config when missing, and refuses an existing
        # stream that allows deletion or has limits, exactly as the services do at start.
        info = await store.ensure_stream(create=True, replicas=replicas)
        say(
            f"{store.stream}: present and safe ({info.config.num_replicas} replicas, "
            f"{info.state.messages} messages)"
        )
        # The bucket needs no key-encryption key to be created; KeyStore wants one to exist.
        keys = KeyStore(js, {"setup": bytes(32)}, "setup", replicas=replicas)
        await keys.ensure_bucket()
        say(f"KV {KEY_BUCKET}: present")
        await ensure(js, checkpoints_config(replicas), CHECKPOINTS_PREFIX)
        await ensure(js, notify_config(replicas), None)
        await ensure(js, notify_dlq_config(replicas), None)
    finally:
        await nc.close()


async def main() -> int:
    replicas = int(os.environ.get("STAFETT_STREAM_REPLICAS", "1"))
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            await setup(replicas)
            return 0
        except StreamMisconfigured as exc:
            say(f"refused: {exc}")
            return 1
        except (
            StoreUnavailable,
            nats.errors.Error,
            nats.js.errors.ServiceUnavailableError,
            OSError,
            TimeoutError,
        ) as exc:
            if DENIED:
                say(f"refused by NATS ({DENIED[0]}): run this job as the operator user")
                return 3
            # A new cluster answers 503 until its nodes have elected a meta leader.
            if time.monotonic() > deadline:
                say(f"NATS did not answer in time: {type(exc).__name__}: {exc}")
                return 2
            say(f"waiting for JetStream ({type(exc).__name__})")
            await asyncio.sleep(2.0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
