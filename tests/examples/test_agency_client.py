"""The agency client in examples/ (docs/integrators.md, "Worked example"), run as an agency
would run it: a process of its own against the embedded system on real NATS, with NAV
Grenland's registered client, a consent naming NAV and an entry in the log. It follows the
feed, resumes from its cursor file, verifies the entry's inclusion in a signed checkpoint,
and fails on a changed proof or a changed checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stafett_consent.testing import child_registration, nav_consent
from stafett_shared.auth import DevIssuer
from stafett_shared.cli import _load_region
from stafett_shared.embedded import EmbeddedSystem, free_port
from stafett_shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "agency_client.py"
HOLDER = "ann-kristin-allum"
TEXT = "Eleven vil prøve sommerjobb gjennom NAV."
ENTRY = "no.stafett.feed.entry_appended.v1"
CONSENT = "no.stafett.feed.consent_changed.v1"


class _Writer:
    """Writes over HTTP as a person, each after the one before is in every read model the
    next one asks (``Stafett-Min-Seq``)."""

    def __init__(self, http: httpx.Client, issuer: DevIssuer) -> None:
        self.http, self.issuer, self.seq = http, issuer, 0

    def post(self, url: str, body: dict[str, Any] | None, person: str) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.issuer.issue(person)}",
            "Stafett-Min-Seq": str(self.seq),
        }
        answer = self.http.post(url, json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        self.seq = max(self.seq, int(answer.headers.get("Stafett-Seq", "0")))
        result: dict[str, Any] = answer.json()
        return result


def _case_with_nav_consent_and_entry(writer: _Writer, urls: dict[str, str]) -> tuple[str, str]:
    child = child_registration(12, [("Mor", True), ("Far", True)])
    registered = writer.post(f"{urls['consent']}/api/v1/children", child, HOLDER)
    case = writer.post(
        f"{urls['case']}/api/v1/cases",
        {
            "unit_id": "siljan-ungdomsskole",
            "level": 1,
            "child": {"national_id": child["national_id"]},
            "concern": "Eleven virker sliten og har mye fravær.",
        },
        HOLDER,
    )
    case_id = str(case["id"])
    consent = writer.post(f"{urls['consent']}/api/v1/consents", nav_consent(case_id), HOLDER)
    for guardian in registered["guardians"]:
        writer.post(
            f"{urls['consent']}/api/v1/consents/{consent['id']}/signatures",
            {"grantor_person_id": guardian["id"]},
            guardian["id"],
        )
    entry = writer.post(
        f"{urls['log']}/api/v1/logs/{case_id}/entries",
        {"kind": "note", "text": TEXT, "occurred_at": datetime.now(UTC).isoformat()},
        HOLDER,
    )
    return case_id, str(entry["id"])


def _run(
    data: Path, urls: dict[str, str], cursor: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    stafett = Path(sys.executable).parent / "stafett"
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--consent-url",
            urls["consent"],
            "--log-url",
            urls["log"],
            "--client",
            "client-nav-grenland",
            "--stafett",
            str(stafett),
            "--cursor-file",
            str(cursor),
            *extra,
        ],
        capture_output=True,
        text=True,
        env={
            "PATH": str(stafett.parent),
            "STAFETT_DATA_DIR": str(data),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        },
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_the_example_client_follows_the_feed_and_verifies_an_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ports = {name: free_port() for name in ("consent", "case", "log")}
    system = EmbeddedSystem(data, nats_port=free_port(), ports=ports, services=list(ports))
    system.start(ready_timeout_s=120)
    try:
        region = ROOT / "data" / "grenland.yaml"
        settings = CommonSettings()
        assert _load_region(system, settings, data, region) == "loaded"
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        issuer = DevIssuer.load_or_create(data)
        with httpx.Client(timeout=60) as http:
            writer = _Writer(http, issuer)
            case_id, entry_id = _case_with_nav_consent_and_entry(writer, urls)
            checkpoint = writer.post(f"{urls['log']}/api/v1/checkpoints", None, "admin")
        assert checkpoint["tree_size"] >= writer.seq

        cursor = tmp_path / "cursor.json"
        followed = _run(data, urls, cursor, "--max-events", "2", "--timeout", "60")
        assert followed.returncode == 0, followed.stdout + followed.stderr
        lines = followed.stdout.splitlines()
        events = [line.split() for line in lines if line.startswith("event ")]
        assert [(e[2], e[4]) for e in events] == [(CONSENT, case_id), (ENTRY, case_id)]
        assert f"verified entry {entry_id} at position" in followed.stdout
        assert f"in the checkpoint of {checkpoint['tree_size']} signed by" in followed.stdout
        assert TEXT not in followed.stdout  # the script prints no entry's text

        # A restart resumes from the stored cursor: nothing is given twice.
        resumed = _run(data, urls, cursor, "--max-events", "2", "--timeout", "2")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "event " not in resumed.stdout

        # One flipped byte in the proof's path: the root is not reached, exit code 1.
        tampered = _run(
            data,
            urls,
            tmp_path / "fresh.json",
            "--max-events",
            "2",
            "--timeout",
            "60",
            "--tamper-proof",
        )
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert f"NOT VERIFIED entry {entry_id}" in tampered.stdout
        assert "verified entry" not in tampered.stdout.replace("NOT VERIFIED entry", "")

        # A checkpoint whose root was changed after signing: its signature does not hold.
        note: str = checkpoint["note"]
        origin, size, root, rest = note.split("\n", 3)
        changed = root[:-4] + ("AAA=" if not root.endswith("AAA=") else "BBB=")
        forged = tmp_path / "forged.txt"
        forged.write_text("\n".join([origin, size, changed, rest]), encoding="utf-8")
        refused = _run(
            data,
            urls,
            tmp_path / "again.json",
            "--max-events",
            "2",
            "--timeout",
            "60",
            "--checkpoint-file",
            str(forged),
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "signature does not hold" in refused.stdout
    finally:
        system.stop()
