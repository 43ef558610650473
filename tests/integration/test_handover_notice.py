"""The receiver of a handover is told, though they may not read the case until they accept
(issue 17, item 2), over HTTP on real NATS and both databases."""

from __future__ import annotations

import asyncio

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_notify.testing import NotifyHarness

HOLDER = "ann-kristin-allum"
RECEIVER = "helse-hanne"  # Siljan helsestasjon: no relation to the case but the handover


async def test_the_receiver_of_a_handover_gets_its_notice_and_may_see_its_header(
    consent: ConsentHarness, case_service: CaseHarness, notify_service: NotifyHarness
) -> None:
    case, notify = case_service, notify_service
    opened = await case.open_case()
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    requested = await case.client.post(
        f"/api/v1/cases/{opened['id']}/handovers",
        json={"to_person_id": RECEIVER, "to_unit_id": "siljan-helsestasjon", "note": "Ta over."},
        headers=case.auth(HOLDER),
    )
    assert requested.status_code == 201, requested.text
    seq = int(requested.headers["Stafett-Seq"])
    await notify.settle(seq)

    notices: list[dict[str, object]] = []
    for _ in range(100):
        inbox = await notify.client.get("/api/v1/notifications", headers=notify.auth(RECEIVER))
        assert inbox.status_code == 200, inbox.text
        notices = inbox.json()["items"]
        if notices:
            break
        await asyncio.sleep(0.1)
    assert [(n["kind"], n["case_id"]) for n in notices] == [("handover_requested", opened["id"])]
    # The header, not the case.
    header = await case.client.get(
        f"/api/v1/cases/{opened['id']}/handovers/{requested.json()['id']}",
        headers=case.auth(RECEIVER),
    )
    assert header.status_code == 200, header.text
    whole = await case.client.get(f"/api/v1/cases/{opened['id']}", headers=case.auth(RECEIVER))
    assert whole.status_code == 404
