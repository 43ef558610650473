"""What an operator watches: every service's ``GET /metrics`` (Prometheus text) reports its
read models' position, lag and time behind, quarantined messages, and (log) the newest
checkpoint's age, labelled by projection and reason only, never by an id."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness
from stafett_log.testing import LogHarness
from stafett_shared.ids import new_id

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ALLOWED_LABELS = {
    "stafett_projection",
    "stafett_reason",
    "otel_scope_name",
    "otel_scope_version",
    "otel_scope_schema_url",
}
UNIT = "siljan-ungdomsskole"
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


async def _samples(
    client: httpx.AsyncClient,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith("stafett_"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    for (sample, sample_labels), value in samples.items():
        if sample == name and all((k, v) in sample_labels for k, v in labels.items()):
            return value
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_report_position_lag_quarantine_and_checkpoint_age_without_ids(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    log = log_service
    case_id, guardians = await log.open_case(consent, case_service)
    assert (await log.append(case_id, text="Samtale med eleven.")).status_code == 201

    # A message no service wrote: quarantined by every read model that reads its context.
    forged = await consent.runtime.nc.jetstream().publish(
        f"stafett.ev.case.{new_id()}", b"not a commit"
    )
    await log.runtime.projector.wait_for(forged.seq, 10)
    await case_service.runtime.projector.wait_for(forged.seq, 10)
    made = await log.client.post("/api/v1/checkpoints", headers=log.auth("admin"))
    assert made.status_code == 201

    samples = await _samples(log.client)
    for projection in ("log", "case", "consent"):
        assert _value(samples, "stafett_projector_lag", stafett_projection=projection) >= 0
    assert _value(samples, "stafett_projector_position", stafett_projection="log") >= forged.seq
    assert _value(samples, "stafett_projector_behind_seconds", stafett_projection="log") >= 0
    assert (
        _value(
            samples,
            "stafett_projector_quarantined_total",
            stafett_projection="log",
            stafett_reason="undecodable",
        )
        >= 1
    )
    assert _value(samples, "stafett_checkpoint_tree_size") == made.json()["tree_size"]
    assert _value(samples, "stafett_checkpoint_age_seconds") >= 0

    # Labels are projection and reason names only: no case, child, person or entry id.
    names = {case_id, *guardians, "ann-kristin-allum"}
    for _name, labels in samples:
        assert {key for key, _ in labels} <= ALLOWED_LABELS, labels
        for _key, text in labels:
            assert not ULID.search(text) and text not in names, labels

    # Every service answers it, and it is not part of the API description.
    for client in (consent.client, case_service.client):
        assert await _samples(client)
        openapi = (await client.get("/openapi.json")).json()
        assert "/metrics" not in openapi["paths"]


async def test_the_consent_lag_shows_before_and_while_decisions_fail_closed(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await consent.open_case(holder="ann-kristin-allum", unit_id=UNIT)
    decisions = consent.runtime.extras["decisions"]
    decisions.max_lag_s = 0.5
    body = {
        "principal": "ann-kristin-allum",
        "action": "case:read",
        "resource": {"case_id": case_id},
    }
    headers = consent.auth("stafett-case", client=True, scopes=("stafett.decisions",))
    before = await _samples(consent.client)
    assert _value(before, "stafett_projector_behind_seconds", stafett_projection="consent") == 0
    refused_before = sum(
        v
        for (name, _), v in before.items()
        if name == "stafett_consent_decisions_unavailable_total"
    )

    projector = consent.runtime.projector
    await projector.stop()  # the consent projection stops following the stream
    try:
        await consent.publish_case_event(
            case_id, "team_member_removed", {"case_id": case_id, "person_id": "nobody"}
        )
        for _ in range(100):  # the decision point looks at the stream's end every second
            answer = await consent.client.post("/api/v1/decisions", json=body, headers=headers)
            if answer.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 503
        during = await _samples(consent.client)
        assert (
            _value(during, "stafett_projector_behind_seconds", stafett_projection="consent")
            > decisions.max_lag_s
        )
        assert _value(during, "stafett_projector_lag", stafett_projection="consent") >= 1
        assert _value(during, "stafett_consent_decisions_unavailable_total") > refused_before
    finally:
        projector.start()
