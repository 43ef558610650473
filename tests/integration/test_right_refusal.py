"""The right refusal (issue 17, items 3 and 4), over HTTP on real NATS and both databases:
someone who may read a case but not do what they ask gets 403; anyone who may not read it
gets 404, the same as for a case that does not exist; and a colleague of the owning unit
on the team with read access is a reader, not a writer."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from stafett_case.testing import CaseHarness
from stafett_consent.testing import REGION, ConsentHarness
from stafett_log.testing import LogHarness

HOLDER = "ann-kristin-allum"
COLLEAGUE = "laerer-lise"  # a second teacher at the owning unit
STRANGER = "helse-hanne"  # another unit, no relation to the case
MISSING = "01JZZZZZZZZZZZZZZZZZZZZZZZ"


async def test_a_reader_is_told_403_and_a_stranger_404_on_every_service(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    case, log = case_service, log_service
    region = copy.deepcopy(REGION)
    region["staff"].append(
        {
            "id": COLLEAGUE,
            "name": "Lise Lærer",
            "roles": [{"unit_id": "siljan-ungdomsskole", "role": "teacher"}],
        }
    )
    assert (await consent.load_region(region)).status_code == 200
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case()
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    added = await case.client.post(
        f"/api/v1/cases/{case_id}/team",
        json={"person_id": COLLEAGUE, "unit_id": "siljan-ungdomsskole", "access": "read"},
        headers=case.auth(HOLDER),
    )
    assert added.status_code in (200, 201), added.text
    seq = int(added.headers["Stafett-Seq"])
    await consent.runtime.projector.wait_for(seq, 10)
    await log.runtime.projector.wait_for(seq, 10)

    read = await case.client.get(f"/api/v1/cases/{case_id}", headers=case.auth(COLLEAGUE))
    assert read.status_code == 200, read.text
    entries = await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=log.auth(COLLEAGUE))
    assert entries.status_code == 200, entries.text

    measure: dict[str, object] = {
        "title": "Leksehjelp",
        "responsible_person_id": HOLDER,
        "goal": "Bedre oppmøte",
        "start": datetime.now(UTC).date().isoformat(),
        "evaluate_by": (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
    }
    writes: list[tuple[CaseHarness | LogHarness, str, dict[str, object]]] = [
        (case, "/api/v1/cases/{}/measures", measure),
        (case, "/api/v1/cases/{}/level", {"level": 0, "reason": "Mindre bekymring nå."}),
        (
            log,
            "/api/v1/logs/{}/entries",
            {"kind": "note", "text": "Notat.", "occurred_at": datetime.now(UTC).isoformat()},
        ),
    ]
    for service, path, body in writes:
        before = await consent.store.last_seq()
        as_reader = await service.client.post(
            path.format(case_id), json=body, headers=service.auth(COLLEAGUE)
        )
        assert as_reader.status_code == 403, (path, as_reader.text)
        assert as_reader.json()["code"] == "forbidden"
        as_stranger = await service.client.post(
            path.format(case_id), json=body, headers=service.auth(STRANGER)
        )
        unknown = await service.client.post(
            path.format(MISSING), json=body, headers=service.auth(STRANGER)
        )
        assert as_stranger.status_code == unknown.status_code == 404, path
        assert as_stranger.content == unknown.content
        # Nothing written but the denials' own records.
        written = [
            e.type
            for c in await consent.store.read(before + 1, limit=1000)
            for e in c.events
            if not e.type.startswith("no.stafett.access.")
        ]
        assert written == [], (path, written)
