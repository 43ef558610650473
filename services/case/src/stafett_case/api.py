"""HTTP API of the case service (CONTRACT.md "case service")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stafett_case.disclosure import fixed_period
from stafett_case.handlers import CaseService, Written
from stafett_case.indicators import indicators
from stafett_shared.auth import Principal, PrincipalDep
from stafett_shared.contracts.case import CloseReason, Outcome
from stafett_shared.idempotency import (
    ClientKeyDep,
    IdempotencyStore,
    StoredAnswer,
    parse_if_match,
    run_once,
    written_answer,
)
from stafett_shared.msgid import ClientKey
from stafett_shared.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_key_cursor,
    encode_key_cursor,
)
from stafett_shared.problems import Problem
from stafett_shared.projector import ProjectionBehind

router = APIRouter(tags=["sak"])

ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
PERSON = r"^[A-Za-z0-9-]{1,64}$"
UNIT = r"^[a-z0-9-]{1,64}$"
TEXT = 4000
CASES_CURSOR = "cases"  # the list a cursor of GET /cases names


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChildRef(_In):
    national_id: str | None = Field(default=None, min_length=11, max_length=11)
    pseudonym: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> ChildRef:
        if (self.national_id is None) == (self.pseudonym is None):
            raise ValueError("Oppgi enten fødselsnummer (national_id) eller pseudonym, ikke begge.")
        return self


class OpenIn(_In):
    unit_id: str = Field(pattern=UNIT)
    level: Literal[0, 1]
    child: ChildRef
    concern: str = Field(min_length=1, max_length=TEXT)


class IdentifyIn(_In):
    national_id: str = Field(min_length=11, max_length=11)


class LevelIn(_In):
    level: int = Field(ge=0, le=3)
    reason: str = Field(min_length=1, max_length=TEXT)


class TeamIn(_In):
    person_id: str = Field(pattern=PERSON)
    unit_id: str = Field(pattern=UNIT)
    access: Literal["read", "write"] = "read"


class HandoverIn(_In):
    to_person_id: str = Field(pattern=PERSON)
    to_unit_id: str = Field(pattern=UNIT)
    note: str | None = Field(default=None, max_length=TEXT)


class DeclineIn(_In):
    reason: str = Field(min_length=1, max_length=TEXT)


class MeasureIn(_In):
    title: str = Field(min_length=1, max_length=200)
    goal: str = Field(min_length=1, max_length=TEXT)
    responsible_person_id: str = Field(pattern=PERSON)
    start: date
    evaluate_by: date


class EvaluationIn(_In):
    outcome: Outcome
    note: str | None = Field(default=None, max_length=TEXT)
    next_evaluate_by: date | None = None


class CloseIn(_In):
    reason: CloseReason
    note: str | None = Field(default=None, max_length=TEXT)


class ReopenIn(_In):
    reason: str = Field(min_length=1, max_length=TEXT)


class ReportIn(_In):
    text: str = Field(min_length=1, max_length=TEXT)
    # The child welfare unit to send it to; left out, the one the case's organisation names
    # in the region document (an inter-municipal service), else its own.
    unit_id: str | None = Field(default=None, pattern=UNIT)


async def _service(request: Request) -> CaseService:
    service: CaseService = request.app.state.runtime.extras["case"]
    return service


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.runtime.extras["idempotency"]
    return store


ServiceDep = Annotated[CaseService, Depends(_service)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
IdempotencyKey = ClientKeyDep
IfMatch = Annotated[str | None, Header(alias="If-Match")]
MinSeq = Annotated[int | None, Header(alias="Stafett-Min-Seq", ge=0)]
CaseId = Annotated[str, Path(pattern=ULID)]
HandoverId = Annotated[str, Path(pattern=ULID)]


async def _once(  # noqa: PLR0917 - every write route passes the same six
    request: Request,
    principal: Principal,
    key: ClientKey | None,
    store: IdempotencyStore,
    status: int,
    write: Callable[[], Awaitable[Written]],
) -> JSONResponse:
    async def answer() -> StoredAnswer:
        written = await write()
        return written_answer(status, written.body, written.version, written.seq)

    return await run_once(request, principal.id, key, store, answer)


@router.post("/cases", status_code=201, summary="Opprett en sak (bekymring)")
async def open_case(
    *,
    request: Request,
    body: OpenIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.open_case(
            principal,
            unit_id=body.unit_id,
            level=body.level,
            national_id=body.child.national_id,
            pseudonym=body.child.pseudonym,
            concern=body.concern,
            idempotency_key=idempotency_key,
        ),
    )


@router.get("/cases", summary="Saker du kan se")
async def list_cases(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    unit_id: Annotated[str | None, Query(pattern=UNIT)] = None,
    level: Annotated[int | None, Query(ge=0, le=3)] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    holder: Annotated[Literal["me"] | None, Query()] = None,
    member: Annotated[Literal["me"] | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    # The cursor is bound to its caller: another person's is 422, like any other forgery.
    after = decode_key_cursor(cursor, CASES_CURSOR, principal.id) if cursor else None
    items, last = await service.list_cases(
        principal,
        unit_id=unit_id,
        level=level,
        status=status,
        holder_me=holder == "me",
        member_me=member == "me",
        limit=limit,
        cursor=after,
    )
    next_cursor = encode_key_cursor(CASES_CURSOR, principal.id, last) if last else None
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))


def _behind() -> Problem:
    return Problem(
        503, "unavailable", "Lesemodellen er ikke à jour ennå.", headers={"Retry-After": "1"}
    )


@router.get(
    "/cases/{case_id}",
    summary="En sak med team, tiltak, nivåhistorikk og overføringer",
)
async def get_case(
    *,
    case_id: CaseId,
    principal: PrincipalDep,
    service: ServiceDep,
    min_seq: MinSeq = None,
) -> JSONResponse:
    try:
        view = await service.view(principal, case_id, min_seq)
    except ProjectionBehind:
        raise _behind() from None
    return JSONResponse(jsonable_encoder(view), headers={"ETag": f'"{view["version"]}"'})


@router.get(
    "/cases/{case_id}/handovers/{handover_id}",
    summary="En overføring: det mottakeren trenger for å svare (ikke loggen, ikke barnet)",
)
async def get_handover(
    *,
    case_id: CaseId,
    handover_id: HandoverId,
    principal: PrincipalDep,
    service: ServiceDep,
    min_seq: MinSeq = None,
) -> JSONResponse:
    try:
        header = await service.handover(principal, case_id, handover_id, min_seq)
    except ProjectionBehind:
        raise _behind() from None
    return JSONResponse(jsonable_encoder(header))


@router.get("/handovers", summary="Overføringer som venter på ditt svar")
async def list_waiting_handovers(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    to: Annotated[Literal["me"], Query(description="Bare «me»: dine egne.")],  # noqa: ARG001
    limit: Annotated[int, Query(ge=1, le=50)] = 50,
) -> JSONResponse:
    items = await service.waiting_for(principal, limit)
    return JSONResponse(jsonable_encoder({"items": items}))


def _write_route(path: str, summary: str, status: int = 200) -> Callable[[Any], Any]:
    return router.post(path, status_code=status, summary=summary)


@_write_route("/cases/{case_id}/identify", "Identifiser barnet")
async def identify(
    *,
    request: Request,
    case_id: CaseId,
    body: IdentifyIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.identify(
            principal,
            case_id,
            body.national_id,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/level", "Endre BTI-nivå")
async def change_level(
    *,
    request: Request,
    case_id: CaseId,
    body: LevelIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.change_level(
            principal,
            case_id,
            body.level,
            body.reason,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/team", "Legg til en samarbeidspartner", 201)
async def add_team_member(
    *,
    request: Request,
    case_id: CaseId,
    body: TeamIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.add_team_member(
            principal,
            case_id,
            person_id=body.person_id,
            unit_id=body.unit_id,
            access=body.access,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@router.delete("/cases/{case_id}/team/{person_id}", summary="Fjern en samarbeidspartner")
async def remove_team_member(
    *,
    case_id: CaseId,
    person_id: Annotated[str, Path(pattern=PERSON)],
    principal: PrincipalDep,
    service: ServiceDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    written = await service.remove_team_member(
        principal, case_id, person_id, if_match=parse_if_match(if_match)
    )
    answer = written_answer(200, written.body, written.version, written.seq)
    return JSONResponse(answer.body, 200, headers=answer.headers)


@_write_route("/cases/{case_id}/handovers", "Be om overføring av stafettholderansvaret", 201)
async def request_handover(
    *,
    request: Request,
    case_id: CaseId,
    body: HandoverIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.request_handover(
            principal,
            case_id,
            to_person_id=body.to_person_id,
            to_unit_id=body.to_unit_id,
            note=body.note,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


async def _answer(  # noqa: PLR0917 - the three handover answers share it
    request: Request,
    case_id: str,
    handover_id: str,
    answer: str,
    reason: str | None,
    principal: Principal,
    service: CaseService,
    store: IdempotencyStore,
    idempotency_key: ClientKey | None,
    if_match: str | None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.answer_handover(
            principal,
            case_id,
            handover_id,
            answer=answer,
            reason=reason,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/handovers/{handover_id}/accept", "Godta overføringen")
async def accept_handover(
    *,
    request: Request,
    case_id: CaseId,
    handover_id: HandoverId,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _answer(
        request,
        case_id,
        handover_id,
        "accept",
        None,
        principal,
        service,
        store,
        idempotency_key,
        if_match,
    )


@_write_route("/cases/{case_id}/handovers/{handover_id}/decline", "Avslå overføringen")
async def decline_handover(
    *,
    request: Request,
    case_id: CaseId,
    handover_id: HandoverId,
    body: DeclineIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _answer(
        request,
        case_id,
        handover_id,
        "decline",
        body.reason,
        principal,
        service,
        store,
        idempotency_key,
        if_match,
    )


@_write_route("/cases/{case_id}/handovers/{handover_id}/cancel", "Trekk tilbake overføringen")
async def cancel_handover(
    *,
    request: Request,
    case_id: CaseId,
    handover_id: HandoverId,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _answer(
        request,
        case_id,
        handover_id,
        "cancel",
        None,
        principal,
        service,
        store,
        idempotency_key,
        if_match,
    )


@_write_route("/cases/{case_id}/measures", "Legg til et tiltak", 201)
async def add_measure(
    *,
    request: Request,
    case_id: CaseId,
    body: MeasureIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.add_measure(
            principal,
            case_id,
            title=body.title,
            goal=body.goal,
            responsible_person_id=body.responsible_person_id,
            start=body.start,
            evaluate_by=body.evaluate_by,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/measures/{measure_id}/evaluations", "Evaluer et tiltak", 201)
async def evaluate_measure(
    *,
    request: Request,
    case_id: CaseId,
    measure_id: Annotated[str, Path(pattern=ULID)],
    body: EvaluationIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.evaluate_measure(
            principal,
            case_id,
            measure_id,
            outcome=body.outcome,
            note=body.note,
            next_evaluate_by=body.next_evaluate_by,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/close", "Avslutt saken")
async def close_case(
    *,
    request: Request,
    case_id: CaseId,
    body: CloseIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.close(
            principal,
            case_id,
            body.reason,
            body.note,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/reopen", "Gjenåpne saken")
async def reopen_case(
    *,
    request: Request,
    case_id: CaseId,
    body: ReopenIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.reopen(
            principal,
            case_id,
            body.reason,
            if_match=parse_if_match(if_match),
            idempotency_key=idempotency_key,
        ),
    )


@_write_route("/cases/{case_id}/child-welfare-reports", "Meld bekymring til barnevernet", 201)
async def report_to_child_welfare(
    *,
    request: Request,
    case_id: CaseId,
    body: ReportIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        201,
        lambda: service.report_to_child_welfare(
            principal,
            case_id,
            text=body.text,
            unit_id=body.unit_id,
            idempotency_key=idempotency_key,
        ),
    )


REPORTS_CURSOR = "child_welfare_reports"
CASE_REPORTS_CURSOR = "case_child_welfare_reports"


def _page(
    page: tuple[list[dict[str, Any]], str | None], name: str, principal: Principal
) -> JSONResponse:
    """A page of reports; the cursor is opaque and bound to its caller (decision 0029)."""
    items, last = page
    next_cursor = encode_key_cursor(name, principal.id, last) if last else None
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))


ReportId = Annotated[str, Path(pattern=ULID)]


@router.get(
    "/cases/{case_id}/child-welfare-reports",
    summary="Dine bekymringsmeldinger til barnevernet i saken, med status",
)
async def list_case_reports(
    *,
    case_id: CaseId,
    principal: PrincipalDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    after = decode_key_cursor(cursor, CASE_REPORTS_CURSOR, principal.id) if cursor else None
    return _page(
        await service.case_reports(principal, case_id, limit=limit, cursor=after),
        CASE_REPORTS_CURSOR,
        principal,
    )


@router.get(
    "/child-welfare-reports",
    summary="Bekymringsmeldinger sendt til barneverntjenesten du tar imot meldinger for",
)
async def list_child_welfare_reports(
    *,
    principal: PrincipalDep,
    service: ServiceDep,
    status: Annotated[Literal["sent", "received"] | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    after = decode_key_cursor(cursor, REPORTS_CURSOR, principal.id) if cursor else None
    return _page(
        await service.child_welfare_inbox(principal, status=status, limit=limit, cursor=after),
        REPORTS_CURSOR,
        principal,
    )


@router.get(
    "/child-welfare-reports/{report_id}",
    summary="En bekymringsmelding: for barneverntjenesten den er sendt til, og for melderen",
)
async def get_child_welfare_report(
    *,
    report_id: ReportId,
    principal: PrincipalDep,
    service: ServiceDep,
) -> JSONResponse:
    report = await service.child_welfare_report(principal, report_id)
    return JSONResponse(jsonable_encoder(report))


@_write_route(
    "/child-welfare-reports/{report_id}/receipt",
    "Bekreft at barneverntjenesten har mottatt meldingen",
)
async def receive_child_welfare_report(
    *,
    request: Request,
    report_id: ReportId,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _once(
        request,
        principal,
        idempotency_key,
        store,
        200,
        lambda: service.receive_report(principal, report_id, idempotency_key=idempotency_key),
    )


@router.get("/indicators", summary="Indikatorer for 0–24-samarbeidet (små tall skjult)")
async def get_indicators(
    *,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    org_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9-]{1,32}$")],
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
) -> JSONResponse:
    if to < from_:
        raise Problem(422, "invalid_dates", "«to» kan ikke ligge før «from».")
    kind = fixed_period(from_, to)
    if kind is None:
        # Any other span could be subtracted from an overlapping one to find a small count.
        raise Problem(
            422,
            "period_not_fixed",
            "Indikatorer gis for en hel måned, et halvår (januar–juni eller juli–desember) "
            "eller et helt år: «from» må være periodens første dag og «to» dens siste.",
        )
    settings = request.app.state.runtime.service
    result = await indicators(
        service, principal, org_id, from_, kind, handover_days=settings.handover_days
    )
    return JSONResponse(jsonable_encoder(result))
