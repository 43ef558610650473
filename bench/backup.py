"""Backup and restore: how fast ``stafett backup`` and ``stafett restore`` move a stream.

Sizing a deployment (docs/operators.md, "Sizing") needs the time a backup and a restore of
years of events take. The script starts its own nats-servers in a temporary folder, fills
``EVENTS`` with log-entry-sized commits (one CloudEvent each with a random encrypted-looking
text, so that compression finds what it would find in real ciphertext, and the two chain
hashes; about 1 KB as stored, the first lines state the exact size), then times, on the
same data:

* the read floor: every message read with batched direct get (``EventStore.read``, how
  ``stafett audit export`` and a projector's replay read), nothing written;
* ``stafett_shared.backup.backup`` of ``EVENTS`` to a file (JetStream's snapshot);
* ``stafett_shared.backup.restore`` of that file into an empty nats-server with
  ``sync_interval: always`` (a single node's production setting) and into one with
  JetStream's default sync interval (a cluster's).

The source server runs with the default sync interval so that filling it takes seconds, not
minutes; a snapshot reads the stored files and is not affected by it.

    .venv/bin/python bench/backup.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from benchlib import drive, server_version
from stafett_shared.backup import backup, restore
from stafett_shared.embedded import NatsServerProcess, free_port
from stafett_shared.envelope import encode_commit
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.testing.events import make_event

FULL = 100_000
QUICK = 10_000


def _commit(case_id: str) -> bytes:
    text = "enc:v2:" + base64.urlsafe_b64encode(os.urandom(300)).decode().rstrip("=")
    event = make_event(
        case_id,
        "no.stafett.log.entry_appended.v1",
        {"entry_id": new_id(), "case_id": case_id, "kind": "note", "text": text},
        source="stafett/log",
    )
    event = event.model_copy(update={"prevhash": "0" * 64, "hash": os.urandom(32).hex()})
    return encode_commit([event])


async def _fill(nc: NATS, messages: int) -> int:
    store = EventStore(nc)
    await store.ensure_stream(create=True)
    js = nc.jetstream()
    cases = [new_id() for _ in range(max(messages // 50, 1))]
    bodies = [(cases[i % len(cases)], _commit(cases[i % len(cases)])) for i in range(messages)]

    async def publish(job: tuple[str, bytes]) -> None:
        await js.publish(f"stafett.ev.log.{job[0]}", job[1])

    await drive(32, bodies, publish)
    return len(bodies[0][1])


async def _read_all(nc: NATS) -> int:
    store = EventStore(nc)
    seq, count = 1, 0
    while batch := await store.read(seq, limit=256, decode=False):
        count += len(batch)
        seq = batch[-1].seq + 1
    return count


def _row(name: str, messages: int, seconds: float, size: int) -> str:
    return (
        f"{name:<40} {messages:>9,} msgs {seconds:>7.2f} s {messages / seconds:>10,.0f} msgs/s "
        f"{size / seconds / 1e6:>7.1f} MB/s"
    )


async def main(messages: int) -> None:
    with tempfile.TemporaryDirectory(prefix="stafett-bench-backup-") as tmp:
        folder = Path(tmp)
        source = NatsServerProcess(folder / "source", free_port(), sync_always=False)
        always = NatsServerProcess(folder / "always", free_port())
        default = NatsServerProcess(folder / "default", free_port(), sync_always=False)
        for server in (source, always, default):
            server.start()
        try:
            nc = await nats.connect(source.url)
            started = time.perf_counter()
            body = await _fill(nc, messages)
            filled = time.perf_counter() - started
            info = await nc.jetstream().stream_info("EVENTS")
            stored = info.state.bytes
            print(f"{server_version()}, three servers on this machine")
            print(
                f"EVENTS: {info.state.messages:,} commits of {body} bytes of data, "
                f"{stored / info.state.messages:.0f} bytes each as stored "
                f"({stored / 1e6:.1f} MB; filled in {filled:.1f} s)"
            )
            started = time.perf_counter()
            read = await _read_all(nc)
            print(_row("read floor (EventStore.read)", read, time.perf_counter() - started, stored))
            output = folder / "events.backup"
            started = time.perf_counter()
            taken = await backup(nc, output, ("EVENTS",))
            took = time.perf_counter() - started
            print(_row("stafett backup (snapshot)", taken[0].messages, took, stored))
            print(f"{'':<40} backup file {output.stat().st_size / 1e6:.1f} MB")
            await nc.close()
            for name, server in (("sync_interval: always", always), ("default sync", default)):
                fresh = await nats.connect(server.url)
                started = time.perf_counter()
                restored = await restore(fresh, output)
                took = time.perf_counter() - started
                print(_row(f"stafett restore, {name}", restored[0].messages, took, stored))
                await fresh.close()
        finally:
            for server in (source, always, default):
                server.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} messages, not {FULL:,}")
    args = parser.parse_args()
    asyncio.run(main(QUICK if args.quick else FULL))
