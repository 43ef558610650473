"""Backups of the streams that hold Stafett's record, made and restored by JetStream itself.

A backup is one tar file. For each stream it holds JetStream's own snapshot of the stream
(``<stream>/stream.tar.s2``, what ``$JS.API.STREAM.SNAPSHOT`` streams out) and the
configuration and state the server gave with it (``<stream>/backup.json``); a manifest
(``stafett-backup.json``) names the streams with each snapshot's SHA-256, size, message
count and sequences. A snapshot is the stream's own files: every message keeps its
sequence, subject, headers and stored time, and a restore (``$JS.API.STREAM.RESTORE``)
makes the same stream again, so the hash chains, the Merkle tree and the checkpoints over it
verify unchanged.

Both APIs are plain NATS requests with chunked messages (nats-py has no helper for them):

* snapshot: the server answers the request with the stream's configuration and state, then
  sends the snapshot in chunks to a ``deliver_subject``; each chunk carries a reply subject
  that is answered to let the server send more, and an empty message ends it (status 204,
  or an error status);
* restore: the server answers with a subject to send chunks to; each chunk is a request
  answered when written, and an empty request ends it, answered with the new stream's info.

Streams are taken in the order ``CHECKPOINTS``, ``EVENTS``, then the key bucket, so that
every checkpoint in a backup covers only events the backup holds, and every data key an
event in it needs (made before the event is published) is in it, unless shredded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import nats.js.errors
from nats.aio.client import Client as NATS

__all__ = [
    "DEFAULT_STREAMS",
    "FORMAT",
    "BackupError",
    "StreamBackup",
    "backup",
    "read_manifest",
    "restore",
]

FORMAT = "stafett-backup/1"
DEFAULT_STREAMS = ("CHECKPOINTS", "EVENTS", "KV_STAFETT_KEYS")
"""What a backup holds, in the order it is taken (see the module's text)."""
MANIFEST = "stafett-backup.json"
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHUNK = 128 * 1024
_API_TIMEOUT_S = 30.0
_CHUNK_TIMEOUT_S = 30.0


class BackupError(Exception):
    """A snapshot or restore failed, or a backup file is not whole."""


@dataclass(frozen=True, slots=True)
class StreamBackup:
    """One stream in a backup: its name, the snapshot's size and SHA-256, and its state."""

    name: str
    sha256: str
    size: int
    messages: int
    first_seq: int
    last_seq: int

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "bytes": self.size,
            "messages": self.messages,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


def _answer(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BackupError(f"{what}: the server's answer is not JSON") from exc
    if not isinstance(body, dict):
        raise BackupError(f"{what}: the server's answer is not an object")
    if "error" in body:
        error = body["error"] or {}
        raise BackupError(f"{what}: {error.get('description', 'refused')}")
    return body


async def _snapshot(nc: NATS, stream: str, sink: IO[bytes]) -> tuple[dict[str, Any], str, int]:
    """Stream ``stream``'s snapshot into ``sink``: the server's configuration and state,
    the snapshot's SHA-256 and its size."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    digest = hashlib.sha256()
    size = 0
    try:
        request = {"deliver_subject": inbox, "no_consumers": True, "chunk_size": _CHUNK}
        reply = await nc.request(
            f"$JS.API.STREAM.SNAPSHOT.{stream}",
            json.dumps(request).encode(),
            timeout=_API_TIMEOUT_S,
        )
        answer = _answer(reply.data, f"snapshot of {stream}")
        while True:
            msg = await sub.next_msg(timeout=_CHUNK_TIMEOUT_S)
            if not msg.data:
                status = (msg.headers or {}).get("Status")
                if status not in (None, "204"):
                    reason = (msg.headers or {}).get("Description", "")
                    raise BackupError(f"snapshot of {stream} ended with {status} {reason}")
                break
            sink.write(msg.data)
            digest.update(msg.data)
            size += len(msg.data)
            if msg.reply:
                await nc.publish(msg.reply, b"")
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return answer, digest.hexdigest(), size


async def backup(
    nc: NATS, output: Path, streams: Sequence[str] = DEFAULT_STREAMS
) -> list[StreamBackup]:
    """Write a backup of ``streams`` to ``output`` (mode 0600; written beside it first and
    renamed when whole, so a failed backup leaves no file that looks like one)."""
    folder = str(_folder(output))
    taken: list[StreamBackup] = []
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as archive:
            for stream in streams:
                with tempfile.TemporaryFile(dir=folder) as spool:
                    answer, sha256, size = await _snapshot(nc, stream, spool)
                    state = answer.get("state") or {}
                    meta = {"config": answer.get("config"), "state": state}
                    _add(archive, f"{stream}/backup.json", io.BytesIO(_json(meta)), None)
                    spool.seek(0)
                    _add(archive, f"{stream}/stream.tar.s2", spool, size)
                taken.append(
                    StreamBackup(
                        name=stream,
                        sha256=sha256,
                        size=size,
                        messages=int(state.get("messages", 0)),
                        first_seq=int(state.get("first_seq", 0)),
                        last_seq=int(state.get("last_seq", 0)),
                    )
                )
            manifest = {
                "format": FORMAT,
                "made_at": datetime.now(UTC).isoformat(),
                "streams": [s.describe() for s in taken],
            }
            _add(archive, MANIFEST, io.BytesIO(_json(manifest)), None)
        _finish(Path(partial), output)
    except BaseException:
        _finish(Path(partial), None)
        raise
    return taken


def _folder(output: Path) -> Path:
    return output.resolve().parent


def _finish(partial: Path, output: Path | None) -> None:
    """Put the whole backup in its place, or (``output`` None) remove what was written."""
    if output is None:
        partial.unlink(missing_ok=True)
    else:
        partial.replace(output)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def _add(archive: tarfile.TarFile, name: str, content: IO[bytes], size: int | None) -> None:
    if size is None:
        data = content.read()
        size = len(data)
        content = io.BytesIO(data)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, content)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a backup file (what it holds), refusing a file of another kind."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            member = archive.extractfile(MANIFEST)
            if member is None:
                raise BackupError("the backup has no manifest")
            manifest = json.loads(member.read())
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise BackupError(f"{path.name} is not a Stafett backup") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path.name} is not a backup of format {FORMAT}")
    streams = manifest.get("streams")
    if not isinstance(streams, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and _STREAM_NAME.fullmatch(s["name"])
        and isinstance(s.get("sha256"), str)
        for s in streams
    ):
        raise BackupError(f"the manifest of {path.name} is malformed")
    return manifest


async def restore(
    nc: NATS,
    path: Path,
    *,
    replicas: int | None = None,
    streams: Sequence[str] | None = None,
) -> list[StreamBackup]:
    """Restore the streams of a backup into a JetStream that has none of them.

    Each snapshot's SHA-256 is checked before anything is sent. ``replicas`` replaces the
    replica count the streams had (a cluster's three restored on one node, say). If any of
    the streams exists, nothing is restored."""
    manifest = read_manifest(path)
    wanted = [s for s in manifest["streams"] if streams is None or s["name"] in streams]
    js = nc.jetstream()
    for entry in wanted:  # all or nothing: no stream is restored beside one that exists
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.stream_info(str(entry["name"]))
            raise BackupError(f"the stream {entry['name']} exists; nothing was restored")
    _check_sums(path, wanted)  # every snapshot whole before the first is sent
    restored: list[StreamBackup] = []
    with tarfile.open(path, mode="r:") as archive:
        for entry in wanted:
            name = str(entry["name"])
            try:
                meta_file = archive.extractfile(f"{name}/backup.json")
                snapshot = archive.extractfile(f"{name}/stream.tar.s2")
            except KeyError:
                meta_file = snapshot = None
            if meta_file is None or snapshot is None:
                raise BackupError(f"the backup lacks the snapshot of {name}")
            meta = json.loads(meta_file.read())
            config = dict(meta["config"])
            if replicas is not None:
                config["num_replicas"] = replicas
            await _restore_stream(nc, name, config, meta["state"], snapshot)
            restored.append(
                StreamBackup(
                    name=name,
                    sha256=str(entry["sha256"]),
                    size=int(entry["bytes"]),
                    messages=int(entry["messages"]),
                    first_seq=int(entry["first_seq"]),
                    last_seq=int(entry["last_seq"]),
                )
            )
    return restored


def _check_sums(path: Path, wanted: list[dict[str, Any]]) -> None:
    with tarfile.open(path, mode="r:") as archive:
        for entry in wanted:
            name = str(entry["name"])
            try:
                snapshot = archive.extractfile(f"{name}/stream.tar.s2")
            except KeyError:
                snapshot = None
            if snapshot is None:
                raise BackupError(f"the backup lacks the snapshot of {name}")
            digest = hashlib.sha256()
            while block := snapshot.read(1 << 20):
                digest.update(block)
            if digest.hexdigest() != entry["sha256"]:
                raise BackupError(f"the snapshot of {name} is damaged (SHA-256 differs)")


async def _restore_stream(
    nc: NATS, name: str, config: dict[str, Any], state: dict[str, Any], snapshot: IO[bytes]
) -> None:
    reply = await nc.request(
        f"$JS.API.STREAM.RESTORE.{name}",
        json.dumps({"config": config, "state": state}).encode(),
        timeout=_API_TIMEOUT_S,
    )
    deliver = _answer(reply.data, f"restore of {name}").get("deliver_subject")
    if not isinstance(deliver, str) or not deliver:
        raise BackupError(f"restore of {name}: the server named no subject for the chunks")
    while chunk := snapshot.read(_CHUNK):
        answer = await nc.request(deliver, chunk, timeout=_CHUNK_TIMEOUT_S)
        if answer.data:
            _answer(answer.data, f"restore of {name}")
    done = await nc.request(deliver, b"", timeout=_API_TIMEOUT_S * 4)
    info = _answer(done.data, f"restore of {name}")
    restored = (info.get("state") or {}).get("messages")
    if restored != state.get("messages"):
        raise BackupError(
            f"restore of {name}: {restored} messages restored, the backup holds "
            f"{state.get('messages')}"
        )
