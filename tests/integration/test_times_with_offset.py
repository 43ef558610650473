"""Times come back with their offset, on both databases (issue 17, item 11).

SQLite keeps a time without its zone: a log entry's ``occurred_at`` sent as
``07:03:47+01:00`` came back as ``06:03:47``, with no zone, which a client reads as local
time. Every read model's times are ``UtcDateTime``: written in UTC, read back aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness

HOLDER = "ann-kristin-allum"


def _aware(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, text
    return parsed


async def test_a_time_sent_with_an_offset_comes_back_as_the_same_instant_with_a_zone(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    _child, _guardians, body = await consent.register_child(12, [("Mor", True)])
    await case_service.settle(await consent.store.last_seq())
    opened = await case_service.open_case(national_id=body["national_id"])
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    await log.runtime.projector.wait_for(opened["seq"], 10)

    oslo = timezone(timedelta(hours=1))
    sent = (datetime.now(UTC) - timedelta(hours=2)).astimezone(oslo).replace(microsecond=0)
    written = await log.append(opened["id"], occurred_at=sent.isoformat())
    assert written.status_code == 201, written.text
    assert sent.isoformat().endswith("+01:00")

    entries = await log.client.get(
        f"/api/v1/logs/{opened['id']}/entries",
        headers={**log.auth(HOLDER), "Stafett-Min-Seq": str(written.json()["seq"])},
    )
    assert entries.status_code == 200, entries.text
    (entry,) = [e for e in entries.json()["items"] if e["id"] == written.json()["id"]]
    assert _aware(entry["occurred_at"]) == sent
    assert _aware(entry["recorded_at"]) <= datetime.now(UTC)

    case = await case_service.client.get(
        f"/api/v1/cases/{opened['id']}", headers=case_service.auth(HOLDER)
    )
    assert case.status_code == 200, case.text
    assert _aware(case.json()["opened_at"]) <= datetime.now(UTC)
