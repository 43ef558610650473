"""The stafettlogg over HTTP beside the consent and case services, on real NATS and both
databases: concurrent writers, one chain, restrictions, corrections, who-read, bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness


async def _case(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness
) -> tuple[str, list[str]]:
    return await log.open_case(consent, case)


async def _stream_types(consent: ConsentHarness, after: int) -> list[str]:
    return [
        e.type
        for c in await consent.store.read(after + 1, limit=10_000)
        for e in c.events
        if not e.type.startswith("no.stafett.access.")
    ]


async def test_fifty_concurrent_writers_leave_every_entry_once_on_one_unbroken_chain(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    responses = await asyncio.gather(
        *(log.append(case_id, text=f"Innføring nummer {i}.") for i in range(50))
    )
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses][:3]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 50
    read = await log.client.get(
        f"/api/v1/logs/{case_id}/entries", headers=log.auth("ann-kristin-allum")
    )
    texts = sorted(e["text"] for e in read.json()["items"])
    assert texts == sorted(f"Innføring nummer {i}." for i in range(50))
    verify = await log.client.get(
        f"/api/v1/logs/{case_id}/verify", headers=log.auth("ann-kristin-allum")
    )
    assert verify.json() == {"ok": True, "entries": 50, "head_hash": verify.json()["head_hash"]}
    hashes = {r.json()["hash"] for r in responses}
    assert verify.json()["head_hash"] in hashes


async def test_guardians_see_their_reads_and_the_holders_but_not_restricted_entries(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, (mother, _father) = await _case(consent, case_service, log)
    open_entry = await log.append(case_id, text="Samtale om trivsel.")
    secret = await log.append(
        case_id, text="Eleven ba om at dette ikke deles hjemme.", kind="conversation_child"
    )
    assert secret.status_code == 201
    by_holder = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{secret.json()['id']}/restrictions",
        json={
            "ground": "fvl_19_harmful_to_child",
            "reason": "Kan skade eleven.",
            "until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        },
        headers=log.auth("ann-kristin-allum"),
    )
    # Restricting is the leader's decision alone; the holder, who reads the case, is told so.
    assert by_holder.status_code == 403, by_holder.text
    restricted = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{secret.json()['id']}/restrictions",
        json={
            "ground": "fvl_19_harmful_to_child",
            "reason": "Kan skade eleven.",
            "until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        },
        headers=log.auth("rektor-siljan"),
    )
    assert restricted.status_code == 201, restricted.text
    seq = int(restricted.headers["Stafett-Seq"])
    await consent.runtime.projector.wait_for(seq, 10)

    holder_view = await log.client.get(
        f"/api/v1/logs/{case_id}/entries", headers=log.auth("ann-kristin-allum")
    )
    assert {e["id"] for e in holder_view.json()["items"]} == {
        open_entry.json()["id"],
        secret.json()["id"],
    }
    guardian_view = await log.client.get(
        f"/api/v1/logs/{case_id}/entries", headers=log.auth(mother)
    )
    assert guardian_view.status_code == 200, guardian_view.text
    assert [e["id"] for e in guardian_view.json()["items"]] == [open_entry.json()["id"]]

    await log.runtime.projector.catch_up()
    access = await log.client.get(f"/api/v1/logs/{case_id}/access", headers=log.auth(mother))
    assert access.status_code == 200
    reads = {(r["reader_id"], r["basis"], r["what"]) for r in access.json()["items"]}
    assert (mother, "guardian", "entries") in reads
    assert ("ann-kristin-allum", "holder", "entries") in reads
    # Who read how many entries counts only entries the guardian may see: the holder read
    # the restricted one too, but the guardian's count leaves it out.
    holder_reads = [
        r
        for r in access.json()["items"]
        if r["reader_id"] == "ann-kristin-allum" and r["what"] == "entries"
    ]
    assert holder_reads
    assert all(r["entries"] == 1 for r in holder_reads), holder_reads
    as_holder = await log.client.get(
        f"/api/v1/logs/{case_id}/access", headers=log.auth("ann-kristin-allum")
    )
    counted = [
        r["entries"]
        for r in as_holder.json()["items"]
        if r["reader_id"] == "ann-kristin-allum" and r["what"] == "entries"
    ]
    assert 2 in counted  # the holder may see both, and the count says so
    outsider = await log.client.get(f"/api/v1/logs/{case_id}/access", headers=log.auth("vgs-vidar"))
    assert outsider.status_code == 404


async def test_a_corrected_entry_shows_the_new_text_and_keeps_the_old(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    first = await log.append(case_id, text="Møte tirsdag.")
    corrected = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{first.json()['id']}/corrections",
        json={"text": "Møte onsdag.", "reason": "Feil dag."},
        headers=log.auth("ann-kristin-allum"),
    )
    assert corrected.status_code == 201, corrected.text
    retract_me = await log.append(case_id, text="Skrevet i feil sak.")
    retracted = await log.client.post(
        f"/api/v1/logs/{case_id}/entries/{retract_me.json()['id']}/retractions",
        json={"reason": "Feil sak."},
        headers=log.auth("ann-kristin-allum"),
    )
    assert retracted.status_code == 201
    items = (
        await log.client.get(
            f"/api/v1/logs/{case_id}/entries", headers=log.auth("ann-kristin-allum")
        )
    ).json()["items"]
    by_id = {e["id"]: e for e in items}
    entry = by_id[first.json()["id"]]
    assert entry["text"] == "Møte onsdag."
    assert entry["status"] == "corrected"
    assert [v["text"] for v in entry["versions"]] == ["Møte tirsdag.", "Møte onsdag."]
    assert entry["versions"][1]["reason"] == "Feil dag."
    assert by_id[retract_me.json()["id"]]["status"] == "retracted"
    assert len(items) == 2  # corrections and retractions are shown on their originals
    verify = await log.client.get(
        f"/api/v1/logs/{case_id}/verify", headers=log.auth("ann-kristin-allum")
    )
    assert verify.json()["ok"] is True
    assert verify.json()["entries"] == 4


async def test_an_append_is_answered_even_when_applying_it_at_once_fails(
    consent: ConsentHarness,
    case_service: CaseHarness,
    log_service: LogHarness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The append is stored before the read model is asked to hold it: if applying it at
    once fails, the background projector applies it and the writer still gets 201 (a 500
    would invite a retry that writes the entry twice)."""
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    projector = log.runtime.projector
    tried: list[int] = []

    async def broken(_subject: str, seq: int, _events: object) -> int:
        tried.append(seq)
        raise OSError("the read model's disk is away for a moment")

    monkeypatch.setattr(projector, "apply_own", broken)
    await projector.catch_up()
    written = await log.append(case_id, text="Skrevet mens lesemodellen hakket.")
    assert written.status_code == 201, written.text
    seq = written.json()["seq"]
    assert tried == [seq]
    assert projector.known_position >= seq  # the background projector applied it
    items = (
        await log.client.get(
            f"/api/v1/logs/{case_id}/entries", headers=log.auth("ann-kristin-allum")
        )
    ).json()["items"]
    assert [e["id"] for e in items].count(written.json()["id"]) == 1


async def test_a_who_read_cursor_beyond_any_sequence_is_invalid_input_not_a_server_error(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    """A cursor past 64 bits reached the database, which could not bind it: a 500. Found
    probing the bounds the OpenAPI document left open (the integer had no maximum)."""
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    headers = log.auth("ann-kristin-allum")
    # The view's cursor is opaque now (decision 0029): a bare sequence of any size is refused
    # as a cursor that was not given, never reaching the database.
    for cursor in (str(2**63), "9" * 30, str(2**63 - 1)):
        refused = await log.client.get(
            f"/api/v1/logs/{case_id}/access", params={"cursor": cursor}, headers=headers
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"


async def test_bad_log_input_is_refused_and_writes_nothing(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    other_case, _ = await _case(consent, case_service, log)
    other_entry = await log.append(other_case, text="Annen sak.")
    assert other_entry.status_code == 201
    before = await consent.store.last_seq()
    now = datetime.now(UTC)
    bad: list[tuple[str, dict[str, Any], int, str]] = [
        (
            "entries",
            {"kind": "gossip", "text": "x", "occurred_at": now.isoformat()},
            422,
            "validation_error",
        ),
        (
            "entries",
            {"kind": "note", "text": "", "occurred_at": now.isoformat()},
            422,
            "validation_error",
        ),
        (
            "entries",
            {"kind": "note", "text": "x" * 10_001, "occurred_at": now.isoformat()},
            422,
            "validation_error",
        ),
        (
            "entries",
            {"kind": "note", "text": "x", "occurred_at": (now + timedelta(days=1)).isoformat()},
            422,
            "occurred_in_future",
        ),
        (
            "entries",
            {"kind": "note", "text": "x", "occurred_at": "2026-11-23T10:00:00"},
            422,
            "validation_error",
        ),
        (
            f"entries/{other_entry.json()['id']}/corrections",
            {"text": "y", "reason": "z"},
            422,
            "unknown_entry",
        ),
    ]
    for path, body, status, code in bad:
        response = await log.client.post(
            f"/api/v1/logs/{case_id}/{path}", json=body, headers=log.auth("ann-kristin-allum")
        )
        assert response.status_code == status, (path, response.text)
        assert response.json()["code"] == code, (path, response.text)
        assert "x" * 50 not in response.text
    closed = await case_service.client.post(
        f"/api/v1/cases/{case_id}/close",
        json={"reason": "resolved"},
        headers=case_service.auth("ann-kristin-allum"),
    )
    assert closed.status_code == 200
    await log.runtime.projector.wait_for(int(closed.headers["Stafett-Seq"]), 10)
    after_close = await consent.store.last_seq()
    refused = await log.append(case_id, text="Etter avslutning.")
    assert refused.status_code == 409
    assert refused.json()["code"] == "case_closed"
    assert await _stream_types(consent, after_close) == []
    assert await _stream_types(consent, before) == ["no.stafett.case.closed.v1"]


async def test_an_outsider_naming_an_entry_learns_nothing_of_the_case(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    """A correction, retraction or restriction by someone without access is 404 before the
    entry is looked at: the same answer for an entry of the case, an entry of another case
    and a case that does not exist (the entry's case was once told as 422)."""
    log = log_service
    case_id, _ = await _case(consent, case_service, log)
    other_id, _ = await _case(consent, case_service, log)
    entry = (await log.append(case_id)).json()["id"]
    elsewhere = (await log.append(other_id)).json()["id"]
    bodies = {
        "corrections": {"text": "Ny tekst.", "reason": "Feil."},
        "retractions": {"reason": "Feil sak."},
        "restrictions": {
            "ground": "fvl_19_harmful_to_child",
            "reason": "Kan skade eleven.",
            "until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
    }
    for kind, body in bodies.items():
        answers = set()
        for case, named in ((case_id, entry), (case_id, elsewhere), ("0" * 26, entry)):
            response = await log.client.post(
                f"/api/v1/logs/{case}/entries/{named}/{kind}",
                json=body,
                headers=log.auth("vgs-vidar"),
            )
            answers.add((response.status_code, response.content))
        assert len(answers) == 1 and next(iter(answers))[0] == 404, (kind, answers)
