"""Guardians can change (issue 17, item 6), over HTTP on real NATS and both databases: an
administrator adds and removes a child's guardians and changes parental responsibility, each
with a reason; the access index follows before the change is answered, so a former guardian's
very next read is refused and a new guardian's first read is served. With the population
register as the source the routes refuse. See docs/decisions/0028-guardians-change.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from stafett_case.testing import CaseHarness
from stafett_consent.projections import cases
from stafett_consent.testing import (
    ConsentHarness,
    consent_request,
    fresh_consent,
    synthetic_national_id,
)
from stafett_log.testing import LogHarness
from stafett_shared.contracts.directory import (
    GuardianAdded,
    GuardianRemoved,
    ParentalResponsibilityChanged,
)
from stafett_shared.envelope import registry
from stafett_shared.testing import NatsHandle

MISSING = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
REASON = "Endring i foreldreansvar etter dom i tingretten."
NEW_GUARDIAN_NAME = "Kari Bonusmor"
# The log service here asks the consent service at every read, so what is shown is the
# consent service's answer right after the change. A service that caches permits forgets them
# when the consent service announces the change (stafett.access.changed, before it answers):
# test_consent_flow shows that for a client on the consent service's connection; across
# processes the announcement arrives within milliseconds, and a caller that must be sure
# sends the answer's Stafett-Seq as Stafett-Min-Seq.
UNCACHED = pytest.mark.parametrize("log_service", [{"permit_cache_s": 0}], indirect=True)


def _new_guardian(**fields: Any) -> dict[str, Any]:
    return {
        "national_id": synthetic_national_id(datetime(1990, 3, 14, tzinfo=UTC), 310),
        "name": NEW_GUARDIAN_NAME,
        "parental_responsibility": True,
        "reason": REASON,
        **fields,
    }


async def _child_of(consent: ConsentHarness, case_id: str) -> str:
    async with consent.runtime.sessions() as session:
        child_id = await session.scalar(select(cases.c.child_id).where(cases.c.case_id == case_id))
    assert isinstance(child_id, str)
    return child_id


async def _reads(log: LogHarness, case_id: str, person: str) -> int:
    answer = await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=log.auth(person))
    return answer.status_code


async def _remove(consent: ConsentHarness, child_id: str, person_id: str) -> httpx.Response:
    return await consent.client.request(
        "DELETE",
        f"/api/v1/children/{child_id}/guardians/{person_id}",
        json={"reason": REASON},
        headers=consent.auth("admin"),
    )


async def _responsibility(
    consent: ConsentHarness, child_id: str, person_id: str, *, has: bool
) -> httpx.Response:
    return await consent.client.post(
        f"/api/v1/children/{child_id}/guardians/{person_id}/parental-responsibility",
        json={"parental_responsibility": has, "reason": REASON},
        headers=consent.auth("admin"),
    )


@UNCACHED
async def test_a_former_guardian_is_refused_at_once_and_a_new_one_reads_at_once(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, (mother, father) = await log.open_case(consent, case_service)
    assert (await log.append(case_id, text="Samtale med eleven.")).status_code == 201
    child_id = await _child_of(consent, case_id)
    assert await _reads(log, case_id, mother) == 200
    assert await _reads(log, case_id, father) == 200

    removed = await _remove(consent, child_id, mother)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"id": mother, "child_id": child_id, "status": "removed"}
    # The very next read: no waiting, no Stafett-Min-Seq.
    assert await _reads(log, case_id, mother) == 404
    denied = await consent.decide(mother, "log:read", case_id)
    assert (denied["decision"], denied["reason"]) == ("deny", "no_basis")

    lost = await _responsibility(consent, child_id, father, has=False)
    assert lost.status_code == 200, lost.text
    assert await _reads(log, case_id, father) == 404
    regained = await _responsibility(consent, child_id, father, has=True)
    assert regained.status_code == 200, regained.text
    assert await _reads(log, case_id, father) == 200

    added = await consent.client.post(
        f"/api/v1/children/{child_id}/guardians",
        json=_new_guardian(),
        headers=consent.auth("admin"),
    )
    assert added.status_code == 201, added.text
    newcomer = added.json()["id"]
    assert added.json()["parental_responsibility"] is True
    assert await _reads(log, case_id, newcomer) == 200

    events = [
        e
        for c in await consent.store.read(int(removed.headers["Stafett-Seq"]), limit=100)
        for e in c.events
        if e.type.startswith("no.stafett.directory.")
    ]
    payloads = [registry.payload(e) for e in events]
    assert [type(p) for p in payloads] == [
        GuardianRemoved,
        ParentalResponsibilityChanged,
        ParentalResponsibilityChanged,
        GuardianAdded,
    ]
    assert {getattr(p, "changed_by", None) for p in payloads} == {"admin"}
    raw = json.dumps([e.data for e in events], ensure_ascii=False)
    # Names, national ids and reasons are encrypted with the child's key.
    for secret in (REASON, NEW_GUARDIAN_NAME, _new_guardian()["national_id"]):
        assert secret not in raw


async def test_only_administrators_change_guardians_and_bad_input_writes_nothing(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    case_id, (mother, _father) = await log_service.open_case(consent, case_service)
    child_id = await _child_of(consent, case_id)
    admin = consent.auth("admin")
    guardians = f"/api/v1/children/{child_id}/guardians"
    before = await consent.store.last_seq()

    for person in ("ann-kristin-allum", "rektor-siljan", mother):
        refused = await consent.client.post(
            guardians, json=_new_guardian(), headers=consent.auth(person)
        )
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        removal = await consent.client.request(
            "DELETE", f"{guardians}/{mother}", json={"reason": REASON}, headers=consent.auth(person)
        )
        assert removal.status_code == 403, removal.text

    bad: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("POST", guardians, {k: v for k, v in _new_guardian().items() if k != "reason"}, 422, None),
        ("POST", guardians, _new_guardian(reason=""), 422, None),
        ("POST", guardians, _new_guardian(reason="x" * 1001), 422, None),
        ("POST", guardians, _new_guardian(national_id="12345678901"), 422, "invalid_national_id"),
        ("POST", guardians, _new_guardian(extra=1), 422, None),
        ("POST", f"/api/v1/children/{MISSING}/guardians", _new_guardian(), 404, "unknown_child"),
        ("POST", "/api/v1/children/not-an-id/guardians", _new_guardian(), 422, None),
        ("DELETE", f"{guardians}/{MISSING}", {"reason": REASON}, 404, "unknown_guardian"),
        ("DELETE", f"{guardians}/{mother}", {}, 422, None),
        (
            "POST",
            f"{guardians}/{mother}/parental-responsibility",
            {"parental_responsibility": "kanskje", "reason": REASON},
            422,
            None,
        ),
    ]
    for method, path, body, status, code in bad:
        answer = await consent.client.request(method, path, json=body, headers=admin)
        assert answer.status_code == status, (path, body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        if code is not None:
            assert answer.json()["code"] == code
        for secret in (REASON, NEW_GUARDIAN_NAME):
            assert secret not in answer.text

    # A guardian already registered (by national id) is not added twice.
    first = await consent.client.post(guardians, json=_new_guardian(), headers=admin)
    assert first.status_code == 201, first.text
    after_first = await consent.store.last_seq()
    again = await consent.client.post(guardians, json=_new_guardian(), headers=admin)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_guardian"
    # Setting the responsibility a guardian has already changes nothing.
    same = await _responsibility(consent, child_id, mother, has=True)
    assert same.status_code == 200, same.text
    assert await consent.store.last_seq() == after_first
    written = [
        e.type
        for c in await consent.store.read(before + 1, limit=100)
        for e in c.events
        if not e.type.startswith("no.stafett.access.")
    ]
    assert written == [GuardianAdded.event_type]


async def test_with_the_population_register_as_source_the_routes_refuse(
    nats_server: NatsHandle,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFETT_CONSENT_GUARDIAN_CHANGES", "false")
    async with fresh_consent(nats_server.url, database_url, tmp_path) as consent:
        child_id, (mother,), _body = await consent.register_child(10, [("Mor", True)])
        before = await consent.store.last_seq()
        admin = consent.auth("admin")
        answers = [
            await consent.client.post(
                f"/api/v1/children/{child_id}/guardians", json=_new_guardian(), headers=admin
            ),
            await _remove(consent, child_id, mother),
            await _responsibility(consent, child_id, mother, has=False),
        ]
        for answer in answers:
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == "guardians_from_register"
        assert await consent.store.last_seq() == before


async def test_an_active_consent_stays_and_a_former_guardian_no_longer_acts_on_a_pending_one(
    consent: ConsentHarness,
) -> None:
    child_id, (mother, father), _body = await consent.register_child(
        12, [("Mor", True), ("Far", True)]
    )
    case_id, seq = await consent.open_case(child_id=child_id)
    await consent.runtime.projector.wait_for(seq, 5)
    await consent.add_team_member(case_id, "helse-hanne", "siljan-helsestasjon")
    holder = consent.auth("ann-kristin-allum")

    def sign(consent_id: str, grantor: str, by: str | None = None) -> Any:
        body: dict[str, Any] = {"grantor_person_id": grantor}
        if by is not None:
            body |= {"method": "paper", "reference": "Skjema i arkivet"}
        return consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json=body,
            headers=consent.auth(by or grantor),
        )

    given = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=holder
    )
    assert given.status_code == 201, given.text
    active_id = given.json()["id"]
    for guardian in (mother, father):
        assert (await sign(active_id, guardian)).status_code == 201
    pending = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=holder
    )
    assert pending.status_code == 201, pending.text
    pending_id = pending.json()["id"]

    assert (await _remove(consent, child_id, mother)).status_code == 200

    # The consent both guardians gave stays in force: the team member still reads.
    still = await consent.decide("helse-hanne", "case:read", case_id)
    assert (still["decision"], still["consent_id"]) == ("permit", active_id)
    before = await consent.store.last_seq()
    # The former guardian may no longer read the case: 404, as for a consent that does not
    # exist; staff recording a paper signature for them are told why.
    as_former = await sign(pending_id, mother)
    assert as_former.status_code == 404, as_former.text
    withdrawal = await consent.client.post(
        f"/api/v1/consents/{active_id}/withdrawals",
        json={"grantor_person_id": mother, "reason": "Vil ikke lenger."},
        headers=consent.auth(mother),
    )
    assert withdrawal.status_code == 404, withdrawal.text
    on_paper = await sign(pending_id, mother, by="ann-kristin-allum")
    assert on_paper.status_code == 422, on_paper.text
    assert on_paper.json()["code"] == "not_a_grantor"
    assert "foreldreansvar" in on_paper.json()["detail"]
    written = [
        e.type
        for c in await consent.store.read(before + 1, limit=100)
        for e in c.events
        if not e.type.startswith("no.stafett.access.")
    ]
    assert written == []
    # The guardian who keeps responsibility still signs; a new request names only them.
    assert (await sign(pending_id, father)).status_code == 201
    renewed = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=holder
    )
    assert renewed.status_code == 201, renewed.text
    signed = await sign(renewed.json()["id"], father)
    assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "active"
