"""Application layer of the log service: append under the case's hash chain, read with
per-entry gates, record every read, verify chains."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import OrderedDict, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stafett_log import domain
from stafett_log.chain import GENESIS, ChainReport, chain_hash, verify_stored
from stafett_log.projections import (
    access_record_entries,
    access_records,
    cases,
    chains,
    entries,
    roles,
)
from stafett_shared.access import AccessClient, AccessDecision, AccessUnavailable, record_access
from stafett_shared.auth import Principal
from stafett_shared.contracts.log import Author, Category, Ground, Kind
from stafett_shared.crypto import CryptoError, FieldCipher
from stafett_shared.db import as_utc
from stafett_shared.envelope import CloudEvent, EventData, registry
from stafett_shared.eventstore import (
    ConcurrencyConflict,
    DuplicateAppend,
    EventStore,
    StoreUnavailable,
)
from stafett_shared.ids import new_id
from stafett_shared.logging import get_logger
from stafett_shared.loopdb import read_on_loop
from stafett_shared.msgid import ClientKey
from stafett_shared.problems import Problem, not_visible
from stafett_shared.problems import unavailable as unavailable_problem
from stafett_shared.projector import ProjectionBehind, Projector
from stafett_shared.telemetry import current_traceparent

MAX_RETRIES = 20
_log = get_logger("stafett.log")
FAMILY = frozenset({"guardian", "self"})
ENTRIES_LIMIT = 50
_CHANGES = ("correction", "retraction")  # rows that change an entry named in refers_to
_ORIGINAL = or_(entries.c.refers_to.is_(None), entries.c.kind.notin_(_CHANGES))


# Refusals are problem documents; the API renders them as they are.
HandlerError = Problem


def not_found() -> Problem:
    return not_visible()


def forbidden() -> Problem:
    return Problem(403, "forbidden", "Du kan lese saken, men ikke gjøre dette i den.")


def unavailable(detail: str = "Tilgangskontrollen svarer ikke; prøv igjen.") -> Problem:
    return unavailable_problem(detail)


def version_conflict() -> Problem:
    """If-Match named a version the case's log is no longer (or never was) at."""
    return Problem(
        409,
        "version_conflict",
        "Loggen er endret siden versjonen i If-Match. Les den på nytt og prøv igjen.",
        title="Loggen er endret av noen andre",
    )


@dataclass(frozen=True, slots=True)
class EntriesPage:
    items: list[dict[str, Any]]
    after_seq: int | None
    """The sequence of the page's last entry when more may follow; None at the end."""
    version: int
    """The log's version as the read model holds it (0 before its first entry)."""


@dataclass(frozen=True, slots=True)
class Appended:
    entry_id: str
    seq: int
    hash: str


_NORWEGIAN = {
    "case_closed": "Saken er avsluttet; gjenåpne den før du skriver i loggen.",
    "occurred_in_future": "Tidspunktet kan ikke ligge fram i tid.",
    "occurred_before_case": "Tidspunktet ligger for langt før saken ble opprettet.",
    "unknown_entry": "Innføringen finnes ikke i denne sakens logg.",
    "already_retracted": "Innføringen er allerede trukket tilbake.",
    "invalid_restriction_end": "Skjermingen må ha en sluttdato fram i tid, innen tre år.",
}


async def _case_row(session: AsyncSession, case_id: str) -> Any:
    case = (await session.execute(select(cases).where(cases.c.case_id == case_id))).first()
    if case is None:
        raise not_found()
    return case


# Built once: what every append reads.
_CASE = select(cases).where(cases.c.case_id == bindparam("case_id"))
_ROLES = select(roles).where(roles.c.person_id == bindparam("person_id"))


def _case_and_roles(
    engine: Engine, *, case_id: str, person_id: str
) -> tuple[Any, list[Any]] | None:
    """Blocking: the case's row and the person's roles, or None."""
    with engine.connect() as conn:
        case = conn.execute(_CASE, {"case_id": case_id}).first()
        if case is None:
            return None
        return case, list(conn.execute(_ROLES, {"person_id": person_id}).all())


class LogService:
    def __init__(
        self,
        *,
        store: EventStore,
        cipher: FieldCipher,
        sessions: async_sessionmaker[AsyncSession],
        blocking: Engine,
        on_loop: Engine | None = None,
        projector: Projector,
        access: AccessClient,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        heads_kept: int = 10_000,
        apply_wait_s: float = 2.0,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.sessions = sessions
        # For the reads an append needs, in one call: on the event loop on SQLite, else in a
        # worker thread (0016).
        self._blocking = blocking
        self._on_loop = on_loop
        self.projector = projector
        self.access = access
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Each case's chain head as this process last appended it (seq, hash), most recent
        # last; a hint only: the append's expected version is what keeps chains unforked.
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._heads_kept = heads_kept
        self._apply_wait_s = apply_wait_s

    async def _decision(
        self,
        principal: Principal,
        action: str,
        case_id: str,
        *,
        entry_id: str | None = None,
        min_seq: int | None = None,
    ) -> AccessDecision:
        try:
            return await self.access.check(
                principal, action, case_id, entry_id=entry_id, min_seq=min_seq
            )
        except AccessUnavailable:
            raise unavailable() from None

    async def _refusal(self, principal: Principal, case_id: str) -> Problem:
        """The answer to a refused write: 403 for someone who may read the case (they know
        it exists), 404 for anyone else, whether or not it exists."""
        if (await self._decision(principal, "case:read", case_id)).permitted:
            return forbidden()
        return not_found()

    async def _case_and_author(self, case_id: str, principal: Principal) -> tuple[Any, Author]:
        """The case's row and the author as at the case's unit, in one read."""
        found = await read_on_loop(
            functools.partial(_case_and_roles, case_id=case_id, person_id=principal.id),
            loop=self._on_loop,
            blocking=self._blocking,
        )
        if found is None:
            raise not_found()
        case, rows = found
        at_unit = [r for r in rows if r.unit_id == case.unit_id]
        candidates = at_unit or rows
        if not candidates:
            return case, Author(person_id=principal.id)
        chosen = candidates[0]
        return case, Author(person_id=principal.id, role=chosen.role, unit_id=chosen.unit_id)

    def _remember(self, case_id: str, seq: int, link: str) -> None:
        self._heads[case_id] = (seq, link)
        self._heads.move_to_end(case_id)
        while len(self._heads) > self._heads_kept:
            self._heads.popitem(last=False)

    async def _applied(self, seq: int, own: tuple[str, Sequence[CloudEvent]] | None = None) -> None:
        """Read-your-writes: wait until the read model holds ``seq``. The background
        projector applies what arrives in batches, one transaction for many appends. When
        the read model stands right before this process's own append (``own``: its subject
        and events), the append is applied at once from what was sent instead: sooner than
        the projector can hear of it, read it and apply it."""
        if not self.projector.running:
            await self.projector.catch_up()
            return
        if own is not None and self.projector.known_position == seq - 1:
            try:
                await self.projector.apply_own(own[0], seq, own[1])
                return
            except Exception as exc:  # noqa: BLE001 - the append is stored: wait as below
                _log.warning("log_apply_own_failed", error_type=type(exc).__name__)
        try:
            await self.projector.wait_for(seq, self._apply_wait_s)
        except ProjectionBehind:
            # The append is stored; a reader who must see it passes min_seq.
            _log.warning("log_read_model_behind", seq=seq)

    async def _state(self, case_id: str, refers_to: str | None) -> tuple[domain.LogState, int, str]:
        """The chain head, and the one entry a command refers to (the rules need no more)."""
        async with self.sessions() as session:
            head = (
                await session.execute(select(chains).where(chains.c.case_id == case_id))
            ).first()
            rows = (
                (
                    await session.execute(
                        select(
                            entries.c.entry_id,
                            entries.c.kind,
                            entries.c.category,
                            entries.c.retracted,
                        ).where(entries.c.case_id == case_id, entries.c.entry_id == refers_to)
                    )
                ).all()
                if refers_to
                else []
            )
        state = domain.LogState(
            case_id=case_id,
            entries={
                r.entry_id: domain.EntryState(r.kind, r.category, bool(r.retracted))
                for r in rows
                if r.kind not in ("retraction",)
            },
        )
        if head is None:
            return state, 0, GENESIS
        return state, int(head.head_seq), str(head.head_hash)

    async def write(
        self,
        principal: Principal,
        case_id: str,
        action: str,
        make: Callable[[Author, str], Any],
        *,
        idempotency_key: ClientKey | None = None,
        answer_id: str = "entry_id",
        if_match: int | None = None,
    ) -> Appended:
        """Decide and append one log event as the next link of the case's chain. The answer
        is the stored event's ``answer_id`` field, its sequence and its hash: for a repeated
        request (same caller and key), those of the event stored the first time. With
        ``if_match`` (If-Match) the chain must stand at that version, else 409 and nothing
        is written; without it a write that meets another is decided again."""
        decision = await self._decision(principal, action, case_id)
        if not decision.permitted:
            raise await self._refusal(principal, case_id)
        case, author = await self._case_and_author(case_id, principal)
        command = await make(author, case.child_id or case_id)
        facts = domain.CaseFacts(case_id, case.status == "open", case.opened_at)
        subject = self.store.subject("log", case_id)
        refers_to = (
            getattr(command, "corrects_entry_id", None)
            or getattr(command, "retracts_entry_id", None)
            or (command.entry_id if isinstance(command, domain.RestrictEntry) else None)
        )
        own: tuple[str, Sequence[CloudEvent]] | None = None
        async with self._locks[case_id]:
            for _attempt in range(MAX_RETRIES):
                state, head_seq, head_hash = await self._head(case_id, refers_to)
                if if_match is not None and head_seq != if_match:
                    if (repeat := await self._repeat(subject, idempotency_key)) is not None:
                        event, payload, seq = repeat
                        break
                    # What this process knows of the chain may lag behind it, never run
                    # ahead: ask the stream, and read again once the read model has it.
                    await self._stands_at(subject, if_match, head_seq)
                    self._heads.pop(case_id, None)
                    continue
                now = self.clock()
                try:
                    events = domain.decide(state, facts, command, now)
                except domain.LogError as exc:
                    if (repeat := await self._repeat(subject, idempotency_key)) is not None:
                        event, payload, seq = repeat
                        break
                    raise HandlerError(
                        exc.status, exc.code, _NORWEGIAN.get(exc.code, str(exc))
                    ) from None
                (payload,) = events
                event = self._linked(payload, case_id, case.org_id, principal, now, head_hash)
                try:
                    result = await self.store.append(
                        subject,
                        [event],
                        expected_version=head_seq,
                        idempotency_key=idempotency_key,
                    )
                except DuplicateAppend as repeat:
                    # The same request again: answer with what the first one stored, not
                    # with the ids made just now. The chain's head may have moved since;
                    # read it from the read model next time.
                    self._heads.pop(case_id, None)
                    event, payload = await self._stored(repeat.seq, subject)
                    seq = repeat.seq
                    break
                except ConcurrencyConflict:
                    self._heads.pop(case_id, None)
                    if if_match is not None:
                        raise version_conflict() from None
                    await self.projector.catch_up()  # another writer moved the chain on
                    continue
                seq = result.seq
                self._remember(case_id, seq, event.hash or "")
                own = (subject, [event])
                break
            else:
                raise HandlerError(409, "conflict", "Loggen skrives av mange samtidig; prøv igjen.")
        await self._applied(seq, own)
        return Appended(str(getattr(payload, answer_id, "")), seq, event.hash or "")

    async def _head(self, case_id: str, refers_to: str | None) -> tuple[domain.LogState, int, str]:
        """What a command is decided on, and the chain's head (sequence and hash)."""
        head = self._heads.get(case_id)
        if refers_to is None and head is not None:
            # The chain's head as this process last wrote it. If another process wrote
            # since, the append's expected version fails and we read again.
            return domain.LogState(case_id=case_id, entries={}), *head
        if head is not None:
            await self._applied(head[0])
        state, head_seq, head_hash = await self._state(case_id, refers_to)
        if head is not None and head[0] > head_seq:
            head_seq, head_hash = head
        return state, head_seq, head_hash

    async def _repeat(
        self, subject: str, key: ClientKey | None
    ) -> tuple[CloudEvent, EventData, int] | None:
        """What a request with this key stored before, if it did: a request sent again
        after its answer was lost gets the first answer, though the chain has moved on (its
        If-Match no longer holds) or its command would now be refused (the entry it
        retracts is retracted)."""
        if key is None:
            return None
        repeat = self.store.repeat_of(subject, await self.store.load(subject, decode=False), key)
        if repeat is None:
            return None
        self._heads.pop(subject.rsplit(".", 1)[-1], None)
        event, payload = await self._stored(repeat.seq, subject)
        return event, payload, repeat.seq

    async def _stands_at(self, subject: str, if_match: int, known: int) -> None:
        """The chain's version is ``if_match`` though this process knew it at ``known``:
        wait until the read model holds it. Else (the chain is elsewhere) 409."""
        try:
            at = known if if_match < known else await self.store.version(subject)
        except StoreUnavailable:
            raise unavailable("Hendelsesloggen svarer ikke; prøv igjen.") from None
        if at != if_match:
            raise version_conflict()
        await self.projector.wait_for(if_match, self._apply_wait_s)

    async def _stored(self, seq: int, subject: str) -> tuple[CloudEvent, EventData]:
        """The event a repeated request stored the first time, at ``seq`` on ``subject``."""
        stored = await self.store.get(seq)
        if stored is None or stored.subject != subject or len(stored.events) != 1:
            raise unavailable("Innføringen kunne ikke leses; prøv igjen.")
        event = stored.events[0]
        return event, registry.payload(event)

    def _linked(  # noqa: PLR0917 - the parts of one envelope
        self,
        payload: EventData,
        case_id: str,
        tenant: str,
        principal: Principal,
        now: datetime,
        prevhash: str,
    ) -> CloudEvent:
        draft = registry.envelope(
            payload,
            subject=case_id,
            source="stafett/log",
            tenant=tenant,
            actor=principal.id,
            time=now,
            traceparent=current_traceparent(),
        )
        unsigned = draft.model_copy(update={"prevhash": prevhash})
        link = chain_hash(prevhash, unsigned.to_json_dict())
        return CloudEvent.model_validate({**unsigned.to_json_dict(), "hash": link})

    async def _encrypt(
        self, owner: str, case_id: str, text: str | None, context: str
    ) -> str | None:
        """Seal a field of an event on the log of ``case_id`` (None stays None)."""
        if text is None:
            return None
        return await self.cipher.encrypt(owner, text, aggregate=case_id, context=context)

    # --- commands ---------------------------------------------------------------------------

    async def append_entry(
        self,
        principal: Principal,
        case_id: str,
        *,
        if_match: int | None = None,
        kind: Kind,
        text: str,
        occurred_at: datetime,
        category: Category | None,
        participants: Sequence[str],
        idempotency_key: ClientKey | None,
    ) -> Appended:
        entry_id = new_id()

        async def make(author: Author, owner: str) -> domain.Command:
            return domain.AppendEntry(
                entry_id=entry_id,
                kind=kind,
                text=await self.cipher.encrypt(
                    owner, text, aggregate=case_id, context="entry_text"
                ),
                occurred_at=occurred_at,
                category=category,
                participants=await self._encrypt(
                    owner,
                    case_id,
                    json.dumps(list(participants), ensure_ascii=False),
                    "participants",
                )
                if participants
                else None,
                author=author,
            )

        return await self.write(
            principal,
            case_id,
            "log:append",
            make,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    async def append_own_voice(
        self,
        principal: Principal,
        case_id: str,
        *,
        text: str,
        idempotency_key: ClientKey | None,
        if_match: int | None = None,
    ) -> Appended:
        """The youth's own words, «Hva er viktig for meg?» (decision 0033): one entry of the
        kind ``child_voice``, written now, with the child as its author (``kind`` child),
        no category and no participants. The consent service decides
        (``log:append_own_voice``: the child of the case, from the youth age)."""
        entry_id = new_id()

        async def make(_author: Author, owner: str) -> domain.Command:
            # Decided first (see write()); the count is of this youth's own entries only.
            await self._own_voice_room(case_id, principal.id)
            return domain.AppendEntry(
                entry_id=entry_id,
                kind=Kind.CHILD_VOICE,
                text=await self.cipher.encrypt(
                    owner, text, aggregate=case_id, context="entry_text"
                ),
                occurred_at=self.clock(),
                category=None,
                participants=None,
                author=Author(person_id=principal.id, kind="child"),
            )

        return await self.write(
            principal,
            case_id,
            "log:append_own_voice",
            make,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    async def _own_voice_room(self, case_id: str, person_id: str) -> None:
        """A youth writes at most ``MAX_OWN_VOICE_A_DAY`` entries on a case in 24 hours."""
        since = self.clock() - timedelta(days=1)
        async with self.sessions() as session:
            written = await session.scalar(
                select(func.count())
                .select_from(entries)
                .where(
                    entries.c.case_id == case_id,
                    entries.c.author_id == person_id,
                    entries.c.author_kind == "child",
                    entries.c.recorded_at > since,
                )
            )
        if int(written or 0) >= domain.MAX_OWN_VOICE_A_DAY:
            raise Problem(
                429,
                "too_many_entries",
                "Du har skrevet mange ganger i dag. Prøv igjen i morgen.",
                headers={"Retry-After": "3600"},
            )

    async def _entry_in_case(self, case_id: str, entry_id: str) -> None:
        async with self.sessions() as session:
            owner = await session.scalar(
                select(entries.c.case_id).where(entries.c.entry_id == entry_id)
            )
        if owner != case_id:
            raise HandlerError(422, "unknown_entry", _NORWEGIAN["unknown_entry"])

    async def correct_entry(
        self,
        principal: Principal,
        case_id: str,
        entry_id: str,
        *,
        if_match: int | None = None,
        text: str,
        reason: str,
        idempotency_key: ClientKey | None,
    ) -> Appended:
        new_entry = new_id()

        async def make(author: Author, owner: str) -> domain.Command:
            await self._entry_in_case(case_id, entry_id)  # decided first: see write()
            return domain.CorrectEntry(
                entry_id=new_entry,
                corrects_entry_id=entry_id,
                text=await self.cipher.encrypt(
                    owner, text, aggregate=case_id, context="entry_text"
                ),
                reason=await self.cipher.encrypt(
                    owner, reason, aggregate=case_id, context="reason"
                ),
                author=author,
            )

        return await self.write(
            principal,
            case_id,
            "log:append",
            make,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    async def retract_entry(
        self,
        principal: Principal,
        case_id: str,
        entry_id: str,
        *,
        if_match: int | None = None,
        reason: str,
        idempotency_key: ClientKey | None,
    ) -> Appended:
        new_entry = new_id()

        async def make(author: Author, owner: str) -> domain.Command:
            await self._entry_in_case(case_id, entry_id)  # decided first: see write()
            return domain.RetractEntry(
                entry_id=new_entry,
                retracts_entry_id=entry_id,
                reason=await self.cipher.encrypt(
                    owner, reason, aggregate=case_id, context="reason"
                ),
                author=author,
            )

        return await self.write(
            principal,
            case_id,
            "log:append",
            make,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    async def restrict_entry(
        self,
        principal: Principal,
        case_id: str,
        entry_id: str,
        *,
        if_match: int | None = None,
        ground: Ground,
        reason: str,
        until: datetime,
        idempotency_key: ClientKey | None,
    ) -> Appended:
        restriction_id = new_id()

        async def make(_author: Author, owner: str) -> domain.Command:
            await self._entry_in_case(case_id, entry_id)  # decided first: see write()
            return domain.RestrictEntry(
                restriction_id=restriction_id,
                entry_id=entry_id,
                ground=ground,
                reason=await self.cipher.encrypt(
                    owner, reason, aggregate=case_id, context="reason"
                ),
                until=until,
                decided_by=principal.id,
            )

        return await self.write(
            principal,
            case_id,
            "log:restrict",
            make,
            idempotency_key=idempotency_key,
            if_match=if_match,
            answer_id="restriction_id",
        )

    # --- reading -------------------------------------------------------------------------------

    async def _decrypt(
        self, owners: Sequence[str], token: str | None, context: str, *, aggregate: str
    ) -> str | None:
        """A field of an event on the log of ``aggregate``; None when no owner's key opens it
        for that log and field (shredded, or moved there from elsewhere)."""
        if token is None:
            return None
        for owner in dict.fromkeys(owners):
            try:
                return await self.cipher.decrypt(owner, token, aggregate=aggregate, context=context)
            except CryptoError:
                continue
        return None

    def _readable(
        self, principal: Principal, case_id: str, case: Any, decision: AccessDecision
    ) -> Callable[[Any], Awaitable[bool]]:
        """Whether the reader (permitted ``log:read`` with ``decision``) may see an entry row:
        not before the history the case brought when it did not travel, and an entry with a
        category or a restriction only by a decision of its own."""
        now = self.clock()
        hide_before = (
            case.history_from
            if case.history_from is not None and decision.basis not in (*FAMILY, "auditor")
            else None
        )

        async def readable(row: Any) -> bool:
            recorded = as_utc(row.recorded_at)
            if (
                hide_before is not None
                and recorded < as_utc(hide_before)
                and (row.kind != Kind.HANDOVER_NOTE)
            ):
                return False
            gated = row.category is not None or (
                row.restricted_until is not None and as_utc(row.restricted_until) > now
            )
            if not gated:
                return True
            per_entry = await self._decision(principal, "log:read", case_id, entry_id=row.entry_id)
            return per_entry.permitted

        return readable

    async def read_entries(
        self,
        principal: Principal,
        case_id: str,
        min_seq: int | None = None,
        *,
        limit: int = ENTRIES_LIMIT,
        after: int | None = None,
    ) -> EntriesPage:
        """One page of the entries the caller may read, oldest first: at most ``limit``
        entries (with their corrections and retraction) after the sequence ``after``. The
        page's read is recorded; ``after_seq`` is where the next page starts, None at the
        end. A ``Stafett-Min-Seq`` was waited for before the request was served
        (``MinSeqMiddleware``); ``min_seq`` goes on to the access decision."""
        decision = await self._decision(principal, "log:read", case_id, min_seq=min_seq)
        if not decision.permitted:
            raise not_found()
        async with self.sessions() as session:
            case = await _case_row(session, case_id)
            version = await session.scalar(
                select(chains.c.head_seq).where(chains.c.case_id == case_id)
            )
        now = self.clock()
        readable = self._readable(principal, case_id, case, decision)

        originals: list[Any] = []
        more = False
        async with contextlib.aclosing(self._originals(case_id, after or 0, limit + 1)) as rows:
            async for row in rows:
                if len(originals) == limit:
                    more = True
                    break
                if await readable(row):
                    originals.append(row)
        versions: defaultdict[str, list[Any]] = defaultdict(list)
        retractions: dict[str, Any] = {}
        if originals:
            async with self.sessions() as session:
                later = (
                    await session.execute(
                        select(entries)
                        .where(
                            entries.c.case_id == case_id,
                            entries.c.refers_to.in_([r.entry_id for r in originals]),
                            entries.c.kind.in_(_CHANGES),
                        )
                        .order_by(entries.c.seq)
                    )
                ).all()
            for row in later:
                if row.kind == "correction":
                    versions[row.refers_to].append(row)
                else:
                    retractions[row.refers_to] = row
        visible: list[dict[str, Any]] = []
        for row in originals:
            owners = (row.key_owner, case.child_id or case_id, case_id)
            history = [
                {
                    "text": await self._decrypt(owners, row.text, "entry_text", aggregate=case_id),
                    "recorded_at": row.recorded_at,
                    "author_id": row.author_id,
                    "reason": None,
                }
            ]
            for correction in versions.get(row.entry_id, []):
                history.append(
                    {
                        "text": await self._decrypt(
                            owners, correction.text, "entry_text", aggregate=case_id
                        ),
                        "recorded_at": correction.recorded_at,
                        "author_id": correction.author_id,
                        "reason": await self._decrypt(
                            owners, correction.reason, "reason", aggregate=case_id
                        ),
                    }
                )
            retraction = retractions.get(row.entry_id)
            status = "retracted" if retraction else ("corrected" if len(history) > 1 else "active")
            visible.append(
                {
                    "id": row.entry_id,
                    "seq": row.seq,
                    "kind": row.kind,
                    "author": {
                        "person_id": row.author_id,
                        "role": row.author_role,
                        "unit_id": row.author_unit,
                        # «child»: the youth's own words, written by the youth (0033).
                        "kind": row.author_kind or "staff",
                    },
                    "regime": row.regime,
                    "occurred_at": row.occurred_at,
                    "recorded_at": row.recorded_at,
                    "category": row.category,
                    "text": history[-1]["text"],
                    "status": status,
                    "retraction_reason": (
                        await self._decrypt(owners, retraction.reason, "reason", aggregate=case_id)
                        if retraction
                        else None
                    ),
                    "participants": json.loads(
                        await self._decrypt(
                            owners, row.participants, "participants", aggregate=case_id
                        )
                        or "[]"
                    ),
                    "versions": history,
                    "restricted": row.restricted_until is not None
                    and as_utc(row.restricted_until) > now,
                }
            )
        try:
            await record_access(
                self.store,
                case_id=case_id,
                tenant=case.org_id,
                principal=principal,
                basis=decision.basis,
                decision_id=decision.decision_id,
                what="entries",
                service="log",
                entry_ids=[e["id"] for e in visible],
            )
        except Exception:  # noqa: BLE001 - a read that is not recorded is not served
            raise unavailable("Lesingen kunne ikke registreres; prøv igjen.") from None
        return EntriesPage(visible, int(originals[-1].seq) if more else None, int(version or 0))

    async def _originals(self, case_id: str, after: int, chunk: int) -> AsyncGenerator[Any, None]:
        """The case's entries after the sequence ``after`` in order, not their corrections
        or retractions, read ``chunk`` at a time (a page skips those the reader may not
        see, so it may need more than one read)."""
        while True:
            async with self.sessions() as session:
                rows = (
                    await session.execute(
                        select(entries)
                        .where(entries.c.case_id == case_id, entries.c.seq > after, _ORIGINAL)
                        .order_by(entries.c.seq)
                        .limit(chunk)
                    )
                ).all()
            for row in rows:
                yield row
            if len(rows) < chunk:
                return
            after = int(rows[-1].seq)

    async def access_view(
        self, principal: Principal, case_id: str, *, limit: int, before: int | None
    ) -> list[dict[str, Any]]:
        decision = await self._decision(principal, "case:read", case_id)
        if not decision.permitted:
            raise not_found()
        stmt = (
            select(access_records)
            .where(access_records.c.case_id == case_id)
            .order_by(access_records.c.seq.desc())
            .limit(limit)
        )
        if before is not None:
            stmt = stmt.where(access_records.c.seq < before)
        async with self.sessions() as session:
            rows = (await session.execute(stmt)).all()
            served = (
                (
                    await session.execute(
                        select(access_record_entries.c.seq, access_record_entries.c.entry_id).where(
                            access_record_entries.c.seq.in_([r.seq for r in rows])
                        )
                    )
                ).all()
                if rows
                else []
            )
            named = {entry_id for _seq, entry_id in served}
            entry_rows = (
                (
                    await session.execute(
                        select(entries).where(
                            entries.c.case_id == case_id, entries.c.entry_id.in_(list(named))
                        )
                    )
                ).all()
                if named
                else []
            )
            case = await _case_row(session, case_id)
        # Who read how many entries, counting only entries the viewer may see themselves: a
        # count of entries hidden from them (restricted, of a category their consent excludes,
        # from before the history travelled) would tell that such entries exist.
        visible: set[str] = set()
        reading = await self._decision(principal, "log:read", case_id)
        if reading.permitted:
            readable = self._readable(principal, case_id, case, reading)
            visible = {row.entry_id for row in entry_rows if await readable(row)}
        counts: defaultdict[int, int] = defaultdict(int)
        for seq, entry_id in served:
            if entry_id in visible:
                counts[seq] += 1
        shown = []
        for r in rows:
            if r.entries and not counts[r.seq]:
                continue  # a read of nothing the viewer may see
            if r.what == "report" and decision.basis != "auditor":
                # That a report of concern was sent to child welfare is for child welfare to
                # tell the family (decision 0026): its reads are shown to auditors only.
                continue
            shown.append(
                {
                    "seq": r.seq,
                    "reader_id": r.reader_id,
                    "reader_kind": r.reader_kind,
                    "basis": r.basis,
                    "what": r.what,
                    "entries": counts[r.seq],
                    "service": r.service,
                    "read_at": r.read_at,
                }
            )
        return shown

    async def verify(self, principal: Principal, case_id: str) -> ChainReport:
        decision = await self._decision(principal, "log:read", case_id)
        if not decision.permitted:
            raise not_found()
        commits = await self.store.load(self.store.subject("log", case_id))
        return verify_stored((c.seq, c.data) for c in commits)
