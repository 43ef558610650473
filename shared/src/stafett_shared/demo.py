"""Demo data for the embedded setup: the region document and a few cases, written through
the public API with development tokens, the way a user would."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stafett_shared.auth import DevIssuer
from stafett_shared.nationalid import control_digits
from stafett_shared.settings import CommonSettings

__all__ = ["CITIZENS_FILE", "DemoError", "load_demo", "read_citizens", "record_citizens"]

CITIZENS_FILE = "demo-citizens.json"
"""In the data folder: the demo's guardians and youths (synthetic people), for the portal's
development sign-in. Written only by the demo, read only with the development issuer on."""
_MAX_CITIZENS = 200


def record_citizens(data_dir: Path, citizens: list[dict[str, str]]) -> None:
    """Add citizens (``id``, ``name``, ``what``) to the development sign-in's list."""
    path = data_dir / CITIZENS_FILE
    known = [c for c in read_citizens(data_dir) if c["id"] not in {n["id"] for n in citizens}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*known, *citizens][-_MAX_CITIZENS:], ensure_ascii=False))


def read_citizens(data_dir: Path) -> list[dict[str, str]]:
    """The development sign-in's citizens; nothing when the file is missing or malformed."""
    try:
        raw: Any = json.loads((data_dir / CITIZENS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(raw, list):
        return []
    return [
        {"id": c["id"], "name": c["name"], "what": str(c.get("what", ""))}
        for c in raw[:_MAX_CITIZENS]
        if isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("name"), str)
    ]


class DemoError(Exception):
    """The running system refused the demo data."""


def _synthetic_id(day: int, month: int, year: int, individual: int) -> str:
    """A synthetic national id (month + 80): never a real person's number."""
    while True:
        first = f"{day:02d}{month + 80:02d}{year % 100:02d}{individual:03d}"
        digits = control_digits(first)
        if digits is not None:
            return first + digits
        individual += 1


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise DemoError(f"{what}: {response.status_code} {response.text[:200]}")
    return response


def _post(
    client: httpx.Client, url: str, body: object, headers: dict[str, str], what: str
) -> httpx.Response:
    """Post, retrying briefly while another service's read model catches up (each service
    follows the event stream on its own)."""
    response = client.post(url, json=body, headers=headers)
    for _ in range(40):
        if response.status_code not in (404, 422, 503):
            break
        time.sleep(0.25)
        response = client.post(url, json=body, headers=headers)
    return _check(response, what)


def load_demo(
    settings: CommonSettings,
    issuer: DevIssuer,
    region: Path,
    *,
    case_url: str,
    log_url: str,
    consent_url: str,
) -> list[str]:
    """Write the demo through the public API with tokens from the running system's issuer."""

    def auth(person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(person)}"}

    out: list[str] = []
    with httpx.Client(timeout=30) as client:
        if region.is_file():
            kind = "application/json" if region.suffix == ".json" else "application/yaml"
            _check(
                client.put(
                    f"{consent_url}/api/v1/directory",
                    content=region.read_bytes(),
                    headers={**auth(settings.dev_admin or "admin"), "Content-Type": kind},
                ),
                "region",
            )
            out.append(f"Region lastet fra {region}.")
        year = datetime.now(UTC).year
        child = _synthetic_id(14, 3, year - 16, 512)  # 16: reads their own log
        registered = _check(
            client.post(
                f"{consent_url}/api/v1/children",
                json={
                    "national_id": child,
                    "name": "Demo Elev",
                    "guardians": [
                        {
                            "national_id": _synthetic_id(2, 5, year - 44, 210),
                            "name": "Demo Mor",
                            "parental_responsibility": True,
                        },
                        {
                            "national_id": _synthetic_id(9, 11, year - 46, 318),
                            "name": "Demo Far",
                            "parental_responsibility": True,
                        },
                    ],
                },
                headers=auth("ann-kristin-allum"),
            ),
            "child",
        ).json()
        opened = _post(
            client,
            f"{case_url}/api/v1/cases",
            {
                "unit_id": "siljan-ungdomsskole",
                "level": 1,
                "child": {"national_id": child},
                "concern": "Demo: eleven har mye fravær og virker sliten.",
            },
            auth("ann-kristin-allum"),
            "case",
        ).json()
        anonymous = _post(
            client,
            f"{case_url}/api/v1/cases",
            {
                "unit_id": "siljan-ungdomsskole",
                "level": 0,
                "child": {"pseudonym": "Elev B"},
                "concern": "Demo: en bekymring til refleksjon.",
            },
            auth("ann-kristin-allum"),
            "anonymous case",
        ).json()
        _post(
            client,
            f"{log_url}/api/v1/logs/{opened['id']}/entries",
            {
                "kind": "child_voice",
                "text": "Demo: «Jeg vil ha en fast voksen å snakke med.»",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            auth("ann-kristin-allum"),
            "log entry",
        )
        out.append(f"Sak på nivå 1: {opened['id']} (stafettholder ann-kristin-allum)")
        out.append(f"Anonym sak på nivå 0: {anonymous['id']}")
        out.append(f"Barn: {registered['id']}; foresatt: {registered['guardians'][0]['id']}")
        record_citizens(
            settings.data_dir,
            [
                {"id": g["id"], "name": name, "what": "Foresatt til Demo Elev"}
                for g, name in zip(registered["guardians"], ("Demo Mor", "Demo Far"), strict=False)
            ]
            + [{"id": registered["id"], "name": "Demo Elev", "what": "Ungdom, 16 år"}],
        )
    return out
