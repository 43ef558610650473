"""Indicators over fixed periods only, with complementary suppression, and handovers
completed without a gap (issue 17, item 9), over HTTP on real NATS and both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness

HOLDER = "ann-kristin-allum"
LEADER = "rektor-siljan"
OSLO = ZoneInfo("Europe/Oslo")


def _month() -> tuple[date, date]:
    first = datetime.now(OSLO).date().replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


async def test_only_a_month_a_term_or_a_year_may_be_asked_for(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    first, last = _month()
    for start, end in (
        (first, last - timedelta(days=1)),
        (first + timedelta(days=1), last),
        (first - timedelta(days=1), last),
    ):
        refused = await case.client.get(
            f"/api/v1/indicators?org_id=4010&from={start}&to={end}", headers=case.auth(LEADER)
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "period_not_fixed"
    year = first.year
    for start, end, kind in (
        (first, last, "month"),
        (date(year, 1, 1), date(year, 6, 30), "term"),
        (date(year, 7, 1), date(year, 12, 31), "term"),
        (date(year, 1, 1), date(year, 12, 31), "year"),
    ):
        answer = await case.client.get(
            f"/api/v1/indicators?org_id=4010&from={start}&to={end}", headers=case.auth(LEADER)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["period"] == kind
        assert (answer.json()["from"], answer.json()["to"]) == (start.isoformat(), end.isoformat())


async def test_handovers_without_a_gap_are_counted_and_a_small_level_cannot_be_derived(
    consent: ConsentHarness, case_service: CaseHarness
) -> None:
    case = case_service
    await case.settle(await consent.store.last_seq())
    # Six cases at level 0 and one at level 1: the level-1 case must not be the total less
    # level 0, so level 0 is hidden with it.
    for _ in range(6):
        await case.open_case()
    _child, _guardians, body = await consent.register_child(11, [("Mor", True)])
    await case.settle(await consent.store.last_seq())
    await case.open_case(national_id=body["national_id"], level=1)
    # Five handovers, each accepted at once: five completed without a gap.
    for _ in range(5):
        opened = await case.open_case()
        await consent.runtime.projector.wait_for(opened["seq"], 10)
        requested = await case.client.post(
            f"/api/v1/cases/{opened['id']}/handovers",
            json={"to_person_id": LEADER, "to_unit_id": "siljan-ungdomsskole", "note": "Ny."},
            headers=case.auth(HOLDER),
        )
        assert requested.status_code == 201, requested.text
        await consent.runtime.projector.wait_for(int(requested.headers["Stafett-Seq"]), 10)
        accepted = await case.client.post(
            f"/api/v1/cases/{opened['id']}/handovers/{requested.json()['id']}/accept",
            json={},
            headers=case.auth(LEADER),
        )
        assert accepted.status_code == 200, accepted.text
        last_seq = int(accepted.headers["Stafett-Seq"])
    first, last = _month()
    answer = await case.client.get(
        f"/api/v1/indicators?org_id=4010&from={first}&to={last}",
        headers={**case.auth(LEADER), "Stafett-Min-Seq": str(last_seq)},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["handovers_accepted"] == 5
    assert result["handovers_without_gap"] == 5
    assert result["cases_opened_by_level"]["1"] == "<5"
    shown = [v for v in result["cases_opened_by_level"].values() if isinstance(v, int)]
    # Whatever is shown, the total less the shown levels is never the hidden small count.
    if isinstance(result["cases_opened"], int):
        assert result["cases_opened"] - sum(shown) not in (1, 2, 3, 4)
