"""Least privilege between services: NATS credentials in production, who may write the key
bucket, and decision requests that name the asking service.

The NATS permissions are tested against the users and permissions of
deploy/nats/cluster.conf itself, on one node (the file without its cluster routes and
client TLS, which `nats-server -t` checks separately)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import SecretStr

from stafett_consent.decisions import DecisionPoint
from stafett_consent.testing import ConsentHarness, fresh_consent
from stafett_shared.access import AccessClient, AccessUnavailable
from stafett_shared.auth import Principal
from stafett_shared.contracts.access import DecisionRecorded
from stafett_shared.crypto import KEY_SUBJECT, CryptoError, KeyShredded, KeyStore, generate_kek
from stafett_shared.embedded import find_nats_server, free_port
from stafett_shared.eventstore import EventStore
from stafett_shared.ids import new_id
from stafett_shared.rpc import RpcRemoteError, request
from stafett_shared.service import connect_nats, key_store
from stafett_shared.settings import CommonSettings, SettingsError
from stafett_shared.testing.servers import NatsHandle

CLUSTER_CONF = Path(__file__).parents[2] / "deploy" / "nats" / "cluster.conf"
NURSE = Principal(kind="person", id="helse-hanne", issuer="test")


# --- production needs NATS credentials ------------------------------------------------------


def _production(**fields: Any) -> CommonSettings:
    """Production settings as far as NATS goes (the other production checks are
    shared/tests/test_settings.py's)."""
    return CommonSettings.model_construct(env="production", **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"nats_user": "case"},
        {"nats_password": SecretStr("p1")},
        {"nats_user": "case", "nats_password": SecretStr("")},
    ],
    ids=["nothing", "user-only", "password-only", "empty-password"],
)
async def test_production_refuses_to_connect_to_nats_without_credentials(
    fields: dict[str, Any],
) -> None:
    settings = _production(nats_url="nats://127.0.0.1:1", **fields)
    with pytest.raises(SettingsError, match="NATS credentials"):
        settings.check_nats_credentials()
    with pytest.raises(SettingsError, match="NATS credentials"):
        await connect_nats(settings, "case", wait_s=0)


@pytest.mark.parametrize(
    "fields",
    [
        {"nats_user": "case", "nats_password": SecretStr("p1")},
        {"nats_creds_file": Path("/run/secrets/case.creds")},
        {"nats_nkey_file": Path("/run/secrets/case.nk")},
    ],
    ids=["user-password", "creds-file", "nkey-file"],
)
def test_production_accepts_each_kind_of_nats_credentials(fields: dict[str, Any]) -> None:
    _production(**fields).check_nats_credentials()


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(SettingsError, match="go together"):
        CommonSettings(nats_tls_cert=Path("client.pem")).check_nats_credentials()


def test_development_needs_no_nats_credentials() -> None:
    CommonSettings().check_nats_credentials()


# --- decisions name the asking service ------------------------------------------------------


@pytest.fixture
async def consent(
    nats_server: NatsHandle, database_url: str, tmp_path: Path
) -> AsyncIterator[ConsentHarness]:
    async with fresh_consent(nats_server.url, database_url, tmp_path) as harness:
        yield harness


async def test_a_decision_record_names_the_asking_service_and_the_principal(
    consent: ConsentHarness,
) -> None:
    case_id, seq = await consent.open_case()
    decisions: DecisionPoint = consent.runtime.extras["decisions"]
    asked = await AccessClient(consent.runtime.nc, service="log").check(
        NURSE, "case:read", case_id, min_seq=seq
    )
    assert not asked.permitted
    over_http = await consent.decide("helse-hanne", "case:read", case_id)

    records = {r["decision_id"]: r for r in await decisions.records(case_id=case_id)}
    assert records[asked.decision_id]["asked_by"] == "log"
    assert records[asked.decision_id]["principal_id"] == "helse-hanne"
    assert records[over_http["decision_id"]]["asked_by"] is None
    denials = [e for e in await consent.events_since(seq) if e.type == DecisionRecorded.event_type]
    by_id = {e.data["decision_id"]: e.data for e in denials}
    assert by_id[asked.decision_id]["asked_by"] == "log"
    assert by_id[asked.decision_id]["principal_id"] == "helse-hanne"


def test_a_decision_event_recorded_before_services_named_themselves_stays_valid() -> None:
    recorded = DecisionRecorded.model_validate(
        {
            "decision_id": new_id(),
            "principal_id": "helse-hanne",
            "principal_kind": "person",
            "action": "case:read",
            "case_id": new_id(),
            "decision": "deny",
            "reason": "no_basis",
            "detail": "",
            "policy_version": "2025-01",
        }
    )
    assert recorded.asked_by is None


@pytest.mark.parametrize("asked_by", [None, "portal", "", 7], ids=repr)
async def test_a_request_from_no_known_service_is_refused_and_not_recorded(
    consent: ConsentHarness, asked_by: object
) -> None:
    case_id, seq = await consent.open_case()
    decisions: DecisionPoint = consent.runtime.extras["decisions"]
    body: dict[str, object] = {
        "principal": {"id": "ann-kristin-allum", "kind": "person"},
        "action": "case:read",
        "resource": {"case_id": case_id},
        "min_seq": seq,
    }
    if asked_by is not None:
        body["asked_by"] = asked_by
    for subject, payload in (
        ("stafett.rpc.consent.check", body),
        ("stafett.rpc.consent.filter", {**body, "case_ids": [case_id]}),
        (KEY_SUBJECT, {"owner": new_id(), **({"asked_by": asked_by} if asked_by else {})}),
    ):
        with pytest.raises(RpcRemoteError) as refused:
            await request(consent.runtime.nc, subject, payload, timeout=5)
        assert refused.value.code == "unknown_service"
    assert await decisions.records(case_id=case_id) == []
    with pytest.raises(ValueError, match="unknown service"):
        AccessClient(consent.runtime.nc, service="portal")


async def test_the_asking_service_is_the_one_its_subject_names(
    consent: ConsentHarness,
) -> None:
    """On stafett.rpc.consent.check.<service> the subject says who asked: a body that
    claims another service is refused and leaves no record; a body that names none is
    recorded in the subject's name."""
    case_id, seq = await consent.open_case()
    decisions: DecisionPoint = consent.runtime.extras["decisions"]
    body: dict[str, object] = {
        "principal": {"id": "helse-hanne", "kind": "person"},
        "action": "case:read",
        "resource": {"case_id": case_id},
        "min_seq": seq,
    }
    nc = consent.runtime.nc
    for subject, payload in (
        ("stafett.rpc.consent.check.log", {**body, "asked_by": "case"}),
        ("stafett.rpc.consent.filter.log", {**body, "asked_by": "case", "case_ids": [case_id]}),
        ("stafett.rpc.consent.check.portal", body),
        ("stafett.rpc.consent.login.notify", {"issuer": "x", "subject": "y", "asked_by": "log"}),
        (f"{KEY_SUBJECT}.case", {"owner": new_id(), "asked_by": "notify"}),
    ):
        with pytest.raises(RpcRemoteError) as refused:
            await request(nc, subject, payload, timeout=5)
        assert refused.value.code == "unknown_service", subject
    assert await decisions.records(case_id=case_id) == []

    answer = await request(nc, "stafett.rpc.consent.check.notify", body, timeout=5)
    records = await decisions.records(case_id=case_id)
    assert [(r["decision_id"], r["asked_by"]) for r in records] == [
        (answer["decision_id"], "notify")
    ]


async def test_the_client_fails_closed_on_a_refused_request(consent: ConsentHarness) -> None:
    case_id, _ = await consent.open_case()
    client = AccessClient(consent.runtime.nc, service="case")
    client._service = "portal"  # a client built around the check, say
    with pytest.raises(AccessUnavailable):
        await client.check(NURSE, "case:read", case_id)


# --- only the consent service writes the key bucket ------------------------------------------


async def test_another_service_has_the_consent_service_make_a_key_it_lacks(
    consent: ConsentHarness,
) -> None:
    settings = consent.runtime.settings
    case_keys = key_store(settings, consent.runtime.nc, service="case")
    await case_keys.ensure_bucket()
    assert not case_keys.writes
    assert consent.runtime.keys.writes

    owner = new_id()
    made = await case_keys.data_key(owner, create=True)
    assert made == await consent.runtime.keys.data_key(owner)
    with pytest.raises(CryptoError, match="only the consent service"):
        await case_keys.shred(owner)

    await consent.runtime.keys.shred(owner)
    gone = new_id()
    await consent.runtime.keys.data_key(gone, create=True)
    await consent.runtime.keys.shred(gone)
    fresh = key_store(settings, consent.runtime.nc, service="notify")
    await fresh.ensure_bucket()
    with pytest.raises(KeyShredded):  # a shredded key is never made again
        await fresh.data_key(gone, create=True)


# --- the permissions of deploy/nats/cluster.conf ---------------------------------------------

PASSWORDS = {
    name: f"p{name}{i}"
    for i, name in enumerate(("system", "admin", "case", "log", "consent", "notify"))
}


def _drop_block(text: str, name: str) -> str:
    """``text`` without the top-level ``name { ... }`` block."""
    start = re.search(rf"^{name} \{{", text, re.MULTILINE)
    assert start is not None, name
    depth, at = 0, start.end() - 1
    for at in range(start.end() - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[at], 0)
        if depth == 0:
            break
    return text[: start.start()] + text[at + 1 :]


@pytest.fixture(scope="module")
def deployed_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One node with the accounts, users and permissions of cluster.conf."""
    folder = tmp_path_factory.mktemp("nats-conf")
    text = _drop_block(_drop_block(CLUSTER_CONF.read_text(), "cluster"), "tls")
    text = text.replace('"/data/jetstream"', f'"{folder / "js"}"')
    text = re.sub(r"^listen: .*$", "host: 127.0.0.1\nport: $NATS_PORT", text, flags=re.MULTILINE)
    text = re.sub(r"^http: .*$", "", text, flags=re.MULTILINE)
    conf = folder / "node.conf"
    conf.write_text(text)
    port = free_port()
    env = {
        **os.environ,
        "NATS_SERVER_NAME": "nats-test",
        "NATS_PORT": str(port),
        **{f"STAFETT_{n.upper()}_NATS_PASSWORD": p for n, p in PASSWORDS.items()},
    }
    process = subprocess.Popen(
        [str(find_nats_server()), "-c", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "nats.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def _as(url: str, user: str) -> NATS:
    return await nats.connect(url, user=user, password=PASSWORDS[user], max_reconnect_attempts=0)


async def _refused(action: object) -> bool:
    """Whether a JetStream call was refused: a denied publish is dropped, so no answer."""
    try:
        await action  # type: ignore[misc]
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error):
        return True
    return False


async def test_only_the_consent_user_writes_or_shreds_keys(deployed_nats: str) -> None:
    kek = {"kek-1": generate_kek()}
    admin = await _as(deployed_nats, "admin")
    await KeyStore(admin.jetstream(), kek, "kek-1").ensure_bucket()
    await EventStore(admin).ensure_stream(create=True)
    owner = new_id()
    connections = [admin]
    try:
        consent = await _as(deployed_nats, "consent")
        connections.append(consent)
        consent_keys = KeyStore(consent.jetstream(timeout=2), kek, "kek-1")
        await consent_keys.ensure_bucket()
        key = await consent_keys.data_key(owner, create=True)

        for user in ("case", "log", "notify"):
            nc = await _as(deployed_nats, user)
            connections.append(nc)
            js = nc.jetstream(timeout=1)
            reader = KeyStore(js, kek, "kek-1")
            await reader.ensure_bucket()
            assert await reader.data_key(owner) == key, user  # reading is allowed
            bucket = await js.key_value("STAFETT_KEYS")
            assert await _refused(bucket.put(f"owner.{owner}", b"garbage")), user
            assert await _refused(bucket.create(f"owner.{new_id()}", b"x")), user
            entry = await bucket.get(f"owner.{owner}")
            assert await _refused(js.delete_msg("KV_STAFETT_KEYS", entry.revision or 0)), user
            assert await reader.data_key(owner) == key, user

        await consent_keys.shred(owner)
        with pytest.raises(KeyShredded):
            await consent_keys.data_key(owner)
    finally:
        for nc in connections:
            await nc.close()


@pytest.mark.parametrize(
    ("user", "own", "foreign"),
    [
        ("case", ["case", "access"], ["log", "consent", "directory"]),
        ("log", ["log", "access"], ["case", "consent", "directory"]),
        ("consent", ["consent", "directory", "access"], ["case", "log"]),
        ("notify", ["access"], ["case", "log", "consent", "directory"]),
    ],
)
async def test_each_service_publishes_only_its_own_subjects(
    deployed_nats: str, user: str, own: list[str], foreign: list[str]
) -> None:
    admin = await _as(deployed_nats, "admin")
    await EventStore(admin).ensure_stream(create=True)
    await admin.close()
    nc = await _as(deployed_nats, user)
    try:
        js = nc.jetstream(timeout=1)
        for context in own:
            ack = await js.publish(f"stafett.ev.{context}.{new_id()}", b"{}")
            assert ack.seq > 0, context
        for context in foreign:
            assert await _refused(js.publish(f"stafett.ev.{context}.{new_id()}", b"{}")), context
        assert await _refused(js.purge_stream("EVENTS"))
    finally:
        await nc.close()


async def test_each_service_asks_the_consent_service_only_in_its_own_name(
    deployed_nats: str,
) -> None:
    """A service may send requests on stafett.rpc.consent.<what>.<its own name> (the key
    one included), and on no other service's subject nor on the bare subjects of
    CONTRACT.md, which the consent service would take the body's word for."""
    consent = await _as(deployed_nats, "consent")

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.subject.encode())

    await consent.subscribe("stafett.rpc.consent.>", cb=answer)
    await consent.flush()
    try:
        for user in ("case", "log", "notify"):
            nc = await _as(deployed_nats, user)
            try:
                for what in ("check", "filter", "login", "key"):
                    own = f"stafett.rpc.consent.{what}.{user}"
                    assert (await nc.request(own, b"{}", timeout=2)).data == own.encode()
                    for other in ("case", "log", "notify", "consent"):
                        if other != user:
                            with pytest.raises(nats.errors.TimeoutError):
                                await nc.request(
                                    f"stafett.rpc.consent.{what}.{other}", b"{}", timeout=0.3
                                )
                    with pytest.raises(nats.errors.TimeoutError):
                        await nc.request(f"stafett.rpc.consent.{what}", b"{}", timeout=0.3)
            finally:
                await nc.close()
    finally:
        await consent.close()
