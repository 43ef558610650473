"""The youth's own voice, «Hva er viktig for meg?» (issue 18, item 5), over HTTP on real
NATS and both databases: a youth of 16 writes their own words in their own log, marked as
theirs, and may write nothing else; a child of 12 and a guardian may not write them; the age
is the case's organisation's youth age. See docs/decisions/0033-the-youths-own-voice.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.domain import MAX_OWN_VOICE
from stafett_log.testing import LogHarness

HOLDER = "ann-kristin-allum"
SILJAN = "/api/v1/directory/orgs/4010"
WORDS = "Jeg vil fortsette med fotball, og jeg vil at noen spør meg før de bestemmer."


async def _case_of_child(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness, age: int
) -> tuple[str, str, list[str]]:
    """A case for a child of ``age`` with two guardians: its id, the child's and theirs."""
    child_id, guardians, body = await consent.register_child(age, [("Mor", True), ("Far", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    await log.runtime.projector.wait_for(opened["seq"], 10)
    return opened["id"], child_id, guardians


def _own(log: LogHarness, case_id: str, person: str, text: str = WORDS) -> Any:
    return log.client.post(
        f"/api/v1/logs/{case_id}/own-voice", json={"text": text}, headers=log.auth(person)
    )


async def _written(consent: ConsentHarness, since: int) -> list[str]:
    """The types of what was written after ``since``, besides the access records."""
    return [
        e.type
        for c in await consent.store.read(since + 1, limit=1000)
        for e in c.events
        if not e.type.startswith("no.stafett.access.")
    ]


async def test_a_youth_of_16_writes_their_own_words_and_the_holder_sees_them_marked(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, youth, _guardians = await _case_of_child(consent, case_service, log, 16)

    written = await _own(log, case_id, youth)
    assert written.status_code == 201, written.text
    entry_id = written.json()["id"]
    assert int(written.headers["Stafett-Seq"]) == written.json()["seq"]

    for reader in (HOLDER, youth):
        answer = await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=log.auth(reader))
        assert answer.status_code == 200, answer.text
        (entry,) = [e for e in answer.json()["items"] if e["id"] == entry_id]
        assert entry["kind"] == "child_voice"
        assert entry["text"] == WORDS
        assert entry["author"] == {
            "person_id": youth,
            "role": None,
            "unit_id": None,
            "kind": "child",
        }
        assert entry["category"] is None
        assert entry["participants"] == []

    # The text is encrypted like every entry's; the author is the child, marked as such.
    (commit,) = await consent.store.read(written.json()["seq"], limit=1)
    (event,) = commit.events
    assert event.type == "no.stafett.log.entry_appended.v1"
    assert WORDS not in commit.data.decode()
    assert event.data["author"] == {
        "person_id": youth,
        "role": None,
        "unit_id": None,
        "kind": "child",
    }
    # A staff entry's author is what it always was: no kind in the event.
    staff = await log.append(case_id, text="Samtale med eleven.")
    assert staff.status_code == 201, staff.text
    (commit,) = await consent.store.read(staff.json()["seq"], limit=1)
    assert "kind" not in commit.events[0].data["author"]
    listed = await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=log.auth(HOLDER))
    kinds = {e["id"]: e["author"]["kind"] for e in listed.json()["items"]}
    assert kinds == {entry_id: "child", staff.json()["id"]: "staff"}


async def test_the_youth_writes_nothing_else_and_corrects_no_one(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, youth, _guardians = await _case_of_child(consent, case_service, log, 16)
    staff = await log.append(case_id, text="Samtale med eleven.")
    assert staff.status_code == 201, staff.text
    staff_entry = staff.json()["id"]
    before = await consent.store.last_seq()
    now = datetime.now(UTC).isoformat()
    refused = [
        ("/api/v1/logs/{}/entries", {"kind": kind, "text": WORDS, "occurred_at": now})
        for kind in ("child_voice", "observation", "note", "concern")
    ]
    refused += [
        (
            f"/api/v1/logs/{{}}/entries/{staff_entry}/corrections",
            {"text": "Det stemmer ikke.", "reason": "Feil"},
        ),
        (f"/api/v1/logs/{{}}/entries/{staff_entry}/retractions", {"reason": "Feil"}),
        (
            f"/api/v1/logs/{{}}/entries/{staff_entry}/restrictions",
            {"ground": "fvl_19_harmful_to_child", "reason": "x", "until": "2030-01-01T00:00:00Z"},
        ),
    ]
    for path, body in refused:
        answer = await log.client.post(path.format(case_id), json=body, headers=log.auth(youth))
        # The youth reads their own log (from 15), so they are told 403, not 404 (0025).
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["code"] == "forbidden"

    # The own-voice route takes text alone, within its limit; anything else writes nothing.
    for body in (
        {"text": ""},
        {"text": "   "},
        {"text": "x" * (MAX_OWN_VOICE + 1)},
        {"text": WORDS, "kind": "observation"},
        {"text": WORDS, "category": "health"},
        {},
    ):
        answer = await log.client.post(
            f"/api/v1/logs/{case_id}/own-voice", json=body, headers=log.auth(youth)
        )
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert await _written(consent, before) == []
    fits = await _own(log, case_id, youth, "x" * MAX_OWN_VOICE)
    assert fits.status_code == 201, fits.text


async def test_a_child_of_12_a_guardian_and_staff_may_not_write_the_youths_words(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, child, (mother, _father) = await _case_of_child(consent, case_service, log, 12)
    before = await consent.store.last_seq()
    # The child of 12 may not read their log, so for them the case does not exist (0025).
    young = await _own(log, case_id, child)
    missing = await _own(log, "01JZZZZZZZZZZZZZZZZZZZZZZZ", child)
    assert young.status_code == missing.status_code == 404
    assert young.content == missing.content
    # A guardian and the holder read the case: 403. The youth's words are the youth's own.
    for person in (mother, HOLDER):
        answer = await _own(log, case_id, person)
        assert answer.status_code == 403, (person, answer.text)
        assert answer.json()["code"] == "forbidden"
    assert await _written(consent, before) == []
    denied = await consent.decide(mother, "log:append_own_voice", case_id)
    assert (denied["decision"], denied["reason"]) == ("deny", "no_basis")

    # Another case's youth may not write in this one.
    _other_case, other_youth, _ = await _case_of_child(consent, case_service, log, 16)
    assert (await _own(log, case_id, other_youth)).status_code == 404


async def test_the_organisations_youth_age_decides_from_when_the_youth_writes(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, youth, _guardians = await _case_of_child(consent, case_service, log, 16)
    permitted = await consent.decide(youth, "log:append_own_voice", case_id)
    assert (permitted["decision"], permitted["basis"]) == ("permit", "youth")

    admin = consent.auth("admin")
    part = (await consent.client.get(SILJAN, headers=admin)).json()["part"]
    part["settings"] = {"youth_consent_age": 17}
    changed = await consent.client.put(SILJAN, json=part, headers=admin)
    assert changed.status_code == 200, changed.text
    await log.runtime.projector.wait_for(int(changed.headers["Stafett-Seq"]), 10)
    # At once: the youth of 16 still reads their log (from 15) but no longer writes in it.
    refused = await _own(log, case_id, youth)
    assert refused.status_code == 403, refused.text

    part["settings"] = {"youth_consent_age": 16}
    changed = await consent.client.put(SILJAN, json=part, headers=admin)
    assert changed.status_code == 200, changed.text
    assert (await _own(log, case_id, youth)).status_code == 201
