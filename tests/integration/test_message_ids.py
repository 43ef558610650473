"""Idempotency keys on real NATS: a client's key is scoped to its principal, route and
subject, so one caller's key neither drops another caller's write nor an id Stafett makes
itself; a repeat is answered with what was stored, also after a crash before the answer was
kept. And a ciphertext moved into another case's event does not open there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stafett_case.testing import CaseHarness
from stafett_consent.handlers import ConsentService
from stafett_consent.testing import ConsentHarness
from stafett_log.handlers import LogService
from stafett_log.testing import LogHarness
from stafett_shared.auth import Principal
from stafett_shared.envelope import registry
from stafett_shared.idempotency import IdempotencyStore
from stafett_shared.ids import new_id

HOLDER = "ann-kristin-allum"
LEADER = "rektor-siljan"


async def _log_case(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness, national_id: str | None = None
) -> tuple[str, str]:
    """A case of an identified child the log service knows; its id and the national id."""
    if national_id is None:
        _child, _guardians, body = await consent.register_child(13, [("Mor", True)])
        national_id = body["national_id"]
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=national_id)
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    await log.runtime.projector.wait_for(opened["seq"], 10)
    return opened["id"], national_id


def _entry(text: str) -> dict[str, Any]:
    return {"kind": "note", "text": text, "occurred_at": datetime.now(UTC).isoformat()}


def _headers(harness: LogHarness | CaseHarness, person: str, key: str) -> dict[str, str]:
    return {**harness.auth(person), "Idempotency-Key": key}


async def _log_commits(consent: ConsentHarness, case_id: str) -> list[Any]:
    return await consent.store.load(consent.store.subject("log", case_id))


def _lose_the_next_answer(store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies after the append is stored and before its answer is kept."""
    saved = store.save

    async def crash(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "save", saved)
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr(store, "save", crash)


async def _post_and_lose(client: httpx.AsyncClient, url: str, **kwargs: Any) -> None:
    try:
        lost = await client.post(url, **kwargs)
    except RuntimeError:
        return
    assert lost.status_code == 500


async def test_two_people_with_one_key_both_write_and_both_entries_are_read(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _log_case(consent, case_service, log)
    joined = await case_service.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": LEADER, "unit_id": "siljan-ungdomsskole", "access": "write"},
        headers=case_service.auth(HOLDER),
    )
    assert joined.status_code == 201, joined.text
    for projector in (consent.runtime.projector, log.runtime.projector):
        await projector.wait_for(int(joined.headers["Stafett-Seq"]), 10)
    url = f"/api/v1/logs/{case_id}/entries"
    first = await log.client.post(
        url, json=_entry("Fra kontaktlæreren."), headers=_headers(log, HOLDER, "same-key-0001")
    )
    second = await log.client.post(
        url, json=_entry("Fra rektor."), headers=_headers(log, LEADER, "same-key-0001")
    )
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["seq"] != second.json()["seq"]
    assert first.json()["hash"] != second.json()["hash"]
    assert len(await _log_commits(consent, case_id)) == 2
    read = await log.client.get(url, headers=log.auth(HOLDER))
    texts = {e["id"]: e["text"] for e in read.json()["items"]}
    assert texts == {
        first.json()["id"]: "Fra kontaktlæreren.",
        second.json()["id"]: "Fra rektor.",
    }


async def test_the_same_person_repeating_a_key_gets_the_first_answer_and_one_message(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _log_case(consent, case_service, log)
    url = f"/api/v1/logs/{case_id}/entries"
    body = _entry("Samtale med eleven.")
    first = await log.client.post(url, json=body, headers=_headers(log, HOLDER, "repeat-0001"))
    again = await log.client.post(url, json=body, headers=_headers(log, HOLDER, "repeat-0001"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(await _log_commits(consent, case_id)) == 1


async def test_a_retry_after_a_crash_answers_with_the_stored_entry(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = log_service
    case_id, _ = await _log_case(consent, case_service, log)
    url = f"/api/v1/logs/{case_id}/entries"
    body = _entry("Samtale med eleven etter friminuttet.")
    _lose_the_next_answer(log.runtime.extras["idempotency"], monkeypatch)
    await _post_and_lose(log.client, url, json=body, headers=_headers(log, HOLDER, "crash-0001"))

    retry = await log.client.post(url, json=body, headers=_headers(log, HOLDER, "crash-0001"))
    assert retry.status_code == 201, retry.text
    (commit,) = await _log_commits(consent, case_id)  # the retry stored nothing new
    (stored,) = commit.events
    assert retry.json() == {"id": stored.data["entry_id"], "seq": commit.seq, "hash": stored.hash}
    read = await log.client.get(url, headers=log.auth(HOLDER))
    assert [e["id"] for e in read.json()["items"]] == [stored.data["entry_id"]]


async def test_a_retried_case_opening_after_a_crash_answers_with_the_case_it_opened(
    consent: ConsentHarness, case_service: CaseHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = case_service
    before = await consent.store.last_seq()
    body = {
        "unit_id": "siljan-ungdomsskole",
        "level": 0,
        "child": {"pseudonym": "Elev B"},
        "concern": "Eleven virker lei seg.",
    }
    _lose_the_next_answer(case.runtime.extras["idempotency"], monkeypatch)
    await _post_and_lose(
        case.client, "/api/v1/cases", json=body, headers=_headers(case, HOLDER, "open-0001")
    )

    retry = await case.client.post(
        "/api/v1/cases", json=body, headers=_headers(case, HOLDER, "open-0001")
    )
    assert retry.status_code == 201, retry.text
    opened = [
        c
        for c in await consent.store.read(before + 1, limit=1000)
        if c.subject.startswith(f"{consent.store.prefix}.case.")
    ]
    assert len(opened) == 1  # the retry, with a case id of its own, stored nothing
    assert retry.json()["id"] == opened[0].subject.rsplit(".", 1)[-1]
    assert retry.headers["Stafett-Seq"] == str(opened[0].seq)
    view = await case.client.get(f"/api/v1/cases/{retry.json()['id']}", headers=case.auth(HOLDER))
    assert view.status_code == 200, view.text
    assert view.json()["concern"] == "Eleven virker lei seg."


async def _consent_for_two(consent: ConsentHarness, case: CaseHarness) -> tuple[str, str, str]:
    _child, (mother, father), body = await consent.register_child(
        12, [("Mor", True), ("Far", True)]
    )
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    requested = await consent.client.post(
        "/api/v1/consents",
        json={
            "case_id": case_id,
            "scope": {"org_ids": ["4010"], "sectors": ["school"], "purpose": "Samarbeid."},
            "evidence": {"method": "digital_signature"},
        },
        headers=consent.auth(HOLDER),
    )
    assert requested.status_code == 201, requested.text
    return requested.json()["id"], mother, father


async def _sign(consent: ConsentHarness, consent_id: str, guardian: str, key: str) -> Any:
    return await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": guardian},
        headers={**consent.auth(guardian), "Idempotency-Key": key},
    )


async def test_two_guardians_signing_with_one_key_both_sign(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    consent_id, mother, father = await _consent_for_two(consent, case_service)
    by_mother = await _sign(consent, consent_id, mother, "signature-0001")
    by_father = await _sign(consent, consent_id, father, "signature-0001")
    assert (by_mother.status_code, by_father.status_code) == (201, 201), by_father.text
    assert by_mother.headers["Stafett-Seq"] != by_father.headers["Stafett-Seq"]
    assert by_father.json()["status"] == "active"
    commits = await consent.store.load(consent.store.subject("consent", consent_id))
    assert [e.type for c in commits for e in c.events].count("no.stafett.consent.signed.v1") == 2


async def test_a_client_key_equal_to_the_expiry_jobs_id_does_not_suppress_the_expiry(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    consent_id, mother, _father = await _consent_for_two(consent, case_service)
    signed = await _sign(consent, consent_id, mother, f"expire-{consent_id}")
    assert signed.status_code == 201, signed.text
    service = consent.runtime.extras["consent"]
    assert isinstance(service, ConsentService)
    later = datetime.now(UTC) + timedelta(days=4 * 366)
    service.clock = lambda: later
    assert await service.expire_due() == 1
    expired = [
        e
        for e in await consent.events_since(int(signed.headers["Stafett-Seq"]))
        if e.type == "no.stafett.consent.expired.v1"
    ]
    assert [e.data["consent_id"] for e in expired] == [consent_id]


async def test_a_ciphertext_moved_into_another_case_of_the_same_child_does_not_open(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_a, national_id = await _log_case(consent, case_service, log)
    case_b, _ = await _log_case(consent, case_service, log, national_id)
    secret = await log.append(case_a, text="Det eleven fortalte i sak A.")
    ordinary = await log.append(case_b, text="En vanlig innføring i sak B.")
    assert (secret.status_code, ordinary.status_code) == (201, 201), ordinary.text

    # A writer with access to the stream copies the encrypted text of case A's entry into a
    # well-formed, correctly chained entry of case B (the same child: the same data key).
    service = log.runtime.extras["log"]
    assert isinstance(service, LogService)
    (stolen,) = (await _log_commits(consent, case_a))[0].events
    (head,) = (await _log_commits(consent, case_b))[-1].events
    assert head.hash is not None
    forged_entry = new_id()
    payload = registry.payload(stolen).model_copy(update={"entry_id": forged_entry})
    forged = service._linked(
        payload,
        case_b,
        head.tenant,
        Principal(kind="person", id=HOLDER, issuer="forger"),
        datetime.now(UTC),
        head.hash,
    )
    subject = consent.store.subject("log", case_b)
    stored = await consent.store.append(
        subject, [forged], expected_version=await consent.store.version(subject)
    )
    await log.runtime.projector.wait_for(stored.seq, 10)

    read = await log.client.get(f"/api/v1/logs/{case_b}/entries", headers=log.auth(HOLDER))
    assert read.status_code == 200, read.text
    texts = {e["id"]: e["text"] for e in read.json()["items"]}
    assert texts.get(ordinary.json()["id"]) == "En vanlig innføring i sak B."
    assert "Det eleven fortalte i sak A." not in texts.values()
    if forged_entry in texts:  # shown as an entry whose text cannot be read
        assert texts[forged_entry] is None
    original = await log.client.get(f"/api/v1/logs/{case_a}/entries", headers=log.auth(HOLDER))
    assert [e["text"] for e in original.json()["items"]] == ["Det eleven fortalte i sak A."]
