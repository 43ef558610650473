"""Who asks for a consent and what it is for (issue 18, item 3; decision 0034), over HTTP on
real NATS and both databases: the consent list and a single consent name who asked
(``requested_by``, filled by the projection, again after a rebuild); a single consent gives
its purpose in clear to staff who may read the case and to the grantors it names, ``null``
to the rest of the family, and nothing at all (404, as for no consent) to anyone else; every
read is recorded, as ``consent`` when the purpose was served."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from stafett_consent.projections import consents
from stafett_consent.testing import ConsentHarness, consent_request
from stafett_shared.envelope import CloudEvent
from stafett_shared.ids import new_id

STAFF = "ann-kristin-allum"  # the holder, who asks
NURSE = "helse-hanne"  # on the team from the health service: reads the case by the consent
STRANGER = "vgs-vidar"  # no relation to the case
PURPOSE = consent_request("")["scope"]["purpose"]


async def _asked(consent: ConsentHarness, age: int) -> tuple[str, str, str, list[str]]:
    """A case of a child of ``age`` with two responsible guardians and the nurse on its
    team, and a consent for the health service the holder asked for: (case, consent,
    child, guardians)."""
    child_id, guardians, _ = await consent.register_child(age, [("Mor", True), ("Far", True)])
    case_id, _seq = await consent.open_case(child_id=child_id)
    await consent.add_team_member(case_id, NURSE, "siljan-helsestasjon")
    requested = await consent.client.post(
        "/api/v1/consents", json=consent_request(case_id), headers=consent.auth(STAFF)
    )
    assert requested.status_code == 201, requested.text
    return case_id, requested.json()["id"], child_id, guardians


def _one(consent: ConsentHarness, consent_id: str, person: str) -> Any:
    return consent.client.get(f"/api/v1/consents/{consent_id}", headers=consent.auth(person))


async def _list(consent: ConsentHarness, case_id: str) -> list[dict[str, Any]]:
    listed = await consent.client.get(
        f"/api/v1/consents?case_id={case_id}", headers=consent.auth(STAFF)
    )
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def _reads(events: list[CloudEvent], case_id: str) -> list[tuple[str, str]]:
    """(reader, what) of every read of the case's consents recorded in ``events``."""
    return [
        (e.data["reader_id"], e.data["what"])
        for e in events
        if e.type == "no.stafett.access.recorded.v1"
        and e.data["case_id"] == case_id
        and e.data["service"] == "consent"
    ]


async def test_staff_and_the_grantors_read_who_asks_and_what_for_and_each_read_is_recorded(
    consent: ConsentHarness,
) -> None:
    case_id, consent_id, _child, guardians = await _asked(consent, 12)
    (listed,) = await _list(consent, case_id)
    assert listed["requested_by"] == STAFF
    assert "purpose" not in listed and "purpose" not in listed["scope"]

    since = await consent.store.last_seq()
    for reader in (STAFF, *guardians):
        one = await _one(consent, consent_id, reader)
        assert one.status_code == 200, one.text
        body = one.json()
        assert (body["purpose"], body["requested_by"]) == (PURPOSE, STAFF)
        assert body["id"] == consent_id and body["status"] == "pending"
        assert {k: v for k, v in body.items() if k != "purpose"} == {
            **listed,
            "version": body["version"],
        }
    # The nurse reads the case only once the consent holds: then the purpose too.
    refused = await _one(consent, consent_id, NURSE)
    assert refused.status_code == 404, refused.text
    for guardian in guardians:
        signed = await consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": guardian},
            headers=consent.auth(guardian),
        )
        assert signed.status_code == 201, signed.text
    one = await _one(consent, consent_id, NURSE)
    assert one.status_code == 200, one.text
    assert (one.json()["purpose"], one.json()["status"]) == (PURPOSE, "active")

    reads = _reads(await consent.events_since(since), case_id)
    assert reads == [(STAFF, "consent"), *((g, "consent") for g in guardians), (NURSE, "consent")]


async def test_family_that_is_no_grantor_sees_the_consent_but_not_its_purpose(
    consent: ConsentHarness,
) -> None:
    # 15: the youth reads their own case, but a health consent is the guardians' until 16.
    case_id, consent_id, youth, guardians = await _asked(consent, 15)
    (listed,) = await _list(consent, case_id)
    assert [g["kind"] for g in listed["grantors"]] == ["guardians"]

    since = await consent.store.last_seq()
    seen = await _one(consent, consent_id, youth)
    assert seen.status_code == 200, seen.text
    assert seen.json()["purpose"] is None
    assert seen.json()["requested_by"] == STAFF
    assert PURPOSE not in seen.text
    mother = await _one(consent, consent_id, guardians[0])
    assert mother.json()["purpose"] == PURPOSE
    reads = _reads(await consent.events_since(since), case_id)
    assert reads == [(youth, "consents"), (guardians[0], "consent")]


async def test_whoever_may_not_read_the_case_learns_nothing_and_nothing_is_recorded(
    consent: ConsentHarness,
) -> None:
    case_id, consent_id, _child, _guardians = await _asked(consent, 12)
    missing = await _one(consent, new_id(), STAFF)
    assert missing.status_code == 404, missing.text
    since = await consent.store.last_seq()
    answers: list[httpx.Response] = [
        await _one(consent, consent_id, STRANGER),
        await consent.client.get(
            f"/api/v1/consents/{consent_id}",
            headers=consent.auth("fagsystem", client=True, scopes=("stafett.decisions",)),
        ),
    ]
    for answer in answers:
        assert (answer.status_code, answer.content) == (404, missing.content)
        assert answer.headers["content-type"] == missing.headers["content-type"]
    assert _reads(await consent.events_since(since), case_id) == []
    bad = await _one(consent, "not-a-consent", STAFF)
    assert (bad.status_code, bad.content) == (404, missing.content)


async def test_a_rebuild_fills_who_asked_for_consents_learnt_before_it_was_kept(
    consent: ConsentHarness,
) -> None:
    case_id, consent_id, _child, _guardians = await _asked(consent, 12)
    # A consent the read model learnt before migration 0018: who asked is not known.
    async with consent.runtime.engine.begin() as conn:
        await conn.execute(
            update(consents).where(consents.c.consent_id == consent_id).values(requested_by=None)
        )
    (before,) = await _list(consent, case_id)
    assert before["requested_by"] is None
    one = await _one(consent, consent_id, STAFF)
    assert (one.json()["requested_by"], one.json()["purpose"]) == (None, PURPOSE)

    await consent.runtime.projector.rebuild()

    (after,) = await _list(consent, case_id)
    assert after["requested_by"] == STAFF
