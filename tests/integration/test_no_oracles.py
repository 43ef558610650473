"""No oracles on national ids (issue 17, item 7; decision 0029), over HTTP on real NATS and
both databases: registering a child answers alike whether or not the child was registered
before; opening a case or identifying a child by national id answers alike whether nobody or
only someone else registered the child; each look-up is recorded with the blind index only;
and a person's look-ups are limited (429 with Retry-After)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ulid import ULID

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness, synthetic_national_id
from stafett_shared.contracts.access import LookupRecorded
from stafett_shared.envelope import registry

TEACHER = "ann-kristin-allum"  # siljan-ungdomsskole
NURSE = "helse-hanne"  # siljan-helsestasjon


def _national_id(years: int, individual: int) -> str:
    born = datetime.now(UTC).replace(day=1) - timedelta(days=365 * years)
    return synthetic_national_id(born, individual)


def _child(national_id: str) -> dict[str, Any]:
    return {
        "national_id": national_id,
        "name": "Ola Nordmann",
        "guardians": [
            {
                "national_id": _national_id(40, 210),
                "name": "Kari Nordmann",
                "parental_responsibility": True,
            }
        ],
    }


async def _register(consent: ConsentHarness, person: str, national_id: str) -> Any:
    return await consent.client.post(
        "/api/v1/children", json=_child(national_id), headers=consent.auth(person)
    )


async def _open(case: CaseHarness, person: str, unit_id: str, national_id: str) -> Any:
    return await case.client.post(
        "/api/v1/cases",
        json={
            "unit_id": unit_id,
            "level": 1,
            "child": {"national_id": national_id},
            "concern": "Eleven virker sliten.",
        },
        headers=case.auth(person),
    )


def _refusal(response: Any) -> tuple[int, str, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["title"], body["detail"]


async def _lookups(consent: ConsentHarness) -> list[tuple[LookupRecorded, bytes]]:
    """Every look-up recorded on the stream, with its stored bytes."""
    out: list[tuple[LookupRecorded, bytes]] = []
    for commit in await consent.store.load(f"{consent.store.prefix}.access.*"):
        raw = await consent.store.get(commit.seq, decode=False)
        assert raw is not None
        for event in commit.events:
            payload = registry.payload(event)
            if isinstance(payload, LookupRecorded):
                out.append((payload, raw.data))
    return out


async def _ready(consent: ConsentHarness, case: CaseHarness) -> None:
    assert (await consent.load_region()).status_code == 200
    await case.settle(await consent.store.last_seq())


async def test_registering_a_known_child_answers_as_registering_a_new_one(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    await _ready(consent, case_service)
    known, unknown = _national_id(12, 301), _national_id(12, 302)
    first = await _register(consent, TEACHER, known)
    assert first.status_code == 201, first.text

    again = await _register(consent, NURSE, known)
    new = await _register(consent, NURSE, unknown)

    assert again.status_code == new.status_code == 201, (again.text, new.text)
    assert set(again.json()) == set(new.json()) == {"id", "guardians"}
    assert [set(g) for g in again.json()["guardians"]] == [set(g) for g in new.json()["guardians"]]
    for answer in (again, new):
        assert int(answer.headers["Stafett-Seq"]) > 0
        assert answer.headers["ETag"]
    # Nor do the ids tell when the child or its guardians were first registered: they are
    # in the ULID format with all 128 bits random, so no time of creation can be read.
    # (Read as milliseconds: a random time may lie beyond the year 9999.)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    day_ms = int(timedelta(days=1).total_seconds() * 1000)
    for answer in (first, again, new):
        ids = [answer.json()["id"], *(g["id"] for g in answer.json()["guardians"])]
        for person_id in ids:
            assert abs(ULID.from_str(person_id).milliseconds - now_ms) > day_ms, person_id


async def test_opening_or_identifying_by_someone_elses_child_is_refused_as_an_unknown_one(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _ready(consent, case)
    theirs, nobodys = _national_id(12, 311), _national_id(12, 312)
    registered = await _register(consent, TEACHER, theirs)
    assert registered.status_code == 201, registered.text
    await case.settle(int(registered.headers["Stafett-Seq"]))

    someone_elses = await _open(case, NURSE, "siljan-helsestasjon", theirs)
    unknown = await _open(case, NURSE, "siljan-helsestasjon", nobodys)
    assert _refusal(someone_elses) == _refusal(unknown)
    assert _refusal(unknown)[:2] == (422, "unknown_child")
    listed = await case.client.get("/api/v1/cases", headers=case.auth(NURSE))
    assert listed.json()["items"] == []  # nothing was opened

    anonymous = await case.open_case(NURSE, unit_id="siljan-helsestasjon")
    await consent.runtime.projector.wait_for(anonymous["seq"], 10)
    path = f"/api/v1/cases/{anonymous['id']}/identify"
    identify_theirs = await case.client.post(
        path, json={"national_id": theirs}, headers=case.auth(NURSE)
    )
    identify_unknown = await case.client.post(
        path, json={"national_id": nobodys}, headers=case.auth(NURSE)
    )
    assert _refusal(identify_theirs) == _refusal(identify_unknown) == _refusal(unknown)

    # Having given the child's details herself, the nurse opens the case on that child.
    mine = await _register(consent, NURSE, theirs)
    assert mine.status_code == 201, mine.text
    assert mine.json()["id"] == registered.json()["id"]
    await case.settle(int(mine.headers["Stafett-Seq"]))
    opened = await _open(case, NURSE, "siljan-helsestasjon", theirs)
    assert opened.status_code == 201, opened.text
    await consent.runtime.projector.wait_for(int(opened.headers["Stafett-Seq"]), 10)
    view = await case.client.get(f"/api/v1/cases/{opened.json()['id']}", headers=case.auth(NURSE))
    assert view.status_code == 200, view.text
    assert view.json()["child"]["id"] == registered.json()["id"]


async def test_each_lookup_is_recorded_with_the_blind_index_and_never_the_national_id(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _ready(consent, case)
    national_id = _national_id(13, 321)
    registered = await _register(consent, TEACHER, national_id)
    assert registered.status_code == 201, registered.text
    await case.settle(int(registered.headers["Stafett-Seq"]))
    opened = await _open(case, TEACHER, "siljan-ungdomsskole", national_id)
    assert opened.status_code == 201, opened.text
    refused = await _open(case, NURSE, "siljan-helsestasjon", national_id)
    assert refused.status_code == 422, refused.text

    lookups = await _lookups(consent)
    index = consent.runtime.extras["consent"].index(national_id, context="national_id")
    assert [(e.person_id, e.purpose, e.service) for e, _raw in lookups] == [
        (TEACHER, "register_child", "consent"),
        (TEACHER, "open_case", "case"),
        (NURSE, "open_case", "case"),
    ]
    assert {e.national_id_index for e, _raw in lookups} == {index}
    assert lookups[1][0].case_id == opened.json()["id"]
    for _event, raw in lookups:
        assert national_id.encode() not in raw


@pytest.fixture
def few_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two look-ups at once per person, then one an hour (set before the services start)."""
    monkeypatch.setenv("STAFETT_LOOKUP_LIMIT_BURST", "2")
    monkeypatch.setenv("STAFETT_LOOKUP_LIMIT_PER_HOUR", "1")


@pytest.mark.usefixtures("few_lookups")
async def test_a_person_who_looks_up_too_many_national_ids_is_told_429(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await _ready(consent, case)
    tried = [_national_id(11, 330 + i) for i in range(3)]
    answers = [await _open(case, TEACHER, "siljan-ungdomsskole", nid) for nid in tried]
    assert [a.status_code for a in answers] == [422, 422, 429]
    assert answers[2].headers["content-type"].startswith("application/problem+json")
    assert answers[2].json()["code"] == "lookup_rate_limited"
    assert int(answers[2].headers["Retry-After"]) >= 1
    # A refused look-up is not made: two are recorded, not three.
    assert [e.person_id for e, _raw in await _lookups(consent)] == [TEACHER, TEACHER]
    # Opening a case without a national id is no look-up; someone else is not held back.
    assert (await case.open_case(TEACHER))["id"]
    other = await _open(case, NURSE, "siljan-helsestasjon", tried[2])
    assert other.status_code == 422, other.text

    registrations = [await _register(consent, NURSE, nid) for nid in tried]
    assert [r.status_code for r in registrations] == [201, 201, 429]
    assert registrations[2].json()["code"] == "lookup_rate_limited"
