"""The consent service over HTTP and NATS, with real NATS and SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stafett_consent.decisions import DecisionPoint
from stafett_consent.policy import Action
from stafett_consent.testing import REGION, ConsentHarness
from stafett_shared.access import AccessClient
from stafett_shared.auth import Principal
from stafett_shared.service import stop_tasks


def _consent_body(case_id: str, **scope: Any) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "scope": {
            "org_ids": ["4010"],
            "sectors": ["health"],
            "purpose": "Samarbeid med helsestasjonen om oppfølging på skolen.",
            **scope,
        },
        "evidence": {"method": "digital_signature"},
    }


async def _case_with_child(
    consent: ConsentHarness, age: int = 12, guardians: list[tuple[str, bool]] | None = None
) -> tuple[str, str, list[str], int]:
    child_id, guardian_ids, _ = await consent.register_child(
        age, guardians if guardians is not None else [("Mor", True), ("Far", True)]
    )
    case_id, seq = await consent.open_case(child_id=child_id)
    await consent.runtime.projector.wait_for(seq, 5)
    return case_id, child_id, guardian_ids, seq


async def test_a_health_nurse_on_the_team_is_refused_until_a_consent_covers_health_and_again_after_withdrawal(  # noqa: E501
    consent: ConsentHarness,
) -> None:
    case_id, _child, (mother, father), _ = await _case_with_child(consent)
    seq = await consent.add_team_member(case_id, "helse-hanne", "siljan-helsestasjon")

    denied = await consent.decide("helse-hanne", "case:read", case_id, min_seq=seq)
    assert (denied["decision"], denied["reason"]) == ("deny", "consent_required")

    requested = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth("ann-kristin-allum")
    )
    assert requested.status_code == 201, requested.text
    consent_id = requested.json()["id"]
    assert requested.json()["rule"] == "guardians"
    for guardian in (mother, father):
        signed = await consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": guardian},
            headers=consent.auth(guardian),
        )
        assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "active"
    active_seq = int(signed.headers["Stafett-Seq"])

    permitted = await consent.decide("helse-hanne", "case:read", case_id, min_seq=active_seq)
    assert (permitted["decision"], permitted["basis"]) == ("permit", "team")
    assert permitted["consent_id"] == consent_id

    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": father, "reason": "Vi ønsker ikke dette lenger."},
        headers=consent.auth(father),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    after = await consent.decide(
        "helse-hanne", "case:read", case_id, min_seq=int(withdrawn.headers["Stafett-Seq"])
    )
    assert after["decision"] == "deny"


async def test_consent_events_carry_no_personal_data_in_clear(consent: ConsentHarness) -> None:
    case_id, child_id, (_mother, _father), _start = await _case_with_child(consent)
    body = _consent_body(case_id)
    await consent.client.post(
        "/api/v1/consents", json=body, headers=consent.auth("ann-kristin-allum")
    )
    stored = b"".join(c.data for c in await consent.store.read(1, limit=10_000))
    for secret in (b"Ola Nordmann", b"Mor", b"helsestasjonen om", b"Ann Kristin"):
        assert secret not in stored
    assert child_id.encode() in stored  # ids and routing metadata stay in clear


async def test_the_youth_signs_too_from_fifteen_and_from_sixteen_for_health(
    consent: ConsentHarness,
) -> None:
    case15, child15, _g, _ = await _case_with_child(consent, age=15)
    school = await consent.client.post(
        "/api/v1/consents",
        json=_consent_body(case15, sectors=["school"]),
        headers=consent.auth("ann-kristin-allum"),
    )
    assert school.status_code == 201, school.text
    assert school.json()["rule"] == "guardians_and_youth"
    assert any(
        g["kind"] == "youth" and g["members"] == [child15] for g in school.json()["grantors"]
    )
    health = await consent.client.post(
        "/api/v1/consents",
        json=_consent_body(case15, sectors=["health"]),
        headers=consent.auth("ann-kristin-allum"),
    )
    assert (health.json()["rule"], health.json()["age_applied"]) == ("guardians", 15)
    case18, child18, _g, _ = await _case_with_child(consent, age=18)
    adult = await consent.client.post(
        "/api/v1/consents",
        json=_consent_body(case18),
        headers=consent.auth("ann-kristin-allum"),
    )
    assert adult.json()["rule"] == "adult_alone"
    assert adult.json()["grantors"] == [{"kind": "person", "members": [child18], "needed": "all"}]


async def test_a_guardian_without_parental_responsibility_can_neither_sign_nor_read(
    consent: ConsentHarness,
) -> None:
    case_id, _child, (mother, stepfather), _start = await _case_with_child(
        consent, guardians=[("Mor", True), ("Stefar", False)]
    )
    requested = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth("ann-kristin-allum")
    )
    consent_id = requested.json()["id"]
    refused = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": stepfather},
        headers=consent.auth(stepfather),
    )
    # No grantor, and no reader of the case: the same 404 as for a consent that does not
    # exist (decision 0025).
    assert refused.status_code == 404, refused.text
    assert refused.json()["code"] == "not_found"
    assert (await consent.decide(stepfather, "log:read", case_id))["decision"] == "deny"
    reads = await consent.decide(mother, "log:read", case_id)
    assert (reads["decision"], reads["basis"]) == ("permit", "guardian")
    writes = await consent.decide(mother, "log:append", case_id)
    assert writes["decision"] == "deny"


async def test_staff_record_paper_consent_with_a_reference_but_may_not_sign_digitally(
    consent: ConsentHarness,
) -> None:
    case_id, _child, (mother, father), _ = await _case_with_child(consent)
    requested = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth("ann-kristin-allum")
    )
    consent_id = requested.json()["id"]
    digital = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": mother},
        headers=consent.auth("ann-kristin-allum"),
    )
    assert digital.status_code == 422
    no_reference = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": mother, "method": "paper"},
        headers=consent.auth("ann-kristin-allum"),
    )
    assert no_reference.status_code == 422
    paper = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": mother, "method": "paper", "reference": "Arkiv 2026/123"},
        headers=consent.auth("ann-kristin-allum"),
    )
    assert paper.status_code == 201, paper.text
    assert paper.json()["status"] == "pending"
    outsider = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": father, "method": "paper", "reference": "x"},
        headers=consent.auth("vgs-vidar"),
    )
    assert outsider.status_code == 404


async def test_withdrawal_reaches_callers_through_the_shared_client_at_once(
    consent: ConsentHarness,
) -> None:
    case_id, _child, (mother, father), _ = await _case_with_child(consent)
    await consent.add_team_member(case_id, "helse-hanne", "siljan-helsestasjon")
    requested = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth("ann-kristin-allum")
    )
    consent_id = requested.json()["id"]
    for guardian in (mother, father):
        await consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": guardian},
            headers=consent.auth(guardian),
        )
    nurse = Principal(kind="person", id="helse-hanne", issuer="test")
    clock = [1000.0]
    client = AccessClient(consent.runtime.nc, service="case", clock=lambda: clock[0])
    listening = AccessClient(consent.runtime.nc, service="log", clock=lambda: clock[0])
    await listening.listen()
    assert (await client.check(nurse, "case:read", case_id)).permitted
    assert (await listening.check(nurse, "case:read", case_id)).permitted

    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": mother},
        headers=consent.auth(mother),
    )
    seq = int(withdrawn.headers["Stafett-Seq"])
    # A client that listens (every service does) has forgotten its permit: the consent
    # service announced the change before it answered, and no time has passed.
    assert not (await listening.check(nurse, "case:read", case_id)).permitted
    # Within the second a cached permit may still answer a client that does not listen ...
    clock[0] += 0.5
    assert (await client.check(nurse, "case:read", case_id)).permitted
    # ... but not a caller that names the withdrawal's sequence, nor anyone after a second.
    assert not (await client.check(nurse, "case:read", case_id, min_seq=seq)).permitted
    clock[0] += 0.6
    assert not (await client.check(nurse, "case:read", case_id)).permitted
    with pytest.raises(ValueError, match="one second"):
        AccessClient(consent.runtime.nc, service="case", permit_cache_s=1.5)


async def test_the_filter_over_nats_lists_exactly_the_visible_cases(
    consent: ConsentHarness,
) -> None:
    mine, _ = await consent.open_case(holder="ann-kristin-allum")
    other, _ = await consent.open_case(holder="vgs-vidar", unit_id="porsgrunn-vgs", org_id="40")
    leaders, seq = await consent.open_case(holder="rektor-siljan")
    client = AccessClient(consent.runtime.nc, service="case")
    teacher = Principal(kind="person", id="ann-kristin-allum", issuer="test")
    rektor = Principal(kind="person", id="rektor-siljan", issuer="test")
    everything = [mine, other, leaders, "01JNOSUCHCASE0000000000000"]
    assert await client.filter(teacher, "case:read", everything, min_seq=seq) == [mine]
    assert await client.filter(rektor, "case:read", everything) == [mine, leaders]
    for case_id in everything:
        single = await client.check(rektor, "case:read", case_id)
        assert single.permitted == (case_id in (mine, leaders))


async def test_an_idempotency_key_repeats_the_first_answer_and_writes_once(
    consent: ConsentHarness,
) -> None:
    case_id, *_ = await _case_with_child(consent)
    before = await consent.store.last_seq()
    headers = {**consent.auth("ann-kristin-allum"), "Idempotency-Key": "consent-req-0001"}
    first = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=headers
    )
    again = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.headers["Stafett-Seq"] == again.headers["Stafett-Seq"]
    assert await consent.store.last_seq() == before + 1
    other = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id, sectors=["school"]), headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_a_reloaded_region_document_ends_dropped_roles_at_once(
    consent: ConsentHarness,
) -> None:
    case_id, seq = await consent.open_case()
    assert (await consent.decide("rektor-siljan", "case:read", case_id, min_seq=seq))[
        "decision"
    ] == "permit"
    document = copy.deepcopy(REGION)
    document["staff"] = [p for p in document["staff"] if p["id"] != "rektor-siljan"]
    reloaded = await consent.load_region(document)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["changes"] == {"role_ended": 1}
    after = await consent.decide(
        "rektor-siljan", "case:read", case_id, min_seq=reloaded.json()["seq"]
    )
    assert after["decision"] == "deny"
    unchanged = await consent.load_region(document)
    assert unchanged.json()["changes"] == {}
    # The first document again, within the stream's duplicate window: a change, not a repeat.
    restored = await consent.load_region(REGION)
    assert restored.json()["changes"] == {"role_granted": 1}
    again = await consent.decide(
        "rektor-siljan", "case:read", case_id, min_seq=restored.json()["seq"]
    )
    assert again["decision"] == "permit"


async def test_emergency_access_lasts_a_day_and_names_leader_and_holder(
    consent: ConsentHarness,
) -> None:
    case_id, seq = await consent.open_case()
    assert (await consent.decide("bv-berit", "case:read", case_id, min_seq=seq))[
        "decision"
    ] == "deny"
    granted = await consent.client.post(
        "/api/v1/emergency-access",
        json={
            "case_id": case_id,
            "ground": "danger_to_life_or_health",
            "reason": "Akutt bekymring meldt på kveldstid.",
        },
        headers=consent.auth("bv-berit"),
    )
    assert granted.status_code == 201, granted.text
    until = datetime.fromisoformat(granted.json()["valid_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    events = await consent.events_since(seq)
    (grant,) = [e for e in events if e.type.endswith("emergency_access_granted.v1")]
    assert set(grant.data["notify_person_ids"]) == {"rektor-siljan", "ann-kristin-allum"}
    assert "Akutt" not in str(grant.data)
    read = await consent.decide(
        "bv-berit", "case:read", case_id, min_seq=int(granted.headers["Stafett-Seq"])
    )
    assert (read["decision"], read["basis"]) == ("permit", "emergency")
    assert (await consent.decide("bv-berit", "case:write", case_id))["decision"] == "deny"


async def test_auditors_read_in_scope_and_their_reads_and_every_denial_are_events(
    consent: ConsentHarness,
) -> None:
    case_id, _seq = await consent.open_case()
    scope = await consent.client.post(
        "/api/v1/audit-scopes",
        json={
            "auditor_person_id": "statsforvalter-siri",
            "org_id": "4010",
            "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "reason": "Tilsyn med kommunens oppfølging",
        },
        headers=consent.auth("admin"),
    )
    assert scope.status_code == 201, scope.text
    scope_seq = int(scope.headers["Stafett-Seq"])
    audit = await consent.decide("statsforvalter-siri", "audit:read", case_id, min_seq=scope_seq)
    assert (audit["decision"], audit["basis"]) == ("permit", "auditor")
    outsider = await consent.decide("vgs-vidar", "case:read", case_id)
    assert outsider["decision"] == "deny"
    recorded = [
        e
        for e in await consent.events_since(scope_seq)
        if e.type == "no.stafett.access.decision_recorded.v1"
    ]
    assert {(e.data["principal_id"], e.data["decision"]) for e in recorded} == {
        ("statsforvalter-siri", "permit"),
        ("vgs-vidar", "deny"),
    }
    records = await consent.client.get(
        f"/api/v1/decision-records?case_id={case_id}", headers=consent.auth("statsforvalter-siri")
    )
    assert records.status_code == 200
    ids = {r["decision_id"] for r in records.json()["items"]}
    assert {audit["decision_id"], outsider["decision_id"]} <= ids
    hidden = await consent.client.get(
        f"/api/v1/decision-records?case_id={case_id}", headers=consent.auth("vgs-vidar")
    )
    assert hidden.status_code == 404


async def test_a_denial_is_answered_at_once_and_published_once_even_across_a_restart(
    consent: ConsentHarness,
) -> None:
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    # The relay is stopped, as if the service had crashed right after answering.
    await stop_tasks([decisions._relay] if decisions._relay else [])
    decisions._relay = None
    before = await consent.store.last_seq()
    denied = await consent.decide("vgs-vidar", "case:read", case_id)
    assert denied["decision"] == "deny"
    # Recorded in the database with the answer, not yet in the stream.
    records = await decisions.records(case_id=case_id)
    assert denied["decision_id"] in {r["decision_id"] for r in records}
    assert await consent.store.last_seq() == before
    # The next start publishes what the outbox holds, once.
    decisions.start()
    for _ in range(100):
        if await consent.store.last_seq() > before:
            break
        await asyncio.sleep(0.05)
    assert await decisions.publish_pending() == 0
    published = [
        e
        for e in await consent.events_since(before)
        if e.type == "no.stafett.access.decision_recorded.v1"
    ]
    assert [(e.id, e.data["decision"], e.data["reason"]) for e in published] == [
        (denied["decision_id"], "deny", denied["reason"])
    ]


async def test_repeated_denials_are_recorded_each_and_an_event_once_a_minute(
    consent: ConsentHarness,
) -> None:
    """Asking again and again cannot grow the append-only stream without end: the same
    denial (principal, action, case) becomes an event once a minute; every one is recorded."""
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    before = await consent.store.last_seq()
    repeated = [await consent.decide("vgs-vidar", "case:read", case_id) for _ in range(5)]
    other_action = await consent.decide("vgs-vidar", "log:read", case_id)
    assert {d["decision"] for d in [*repeated, other_action]} == {"deny"}
    await decisions.publish_pending()

    published = [
        e.id
        for e in await consent.events_since(before)
        if e.type == "no.stafett.access.decision_recorded.v1"
    ]
    assert published == [repeated[0]["decision_id"], other_action["decision_id"]]
    recorded = {r["decision_id"] for r in await decisions.records(case_id=case_id)}
    assert {d["decision_id"] for d in [*repeated, other_action]} <= recorded


async def test_identical_denials_at_the_same_moment_are_one_event(
    consent: ConsentHarness,
) -> None:
    """On PostgreSQL decisions run in four threads at once: the claim on a denial's event is
    taken atomically, so concurrent identical denials still make one event."""
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    before = await consent.store.last_seq()
    denied = await asyncio.gather(
        *(consent.decide("vgs-vidar", "case:read", case_id) for _ in range(8))
    )
    assert {d["decision"] for d in denied} == {"deny"}
    await decisions.publish_pending()
    published = [
        e.id
        for e in await consent.events_since(before)
        if e.type == "no.stafett.access.decision_recorded.v1"
    ]
    assert len(published) == 1
    assert published[0] in {d["decision_id"] for d in denied}


async def test_on_sqlite_a_decision_waits_in_the_thread_when_its_records_are_locked(
    consent: ConsentHarness,
) -> None:
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    if not decisions.on_loop:
        pytest.skip("decisions are made on the event loop only on SQLite")
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    # Another program holds the records' write lock: the decision cannot be made on the
    # loop, which never waits; it is made in the thread, which waits for the lock.
    path = decisions.records_engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.create_task(consent.decide("ann-kristin-allum", "case:read", case_id))
        await asyncio.sleep(0.3)
        assert not pending.done()
        # The loop is free meanwhile.
        assert (await consent.client.get("/healthz")).status_code == 200
        other.execute("COMMIT")
        decided = await asyncio.wait_for(pending, 10)
    finally:
        other.close()
    assert (decided["decision"], decided["basis"]) == ("permit", "holder")
    records = await decisions.records(case_id=case_id)
    assert [r["decision_id"] for r in records].count(decided["decision_id"]) == 1


async def test_on_sqlite_the_records_log_is_checkpointed_off_the_loop(
    consent: ConsentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    if not decisions.on_loop:
        pytest.skip("decisions are made on the event loop only on SQLite")
    checkpoints = decisions._checkpoints
    assert checkpoints is not None
    monkeypatch.setattr(checkpoints, "every", 5)
    threads: list[int] = []
    checkpoint = checkpoints.checkpoint

    def spy() -> None:
        threads.append(threading.get_ident())
        checkpoint()

    monkeypatch.setattr(checkpoints, "checkpoint", spy)
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    for _ in range(12):
        await decisions.check("ann-kristin-allum", Action.CASE_READ, case_id)
    if checkpoints._task is not None:
        await checkpoints._task
    assert threads
    assert threading.get_ident() not in threads
    # The loop's own connections never checkpoint on a commit.
    loop_records = decisions.engines(True)[1]
    with loop_records.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0


async def test_concurrent_decisions_are_each_recorded_once(consent: ConsentHarness) -> None:
    decisions = consent.runtime.extras["decisions"]
    assert isinstance(decisions, DecisionPoint)
    case_id, seq = await consent.open_case()
    await consent.runtime.projector.wait_for(seq, 5)
    answers = await asyncio.gather(
        *(
            decisions.check(who, Action.CASE_READ, case_id)
            for who in ["ann-kristin-allum", "vgs-vidar"] * 20
        )
    )
    assert [a.decision for a in answers] == ["permit", "deny"] * 20
    records = await decisions.records(case_id=case_id, limit=100)
    ids = [str(r["decision_id"]) for r in records]
    assert sorted(ids) == sorted(a.decision_id for a in answers)


async def test_a_person_may_ask_only_about_themselves_and_a_client_needs_the_scope(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await consent.open_case()
    body = {"principal": "rektor-siljan", "action": "case:read", "resource": {"case_id": case_id}}
    nosy = await consent.client.post(
        "/api/v1/decisions", json=body, headers=consent.auth("ann-kristin-allum")
    )
    assert nosy.status_code == 403
    unscoped = await consent.client.post(
        "/api/v1/decisions", json=body, headers=consent.auth("some-system", client=True)
    )
    assert unscoped.status_code == 403
    own = await consent.client.post(
        "/api/v1/decisions",
        json={**body, "principal": "ann-kristin-allum"},
        headers=consent.auth("ann-kristin-allum"),
    )
    assert own.status_code == 200
    assert own.json()["decision"] == "permit"


async def test_authzen_evaluations_answer_in_the_standard_shape(consent: ConsentHarness) -> None:
    case_id, _ = await consent.open_case()
    headers = consent.auth("gateway", client=True, scopes=("stafett.decisions",))
    single = await consent.client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "ann-kristin-allum"},
            "action": {"name": "case:read"},
            "resource": {"type": "case", "id": case_id},
        },
        headers=headers,
    )
    assert single.status_code == 200, single.text
    assert single.json()["decision"] is True
    assert single.json()["context"]["basis"] == "holder"
    batch = await consent.client.post(
        "/access/v1/evaluations",
        json={
            "subject": {"type": "user", "id": "vgs-vidar"},
            "resource": {"type": "case", "id": case_id},
            "evaluations": [
                {"action": {"name": "case:read"}},
                {"action": {"name": "case:write"}},
                {
                    "subject": {"type": "user", "id": "rektor-siljan"},
                    "action": {"name": "case:read"},
                },
            ],
        },
        headers=headers,
    )
    assert [e["decision"] for e in batch.json()["evaluations"]] == [False, False, True]
    metadata = await consent.client.get("/.well-known/authzen-configuration")
    assert metadata.json()["access_evaluation_endpoint"].endswith("/access/v1/evaluation")


async def test_a_decision_waits_for_min_seq_and_answers_503_when_it_cannot(
    consent: ConsentHarness,
) -> None:
    case_id, seq = await consent.open_case()
    far = await consent.client.post(
        "/api/v1/decisions",
        json={
            "principal": "ann-kristin-allum",
            "action": "case:read",
            "resource": {"case_id": case_id},
            "min_seq": seq + 1000,
        },
        headers=consent.auth("ann-kristin-allum"),
    )
    assert far.status_code == 503
    assert far.headers["retry-after"] == "1"
    await asyncio.sleep(0)
