"""A consent's ``valid_until`` may be a plain date: valid through that day in Norway
(issue 17, item 11), on real NATS and both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from stafett_consent.testing import ConsentHarness, consent_request

HOLDER = "ann-kristin-allum"
OSLO = ZoneInfo("Europe/Oslo")


async def test_a_date_is_valid_through_that_day_in_norway_and_a_time_needs_its_offset(
    consent: ConsentHarness,
) -> None:
    child_id, _guardians, _ = await consent.register_child(12, [("Mor", True)])
    case_id, seq = await consent.open_case(child_id=child_id)
    await consent.runtime.projector.wait_for(seq, 5)
    # A summer day and a winter day: Norway is UTC+2 and UTC+1.
    next_year = datetime.now(OSLO).year + 1
    for day in (date(next_year, 6, 30), date(next_year, 1, 31)):
        requested = await consent.client.post(
            "/api/v1/consents",
            json=consent_request(case_id, valid_until=day.isoformat()),
            headers=consent.auth(HOLDER),
        )
        assert requested.status_code == 201, requested.text
        listed = await consent.client.get(
            f"/api/v1/consents?case_id={case_id}",
            headers={**consent.auth(HOLDER), "Stafett-Min-Seq": requested.headers["Stafett-Seq"]},
        )
        assert listed.status_code == 200, listed.text
        (mine,) = [c for c in listed.json()["items"] if c["id"] == requested.json()["id"]]
        until = datetime.fromisoformat(mine["valid_until"])
        assert until.tzinfo is not None
        assert until == datetime.combine(day + timedelta(days=1), time(0), OSLO)
        assert until.astimezone(OSLO).date() == day + timedelta(days=1)
        assert until.astimezone(UTC).hour in (22, 23)

    before = await consent.store.last_seq()
    naive = await consent.client.post(
        "/api/v1/consents",
        json=consent_request(case_id, valid_until="2027-06-30T10:00:00"),
        headers=consent.auth(HOLDER),
    )
    assert naive.status_code == 422, naive.text
    assert await consent.store.last_seq() == before
