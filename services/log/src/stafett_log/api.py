"""HTTP API of the log service (CONTRACT.md "log service")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stafett_log import domain
from stafett_log.checkpoints import Checkpointer, ProofError, ProofUnavailable
from stafett_log.handlers import Appended, LogService
from stafett_shared.auth import Principal, PrincipalDep
from stafett_shared.contracts.log import Category, Ground, Kind
from stafett_shared.idempotency import (
    ClientKeyDep,
    IdempotencyStore,
    StoredAnswer,
    parse_if_match,
    run_once,
)
from stafett_shared.msgid import ClientKey
from stafett_shared.openapi import answers
from stafett_shared.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    encode_cursor,
)
from stafett_shared.problems import Problem

router = APIRouter(tags=["stafettlogg"])

ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
PERSON = r"^[A-Za-z0-9-]{1,64}$"
SEQ_MAX = 2**63 - 1  # a stream sequence as the databases keep it (signed 64-bit)
ENTRIES_CURSOR = "entries"  # the list a cursor of GET /logs/{case_id}/entries names
ACCESS_CURSOR = "access"  # the list a cursor of GET /logs/{case_id}/access names


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EntryIn(_In):
    kind: Kind
    text: str = Field(min_length=1, max_length=domain.MAX_TEXT)
    occurred_at: AwareDatetime
    category: Category | None = None
    participants: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50
    )


class OwnVoiceIn(_In):
    text: str = Field(min_length=1, max_length=domain.MAX_OWN_VOICE)


class CorrectionIn(_In):
    text: str = Field(min_length=1, max_length=domain.MAX_TEXT)
    reason: str = Field(min_length=1, max_length=2000)


class RetractionIn(_In):
    reason: str = Field(min_length=1, max_length=2000)


class RestrictionIn(_In):
    ground: Ground
    reason: str = Field(min_length=1, max_length=2000)
    until: AwareDatetime


async def _service(request: Request) -> LogService:
    service: LogService = request.app.state.runtime.extras["log"]
    return service


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.runtime.extras["idempotency"]
    return store


ServiceDep = Annotated[LogService, Depends(_service)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
IdempotencyKey = ClientKeyDep
MinSeq = Annotated[int | None, Header(alias="Stafett-Min-Seq", ge=0)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
CaseId = Annotated[str, Path(pattern=ULID)]
EntryId = Annotated[str, Path(pattern=ULID)]


async def _append(
    request: Request,
    principal: Principal,
    key: ClientKey | None,
    store: IdempotencyStore,
    write: Callable[[], Awaitable[Appended]],
) -> JSONResponse:
    async def answer() -> StoredAnswer:
        appended = await write()
        return StoredAnswer(
            201,
            {"id": appended.entry_id, "seq": appended.seq, "hash": appended.hash},
            {"Stafett-Seq": str(appended.seq), "ETag": f'"{appended.seq}"'},
        )

    return await run_once(request, principal.id, key, store, answer)


@router.post("/logs/{case_id}/entries", status_code=201, summary="Skriv i stafettloggen")
async def append_entry(
    *,
    request: Request,
    case_id: CaseId,
    body: EntryIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    version = parse_if_match(if_match)
    return await _append(
        request,
        principal,
        idempotency_key,
        store,
        lambda: service.append_entry(
            principal,
            case_id,
            kind=body.kind,
            text=body.text,
            occurred_at=body.occurred_at,
            category=body.category,
            participants=body.participants,
            idempotency_key=idempotency_key,
            if_match=version,
        ),
    )


@router.post(
    "/logs/{case_id}/own-voice",
    status_code=201,
    summary="Hva er viktig for meg? Ungdommen skriver selv",
    description="The youth's own words (decision 0033): an entry of the kind `child_voice`, "
    "written now by the child of the case, marked with `author.kind` `child`. Only the child "
    "of the case, from the youth age of the case's organisation (`log:append_own_voice`), "
    f"at most {domain.MAX_OWN_VOICE} characters and {domain.MAX_OWN_VOICE_A_DAY} entries a "
    "day on one case (then 429). 403 for someone else who may read the case, 404 for "
    "anyone else.",
)
async def append_own_voice(
    *,
    request: Request,
    case_id: CaseId,
    body: OwnVoiceIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    version = parse_if_match(if_match)
    return await _append(
        request,
        principal,
        idempotency_key,
        store,
        lambda: service.append_own_voice(
            principal,
            case_id,
            text=body.text,
            idempotency_key=idempotency_key,
            if_match=version,
        ),
    )


@router.get(
    "/logs/{case_id}/entries",
    summary="Innføringene du kan lese (lesingen registreres)",
    description="Oldest first, a page at a time: `limit` entries (default "
    f"{DEFAULT_LIMIT}, at most {MAX_LIMIT}) after `cursor`, each with its corrections and "
    "retraction. `next_cursor` is opaque: send it back as `cursor` for the next page; it is "
    "null on the last page. Each page's read is recorded. `ETag` is the log's version: "
    "send it as If-Match on a write to refuse it if the log has moved on.",
    responses={
        200: {
            "description": "A page of entries",
            "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
        }
    },
)
async def read_entries(
    *,
    case_id: CaseId,
    principal: PrincipalDep,
    service: ServiceDep,
    min_seq: MinSeq = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    after = decode_cursor(cursor, ENTRIES_CURSOR, case_id) if cursor is not None else None
    page = await service.read_entries(principal, case_id, min_seq, limit=limit, after=after)
    next_cursor = (
        encode_cursor(ENTRIES_CURSOR, case_id, page.after_seq)
        if page.after_seq is not None
        else None
    )
    return JSONResponse(
        jsonable_encoder({"items": page.items, "next_cursor": next_cursor}),
        headers={"ETag": f'"{page.version}"'},  # the log's version, for If-Match on a write
    )


@router.post(
    "/logs/{case_id}/entries/{entry_id}/corrections",
    status_code=201,
    summary="Rett en innføring (den gamle teksten beholdes)",
)
async def correct_entry(
    *,
    request: Request,
    case_id: CaseId,
    entry_id: EntryId,
    body: CorrectionIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    version = parse_if_match(if_match)
    return await _append(
        request,
        principal,
        idempotency_key,
        store,
        lambda: service.correct_entry(
            principal,
            case_id,
            entry_id,
            text=body.text,
            reason=body.reason,
            idempotency_key=idempotency_key,
            if_match=version,
        ),
    )


@router.post(
    "/logs/{case_id}/entries/{entry_id}/retractions",
    status_code=201,
    summary="Trekk tilbake en innføring",
)
async def retract_entry(
    *,
    request: Request,
    case_id: CaseId,
    entry_id: EntryId,
    body: RetractionIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    version = parse_if_match(if_match)
    return await _append(
        request,
        principal,
        idempotency_key,
        store,
        lambda: service.retract_entry(
            principal,
            case_id,
            entry_id,
            reason=body.reason,
            idempotency_key=idempotency_key,
            if_match=version,
        ),
    )


@router.post(
    "/logs/{case_id}/entries/{entry_id}/restrictions",
    status_code=201,
    summary="Skjerm en innføring for foresatte (leder, med hjemmel)",
)
async def restrict_entry(
    *,
    request: Request,
    case_id: CaseId,
    entry_id: EntryId,
    body: RestrictionIn,
    principal: PrincipalDep,
    service: ServiceDep,
    store: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    version = parse_if_match(if_match)
    return await _append(
        request,
        principal,
        idempotency_key,
        store,
        lambda: service.restrict_entry(
            principal,
            case_id,
            entry_id,
            ground=body.ground,
            reason=body.reason,
            until=body.until,
            idempotency_key=idempotency_key,
            if_match=version,
        ),
    )


@router.get("/logs/{case_id}/access", summary="Hvem har lest hva, og på hvilket grunnlag")
async def access_view(
    *,
    case_id: CaseId,
    principal: PrincipalDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    before = decode_cursor(cursor, ACCESS_CURSOR, case_id) if cursor is not None else None
    items = await service.access_view(principal, case_id, limit=limit, before=before)
    next_cursor = (
        encode_cursor(ACCESS_CURSOR, case_id, int(items[-1]["seq"]))
        if len(items) == limit
        else None
    )
    return JSONResponse(jsonable_encoder({"items": items, "next_cursor": next_cursor}))


@router.get("/logs/{case_id}/verify", summary="Kontroller sakens hashkjede")
async def verify(*, case_id: CaseId, principal: PrincipalDep, service: ServiceDep) -> JSONResponse:
    report = await service.verify(principal, case_id)
    body: dict[str, Any] = {
        "ok": report.ok,
        "entries": report.entries,
        "head_hash": report.head_hash,
    }
    if not report.ok:
        body["broken_at_seq"] = report.broken_seq
        body["reason"] = report.reason
    return JSONResponse(body)


async def _checkpoints(request: Request) -> Checkpointer:
    checkpointer: Checkpointer = request.app.state.runtime.extras["checkpoints"]
    return checkpointer


CheckpointsDep = Annotated[Checkpointer, Depends(_checkpoints)]


@router.get(
    "/checkpoints/latest",
    summary="Siste signerte sjekkpunkt over hele hendelsesstrømmen",
    responses=answers(404),  # before the first checkpoint
)
async def latest_checkpoint(
    *, principal: PrincipalDep, checkpoints: CheckpointsDep
) -> JSONResponse:
    del principal  # any authenticated caller; a checkpoint holds no case data
    latest = await checkpoints.latest()
    if latest is None:
        raise Problem(404, "not_found", "Det er ikke laget noe sjekkpunkt ennå.")
    return JSONResponse(jsonable_encoder(latest))


@router.post("/checkpoints", status_code=201, summary="Lag et signert sjekkpunkt nå")
async def make_checkpoint(
    *, request: Request, principal: PrincipalDep, checkpoints: CheckpointsDep
) -> JSONResponse:
    settings = request.app.state.runtime.settings
    if principal.kind != "person" or not settings.is_admin(principal.issuer, principal.subject):
        raise Problem(403, "forbidden", "Bare administratorer kan be om sjekkpunkt.")
    await request.app.state.runtime.projector.catch_up()
    return JSONResponse(jsonable_encoder(await checkpoints.make()), status_code=201)


@router.get("/proofs/inclusion", summary="Bevis for at en hendelse er med i treet")
async def inclusion_proof(
    *,
    principal: PrincipalDep,
    checkpoints: CheckpointsDep,
    seq: Annotated[int, Query(ge=1)],
    tree_size: Annotated[int, Query(ge=1)],
) -> JSONResponse:
    del principal
    try:
        return JSONResponse(await checkpoints.inclusion(seq, tree_size))
    except ProofError as exc:
        raise Problem(
            422, "invalid_proof_request", "Sekvensen eller størrelsen ligger utenfor treet."
        ) from exc
    except ProofUnavailable as exc:
        raise _proof_unavailable() from exc


@router.get("/proofs/consistency", summary="Bevis for at et senere tre utvider et tidligere")
async def consistency_proof(
    *,
    principal: PrincipalDep,
    checkpoints: CheckpointsDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> JSONResponse:
    del principal
    try:
        return JSONResponse(await checkpoints.consistency(first, second))
    except ProofError as exc:
        raise Problem(422, "invalid_proof_request", "Størrelsene ligger utenfor treet.") from exc
    except ProofUnavailable as exc:
        raise _proof_unavailable() from exc


def _proof_unavailable() -> Problem:
    return Problem(
        503,
        "unavailable",
        "Merkle-treet bygges opp på nytt; prøv igjen om litt.",
        headers={"Retry-After": "5"},
    )
