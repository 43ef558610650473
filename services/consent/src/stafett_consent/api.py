"""HTTP API of the consent service (CONTRACT.md "consent service") and OpenID AuthZEN 1.0."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from stafett_consent import domain
from stafett_consent.decisions import DecisionPoint
from stafett_consent.feed import MAX_FEED_LIMIT, MAX_TYPES, MAX_WAIT, Feed, Position
from stafett_consent.handlers import ConsentService, GuardianInput, Written
from stafett_consent.policy import Action
from stafett_shared.auth import Principal, PrincipalDep
from stafett_shared.contracts.access import AccessDecision
from stafett_shared.contracts.base import ORG_ID_PATTERN, POLICY_ID_PATTERN
from stafett_shared.contracts.consent import ConsentStatus, EmergencyGround, EvidenceMethod
from stafett_shared.contracts.directory import MAX_CONSENT_DAYS, OrgKind, Sector, StaffRole
from stafett_shared.contracts.feed import FEED_TYPES
from stafett_shared.contracts.log import Category
from stafett_shared.idempotency import (
    ClientKeyDep,
    IdempotencyStore,
    StoredAnswer,
    parse_if_match,
    run_once,
    written_answer,
)
from stafett_shared.msgid import ClientKey
from stafett_shared.openapi import answers
from stafett_shared.paging import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    decode_key_cursor,
    encode_cursor,
    encode_key_cursor,
)
from stafett_shared.problems import Problem
from stafett_shared.projector import ProjectionBehind

router = APIRouter(tags=["samtykke"])
authzen = APIRouter(tags=["AuthZEN"])

ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
PERSON = r"^[A-Za-z0-9-]{1,64}$"
AGGREGATE = r"^[A-Za-z0-9_-]{1,64}$"
DECISION_SCOPE = "stafett.decisions"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GuardianIn(_In):
    national_id: str = Field(min_length=11, max_length=11)
    name: str = Field(min_length=1, max_length=200)
    parental_responsibility: bool


class ChildIn(_In):
    national_id: str = Field(min_length=11, max_length=11)
    name: str = Field(min_length=1, max_length=200)
    guardians: list[GuardianIn] = Field(default_factory=list, max_length=10)


class GuardianChangeIn(_In):
    reason: str = Field(min_length=1, max_length=1000, description="Hvorfor endringen gjøres")


class NewGuardianIn(GuardianIn, GuardianChangeIn):
    pass


class ResponsibilityIn(GuardianChangeIn):
    parental_responsibility: bool


class ScopeIn(_In):
    org_ids: list[str] = Field(min_length=1, max_length=50)
    sectors: list[Sector] = Field(min_length=1, max_length=10)
    unit_ids: list[Annotated[str, Field(pattern=POLICY_ID_PATTERN)]] = Field(
        default_factory=list, max_length=200
    )
    history_travels: bool = False
    excluded_categories: list[Category] = Field(default_factory=list, max_length=2)
    purpose: str = Field(min_length=1, max_length=2000)


class EvidenceIn(_In):
    method: EvidenceMethod
    reference: str | None = Field(default=None, max_length=500)


OSLO = ZoneInfo("Europe/Oslo")


def _plain_date(value: object) -> object:
    """Only ``YYYY-MM-DD`` is a plain date: a time without its offset, even midnight, is
    refused rather than read as a day."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("En dato skrives ÅÅÅÅ-MM-DD; et tidspunkt må ha tidssone.")
    return value


PlainDate = Annotated[date, BeforeValidator(_plain_date)]


def through_day(value: AwareDatetime | date | None) -> datetime | None:
    """A consent's ``valid_until``: a time with its offset as it is, or a plain date as
    valid through that whole day in Norway (until midnight Europe/Oslo, in UTC)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value + timedelta(days=1), time(0), OSLO).astimezone(UTC)


class ConsentIn(_In):
    case_id: str = Field(pattern=ULID)
    scope: ScopeIn
    valid_until: AwareDatetime | PlainDate | None = Field(
        default=None,
        description="When the consent ends: a time with its offset, or a date (YYYY-MM-DD), "
        "valid through that day in Norway.",
    )
    evidence: EvidenceIn


class SignatureIn(_In):
    grantor_person_id: str = Field(pattern=PERSON)
    method: EvidenceMethod = EvidenceMethod.DIGITAL_SIGNATURE
    reference: str | None = Field(default=None, max_length=500)


class GrantorActionIn(_In):
    grantor_person_id: str = Field(pattern=PERSON)
    reason: str | None = Field(default=None, max_length=2000)


class PrincipalRef(_In):
    id: str = Field(pattern=PERSON)
    kind: Literal["person", "client"] = "person"
    scopes: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None,
        max_length=50,
        description="A client's token's scopes; only those its registration lists count "
        "(decision 0039). Left out: the asking client's own, when it asks about itself.",
    )


def _subject_scopes(caller: Principal, subject: PrincipalRef) -> frozenset[str]:
    """The scopes a decision about ``subject`` counts (a client's; a person has none)."""
    if subject.kind != "client":
        return frozenset()
    if subject.scopes is not None:
        return frozenset(subject.scopes)
    if caller.kind == "client" and caller.id == subject.id:
        return caller.scopes
    return frozenset()


class ResourceIn(_In):
    case_id: str = Field(pattern=AGGREGATE)
    entry_id: str | None = Field(default=None, pattern=AGGREGATE)


class DecisionIn(_In):
    principal: Annotated[str, Field(pattern=PERSON)] | PrincipalRef
    action: Action
    resource: ResourceIn
    min_seq: int | None = Field(default=None, ge=0)


class FilterIn(_In):
    principal: Annotated[str, Field(pattern=PERSON)] | PrincipalRef
    action: Action
    case_ids: list[Annotated[str, Field(pattern=AGGREGATE)]] = Field(max_length=500)
    min_seq: int | None = Field(default=None, ge=0)


class EmergencyIn(_In):
    case_id: str = Field(pattern=ULID)
    ground: EmergencyGround = Field(
        description="Why, from a fixed list: danger_to_life_or_health, acute_child_welfare, "
        "missing_child, suspected_violence_or_abuse."
    )
    reason: str = Field(min_length=10, max_length=2000)


class AuditScopeIn(_In):
    auditor_person_id: str = Field(pattern=PERSON)
    org_id: str | None = Field(default=None, pattern=ORG_ID_PATTERN)
    case_ids: list[Annotated[str, Field(pattern=ULID)]] = Field(
        default_factory=list, max_length=500
    )
    until: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)


# --- dependencies ------------------------------------------------------------------------------


async def _service(request: Request) -> ConsentService:
    service: ConsentService = request.app.state.runtime.extras["consent"]
    return service


async def _decisions(request: Request) -> DecisionPoint:
    decisions: DecisionPoint = request.app.state.runtime.extras["decisions"]
    return decisions


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.runtime.extras["idempotency"]
    return store


ServiceDep = Annotated[ConsentService, Depends(_service)]
DecisionsDep = Annotated[DecisionPoint, Depends(_decisions)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
IdempotencyKey = ClientKeyDep
MinSeq = Annotated[int | None, Header(alias="Stafett-Min-Seq", ge=0)]


def _written(status: int, written: Written) -> StoredAnswer:
    return written_answer(status, written.body, written.version, written.seq)


async def _once(
    request: Request,
    principal: Principal,
    key: ClientKey | None,
    store: IdempotencyStore,
    write: Callable[[], Awaitable[StoredAnswer]],
) -> JSONResponse:
    """Run ``write`` once per idempotency key; a repeat gets the first answer."""

    async def mapped() -> StoredAnswer:
        try:
            return await write()
        except ProjectionBehind:
            raise _behind() from None

    return await run_once(request, principal.id, key, store, mapped)


def _behind() -> Problem:
    return Problem(
        503,
        "unavailable",
        "Lesemodellen har ikke nådd den etterspurte sekvensen ennå.",
        headers={"Retry-After": "1"},
    )


def _principal_of(value: str | PrincipalRef) -> PrincipalRef:
    return PrincipalRef(id=value) if isinstance(value, str) else value


def _may_ask(caller: Principal, subject: PrincipalRef) -> None:
    """Agency systems with the decision scope may ask about anyone; a person about themselves."""
    if caller.kind == "client" and DECISION_SCOPE in caller.scopes:
        return
    if caller.kind == "person" and subject.kind == "person" and subject.id == caller.id:
        return
    raise Problem(403, "forbidden", "Du kan bare spørre om egne tilganger.")


# --- directory -------------------------------------------------------------------------------


def _json_or_yaml(model: type[BaseModel]) -> dict[str, Any]:
    """The request body of a route that reads ``model`` as JSON or YAML itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema()},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    }


@router.put(
    "/directory",
    summary="Last regionsdokumentet (virksomheter, enheter, ansatte med roller)",
    responses=answers(415),  # neither JSON nor YAML
    openapi_extra=_json_or_yaml(domain.RegionDocument),
)
async def put_directory(
    *, request: Request, principal: PrincipalDep, service: ServiceDep
) -> JSONResponse:
    parsed = _parsed_body(await request.body(), request.headers.get("content-type"))
    try:
        document = domain.RegionDocument.model_validate(parsed)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    result = await service.load_region(principal, document)
    return JSONResponse(result, headers={"Stafett-Seq": str(result["seq"])})


OrgIdPath = Annotated[str, Path(pattern=ORG_ID_PATTERN, description="Virksomhetens id")]


def _parsed_body(raw: bytes, content_type_header: str | None) -> object:
    """A request body read as JSON or YAML by its content type (JSON without one)."""
    content_type = (content_type_header or "application/json").split(";")[0].strip()
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(raw.decode("utf-8"))
        if content_type == "application/json":
            return json.loads(raw)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError):
        raise Problem(400, "bad_request", "Dokumentet er ikke gyldig JSON eller YAML.") from None
    raise Problem(415, "unsupported_media_type", "Send JSON eller YAML.")


@router.put(
    "/directory/orgs/{org_id}",
    summary="Last virksomhetens del av regionsdokumentet (enheter, ansatte, innstillinger)",
    responses=answers(415),  # neither JSON nor YAML
    openapi_extra=_json_or_yaml(domain.OrganisationPart),
)
async def put_organisation(
    *, org_id: OrgIdPath, request: Request, principal: PrincipalDep, service: ServiceDep
) -> JSONResponse:
    parsed = _parsed_body(await request.body(), request.headers.get("content-type"))
    try:
        part = domain.OrganisationPart.model_validate(parsed)
        result = await service.load_organisation(principal, org_id, part)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    return JSONResponse(result, headers={"Stafett-Seq": str(result["seq"])})


class SettingsInForce(BaseModel):
    youth_consent_age: int
    health_youth_consent_age: int
    consent_default_days: int
    consent_max_days: int
    level0_days: int
    evaluation_warning_days: int
    handover_days: int
    inactive_days: int
    consent_reminder_days: int


class OrganisationPartOut(BaseModel):
    id: str
    name: str
    kind: OrgKind
    part: dict[str, Any] = Field(
        description="Det PUT /directory/orgs/{org_id} tar imot (samme skjema); ansatte i "
        "shared_staff står uten innlogginger"
    )
    shared_staff: list[str] = Field(
        description="Ansatte med roller også i andre virksomheter: bare rollene her vises, og "
        "navn og innlogginger endres av regionens administrator"
    )
    settings_in_force: SettingsInForce = Field(
        description="Innstillingene som gjelder: virksomhetens egne, ellers regionens"
    )


@router.get(
    "/directory/orgs/{org_id}",
    summary="Virksomhetens del av regionsdokumentet (for dens administratorer)",
    response_model=OrganisationPartOut,
)
async def get_organisation(
    *, org_id: OrgIdPath, principal: PrincipalDep, service: ServiceDep
) -> JSONResponse:
    return JSONResponse(await service.read_organisation(principal, org_id))


class UnitOut(BaseModel):
    id: str
    name: str
    sector: Sector
    phone: str | None = Field(default=None, description="Enhetens telefon (ikke en persons)")
    email: str | None = Field(default=None, description="Enhetens e-post (ikke en persons)")


class MeasureOut(BaseModel):
    title: str
    goal: str | None


class OrganisationOut(BaseModel):
    id: str
    name: str
    kind: OrgKind
    units: list[UnitOut]
    guide: dict[domain.GuideLevel, list[str]] = Field(
        description="Handlingsveilederen: stegene på hvert BTI-nivå (0–3)"
    )
    measure_catalogue: list[MeasureOut]


class RoleOut(BaseModel):
    unit_id: str
    role: StaffRole


class StaffOut(BaseModel):
    id: str
    name: str | None = Field(description="None når navnet ikke kan leses (nøkkelen er slettet)")
    roles: list[RoleOut]


class DirectoryOut(BaseModel):
    region: str | None
    organisations: list[OrganisationOut]
    staff: list[StaffOut]


@router.get(
    "/directory",
    summary="Katalogen: virksomheter, enheter, veiledere, tiltak og ansatte (for ansatte)",
    response_model=DirectoryOut,
)
async def get_directory(*, principal: PrincipalDep, service: ServiceDep) -> JSONResponse:
    return JSONResponse(await service.read_directory(principal))


class OrganisationNameOut(BaseModel):
    id: str
    name: str
    kind: OrgKind
    units: list[UnitOut]


class OrganisationsOut(BaseModel):
    items: list[OrganisationNameOut]


@router.get(
    "/organisations",
    summary="Virksomhetene og enhetene deres ved navn (for alle personer)",
    description="For the families' pages: a consent's services in words. No staff, no "
    "case data; only persons may ask (decision 0031).",
    response_model=OrganisationsOut,
    responses=answers(403),
)
async def get_organisations(*, principal: PrincipalDep, service: ServiceDep) -> JSONResponse:
    return JSONResponse({"items": await service.read_organisations(principal)})


class StaffRoleCard(BaseModel):
    role: StaffRole
    unit_id: str
    unit_name: str
    sector: Sector
    org_id: str
    org_name: str


class ClientCardOrg(BaseModel):
    org_id: str
    org_name: str


class StaffCard(BaseModel):
    id: str
    name: str | None = Field(description="None når navnet ikke kan leses (nøkkelen er slettet)")
    roles: list[StaffRoleCard]
    client: ClientCardOrg | None = Field(
        default=None,
        description="An agency's client (`client-…`, decision 0039): the organisation it "
        "belongs to; `name` is the client's as the region document gives it.",
    )


class StaffCardsOut(BaseModel):
    items: list[StaffCard]


@router.get(
    "/staff",
    summary="Ansatte ved id: navn, rolle, enhet og virksomhet (for alle personer)",
    description="For the families' pages: who holds the baton and who read the log. At most "
    f"{domain.MAX_STAFF_CARDS} ids (`id`, repeated); ids that are not staff are left out; "
    "an agency's client is named with its organisation (`client`). "
    "The staff directory is no case data; only persons may ask (decision 0031).",
    response_model=StaffCardsOut,
    responses=answers(403, 422),
)
async def get_staff_cards(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    id: Annotated[list[str], Query(min_length=1, max_length=domain.MAX_STAFF_CARDS)],
) -> JSONResponse:
    if any(not re.fullmatch(PERSON, value) for value in id):
        raise Problem(
            422, "invalid_person_id", "En person-id har bare bokstaver, tall og bindestrek."
        )
    items = await service.staff_cards(principal, id)
    return JSONResponse(jsonable_encoder({"items": items}))


@router.post("/children", status_code=201, summary="Registrer et barn og dets foresatte")
async def post_child(
    *,
    request: Request,
    body: ChildIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.register_child(
            principal,
            national_id=body.national_id,
            name=body.name,
            guardian_inputs=[
                GuardianInput(g.national_id, g.name, g.parental_responsibility)
                for g in body.guardians
            ],
        )
        # 201 whether the child was new or known (decision 0029): no oracle.
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


ChildId = Annotated[str, Path(pattern=ULID)]
GuardianId = Annotated[str, Path(pattern=ULID)]
_GUARDIAN_ANSWERS = answers(403, 404, 409)


@router.post(
    "/children/{child_id}/guardians",
    status_code=201,
    summary="Legg til en foresatt for et barn (administrator, med begrunnelse)",
    responses=_GUARDIAN_ANSWERS,
)
async def post_guardian(
    *,
    request: Request,
    child_id: ChildId,
    body: NewGuardianIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.add_guardian(
            principal,
            child_id,
            guardian=GuardianInput(body.national_id, body.name, body.parental_responsibility),
            reason=body.reason,
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


@router.delete(
    "/children/{child_id}/guardians/{person_id}",
    summary="Fjern en foresatt fra et barn (administrator, med begrunnelse)",
    responses=_GUARDIAN_ANSWERS,
)
async def delete_guardian(
    *,
    request: Request,
    child_id: ChildId,
    person_id: GuardianId,
    body: GuardianChangeIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.remove_guardian(principal, child_id, person_id, reason=body.reason)
        return _written(200, written)

    return await _once(request, principal, idempotency_key, store, write)


@router.post(
    "/children/{child_id}/guardians/{person_id}/parental-responsibility",
    summary="Endre en foresatts foreldreansvar (administrator, med begrunnelse)",
    responses=_GUARDIAN_ANSWERS,
)
async def post_parental_responsibility(
    *,
    request: Request,
    child_id: ChildId,
    person_id: GuardianId,
    body: ResponsibilityIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.set_parental_responsibility(
            principal,
            child_id,
            person_id,
            parental_responsibility=body.parental_responsibility,
            reason=body.reason,
        )
        return _written(200, written)

    return await _once(request, principal, idempotency_key, store, write)


# --- consents --------------------------------------------------------------------------------


@router.post(
    "/consents",
    status_code=201,
    summary="Be om samtykke for en sak",
    responses=answers(404),  # a case the caller may not see
)
async def post_consent(
    *,
    request: Request,
    body: ConsentIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    min_seq: MinSeq = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.request_consent(
            principal,
            case_id=body.case_id,
            scope=body.scope.model_dump(mode="json"),
            valid_until=through_day(body.valid_until),
            evidence_method=body.evidence.method,
            evidence_reference=body.evidence.reference,
            idempotency_key=idempotency_key,
            min_seq=min_seq,
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


_if_match = parse_if_match


async def _consent_action(  # noqa: PLR0917 - the three consent routes share it
    request: Request,
    principal: Principal,
    service: ConsentService,
    store: IdempotencyStore,
    consent_id: str,
    kind: Literal["sign", "refuse", "withdraw"],
    body: SignatureIn | GrantorActionIn,
    idempotency_key: ClientKey | None,
    if_match: str | None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.act_on_consent(
            principal,
            consent_id,
            kind=kind,
            grantor_person_id=body.grantor_person_id,
            method=body.method if isinstance(body, SignatureIn) else EvidenceMethod.PAPER,
            reference=body.reference if isinstance(body, SignatureIn) else None,
            reason=body.reason if isinstance(body, GrantorActionIn) else None,
            if_match=_if_match(if_match),
            idempotency_key=idempotency_key,
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


IfMatch = Annotated[str | None, Header(alias="If-Match")]
ConsentId = Annotated[str, Field(pattern=ULID)]


@router.post("/consents/{consent_id}/signatures", status_code=201, summary="Signer et samtykke")
async def post_signature(
    *,
    request: Request,
    consent_id: str,
    body: SignatureIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    _check_ulid(consent_id)
    return await _consent_action(
        request, principal, service, store, consent_id, "sign", body, idempotency_key, if_match
    )


@router.post("/consents/{consent_id}/refusals", status_code=201, summary="Nekt et samtykke")
async def post_refusal(
    *,
    request: Request,
    consent_id: str,
    body: GrantorActionIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    _check_ulid(consent_id)
    return await _consent_action(
        request, principal, service, store, consent_id, "refuse", body, idempotency_key, if_match
    )


@router.post(
    "/consents/{consent_id}/withdrawals", status_code=201, summary="Trekk tilbake et samtykke"
)
async def post_withdrawal(
    *,
    request: Request,
    consent_id: str,
    body: GrantorActionIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    _check_ulid(consent_id)
    return await _consent_action(
        request, principal, service, store, consent_id, "withdraw", body, idempotency_key, if_match
    )


@router.post(
    "/consents/{consent_id}/renewals",
    status_code=201,
    summary="Forny et samtykke med samme omfang",
    description="Ber om et nytt samtykke med samme omfang som gjelder fra det gamle utløper "
    "(eller nå, om det har utløpt). Samtykkegiverne signerer det nye som vanlig.",
    responses=answers(404, 409),
)
async def post_renewal(
    *,
    request: Request,
    consent_id: str,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    _check_ulid(consent_id)

    async def write() -> StoredAnswer:
        written = await service.renew_consent(
            principal, consent_id, idempotency_key=idempotency_key
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


def _check_ulid(value: str) -> None:
    import re

    if not re.fullmatch(ULID, value):
        raise Problem(404, "not_found", "Finnes ikke, eller du har ikke tilgang.")


class ScopeOut(BaseModel):
    org_ids: list[str]
    sectors: list[Sector]
    unit_ids: list[str]
    history_travels: bool
    excluded_categories: list[Category]


class GrantorsOut(BaseModel):
    kind: Literal["guardians", "youth", "person"]
    members: list[str]
    needed: Literal["all", "any"]


class EvidenceOut(BaseModel):
    method: EvidenceMethod


class ConsentOut(BaseModel):
    id: str
    case_id: str
    status: ConsentStatus
    scope: ScopeOut = Field(description="Hva samtykket dekker, uten formålet")
    grantors: list[GrantorsOut]
    signed: list[str]
    rule: str
    age_applied: int
    valid_from: datetime
    valid_until: datetime
    evidence: EvidenceOut
    version: int
    requested_by: str | None = Field(
        description="Hvem som ba om samtykket (en ansatt, eller samtykkegiveren som fornyet "
        "det); null for samtykker lesemodellen lærte før den husket det, til den bygges på "
        "nytt (decision 0034)"
    )
    renews: str | None
    renewed_by: str | None
    expires_soon: bool


class ConsentsOut(BaseModel):
    items: list[ConsentOut]
    next_cursor: str | None


class OneConsentOut(ConsentOut):
    purpose: str | None = Field(
        description="Hva samtykket er til, i klartekst: for ansatte som kan lese saken og for "
        "samtykkegiverne; null for andre i familien, og når barnets nøkkel er slettet "
        "(decision 0034)"
    )


@router.get(
    "/consents",
    summary="Samtykker for en sak",
    response_model=ConsentsOut,
    responses=answers(404),
)
async def get_consents(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    case_id: Annotated[str, Query(pattern=ULID)],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    expiring_within_days: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_CONSENT_DAYS,
            description="Bare samtykker som gjelder og utløper innen så mange dager",
        ),
    ] = None,
) -> JSONResponse:
    # A cursor holds for the list it came from: the filter is part of what it is bound to.
    bound = case_id if expiring_within_days is None else f"{case_id}:{expiring_within_days}"
    offset = decode_cursor(cursor, "consents", bound) if cursor else 0
    items, more = await service.list_consents(
        principal,
        case_id,
        limit=limit,
        offset=offset,
        expiring_within_days=expiring_within_days,
    )
    following = encode_cursor("consents", bound, offset + limit) if more else None
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": following}))


@router.get(
    "/consents/{consent_id}",
    summary="Ett samtykke, med hva det er til",
    description="The consent as the list shows it, with `purpose`: in clear for staff who may "
    "read the case and for the consent's grantors, null for the rest of the family. 404 for "
    "whoever may not read the case. Every read is recorded (decision 0034).",
    response_model=OneConsentOut,
    responses=answers(404),
)
async def get_consent(
    *, consent_id: str, principal: PrincipalDep, service: ServiceDep
) -> JSONResponse:
    _check_ulid(consent_id)
    return JSONResponse(jsonable_encoder(await service.read_consent(principal, consent_id)))


# --- decisions -------------------------------------------------------------------------------


@router.post("/decisions", summary="Tilgangsbeslutning for én handling på én sak")
async def post_decision(
    *, body: DecisionIn, principal: PrincipalDep, decisions: DecisionsDep
) -> AccessDecision:
    subject = _principal_of(body.principal)
    _may_ask(principal, subject)
    try:
        out = await decisions.check(
            subject.id,
            body.action,
            body.resource.case_id,
            principal_kind=subject.kind,
            entry_id=body.resource.entry_id,
            min_seq=body.min_seq,
            scopes=_subject_scopes(principal, subject),
        )
    except ProjectionBehind:
        raise _behind() from None
    return out


@router.post("/decisions/filter", summary="Hvilke av disse sakene kan personen se")
async def post_filter(
    *, body: FilterIn, principal: PrincipalDep, decisions: DecisionsDep
) -> dict[str, list[str]]:
    subject = _principal_of(body.principal)
    _may_ask(principal, subject)
    try:
        permitted = await decisions.filter(
            subject.id,
            body.action,
            body.case_ids,
            principal_kind=subject.kind,
            min_seq=body.min_seq,
        )
    except ProjectionBehind:
        raise _behind() from None
    return {"permitted": permitted}


@router.get(
    "/decision-records", summary="Registrerte beslutninger (for tilsyn)", responses=answers(404)
)
async def get_decision_records(
    *,
    principal: PrincipalDep,
    decisions: DecisionsDep,
    case_id: Annotated[str, Query(pattern=ULID)],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    out = await decisions.check(
        principal.id,
        Action.AUDIT_READ,
        case_id,
        principal_kind=principal.kind,
        scopes=principal.scopes,
    )
    if not out.permitted:
        raise Problem(404, "not_found", "Finnes ikke, eller du har ikke tilgang.")
    before = decode_key_cursor(cursor, "decision_records", case_id) if cursor else None
    rows = await decisions.records(case_id=case_id, limit=limit, before_id=before)
    next_cursor = (
        encode_key_cursor("decision_records", case_id, str(rows[-1]["decision_id"]))
        if len(rows) == limit
        else None
    )
    return JSONResponse(jsonable_encoder({"items": rows, "next_cursor": next_cursor}))


# --- the event feed for agencies' clients (decision 0041) -------------------------------------


async def _feed(request: Request) -> Feed:
    feed: Feed = request.app.state.runtime.extras["feed"]
    return feed


FEED_TYPE_NAMES = ", ".join(f"`{name}`" for name in sorted(FEED_TYPES))


class FeedOut(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="CloudEvents 1.0 in structured JSON, oldest first; `id` is the same every "
        "time an event is given (at least once: use it to drop repeats)"
    )
    next: str = Field(description="Markøren etter disse hendelsene: gi den som `after` neste gang")


@router.get(
    "/feed",
    summary="Hendelser et fagsystem kan følge (for virksomheters klienter)",
    description="The integration events of the cases where the calling client's basis holds "
    "(decision 0041), after `after`, at most `limit`; with `wait`, the answer waits up to so "
    "many seconds for the first event and comes at once when there is one. A client without "
    "scope or basis is given an empty feed; a person is 403. Every batch records one read per "
    f"case it serves. Types: {FEED_TYPE_NAMES}.",
    response_model=FeedOut,
    responses=answers(403, 422),
)
async def get_feed(
    *,
    principal: PrincipalDep,
    feed: Annotated[Feed, Depends(_feed)],
    after: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next` fra forrige svar, slik det ble gitt"),
    ] = None,
    types: Annotated[
        str | None,
        Query(
            max_length=60 * MAX_TYPES,
            description="Kommaseparerte hendelsestyper; alle typene klienten har scope for "
            "om ingen er gitt",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_LIMIT, description="Høyst så mange")] = 100,
    wait: Annotated[
        int, Query(ge=0, le=MAX_WAIT, description="Sekunder å vente på den første hendelsen")
    ] = 0,
) -> JSONResponse:
    if principal.kind != "client":
        raise Problem(403, "forbidden", "Hendelsesstrømmen er for virksomheters fagsystemer.")
    wanted = None if types is None else frozenset(types.split(","))
    if wanted is not None and (not wanted or wanted - set(FEED_TYPES)):
        raise Problem(
            422,
            "invalid_types",
            "Ukjent hendelsestype.",
            extra={
                "errors": [
                    {
                        "loc": ["query", "types"],
                        "type": "invalid_types",
                        "msg": "Kjente typer: " + ", ".join(sorted(FEED_TYPES)),
                    }
                ]
            },
        )
    position = Position.of(after, principal.id)
    batch = await feed.batch(principal, position, types=wanted, limit=limit, wait=wait)
    return JSONResponse({"events": batch.events, "next": batch.next.cursor(principal.id)})


# --- emergency access and audit scopes ---------------------------------------------------------


@router.post(
    "/emergency-access",
    status_code=201,
    summary="Nødtilgang i 24 timer (en ny innen 30 dager venter på lederens godkjenning)",
    responses=answers(403, 404, 409),  # 404: a case the caller has no relation to
)
async def post_emergency_access(
    *,
    request: Request,
    body: EmergencyIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    min_seq: MinSeq = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.grant_emergency_access(
            principal,
            case_id=body.case_id,
            ground=body.ground,
            reason=body.reason,
            min_seq=min_seq,
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


@router.get(
    "/emergency-access",
    summary="Nødtilganger som venter på din godkjenning (for ledere)",
    description="The waiting requests of cases whose owning unit the caller leads, newest "
    "first: id, case, requester, ground and when. Empty for anyone else.",
)
async def get_emergency_access(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    status: Annotated[  # noqa: ARG001 - the one status listed; required so others may come
        Literal["pending"], Query(description="`pending`: the requests that wait.")
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many (50).")] = 50,
) -> JSONResponse:
    items = await service.waiting_emergency_requests(principal, limit=limit)
    return JSONResponse(jsonable_encoder({"items": items}))


@router.post(
    "/emergency-access/{grant_id}/approval",
    status_code=201,
    summary="Godkjenn en nødtilgang som venter (leder ved enheten som eier saken)",
    responses=answers(403, 404, 409),
)
async def post_emergency_approval(
    *,
    request: Request,
    grant_id: str,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    _check_ulid(grant_id)

    async def write() -> StoredAnswer:
        written = await service.approve_emergency_access(
            principal, grant_id, idempotency_key=idempotency_key
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


@router.post("/audit-scopes", status_code=201, summary="Gi en tilsynsperson tilgang")
async def post_audit_scope(
    *,
    request: Request,
    body: AuditScopeIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write() -> StoredAnswer:
        written = await service.grant_audit_scope(
            principal,
            auditor_person_id=body.auditor_person_id,
            org_id=body.org_id,
            case_ids=body.case_ids,
            until=body.until,
            reason=body.reason,
            idempotency_key=idempotency_key,
        )
        return _written(201, written)

    return await _once(request, principal, idempotency_key, store, write)


# --- OpenID AuthZEN 1.0 --------------------------------------------------------------------------


class AzSubject(_In):
    type: str = Field(default="user", max_length=64)
    id: str = Field(pattern=PERSON)
    properties: dict[str, Any] | None = None


class AzAction(_In):
    name: Action
    properties: dict[str, Any] | None = None


class AzResource(_In):
    type: Literal["case", "entry"] = "case"
    id: str = Field(pattern=AGGREGATE)
    properties: dict[str, Any] | None = None


class AzContext(_In):
    min_seq: int | None = Field(default=None, ge=0)


class AzEvaluation(_In):
    subject: AzSubject | None = None
    action: AzAction | None = None
    resource: AzResource | None = None
    context: AzContext | None = None


class AzEvaluationRequest(_In):
    subject: AzSubject
    action: AzAction
    resource: AzResource
    context: AzContext | None = None


class AzEvaluationsRequest(_In):
    subject: AzSubject | None = None
    action: AzAction | None = None
    resource: AzResource | None = None
    context: AzContext | None = None
    evaluations: list[AzEvaluation] = Field(min_length=1, max_length=100)
    options: dict[str, Any] | None = None


async def _evaluate(  # noqa: PLR0917 - mirrors the AuthZEN request's four parts
    caller: Principal,
    decisions: DecisionPoint,
    subject: AzSubject,
    action: AzAction,
    resource: AzResource,
    context: AzContext | None,
) -> dict[str, Any]:
    kind: Literal["person", "client"] = "client" if subject.type == "client" else "person"
    asked = PrincipalRef(id=subject.id, kind=kind)
    _may_ask(caller, asked)
    case_id = resource.id
    entry_id = None
    if resource.type == "entry":
        props = resource.properties or {}
        case_value = props.get("case_id")
        if not isinstance(case_value, str):
            raise Problem(400, "bad_request", "Et entry-objekt trenger properties.case_id.")
        case_id, entry_id = case_value, resource.id
    try:
        out = await decisions.check(
            subject.id,
            action.name,
            case_id,
            principal_kind=kind,
            entry_id=entry_id,
            min_seq=context.min_seq if context else None,
            scopes=_subject_scopes(caller, asked),
        )
    except ProjectionBehind:
        raise _behind() from None
    return {
        "decision": out.permitted,
        "context": {
            "id": out.decision_id,
            "reason": out.reason,
            "basis": out.basis,
            "policy_version": out.policy_version,
        },
    }


@authzen.post("/access/v1/evaluation", summary="AuthZEN 1.0: én tilgangsvurdering")
async def authzen_evaluation(
    *, body: AzEvaluationRequest, principal: PrincipalDep, decisions: DecisionsDep
) -> dict[str, Any]:
    return await _evaluate(
        principal, decisions, body.subject, body.action, body.resource, body.context
    )


@authzen.post("/access/v1/evaluations", summary="AuthZEN 1.0: flere tilgangsvurderinger")
async def authzen_evaluations(
    *, body: AzEvaluationsRequest, principal: PrincipalDep, decisions: DecisionsDep
) -> dict[str, Any]:
    results = []
    for item in body.evaluations:
        subject = item.subject or body.subject
        action = item.action or body.action
        resource = item.resource or body.resource
        if subject is None or action is None or resource is None:
            raise Problem(400, "bad_request", "Hver vurdering trenger subject, action og resource.")
        results.append(
            await _evaluate(
                principal, decisions, subject, action, resource, item.context or body.context
            )
        )
    return {"evaluations": results}


@authzen.get(
    "/.well-known/authzen-configuration", summary="AuthZEN: metadata for beslutningspunktet"
)
async def authzen_configuration(request: Request) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
    }


def now_utc() -> datetime:
    return datetime.now(UTC)
