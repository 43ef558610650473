"""A backup file is untrusted input to ``stafett restore``: only a whole Stafett backup with a
well-formed manifest is read (the restore itself is tested over real NATS in
tests/integration/test_backup_and_keys.py)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from stafett_shared.backup import FORMAT, BackupError, read_manifest


def _backup(path: Path, manifest: Any, name: str = "stafett-backup.json") -> Path:
    with tarfile.open(path, "w") as archive:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_a_well_formed_manifest_is_read(tmp_path: Path) -> None:
    manifest = {"format": FORMAT, "streams": [{"name": "EVENTS", "sha256": "00"}]}
    assert read_manifest(_backup(tmp_path / "b", manifest)) == manifest


@pytest.mark.parametrize(
    "manifest",
    [
        {"format": "stafett-backup/0", "streams": []},
        {"format": FORMAT, "streams": "EVENTS"},
        {"format": FORMAT, "streams": [{"name": "../EVENTS", "sha256": "00"}]},
        {"format": FORMAT, "streams": [{"name": "EVENTS.>", "sha256": "00"}]},
        {"format": FORMAT, "streams": [{"name": "EVENTS"}]},
        [FORMAT],
    ],
)
def test_a_malformed_manifest_is_refused(tmp_path: Path, manifest: Any) -> None:
    with pytest.raises(BackupError):
        read_manifest(_backup(tmp_path / "b", manifest))


def test_a_file_that_is_no_backup_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hei")
    with pytest.raises(BackupError, match="not a Stafett backup"):
        read_manifest(text)
    with pytest.raises(BackupError, match="not a Stafett backup"):
        read_manifest(_backup(tmp_path / "other.tar", {"format": FORMAT}, name="other.json"))
