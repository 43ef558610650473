"""``stafett up``'s machinery: NATS from the wheel and four healthy services on SQLite."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import nats
import pytest
from typer.testing import CliRunner

from stafett_shared.auth import DevIssuer, TokenVerifier
from stafett_shared.cli import _load_region, app
from stafett_shared.embedded import PROJECTING, SERVICES, EmbeddedSystem, free_port
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.settings import CommonSettings
from stafett_shared.testing import NatsHandle
from stafett_shared.testing.events import make_event


@pytest.mark.slow
def test_the_embedded_system_starts_nats_the_portal_and_four_ready_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = {name: free_port() for name in SERVICES}
    system = EmbeddedSystem(tmp_path / "data", nats_port=free_port(), ports=ports)
    system.start(ready_timeout_s=120)
    try:
        assert system.nats.config_text().count("sync_interval: always") == 1
        with httpx.Client(timeout=5) as client:
            portal = f"http://127.0.0.1:{ports['portal']}"
            assert client.get(f"{portal}/readyz").status_code == 200
            signin = client.get(f"{portal}/logg-inn")
            assert signin.status_code == 200
            assert "Ann Kristin Allum" in signin.text or "Logg inn" in signin.text
            assert client.get(f"{portal}/").headers["location"] == "/logg-inn"
            for name in PROJECTING:
                port = ports[name]
                base = f"http://127.0.0.1:{port}"
                assert client.get(f"{base}/healthz").json() == {"status": "ok"}
                assert client.get(f"{base}/readyz").status_code == 200
                openapi = client.get(f"{base}/openapi.json").json()
                assert openapi["openapi"].startswith("3.1")
                asyncapi = client.get(f"{base}/asyncapi.json").json()
                assert asyncapi["asyncapi"] == "3.0.0"
                schemas = client.get(f"{base}/schemas.json").json()
                messages = asyncapi["components"]["messages"].values()
                assert sorted(schemas) == sorted(m["name"] for m in messages)
                missing = client.get(f"{base}/api/v1/no-such-thing")
                assert missing.status_code == 404
                assert missing.headers["content-type"] == "application/problem+json"
                assert name in openapi["info"]["title"].lower() or openapi["info"]["title"]
        for service in system.running:
            assert service.process.poll() is None
        # `stafett up` loads the demo region into an empty directory only: a restart keeps
        # what was loaded before (by an administrator's PUT /directory, say).
        region = Path(__file__).resolve().parents[2] / "data" / "grenland.yaml"
        settings = CommonSettings()
        assert _load_region(system, settings, tmp_path / "data", region) == "loaded"
        assert _load_region(system, settings, tmp_path / "data", region) == "kept"
        # stafett demo writes a region and a few cases through the public API.
        monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path / "data"))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        demo = CliRunner().invoke(
            app,
            [
                "demo",
                "--case-url",
                urls["case"],
                "--log-url",
                urls["log"],
                "--consent-url",
                urls["consent"],
            ],
        )
        assert demo.exit_code == 0, demo.output
        assert "Sak på nivå 1" in demo.output
        _nav_grenlands_token_is_as_registered(urls, demo.output)
    finally:
        system.stop()
    assert all(p.process.poll() is not None for p in system.running) or not system.running
    assert system.nats.process is not None and system.nats.process.poll() is not None


def _nav_grenlands_token_is_as_registered(urls: dict[str, str], demo_output: str) -> None:
    """`stafett token --client` mints the demo's NAV client a Maskinporten-shaped token with
    the scopes and consumer the region document registers (decision 0039): the services take
    it as that client, and with no consent naming NAV Grenland it reads no case."""
    minted = CliRunner().invoke(
        app, ["token", "--client", "client-nav-grenland", "--consent-url", urls["consent"]]
    )
    assert minted.exit_code == 0, minted.output
    token = minted.output.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["client_id"] == "client-nav-grenland"
    assert claims["scope"].split() == ["stafett:case.read", "stafett:log.read"]
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": "0192:889640782"}
    case_id = demo_output.split("Sak på nivå 1: ")[1].split(maxsplit=1)[0]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as client:
        who = client.get(f"{urls['case']}/api/v1/whoami", headers=auth)
        assert who.status_code == 200, who.text
        assert (who.json()["kind"], who.json()["id"]) == ("client", "client-nav-grenland")
        refused = client.get(f"{urls['case']}/api/v1/cases/{case_id}", headers=auth)
        assert refused.status_code == 404, refused.text
    unknown = CliRunner().invoke(
        app, ["token", "--client", "client-ukjent", "--consent-url", urls["consent"]]
    )
    assert unknown.exit_code == 1
    assert "ikke registrert" in unknown.output


@pytest.mark.slow
def test_a_restart_keeps_what_an_organisations_administrator_loaded(tmp_path: Path) -> None:
    """`stafett up` loads the demo region into an empty directory only: Siljan's
    administrator's change through PUT /directory/orgs/4010 is there after a restart."""
    data = tmp_path / "data"
    ports = {"consent": free_port()}
    nats_port = free_port()
    env = {"STAFETT_ORG_ADMINS": '{"4010": ["siljan-admin"]}'}
    region = Path(__file__).resolve().parents[2] / "data" / "grenland.yaml"
    settings = CommonSettings()
    part_url = f"http://127.0.0.1:{ports['consent']}/api/v1/directory/orgs/4010"

    first = EmbeddedSystem(data, nats_port=nats_port, ports=ports, env=env, services=["consent"])
    first.start(ready_timeout_s=120)
    try:
        assert _load_region(first, settings, data, region) == "loaded"
        siljan = {"Authorization": f"Bearer {DevIssuer.load(data).issue('siljan-admin')}"}
        part = httpx.get(part_url, headers=siljan, timeout=30).json()["part"]
        part["units"].append({"id": "siljan-nyskole", "name": "Nyskolen", "sector": "school"})
        part["settings"] = {"youth_consent_age": 16}
        changed = httpx.put(part_url, json=part, headers=siljan, timeout=30)
        assert changed.status_code == 200, changed.text
    finally:
        first.stop()

    again = EmbeddedSystem(data, nats_port=nats_port, ports=ports, env=env, services=["consent"])
    again.start(ready_timeout_s=120)
    try:
        assert _load_region(again, settings, data, region) == "kept"
        kept = httpx.get(part_url, headers=siljan, timeout=30).json()["part"]
        assert "siljan-nyskole" in {unit["id"] for unit in kept["units"]}
        assert kept["settings"]["youth_consent_age"] == 16
    finally:
        again.stop()


def test_up_refuses_a_nats_port_it_did_not_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        system = EmbeddedSystem(
            tmp_path / "data", nats_port=port, ports={name: free_port() for name in SERVICES}
        )
        with pytest.raises(RuntimeError, match="never reuses"):
            system.start()


async def test_stafett_token_prints_a_token_the_services_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    DevIssuer.load_or_create(tmp_path)  # made by `stafett up`; `stafett token` makes none
    result = CliRunner().invoke(app, ["token", "ann-kristin-allum"])
    assert result.exit_code == 0, result.output
    verifier = TokenVerifier(dev_issuer=DevIssuer.load(tmp_path))
    principal = await verifier.verify(result.output.strip())
    await verifier.aclose()
    assert principal.kind == "person"
    assert principal.id == "ann-kristin-allum"


def test_stafett_token_is_refused_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STAFETT_ENV", "production")
    monkeypatch.setenv("STAFETT_KEK", "A" * 43 + "=")
    monkeypatch.setenv("STAFETT_ISSUERS", '[{"issuer": "https://login.example.org"}]')
    monkeypatch.setenv("STAFETT_ADMINS", '["https://login.example.org|0c1f-admin-oid"]')
    result = CliRunner().invoke(app, ["token", "admin"])
    assert result.exit_code == 2
    assert not (tmp_path / "keys" / "dev-issuer.pem").exists()


def test_projections_rebuild_replays_a_services_read_models_from_the_stream(
    private_nats_server: NatsHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STAFETT_NATS_URL", private_nats_server.url)

    async def _seed() -> None:
        nc = await nats.connect(private_nats_server.url)
        store = EventStore(nc)
        await store.ensure_stream()
        aggregate = new_id()
        for i in range(3):
            await store.append(
                store.subject("log", aggregate),
                [make_event(aggregate, "no.stafett.log.noted.v1", data={"n": i})],
                expected_version=None,
            )
        await nc.close()

    asyncio.run(_seed())
    result = subprocess.run(
        [sys.executable, "-m", "stafett_shared.cli", "projections", "rebuild", "case"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rebuilt up to sequence 3" in result.stdout
    assert (tmp_path / "case.db").exists()
    unknown = CliRunner().invoke(app, ["projections", "rebuild", "billing"])
    assert unknown.exit_code == 2
