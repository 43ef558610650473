"""The consent service refuses bad input: problem+json with a machine code, no echo of the
personal data that was sent, and nothing written to the stream. Also: consents expire, and a
decision that cannot be recorded is a denial."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import yaml
from sqlalchemy import event

from stafett_consent.app import SPEC
from stafett_consent.decisions import DecisionPoint, loop_engines, records_url
from stafett_consent.handlers import ConsentService
from stafett_consent.testing import REGION, ConsentHarness, synthetic_national_id
from stafett_shared.db import create_sync_engine
from stafett_shared.ids import new_id
from stafett_shared.nationalid import control_digits

PROBLEM = "application/problem+json"
STAFF = "ann-kristin-allum"
CHILD_NAME = "Hemmelig Barnesen"
GUARDIAN_NAME = "Hemmelig Foreldersen"
PURPOSE = "Hemmelig formål: oppfølging av helse på skolen."

# --- helpers ------------------------------------------------------------------------------------


async def _refused(
    consent: ConsentHarness,
    request: Awaitable[httpx.Response],
    status: int,
    codes: str | Iterable[str],
    *,
    secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """Await ``request`` (not yet sent), and assert a problem answer that echoes no secret
    and wrote nothing."""
    before = await consent.store.last_seq()
    response = await request
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM
    body: dict[str, Any] = response.json()
    expected = {codes} if isinstance(codes, str) else set(codes)
    assert body["code"] in expected, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    for secret in secrets:
        assert secret not in response.text
    assert await consent.store.last_seq() == before, "a refused request wrote to the stream"
    return body


def _born(age_years: int) -> datetime:
    today = datetime.now(UTC)
    return today.replace(year=today.year - age_years, day=min(today.day, 28)) - timedelta(days=40)


def _with_month(month: str) -> str:
    """Eleven digits with valid control digits whose month field is ``month``."""
    for individual in range(100, 500):
        first = f"15{month}10{individual:03d}"
        digits = control_digits(first)
        if digits is not None:
            return first + digits
    raise AssertionError("no individual number gives valid control digits")


def _wrong_control_digit(national_id: str) -> str:
    return national_id[:10] + str((int(national_id[10]) + 1) % 10)


def _child_body(
    national_id: str, guardian_ids: Iterable[str] = (), *, responsible: bool = True
) -> dict[str, Any]:
    return {
        "national_id": national_id,
        "name": CHILD_NAME,
        "guardians": [
            {"national_id": g, "name": GUARDIAN_NAME, "parental_responsibility": responsible}
            for g in guardian_ids
        ],
    }


def _consent_body(case_id: str, **scope: Any) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "scope": {"org_ids": ["4010"], "sectors": ["health"], "purpose": PURPOSE, **scope},
        "evidence": {"method": "digital_signature"},
    }


async def _case_with_child(
    consent: ConsentHarness, guardians: list[tuple[str, bool]] | None = None
) -> tuple[str, list[str]]:
    child_id, guardian_ids, _ = await consent.register_child(
        12, guardians if guardians is not None else [("Mor", True), ("Far", True)]
    )
    case_id, _seq = await consent.open_case(child_id=child_id)
    return case_id, guardian_ids


async def _pending_consent(consent: ConsentHarness, **body: Any) -> tuple[str, str, list[str]]:
    """A case with two responsible guardians and a pending consent: (case, consent, guardians)."""
    case_id, guardians = await _case_with_child(consent)
    requested = await consent.client.post(
        "/api/v1/consents", json={**_consent_body(case_id), **body}, headers=consent.auth(STAFF)
    )
    assert requested.status_code == 201, requested.text
    return case_id, requested.json()["id"], guardians


async def _sign(consent: ConsentHarness, consent_id: str, guardian: str) -> httpx.Response:
    return await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": guardian},
        headers=consent.auth(guardian),
    )


def _yaml(document: dict[str, Any]) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode()


async def _put_directory(
    consent: ConsentHarness,
    content: bytes,
    *,
    content_type: str = "application/yaml",
    person: str = "admin",
) -> httpx.Response:
    return await consent.client.put(
        "/api/v1/directory",
        content=content,
        headers={**consent.auth(person), "Content-Type": content_type},
    )


def _decider(consent: ConsentHarness) -> dict[str, str]:
    return consent.auth("stafett-case", client=True, scopes=("stafett.decisions",))


# --- POST /children -----------------------------------------------------------------------------


async def test_children_with_invalid_national_ids_are_refused_without_echoing_them(
    consent: ConsentHarness,
) -> None:
    child = synthetic_national_id(_born(12))
    guardian = synthetic_national_id(_born(42), 210)
    month_13 = _with_month("13")
    bad_children = {
        "wrong control digit": _wrong_control_digit(child),
        "ten digits": child[:10],
        "letters": child[:6] + "abcde",
        "month 13": month_13,
        "twelve digits": child + "0",
    }
    for label, national_id in bad_children.items():
        body = await _refused(
            consent,
            consent.client.post(
                "/api/v1/children",
                json=_child_body(national_id, [guardian]),
                headers=consent.auth(STAFF),
            ),
            422,
            ("invalid_national_id", "validation_error"),
            secrets=(national_id, guardian, CHILD_NAME, GUARDIAN_NAME),
        )
        assert body["code"] in ("invalid_national_id", "validation_error"), label
    wrong_guardian = _wrong_control_digit(guardian)
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/children",
            json=_child_body(child, [guardian, wrong_guardian]),
            headers=consent.auth(STAFF),
        ),
        422,
        "invalid_national_id",
        secrets=(child, guardian, wrong_guardian, CHILD_NAME, GUARDIAN_NAME),
    )


async def test_a_month_of_thirteen_is_refused_even_with_valid_control_digits(
    consent: ConsentHarness,
) -> None:
    month_13 = _with_month("13")
    assert control_digits(month_13[:9]) == month_13[9:]
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/children", json=_child_body(month_13), headers=consent.auth(STAFF)
        ),
        422,
        "invalid_national_id",
        secrets=(month_13, CHILD_NAME),
    )


async def test_a_child_with_unknown_fields_is_refused(consent: ConsentHarness) -> None:
    child = synthetic_national_id(_born(12))
    guardian = synthetic_national_id(_born(42), 210)
    top = {**_child_body(child, [guardian]), "favourite_colour": "blå"}
    inner = _child_body(child, [guardian])
    inner["guardians"][0]["phone"] = "+4799999999"
    for body in (top, inner):
        await _refused(
            consent,
            consent.client.post("/api/v1/children", json=body, headers=consent.auth(STAFF)),
            422,
            "validation_error",
            secrets=(child, guardian, CHILD_NAME, GUARDIAN_NAME, "+4799999999"),
        )


async def test_the_same_person_named_twice_in_one_registration_is_refused(
    consent: ConsentHarness,
) -> None:
    child = synthetic_national_id(_born(12))
    guardian = synthetic_national_id(_born(42), 210)
    for body in (_child_body(child, [guardian, guardian]), _child_body(child, [child])):
        await _refused(
            consent,
            consent.client.post("/api/v1/children", json=body, headers=consent.auth(STAFF)),
            422,
            "duplicate_person",
            secrets=(child, guardian, CHILD_NAME, GUARDIAN_NAME),
        )


async def test_a_guardian_who_is_not_staff_may_not_register_a_child(
    consent: ConsentHarness,
) -> None:
    _child_id, (mother,), _ = await consent.register_child(12, [("Mor", True)])
    other = synthetic_national_id(_born(9), 300)
    body = await _refused(
        consent,
        consent.client.post(
            "/api/v1/children", json=_child_body(other), headers=consent.auth(mother)
        ),
        403,
        "forbidden",
        secrets=(other, CHILD_NAME),
    )
    assert body["status"] == 403


async def test_more_than_ten_guardians_are_refused(consent: ConsentHarness) -> None:
    child = synthetic_national_id(_born(12))
    guardians = [synthetic_national_id(_born(40 + i), 200 + 10 * i) for i in range(11)]
    assert len(set(guardians)) == 11
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/children", json=_child_body(child, guardians), headers=consent.auth(STAFF)
        ),
        422,
        "validation_error",
        secrets=(child, *guardians, CHILD_NAME, GUARDIAN_NAME),
    )


# --- PUT /directory -----------------------------------------------------------------------------


async def test_only_administrators_may_load_the_directory(consent: ConsentHarness) -> None:
    document = copy.deepcopy(REGION)
    document["staff"][0]["name"] = "Ny Hemmelig Ansatt"
    await _refused(
        consent,
        _put_directory(consent, _yaml(document), person=STAFF),
        403,
        "forbidden",
        secrets=("Ny Hemmelig Ansatt", "Ann Kristin"),
    )


async def test_an_inconsistent_region_document_is_refused(consent: ConsentHarness) -> None:
    unknown_unit = copy.deepcopy(REGION)
    unknown_unit["staff"][0]["roles"].append({"unit_id": "ingen-slik-enhet", "role": "teacher"})
    duplicate_unit = copy.deepcopy(REGION)
    duplicate_unit["organisations"][1]["units"].append(
        {"id": "siljan-ungdomsskole", "name": "Kopi", "sector": "school"}
    )
    unknown_field = copy.deepcopy(REGION)
    unknown_field["staff"][0]["email"] = "ann.kristin@example.org"
    unknown_top = {**copy.deepcopy(REGION), "secret_setting": True}
    for document in (unknown_unit, duplicate_unit, unknown_field, unknown_top):
        await _refused(
            consent,
            _put_directory(consent, _yaml(document)),
            422,
            "validation_error",
            secrets=("Ann Kristin Allum", "Rolf Rektor", "ann.kristin@example.org"),
        )
    as_json = await _refused(
        consent,
        _put_directory(
            consent,
            httpx.Request("PUT", "/", json=unknown_unit).content,
            content_type="application/json",
        ),
        422,
        "validation_error",
        secrets=("Ann Kristin Allum",),
    )
    assert as_json["errors"], as_json


async def test_a_directory_body_that_does_not_parse_is_a_bad_request(
    consent: ConsentHarness,
) -> None:
    broken_yaml = b"region: grenland\norganisations: [\n  - id: '4010'\n   name: Ann Kristin Allum"
    await _refused(
        consent,
        _put_directory(consent, broken_yaml),
        400,
        "bad_request",
        secrets=("Ann Kristin Allum",),
    )
    await _refused(
        consent,
        _put_directory(consent, b'{"region": "grenland", ', content_type="application/json"),
        400,
        "bad_request",
    )
    await _refused(
        consent,
        _put_directory(consent, b"\xff\xfe not utf-8"),
        400,
        "bad_request",
    )


async def test_a_directory_in_another_content_type_is_unsupported(
    consent: ConsentHarness,
) -> None:
    for content_type in ("text/plain", "application/xml", "multipart/form-data"):
        await _refused(
            consent,
            _put_directory(consent, _yaml(REGION), content_type=content_type),
            415,
            "unsupported_media_type",
            secrets=("Ann Kristin Allum",),
        )


async def test_the_directory_takes_larger_bodies_than_other_routes_but_not_without_limit(
    consent: ConsentHarness,
) -> None:
    default_limit = consent.runtime.settings.max_body_bytes
    directory_limit = SPEC.body_limits["/api/v1/directory"]
    assert directory_limit > default_limit
    # Over the default limit, yet a valid (unchanged) document for the directory route.
    padded = b"# " + b"x" * (default_limit + 10) + b"\n" + _yaml(REGION)
    before = await consent.store.last_seq()
    accepted = await _put_directory(consent, padded)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["changes"] == {}
    assert await consent.store.last_seq() == before
    # The same size elsewhere is too large.
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/children",
            content=padded,
            headers={**consent.auth(STAFF), "Content-Type": "application/json"},
        ),
        413,
        "payload_too_large",
    )
    huge = b"# " + b"x" * directory_limit + b"\n" + _yaml(REGION)
    await _refused(consent, _put_directory(consent, huge), 413, "payload_too_large")


# --- POST /consents -----------------------------------------------------------------------------


async def test_a_consent_for_a_child_without_a_guardian_with_parental_responsibility_has_no_grantor(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await _case_with_child(consent, guardians=[("Stefar", False)])
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth(STAFF)
        ),
        422,
        "no_grantor",
        secrets=(PURPOSE,),
    )


async def test_a_consent_whose_validity_is_past_or_longer_than_three_years_is_refused(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await _case_with_child(consent)
    now = datetime.now(UTC)
    for valid_until, code in (
        (now - timedelta(minutes=1), "validity_in_past"),
        (now + timedelta(days=4 * 365), "validity_too_long"),
    ):
        await _refused(
            consent,
            consent.client.post(
                "/api/v1/consents",
                json={**_consent_body(case_id), "valid_until": valid_until.isoformat()},
                headers=consent.auth(STAFF),
            ),
            422,
            code,
            secrets=(PURPOSE,),
        )
    naive = await _refused(
        consent,
        consent.client.post(
            "/api/v1/consents",
            json={**_consent_body(case_id), "valid_until": "2030-01-01T00:00:00"},
            headers=consent.auth(STAFF),
        ),
        422,
        "validation_error",
        secrets=(PURPOSE,),
    )
    assert naive["errors"]


async def test_a_consent_scope_naming_unknown_or_foreign_units_and_organisations_is_refused(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await _case_with_child(consent)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"unit_ids": ["ingen-slik-enhet"]}, "unknown_unit"),
        ({"unit_ids": ["porsgrunn-vgs"]}, "unknown_unit"),  # belongs to org 40, not 4010
        ({"org_ids": ["9999"]}, "unknown_organisation"),
        ({"org_ids": ["4010", "9999"]}, "unknown_organisation"),
    ]
    for scope, code in cases:
        await _refused(
            consent,
            consent.client.post(
                "/api/v1/consents",
                json=_consent_body(case_id, **scope),
                headers=consent.auth(STAFF),
            ),
            422,
            code,
            secrets=(PURPOSE,),
        )
    both = await consent.client.post(
        "/api/v1/consents",
        json=_consent_body(case_id, org_ids=["4010", "40"], unit_ids=["porsgrunn-vgs"]),
        headers=consent.auth(STAFF),
    )
    assert both.status_code == 201, both.text


async def test_a_consent_with_unknown_fields_is_refused(consent: ConsentHarness) -> None:
    case_id, _ = await _case_with_child(consent)
    top = {**_consent_body(case_id), "grantee_person_id": "helse-hanne"}
    inner = _consent_body(case_id, named_employee="helse-hanne")
    evidence = {**_consent_body(case_id), "evidence": {"method": "paper", "scan": "x"}}
    for body in (top, inner, evidence):
        await _refused(
            consent,
            consent.client.post("/api/v1/consents", json=body, headers=consent.auth(STAFF)),
            422,
            "validation_error",
            secrets=(PURPOSE,),
        )


async def test_a_consent_for_a_case_without_an_identified_child_is_refused(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await consent.open_case()
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth(STAFF)
        ),
        422,
        "child_not_identified",
        secrets=(PURPOSE,),
    )


async def test_a_consent_request_without_basis_looks_exactly_like_one_for_a_missing_case(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await _case_with_child(consent)
    before = await consent.store.last_seq()
    hidden = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth("vgs-vidar")
    )
    assert hidden.status_code == 404, hidden.text
    assert hidden.headers["content-type"] == PROBLEM
    assert hidden.json()["code"] == "not_found"
    assert PURPOSE not in hidden.text
    # The denials are audited (access events: managing consents, then reading the case,
    # which decides between 403 and 404), but no consent was written.
    written = await consent.events_since(before)
    assert [e.type for e in written] == ["no.stafett.access.decision_recorded.v1"] * 2
    assert [e.data["decision"] for e in written] == ["deny", "deny"]
    assert [e.data["action"] for e in written] == ["consent:manage", "case:read"]
    missing = await _refused(
        consent,
        consent.client.post(
            "/api/v1/consents", json=_consent_body(new_id()), headers=consent.auth("vgs-vidar")
        ),
        404,
        "not_found",
        secrets=(PURPOSE,),
    )
    assert hidden.json() == missing
    assert hidden.status_code == 404
    staff_missing = await _refused(
        consent,
        consent.client.post(
            "/api/v1/consents", json=_consent_body(new_id()), headers=consent.auth(STAFF)
        ),
        404,
        "not_found",
    )
    assert staff_missing == missing


# --- signatures, refusals, withdrawals ---------------------------------------------------------


async def test_a_malformed_consent_id_is_not_found_on_every_action(
    consent: ConsentHarness,
) -> None:
    _case, _consent_id, (mother, _father) = await _pending_consent(consent)
    for action in ("signatures", "refusals", "withdrawals"):
        for bad_id in ("not-a-ulid", "01jnosuchconsent00000000000", "0" * 27, "I" * 26):
            await _refused(
                consent,
                consent.client.post(
                    f"/api/v1/consents/{bad_id}/{action}",
                    json={"grantor_person_id": mother},
                    headers=consent.auth(mother),
                ),
                404,
                "not_found",
            )
        await _refused(
            consent,
            consent.client.post(
                f"/api/v1/consents/{new_id()}/{action}",
                json={"grantor_person_id": mother},
                headers=consent.auth(mother),
            ),
            404,
            "not_found",
        )


async def test_signing_twice_is_a_conflict(consent: ConsentHarness) -> None:
    _case, consent_id, (mother, _father) = await _pending_consent(consent)
    first = await _sign(consent, consent_id, mother)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "pending"
    await _refused(consent, _sign(consent, consent_id, mother), 409, "already_signed")


async def test_an_active_consent_cannot_be_refused_and_a_withdrawn_one_not_withdrawn_again(
    consent: ConsentHarness,
) -> None:
    _case, consent_id, (mother, father) = await _pending_consent(consent)
    await _sign(consent, consent_id, mother)
    active = await _sign(consent, consent_id, father)
    assert active.json()["status"] == "active", active.text
    reason = "Hemmelig begrunnelse fra far."
    await _refused(
        consent,
        consent.client.post(
            f"/api/v1/consents/{consent_id}/refusals",
            json={"grantor_person_id": father, "reason": reason},
            headers=consent.auth(father),
        ),
        409,
        "not_pending",
        secrets=(reason,),
    )
    withdrawn = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": mother},
        headers=consent.auth(mother),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    for grantor in (mother, father):
        await _refused(
            consent,
            consent.client.post(
                f"/api/v1/consents/{consent_id}/withdrawals",
                json={"grantor_person_id": grantor, "reason": reason},
                headers=consent.auth(grantor),
            ),
            409,
            "not_in_force",
            secrets=(reason,),
        )
    await _refused(consent, _sign(consent, consent_id, father), 409, "not_pending")


async def test_a_stale_if_match_is_a_version_conflict(consent: ConsentHarness) -> None:
    case_id, guardians = await _case_with_child(consent)
    mother, father = guardians
    requested = await consent.client.post(
        "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth(STAFF)
    )
    etag = requested.headers["ETag"]
    consent_id = requested.json()["id"]
    signed = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": mother},
        headers={**consent.auth(mother), "If-Match": etag},
    )
    assert signed.status_code == 201, signed.text
    assert signed.headers["ETag"] != etag
    await _refused(
        consent,
        consent.client.post(
            f"/api/v1/consents/{consent_id}/signatures",
            json={"grantor_person_id": father},
            headers={**consent.auth(father), "If-Match": etag},
        ),
        409,
        "version_conflict",
    )
    # Only the documented format: int() would also take "1_0", "+3" or other scripts' digits.
    for malformed in ("not-a-version", "1_0", '"+3"', '"' + "9" * 19 + '"', 'W/"-1"'):
        await _refused(
            consent,
            consent.client.post(
                f"/api/v1/consents/{consent_id}/withdrawals",
                json={"grantor_person_id": mother},
                headers={**consent.auth(mother), "If-Match": malformed},
            ),
            400,
            "bad_request",
        )
    current = await consent.client.post(
        f"/api/v1/consents/{consent_id}/signatures",
        json={"grantor_person_id": father},
        headers={**consent.auth(father), "If-Match": signed.headers["ETag"]},
    )
    assert current.status_code == 201, current.text
    assert current.json()["status"] == "active"


# --- decisions ----------------------------------------------------------------------------------


async def test_a_decision_with_an_unknown_action_or_a_negative_min_seq_is_refused(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await consent.open_case()
    good = {"principal": STAFF, "action": "case:read", "resource": {"case_id": case_id}}
    bodies = [
        {**good, "action": "case:delete"},
        {**good, "action": ""},
        {**good, "min_seq": -1},
        {**good, "resource": {"case_id": case_id, "entry_id": "../../etc"}},
        {**good, "principal": {"id": STAFF, "kind": "robot"}},
        {**good, "extra": True},
    ]
    for body in bodies:
        await _refused(
            consent,
            consent.client.post("/api/v1/decisions", json=body, headers=_decider(consent)),
            422,
            "validation_error",
        )


async def test_a_filter_over_more_than_five_hundred_cases_or_with_a_negative_min_seq_is_refused(
    consent: ConsentHarness,
) -> None:
    good: dict[str, Any] = {"principal": STAFF, "action": "case:read", "case_ids": [new_id()]}
    bodies = [
        {**good, "case_ids": [new_id() for _ in range(501)]},
        {**good, "min_seq": -5},
        {**good, "action": "case:delete"},
    ]
    for body in bodies:
        await _refused(
            consent,
            consent.client.post("/api/v1/decisions/filter", json=body, headers=_decider(consent)),
            422,
            "validation_error",
        )
    at_limit = await consent.client.post(
        "/api/v1/decisions/filter",
        json={**good, "case_ids": [new_id() for _ in range(500)]},
        headers=_decider(consent),
    )
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json() == {"permitted": []}


# --- emergency access and audit scopes ----------------------------------------------------------


async def test_emergency_access_needs_a_real_reason_and_staff(consent: ConsentHarness) -> None:
    case_id, guardians = await _case_with_child(consent)
    await _refused(
        consent,
        consent.client.post(
            "/api/v1/emergency-access",
            json={"case_id": case_id, "ground": "missing_child", "reason": "Haster!"},
            headers=consent.auth("bv-berit"),
        ),
        422,
        "validation_error",
        secrets=("Haster!",),
    )
    reason = "Hemmelig akutt bekymring fra mor."
    # Someone with no relation to the case: the same answer as for a case that does not
    # exist. (The denial on the case is a decision record; no grant is written.)
    before = await consent.store.last_seq()
    hidden = await consent.client.post(
        "/api/v1/emergency-access",
        json={"case_id": case_id, "ground": "missing_child", "reason": reason},
        headers=consent.auth("ukjent-person"),
    )
    assert hidden.status_code == 404, hidden.text
    assert reason not in hidden.text
    written = await consent.events_since(before)
    assert {e.type for e in written} <= {"no.stafett.access.decision_recorded.v1"}
    missing = await _refused(
        consent,
        consent.client.post(
            "/api/v1/emergency-access",
            json={"case_id": new_id(), "ground": "missing_child", "reason": reason},
            headers=consent.auth("ukjent-person"),
        ),
        404,
        "not_found",
        secrets=(reason,),
    )
    assert hidden.json() == missing
    # A guardian may read the case: 403 (decision 0025), and nothing is granted.
    before = await consent.store.last_seq()
    guardian = await consent.client.post(
        "/api/v1/emergency-access",
        json={"case_id": case_id, "ground": "missing_child", "reason": reason},
        headers=consent.auth(guardians[0]),
    )
    assert (guardian.status_code, guardian.json()["code"]) == (403, "forbidden")
    assert reason not in guardian.text
    written = await consent.events_since(before)
    assert {e.type for e in written} <= {"no.stafett.access.decision_recorded.v1"}


async def test_an_audit_scope_must_be_granted_by_an_administrator_for_a_future_and_named_scope(
    consent: ConsentHarness,
) -> None:
    now = datetime.now(UTC)
    reason = "Hemmelig tilsynssak om navngitt barn."
    good = {
        "auditor_person_id": "statsforvalter-siri",
        "org_id": "4010",
        "until": (now + timedelta(days=30)).isoformat(),
        "reason": reason,
    }
    past = (now - timedelta(days=1)).isoformat()
    too_far = (now + timedelta(days=400)).isoformat()
    refused: list[tuple[str, dict[str, Any], int, str]] = [
        ("admin", {**good, "until": past}, 422, "validity_in_past"),
        ("admin", {**good, "until": too_far}, 422, "validity_too_long"),
        ("admin", {k: v for k, v in good.items() if k != "org_id"}, 422, "empty_scope"),
        ("admin", {**good, "org_id": None, "case_ids": []}, 422, "empty_scope"),
        ("admin", {**good, "org_id": "9999"}, 422, "unknown_organisation"),
        ("admin", {**good, "case_ids": ["not-a-ulid"]}, 422, "validation_error"),
        ("admin", {**good, "until": "2030-01-01"}, 422, "validation_error"),
        (STAFF, good, 403, "forbidden"),
        ("rektor-siljan", good, 403, "forbidden"),
    ]
    for person, body, status, code in refused:
        await _refused(
            consent,
            consent.client.post("/api/v1/audit-scopes", json=body, headers=consent.auth(person)),
            status,
            code,
            secrets=(reason,),
        )


# --- Idempotency-Key ----------------------------------------------------------------------------


async def test_a_malformed_idempotency_key_is_a_bad_request_before_anything_is_written(
    consent: ConsentHarness,
) -> None:
    case_id, _ = await _case_with_child(consent)
    child = synthetic_national_id(_born(8), 400)
    routes: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/consents", _consent_body(case_id)),
        ("/api/v1/children", _child_body(child)),
        (
            "/api/v1/emergency-access",
            {"case_id": case_id, "ground": "missing_child", "reason": "Akutt bekymring i kveld."},
        ),
    ]
    for key in ("short", "has spaces in it", "x" * 129, "semi;colon-key", "key/with/slash"):
        for path, body in routes:
            await _refused(
                consent,
                consent.client.post(
                    path,
                    json=body,
                    headers={**consent.auth(STAFF), "Idempotency-Key": key},
                ),
                400,
                "bad_request",
                secrets=(PURPOSE, child, CHILD_NAME),
            )


# --- behaviour: expiry and fail closed ----------------------------------------------------------


async def test_a_consent_expires_at_valid_until_and_the_covered_team_member_is_denied(
    consent: ConsentHarness,
) -> None:
    case_id, (mother, father) = await _case_with_child(consent)
    await consent.add_team_member(case_id, "helse-hanne", "siljan-helsestasjon")
    valid_until = datetime.now(UTC) + timedelta(seconds=3)
    requested = await consent.client.post(
        "/api/v1/consents",
        json={**_consent_body(case_id), "valid_until": valid_until.isoformat()},
        headers=consent.auth(STAFF),
    )
    assert requested.status_code == 201, requested.text
    consent_id = requested.json()["id"]
    await _sign(consent, consent_id, mother)
    active = await _sign(consent, consent_id, father)
    assert active.json()["status"] == "active", active.text
    active_seq = int(active.headers["Stafett-Seq"])

    permitted = await consent.decide("helse-hanne", "case:read", case_id, min_seq=active_seq)
    assert datetime.now(UTC) < valid_until, "the setup took longer than the consent's window"
    assert (permitted["decision"], permitted["basis"]) == ("permit", "team")
    assert permitted["consent_id"] == consent_id

    service = consent.runtime.extras["consent"]
    assert isinstance(service, ConsentService)
    assert await service.expire_due() == 0  # nothing is due yet

    await asyncio.sleep((valid_until - datetime.now(UTC)).total_seconds() + 0.2)
    # The consent's window has ended: denied even before the expiry event.
    before_event = await consent.decide("helse-hanne", "case:read", case_id)
    assert before_event["decision"] == "deny"
    assert not [
        e for e in await consent.events_since(active_seq) if e.type.endswith("consent.expired.v1")
    ]

    assert await service.expire_due() == 1
    expired = [
        e
        for e in await consent.events_since(active_seq)
        if e.type == "no.stafett.consent.expired.v1"
    ]
    assert [e.data["consent_id"] for e in expired] == [consent_id]
    assert expired[0].data["case_id"] == case_id
    after = await consent.decide(
        "helse-hanne", "case:read", case_id, min_seq=await consent.store.last_seq()
    )
    assert after["decision"] == "deny"
    assert after["consent_id"] is None
    listed = await consent.client.get(
        f"/api/v1/consents?case_id={case_id}", headers=consent.auth(STAFF)
    )
    assert [c["status"] for c in listed.json()["items"]] == ["expired"]
    assert await service.expire_due() == 0  # expiring is done once
    withdraw = await consent.client.post(
        f"/api/v1/consents/{consent_id}/withdrawals",
        json={"grantor_person_id": mother},
        headers=consent.auth(mother),
    )
    assert (withdraw.status_code, withdraw.json()["code"]) == (409, "not_in_force")


async def test_a_decision_that_cannot_be_recorded_is_a_denial(consent: ConsentHarness) -> None:
    case_id, _guardians = await _case_with_child(consent)
    recorded = await consent.decide(STAFF, "case:read", case_id)
    assert (recorded["decision"], recorded["basis"]) == ("permit", "holder")

    # A decision point whose database refuses every INSERT of a decision record, on the
    # event loop (SQLite) and in the thread alike.
    runtime = consent.runtime
    read_models = runtime.engine.url.render_as_string(hide_password=False)
    broken_engine = create_sync_engine(records_url(read_models))
    loop = loop_engines(read_models)

    def refuse_records(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DECISION_RECORDS"):
            raise OSError("disk full")

    for records in (broken_engine, *(loop[1:] if loop else ())):
        event.listen(records, "before_cursor_execute", refuse_records)
    working = runtime.extras["decisions"]
    service = runtime.extras["consent"]
    assert isinstance(working, DecisionPoint)
    assert isinstance(service, ConsentService)
    broken = DecisionPoint(
        engine=create_sync_engine(read_models),
        records=broken_engine,
        loop=loop,
        projector=runtime.projector,
        store=runtime.store,
    )
    assert broken.on_loop == (runtime.engine.dialect.name == "sqlite")
    runtime.extras["decisions"] = broken
    service.decisions = broken
    try:
        before = await consent.store.last_seq()
        for action in ("case:read", "case:write", "log:append"):
            out = await consent.decide(STAFF, action, case_id)
            assert (out["decision"], out["reason"], out["basis"]) == ("deny", "not_recorded", None)
            assert out["consent_id"] is None
        assert await consent.store.last_seq() == before
        # A write that rests on a decision is refused too, and writes nothing.
        request = await consent.client.post(
            "/api/v1/consents", json=_consent_body(case_id), headers=consent.auth(STAFF)
        )
        # Today a 404 (as for any refused basis); a 503 would also fail closed.
        assert request.status_code in (404, 503), request.text
        assert request.headers["content-type"] == PROBLEM
        assert await consent.store.last_seq() == before
    finally:
        runtime.extras["decisions"] = working
        service.decisions = working
        await broken.aclose()
    again = await consent.decide(STAFF, "case:read", case_id)
    assert again["decision"] == "permit"
