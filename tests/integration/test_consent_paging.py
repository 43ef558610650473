"""The consents of a case are paged with ``limit`` and an opaque ``cursor`` (issue 17,
item 11), over HTTP on real NATS and both databases."""

from __future__ import annotations

from stafett_consent.testing import ConsentHarness, consent_request

HOLDER = "ann-kristin-allum"


async def test_consents_come_a_page_at_a_time_and_a_foreign_cursor_is_refused(
    consent: ConsentHarness,
) -> None:
    child_id, _guardians, _ = await consent.register_child(12, [("Mor", True)])
    case_id, seq = await consent.open_case(child_id=child_id)
    other_case, _ = await consent.open_case(child_id=child_id)
    await consent.runtime.projector.wait_for(seq, 5)
    made = []
    for _ in range(3):
        requested = await consent.client.post(
            "/api/v1/consents", json=consent_request(case_id), headers=consent.auth(HOLDER)
        )
        assert requested.status_code == 201, requested.text
        made.append(requested.json()["id"])
        seq = int(requested.headers["Stafett-Seq"])
    headers = {**consent.auth(HOLDER), "Stafett-Min-Seq": str(seq)}

    first = await consent.client.get(f"/api/v1/consents?case_id={case_id}&limit=2", headers=headers)
    assert first.status_code == 200, first.text
    assert [c["id"] for c in first.json()["items"]] == made[:2]
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    second = await consent.client.get(
        f"/api/v1/consents?case_id={case_id}&limit=2&cursor={cursor}", headers=headers
    )
    assert [c["id"] for c in second.json()["items"]] == made[2:]
    assert second.json()["next_cursor"] is None
    whole = await consent.client.get(f"/api/v1/consents?case_id={case_id}", headers=headers)
    assert [c["id"] for c in whole.json()["items"]] == made
    assert whole.json()["next_cursor"] is None

    for bad in (cursor[:-1] + ("A" if cursor[-1] != "A" else "B"), "2", "djE6Y29uc2VudHM"):
        refused = await consent.client.get(
            f"/api/v1/consents?case_id={case_id}&cursor={bad}", headers=headers
        )
        assert refused.status_code == 422, (bad, refused.text)
    foreign = await consent.client.get(
        f"/api/v1/consents?case_id={other_case}&cursor={cursor}", headers=headers
    )
    assert foreign.status_code == 422, foreign.text
    assert foreign.json()["code"] == "invalid_cursor"
    for limit in (0, 501):
        out_of_range = await consent.client.get(
            f"/api/v1/consents?case_id={case_id}&limit={limit}", headers=headers
        )
        assert out_of_range.status_code == 422
