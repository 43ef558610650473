"""What the portal reads from the case service beside the case itself, with real NATS, SQLite
and PostgreSQL: the level history with its reasons, the baton's timeline, the list's next
evaluation and pending handover, ``member=me``, and the header of a pending handover that its
receiver may see before accepting (basis ``handover_addressee``) and no one else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness

HOLDER = "ann-kristin-allum"
RECEIVER = "helse-hanne"  # Siljan helsestasjon: the same organisation, no consent needed
STRANGER = "bv-berit"


def _time(value: str) -> datetime:
    """A time from an answer; one without an offset (``opened_at`` on SQLite) is UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


async def _case(consent: ConsentHarness, case: CaseHarness) -> str:
    """A level-1 case at Siljan ungdomsskole for a registered child, held by Ann Kristin."""
    _child_id, _guardians, body = await consent.register_child(12, [("Mor", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    return str(opened["id"])


async def _write(case: CaseHarness, person: str, path: str, body: dict[str, Any]) -> Any:
    response = await case.client.post(path, json=body, headers=case.auth(person))
    assert response.status_code in (200, 201), response.text
    return response


async def _request(case: CaseHarness, case_id: str, note: str) -> tuple[str, str]:
    """A handover to the receiver; its id and the write's sequence."""
    response = await _write(
        case,
        HOLDER,
        f"/api/v1/cases/{case_id}/handovers",
        {"to_person_id": RECEIVER, "to_unit_id": "siljan-helsestasjon", "note": note},
    )
    return response.json()["id"], response.headers["Stafett-Seq"]


async def _get(case: CaseHarness, person: str, path: str, seq: str | None = None) -> Any:
    headers = case.auth(person, **({"Stafett-Min-Seq": seq} if seq else {}))
    return await case.client.get(path, headers=headers)


async def test_the_level_history_lists_every_level_with_its_reason(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    case_id = await _case(consent, case)
    for level, reason in ((2, "Trenger helsesøster med."), (1, "Bedre etter samtalene.")):
        await _write(
            case, HOLDER, f"/api/v1/cases/{case_id}/level", {"level": level, "reason": reason}
        )
    body = (await _get(case, HOLDER, f"/api/v1/cases/{case_id}")).json()
    history = body["level_history"]
    assert [(h["level"], h["previous_level"], h["reason"]) for h in history] == [
        (1, None, None),
        (2, 1, "Trenger helsesøster med."),
        (1, 2, "Bedre etter samtalene."),
    ]
    assert {h["by_person_id"] for h in history} == {HOLDER}
    assert _time(history[0]["changed_at"]) == _time(body["opened_at"])
    times = [_time(h["changed_at"]) for h in history]
    assert times == sorted(times)
    # The reasons are in the stream only as ciphertext.
    stored = [
        e.data
        for c in await consent.store.read(1, limit=10_000)
        for e in c.events
        if e.type == "no.stafett.case.level_changed.v1"
    ]
    assert stored and all("Trenger" not in str(d) for d in stored)


async def test_the_baton_timeline_after_a_decline_and_an_accept(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    case_id = await _case(consent, case)
    before = (await _get(case, HOLDER, f"/api/v1/cases/{case_id}")).json()
    assert before["handovers"] == []
    assert _time(before["holder_since"]) == _time(before["level_history"][0]["changed_at"])

    first, _seq = await _request(case, case_id, "Hun kjenner familien.")
    await _write(
        case,
        RECEIVER,
        f"/api/v1/cases/{case_id}/handovers/{first}/decline",
        {"reason": "Ikke kapasitet før jul."},
    )
    second, _seq = await _request(case, case_id, "Nytt forsøk etter jul.")
    accepted = await _write(
        case, RECEIVER, f"/api/v1/cases/{case_id}/handovers/{second}/accept", {}
    )
    seq = accepted.headers["Stafett-Seq"]
    body = (await _get(case, RECEIVER, f"/api/v1/cases/{case_id}", seq)).json()
    timeline = body["handovers"]
    assert [(h["id"], h["status"]) for h in timeline] == [
        (first, "declined"),
        (second, "accepted"),
    ]
    for h in timeline:
        assert (h["from_person_id"], h["from_unit_id"]) == (HOLDER, "siljan-ungdomsskole")
        assert (h["to_person_id"], h["to_unit_id"], h["to_org_id"]) == (
            RECEIVER,
            "siljan-helsestasjon",
            "4010",
        )
        assert _time(h["answered_at"]) >= _time(h["requested_at"])
    assert timeline[0]["note"] == "Hun kjenner familien."
    assert timeline[0]["decline_reason"] == "Ikke kapasitet før jul."
    assert timeline[1]["note"] == "Nytt forsøk etter jul."
    assert timeline[1]["decline_reason"] is None
    assert body["holder"]["person_id"] == RECEIVER
    assert _time(body["holder_since"]) == _time(timeline[1]["answered_at"])
    assert body["pending_handover"] is None


async def test_the_list_shows_next_evaluation_and_pending_handover_and_member_me(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    held = await _case(consent, case)
    on_team = await case.open_case("rektor-siljan")
    other = await case.open_case("rektor-siljan")
    await _write(
        case,
        "rektor-siljan",
        f"/api/v1/cases/{on_team['id']}/team",
        {"person_id": HOLDER, "unit_id": "siljan-ungdomsskole", "access": "write"},
    )
    today = datetime.now(UTC).date()
    for days in (30, 9, 60):
        await _write(
            case,
            HOLDER,
            f"/api/v1/cases/{held}/measures",
            {
                "title": f"Tiltak {days}",
                "goal": "Mål",
                "responsible_person_id": HOLDER,
                "start": today.isoformat(),
                "evaluate_by": (today + timedelta(days=days)).isoformat(),
            },
        )
    handover_id, seq = await _request(case, held, "Over til helsestasjonen.")

    mine = await _get(case, HOLDER, "/api/v1/cases?member=me", seq)
    assert mine.status_code == 200, mine.text
    items = {c["id"]: c for c in mine.json()["items"]}
    assert set(items) == {held, on_team["id"]}
    assert items[held]["next_evaluate_by"] == (today + timedelta(days=9)).isoformat()
    assert items[held]["pending_handover"] == {
        "id": handover_id,
        "to_person_id": RECEIVER,
        "to_unit_id": "siljan-helsestasjon",
    }
    assert items[on_team["id"]]["next_evaluate_by"] is None
    assert items[on_team["id"]]["pending_handover"] is None

    # The leader sees all three; as a member (holder or on the team) only the two he holds.
    leader = await _get(case, "rektor-siljan", "/api/v1/cases?member=me")
    assert {c["id"] for c in leader.json()["items"]} == {on_team["id"], other["id"]}
    everything = await _get(case, "rektor-siljan", "/api/v1/cases")
    assert {c["id"] for c in everything.json()["items"]} == {held, on_team["id"], other["id"]}
    # The receiver is not a member before accepting, and the list is still the consent's.
    assert (await _get(case, RECEIVER, "/api/v1/cases?member=me")).json()["items"] == []
    bad = await _get(case, HOLDER, "/api/v1/cases?member=someone")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_the_receiver_sees_the_header_of_a_pending_handover_and_nothing_else(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    case_id = await _case(consent, case)
    handover_id, seq = await _request(case, case_id, "Hun kjenner familien.")
    path = f"/api/v1/cases/{case_id}/handovers/{handover_id}"

    header = await _get(case, RECEIVER, path, seq)
    assert header.status_code == 200, header.text
    assert header.json() == {
        "id": handover_id,
        "case_id": case_id,
        "status": "pending",
        "level": 1,
        "unit_id": "siljan-ungdomsskole",
        "org_id": "4010",
        "from_person_id": HOLDER,
        "from_unit_id": "siljan-ungdomsskole",
        "to_person_id": RECEIVER,
        "to_unit_id": "siljan-helsestasjon",
        "to_org_id": "4010",
        "requested_at": header.json()["requested_at"],
        "note": "Hun kjenner familien.",
    }
    assert "Ola" not in header.text

    # Not the case, not the log: the same 404 as for a case that does not exist.
    unknown = await _get(case, RECEIVER, "/api/v1/cases/01JNZZZZZZZZZZZZZZZZZZZZZZ")
    hidden = await _get(case, RECEIVER, f"/api/v1/cases/{case_id}")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()

    # A stranger, or the receiver asking for an unknown handover, gets that 404 too.
    stranger = await _get(case, STRANGER, path, seq)
    assert (stranger.status_code, stranger.json()) == (404, unknown.json())
    assert stranger.headers["content-type"] == "application/problem+json"
    wrong = await _get(case, RECEIVER, f"/api/v1/cases/{case_id}/handovers/{'0' * 26}")
    assert (wrong.status_code, wrong.json()) == (404, unknown.json())
    malformed = await _get(case, RECEIVER, f"/api/v1/cases/{case_id}/handovers/nope")
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"

    # The holder reads it as a reader of the case.
    by_holder = await _get(case, HOLDER, path)
    assert by_holder.status_code == 200
    assert by_holder.json() == header.json()

    # The receiver's read is recorded, on the basis the consent service named.
    reads = [
        e.data
        for c in await consent.store.read(1, limit=10_000)
        for e in c.events
        if e.type == "no.stafett.access.recorded.v1" and e.subject == case_id
    ]
    assert {(r["reader_id"], r["basis"]) for r in reads} >= {
        (RECEIVER, "handover_addressee"),
        (HOLDER, "holder"),
    }
    assert all(r["decision_id"] for r in reads)


async def test_a_former_receiver_loses_the_header_once_the_handover_is_answered(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    case_id = await _case(consent, case)

    async def answered(answer: str, person: str, body: dict[str, Any]) -> tuple[str, str]:
        handover_id, seq = await _request(case, case_id, "Til helsestasjonen.")
        path = f"/api/v1/cases/{case_id}/handovers/{handover_id}"
        assert (await _get(case, RECEIVER, path, seq)).status_code == 200
        done = await _write(case, person, f"{path}/{answer}", body)
        return path, done.headers["Stafett-Seq"]

    cancelled, seq = await answered("cancel", HOLDER, {})
    assert (await _get(case, RECEIVER, cancelled, seq)).status_code == 404
    declined, seq = await answered("decline", RECEIVER, {"reason": "Ikke nå."})
    assert (await _get(case, RECEIVER, declined, seq)).status_code == 404
    # The holder still sees the whole timeline.
    assert (await _get(case, HOLDER, cancelled)).json()["status"] == "cancelled"

    # Accepted: the receiver holds the case and reads it as its holder ...
    accepted, seq = await answered("accept", RECEIVER, {})
    header = await _get(case, RECEIVER, accepted, seq)
    assert (header.status_code, header.json()["status"]) == (200, "accepted")
    # ... until she hands it back: then she is no one to the case, and sees none of it.
    back = await _write(
        case,
        RECEIVER,
        f"/api/v1/cases/{case_id}/handovers",
        {"to_person_id": HOLDER, "to_unit_id": "siljan-ungdomsskole"},
    )
    done = await _write(
        case, HOLDER, f"/api/v1/cases/{case_id}/handovers/{back.json()['id']}/accept", {}
    )
    seq = done.headers["Stafett-Seq"]
    for path in (accepted, cancelled, f"/api/v1/cases/{case_id}"):
        assert (await _get(case, RECEIVER, path, seq)).status_code == 404, path
    assert (await _get(case, HOLDER, accepted, seq)).status_code == 200


async def test_the_receiver_lists_the_handovers_waiting_for_an_answer(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    case_id = await _case(consent, case)
    handover_id, seq = await _request(case, case_id, "Til helsestasjonen.")

    waiting = await _get(case, RECEIVER, "/api/v1/handovers?to=me", seq)
    assert waiting.status_code == 200, waiting.text
    items = waiting.json()["items"]
    assert [(i["id"], i["case_id"], i["note"]) for i in items] == [
        (handover_id, case_id, "Til helsestasjonen.")
    ]
    # The holder and a stranger have nothing waiting; only "me" may be asked for.
    for person in (HOLDER, STRANGER):
        other = await _get(case, person, "/api/v1/handovers?to=me", seq)
        assert other.json() == {"items": []}
    someone = await _get(case, RECEIVER, f"/api/v1/handovers?to={HOLDER}")
    assert someone.status_code == 422

    # Answered, it waits no more.
    accepted = await _write(
        case, RECEIVER, f"/api/v1/cases/{case_id}/handovers/{handover_id}/accept", {}
    )
    after = await _get(case, RECEIVER, "/api/v1/handovers?to=me", accepted.headers["Stafett-Seq"])
    assert after.json() == {"items": []}


async def test_a_write_with_stafett_min_seq_waits_for_what_the_client_wrote_before(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    _child, _guardians, body = await consent.register_child(9, [("Mor", True)])
    registered = await consent.store.last_seq()
    # Right after the child is registered, the case is opened with that write's sequence:
    # the case service and the decision wait for it instead of answering unknown_child.
    opened = await case.client.post(
        "/api/v1/cases",
        json={
            "unit_id": "siljan-ungdomsskole",
            "level": 1,
            "child": {"national_id": body["national_id"]},
            "concern": "Sliten hver morgen.",
        },
        headers=case.auth(HOLDER, **{"Stafett-Min-Seq": str(registered)}),
    )
    assert opened.status_code == 201, opened.text
    # A sequence beyond the stream's end is the client's mistake: 400 at once, not a wait
    # and a 503, and nothing is written; on a read as on a write.
    before = await consent.store.last_seq()
    ahead = await case.client.post(
        "/api/v1/cases",
        json={
            "unit_id": "siljan-ungdomsskole",
            "level": 0,
            "child": {"pseudonym": "Elev C"},
            "concern": "x",
        },
        headers=case.auth(HOLDER, **{"Stafett-Min-Seq": str(registered + 10_000)}),
    )
    assert ahead.status_code == 400, ahead.text
    assert ahead.headers["content-type"] == "application/problem+json"
    assert ahead.json()["code"] == "min_seq_beyond_stream"
    assert await consent.store.last_seq() == before
    read_ahead = await case.client.get(
        "/api/v1/cases", headers=case.auth(HOLDER, **{"Stafett-Min-Seq": str(before + 1)})
    )
    assert read_ahead.status_code == 400, read_ahead.text
    assert read_ahead.json()["code"] == "min_seq_beyond_stream"
    malformed = await case.client.post(
        "/api/v1/cases", json={}, headers=case.auth(HOLDER, **{"Stafett-Min-Seq": "-1"})
    )
    assert malformed.status_code == 400


async def test_whoami_names_the_person_the_token_makes_the_caller(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    for harness in (consent, case_service):
        who = await harness.client.get("/api/v1/whoami", headers=harness.auth(HOLDER))
        assert who.status_code == 200
        assert who.json() == {"kind": "person", "id": HOLDER}
        nobody = await harness.client.get("/api/v1/whoami")
        assert nobody.status_code == 401
        assert nobody.headers["content-type"] == "application/problem+json"
