"""What an agency's client may see (issue 20, items 1 and 2; decision 0039), over HTTP on real
NATS and both databases: a client registered in the region document with its scopes, the
services it works for and its legal grounds reads a case and its log where a consent in
force names its organisation and service, and its token's scope covers the action; without
the consent, or without the scope (in its token or its registration), it gets the 404 a
case that does not exist gets, and the attempt is recorded. A guardian sees the agency's
reads in the who-read view, under the agency's name."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from stafett_case.testing import CaseHarness
from stafett_consent.testing import ConsentHarness, nav_consent, region_with_nav
from stafett_log.testing import LogHarness
from stafett_shared.envelope import CloudEvent

HOLDER = "ann-kristin-allum"
NAV_SYSTEM = "client-nav-grenland"
NAV_CASE_ONLY = "client-nav-saksoversikt"  # registered for the case only, not the log
MISSING = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
BOTH = ("stafett:case.read", "stafett:log.read")
TEXT = "Eleven møtte NAV-veilederen og vil prøve sommerjobb."


def _region() -> dict[str, Any]:
    return region_with_nav(
        (NAV_SYSTEM, "nav-stafett", BOTH), (NAV_CASE_ONLY, "nav-oversikt", ("stafett:case.read",))
    )


def _as(service: CaseHarness | LogHarness | ConsentHarness, client: str, *scopes: str) -> Any:
    token = service.issuer.issue(client, client=True, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def _case(
    consent: ConsentHarness, case: CaseHarness, log: LogHarness
) -> tuple[str, list[str], int]:
    """A case of a child of 12 with two guardians and one log entry: (case, guardians,
    the entry's sequence)."""
    assert (await consent.load_region(_region())).status_code == 200
    _child, guardians, body = await consent.register_child(12, [("Mor", True), ("Far", True)])
    await case.settle(await consent.store.last_seq())
    opened = await case.open_case(national_id=body["national_id"])
    case_id = opened["id"]
    await consent.runtime.projector.wait_for(opened["seq"], 10)
    await log.runtime.projector.wait_for(opened["seq"], 10)
    written = await log.client.post(
        f"/api/v1/logs/{case_id}/entries",
        json={"kind": "note", "text": TEXT, "occurred_at": datetime.now(UTC).isoformat()},
        headers=log.auth(HOLDER),
    )
    assert written.status_code == 201, written.text
    seq = int(written.headers["Stafett-Seq"])
    await consent.runtime.projector.wait_for(seq, 10)
    return case_id, guardians, seq


async def _reads(
    case: CaseHarness,
    log: LogHarness,
    case_id: str,
    client: str,
    *scopes: str,
    min_seq: int | None = None,
) -> tuple[Any, Any]:
    """The case and its log as ``client``; with ``min_seq``, as a client that asks to see a
    change it knows of (``Stafett-Min-Seq``), which no cached permit answers."""
    auth = _as(case, client, *scopes)
    if min_seq is not None:
        auth["Stafett-Min-Seq"] = str(min_seq)
    return (
        await case.client.get(f"/api/v1/cases/{case_id}", headers=auth),
        await log.client.get(f"/api/v1/logs/{case_id}/entries", headers=auth),
    )


def _recorded(events: list[CloudEvent], case_id: str, reader: str) -> list[tuple[str, Any]]:
    return [
        (e.data["what"], e.data["basis"])
        for e in events
        if e.type == "no.stafett.access.recorded.v1"
        and e.data["case_id"] == case_id
        and e.data["reader_id"] == reader
    ]


async def _decisions(consent: ConsentHarness, case_id: str, client: str) -> list[tuple[str, ...]]:
    rows = await consent.runtime.extras["decisions"].records(case_id=case_id, principal_id=client)
    return sorted((r["principal_kind"], r["action"], r["decision"], r["reason"]) for r in rows)


async def test_a_client_reads_only_while_a_consent_names_its_agency_and_every_try_is_recorded(
    consent: ConsentHarness, case_service: CaseHarness, log_service: LogHarness
) -> None:
    case, log = case_service, log_service
    case_id, guardians, _seq = await _case(consent, case, log)
    missing_case = await case.client.get(f"/api/v1/cases/{MISSING}", headers=_as(case, NAV_SYSTEM))
    missing_log = await log.client.get(
        f"/api/v1/logs/{MISSING}/entries", headers=_as(log, NAV_SYSTEM, *BOTH)
    )
    assert missing_case.status_code == missing_log.status_code == 404

    # No consent yet: the same 404 as a case that does not exist; each attempt recorded.
    before = await consent.store.last_seq()
    refused_case, refused_log = await _reads(case, log, case_id, NAV_SYSTEM, *BOTH)
    assert (refused_case.status_code, refused_case.content) == (404, missing_case.content)
    assert (refused_log.status_code, refused_log.content) == (404, missing_log.content)
    assert await _decisions(consent, case_id, NAV_SYSTEM) == [
        ("client", "case:read", "deny", "no_basis"),
        ("client", "log:read", "deny", "no_basis"),
    ]
    await consent.runtime.extras["decisions"].publish_pending()
    denials = [
        (e.data["principal_kind"], e.data["action"], e.data["decision"])
        for e in await consent.events_since(before)
        if e.type == "no.stafett.access.decision_recorded.v1" and e.data["case_id"] == case_id
    ]
    assert sorted(denials) == [("client", "case:read", "deny"), ("client", "log:read", "deny")]

    # The guardians consent to NAV Grenland: the system reads the case and the log.
    consent_id = await consent.signed_consent(nav_consent(case_id), guardians)

    since = await consent.store.last_seq()
    read_case, read_log = await _reads(case, log, case_id, NAV_SYSTEM, *BOTH)
    assert read_case.status_code == 200, read_case.text
    assert read_case.json()["id"] == case_id
    assert read_log.status_code == 200, read_log.text
    assert [e["text"] for e in read_log.json()["items"]] == [TEXT]
    recorded = _recorded(await consent.events_since(since), case_id, NAV_SYSTEM)
    assert ("case", "client_consent") in recorded
    assert ("entries", "client_consent") in recorded

    # Asked over HTTP about itself, the answer counts its token's scopes the same way.
    for scopes, answer in ((BOTH, "permit"), (("stafett:case.read",), "deny")):
        asked_about_itself = await consent.client.post(
            "/api/v1/decisions",
            json={
                "principal": {"id": NAV_SYSTEM, "kind": "client"},
                "action": "log:read",
                "resource": {"case_id": case_id},
            },
            headers=_as(consent, NAV_SYSTEM, "stafett.decisions", *scopes),
        )
        assert asked_about_itself.status_code == 200, asked_about_itself.text
        assert asked_about_itself.json()["decision"] == answer, asked_about_itself.text

    # Its token without the log's scope: the case, not the log (404, recorded).
    case_only, no_log = await _reads(case, log, case_id, NAV_SYSTEM, "stafett:case.read")
    assert case_only.status_code == 200, case_only.text
    assert (no_log.status_code, no_log.content) == (404, missing_log.content)
    # Registered for the case only: a token that asks for the log is not given it.
    other_case, other_log = await _reads(case, log, case_id, NAV_CASE_ONLY, *BOTH)
    assert other_case.status_code == 200, other_case.text
    assert (other_log.status_code, other_log.content) == (404, missing_log.content)
    # An unregistered client, whatever its scopes: nothing.
    stranger_case, stranger_log = await _reads(case, log, case_id, "client-ukjent", *BOTH)
    assert (stranger_case.status_code, stranger_case.content) == (404, missing_case.content)
    assert (stranger_log.status_code, stranger_log.content) == (404, missing_log.content)
    assert ("client", "log:read", "deny", "no_basis") in await _decisions(
        consent, case_id, NAV_CASE_ONLY
    )
    assert await _decisions(consent, case_id, "client-ukjent") == [
        ("client", "case:read", "deny", "no_basis"),
        ("client", "log:read", "deny", "no_basis"),
    ]

    # A guardian sees the agency's reads in the who-read view, and its name and agency.
    who = await log.client.get(f"/api/v1/logs/{case_id}/access", headers=log.auth(guardians[0]))
    assert who.status_code == 200, who.text
    agency = [r for r in who.json()["items"] if r["reader_id"] == NAV_SYSTEM]
    assert {(r["reader_kind"], r["basis"]) for r in agency} == {("client", "client_consent")}
    assert {r["what"] for r in agency} >= {"case", "entries"}
    cards = await consent.client.get(
        "/api/v1/staff", params={"id": NAV_SYSTEM}, headers=consent.auth(guardians[0])
    )
    assert cards.status_code == 200, cards.text
    assert cards.json()["items"] == [
        {
            "id": NAV_SYSTEM,
            "name": "NAV Grenlands saksbehandlingssystem",
            "roles": [],
            "client": {"org_id": "nav-grenland", "org_name": "NAV Grenland"},
        }
    ]

    # The consent withdrawn: the system is refused again.
    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": guardians[0], "reason": "Vi vil ikke lenger."},
        headers=consent.auth(guardians[0]),
    )
    assert withdrawn.status_code in (200, 201), withdrawn.text
    withdrawn_seq = int(withdrawn.headers["Stafett-Seq"])
    await consent.runtime.projector.wait_for(withdrawn_seq, 10)
    # The services forget their cached permits when they hear of the change, a moment after
    # the answer (a permit lives a second at most); the change's sequence skips the cache.
    after_case, after_log = await _reads(
        case, log, case_id, NAV_SYSTEM, *BOTH, min_seq=withdrawn_seq
    )
    assert (after_case.status_code, after_case.content) == (404, missing_case.content)
    assert (after_log.status_code, after_log.content) == (404, missing_log.content)


async def test_the_directory_keeps_what_a_client_may_use_and_a_change_registers_it_anew(
    consent: ConsentHarness,
) -> None:
    region = _region()
    assert (await consent.load_region(region)).status_code == 200
    since = await consent.store.last_seq()
    # Listed in another order: no change.
    region["clients"][0]["scopes"] = list(reversed(BOTH))
    assert (await consent.load_region(region)).status_code == 200
    assert [e for e in await consent.events_since(since) if "client_registered" in e.type] == []
    region["clients"][1]["scopes"] = list(BOTH)
    assert (await consent.load_region(region)).status_code == 200
    (registered,) = [e for e in await consent.events_since(since) if "client_registered" in e.type]
    assert registered.data["client"] == NAV_CASE_ONLY
    assert registered.data["scopes"] == list(BOTH)
    assert (registered.data["sectors"], registered.data["purposes"]) == (["nav"], ["consent"])
    directory = await consent.client.get("/api/v1/directory", headers=consent.auth("admin"))
    assert directory.status_code == 200, directory.text
    listed = {c["id"]: c for c in directory.json()["clients"]}
    assert listed[NAV_CASE_ONLY]["scopes"] == list(BOTH)
    assert listed[NAV_SYSTEM]["consumer_org"] == "889640782"

    # An unknown scope, sector or ground refuses the whole document.
    for field, value in (
        ("scopes", ["stafett:case.write"]),
        ("sectors", ["x"]),
        ("purposes", ["law"]),
    ):
        bad = copy.deepcopy(region)
        bad["clients"][0][field] = value
        refused = await consent.load_region(bad)
        assert refused.status_code == 422, (field, refused.text)
