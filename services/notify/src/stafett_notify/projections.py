"""Read models of the notify service and the projection that turns events into deliveries.

The projection keeps the facts the recipient rules need (holder, team, unit leaders,
consents) and, for every notice, writes one outbox row per channel. The outbox, inbox,
deliveries, preferences and webhooks are not projection tables: a rebuild recomputes the
facts and leaves what was sent alone, and an outbox row's id is derived from (event,
recipient, channel), so replaying an event never queues a delivery twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from stafett_notify import domain
from stafett_shared.access import AccessClient, AccessUnavailable
from stafett_shared.auth import Principal
from stafett_shared.contracts.case import (
    CaseOpened,
    ChildIdentified,
    ChildWelfareReported,
    HandoverAccepted,
    LevelChanged,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.consent import (
    ConsentActivated,
    ConsentExpired,
    ConsentRefused,
    ConsentRequested,
    ConsentWithdrawn,
)
from stafett_shared.contracts.directory import (
    ChildRegistered,
    GuardianAdded,
    GuardianRemoved,
    ParentalResponsibilityChanged,
    RoleEnded,
    RoleGranted,
)
from stafett_shared.db import UtcDateTime, as_utc, upsert
from stafett_shared.envelope import CloudEvent, EventData
from stafett_shared.eventstore import StoredCommit
from stafett_shared.projector import Projection

INTAKE_ROLES = ("child_welfare_worker", "leader")
"""Who takes in reports of concern at a child welfare unit (decision 0026)."""

metadata = MetaData()
cases = Table(
    "cases",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("holder_id", String(64), nullable=False),
    Column("unit_id", String(64), nullable=False),
    Column("level", Integer, nullable=False),
    Column("child_id", String(26), nullable=True),
)
guardians = Table(
    "guardians",
    metadata,
    Column("child_id", String(26), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("parental_responsibility", Boolean, nullable=False),
)
"""A child's guardians, for the notices to families (ids only; decision 0032)."""
team = Table(
    "team",
    metadata,
    Column("case_id", String(26), primary_key=True),
    Column("person_id", String(64), primary_key=True),
)
roles = Table(
    "roles",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
)
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String(26), primary_key=True),
    Column("case_id", String(26), nullable=False),
    Column("status", String(16), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
)

state_metadata = MetaData()
outbox = Table(
    "outbox",
    state_metadata,
    Column("delivery_id", String(48), primary_key=True),
    Column("notice_id", String(48), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("webhook_id", String(26), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("case_id", String(26), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("queued", Boolean, nullable=False, default=False),
    Index("ix_outbox_queued", "queued"),
)
inbox = Table(
    "inbox",
    state_metadata,
    Column("notice_id", String(48), primary_key=True),
    Column("recipient", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("case_id", String(26), nullable=False),
    Column("title", String(200), nullable=False),
    Column("link", String(300), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("read_at", UtcDateTime(), nullable=True),
    Index("ix_inbox_recipient", "recipient", "created_at"),
)
deliveries = Table(
    "deliveries",
    state_metadata,
    Column("delivery_id", String(48), primary_key=True),
    Column("channel", String(8), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("webhook_id", String(26), nullable=True, index=True),
    Column("status", String(16), nullable=False),  # delivered | retrying | dead | digest
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(200), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
preferences = Table(
    "preferences",
    state_metadata,
    Column("person_id", String(64), primary_key=True),
    Column("email", Boolean, nullable=False),
    Column("webhook", Boolean, nullable=False),
    Column("daily_digest", Boolean, nullable=False),
    Column("email_address", Text, nullable=True),  # encrypted with the person's key
)
webhooks = Table(
    "webhooks",
    state_metadata,
    Column("webhook_id", String(26), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("url", String(500), nullable=False),
    Column("secret", Text, nullable=False),  # encrypted with the owner's key
    Column("event_types", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
digest_queue = Table(
    "digest_queue",
    state_metadata,
    Column("delivery_id", String(48), primary_key=True),
    Column("recipient", String(64), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("link", String(300), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
)


# A case and its team in one statement: one row per member, or one row without a member.
_CASE_AND_TEAM = (
    select(cases, team.c.person_id.label("member"))
    .select_from(cases.outerjoin(team, team.c.case_id == cases.c.case_id))
    .where(cases.c.case_id == bindparam("case_id"))
)


_CONSENT_STATUS: dict[type[EventData], str] = {
    ConsentActivated: "active",
    ConsentWithdrawn: "withdrawn",
    ConsentExpired: "expired",
    ConsentRefused: "refused",
}
"""A consent's status in ``consents`` after each event that ends its ``pending``."""


def webhook_delivery_id(notice_id: str, webhook_id: str) -> str:
    return "w-" + hashlib.sha256(f"{notice_id}\x00{webhook_id}".encode()).hexdigest()[:40]


class NotifyProjection(Projection):
    """Keeps recipient facts and writes the outbox for every notice an event calls for."""

    name = "notify"
    tables = tuple(metadata.sorted_tables)

    def __init__(self, access: AccessClient | None = None, link_base: str = "") -> None:
        self.access = access
        self.link_base = link_base.rstrip("/")

    async def apply(self, session: AsyncSession, commit: StoredCommit) -> None:
        for event in commit.events:
            payload = self.event_registry.payload(event)
            await self._facts(session, payload)
            if self.access is not None:
                await self._notices(session, event, payload, commit.seq)

    async def _facts(self, session: AsyncSession, payload: EventData) -> None:
        match payload:
            case CaseOpened():
                await upsert(
                    session,
                    cases,
                    {
                        "case_id": payload.case_id,
                        "holder_id": payload.holder.person_id,
                        "unit_id": payload.unit_id,
                        "level": payload.level,
                        "child_id": payload.child_id,
                    },
                )
            case (
                ChildIdentified()
                | ChildRegistered()
                | GuardianAdded()
                | ParentalResponsibilityChanged()
                | GuardianRemoved()
            ):
                await self._family_facts(session, payload)
            case LevelChanged():
                await session.execute(
                    update(cases)
                    .where(cases.c.case_id == payload.case_id)
                    .values(level=payload.level)
                )
            case TeamMemberAdded():
                await upsert(
                    session, team, {"case_id": payload.case_id, "person_id": payload.person_id}
                )
            case TeamMemberRemoved():
                await session.execute(
                    delete(team).where(
                        team.c.case_id == payload.case_id, team.c.person_id == payload.person_id
                    )
                )
            case HandoverAccepted():
                await session.execute(
                    update(cases)
                    .where(cases.c.case_id == payload.case_id)
                    .values(holder_id=payload.to_person_id, unit_id=payload.to_unit_id)
                )
            case RoleGranted():
                await upsert(
                    session,
                    roles,
                    {
                        "person_id": payload.person_id,
                        "unit_id": payload.unit_id,
                        "role": payload.role.value,
                    },
                )
            case RoleEnded():
                await session.execute(
                    delete(roles).where(
                        roles.c.person_id == payload.person_id,
                        roles.c.unit_id == payload.unit_id,
                        roles.c.role == payload.role.value,
                    )
                )
            case ConsentRequested():
                await upsert(
                    session,
                    consents,
                    {
                        "consent_id": payload.consent_id,
                        "case_id": payload.case_id,
                        "status": "pending",
                        "valid_until": as_utc(payload.valid_until),
                    },
                )
            case ConsentActivated() | ConsentWithdrawn() | ConsentExpired() | ConsentRefused():
                await session.execute(
                    update(consents)
                    .where(consents.c.consent_id == payload.consent_id)
                    .values(status=_CONSENT_STATUS[type(payload)])
                )

    async def _family_facts(self, session: AsyncSession, payload: EventData) -> None:
        """Which child a case is about and the child's guardians (decision 0032)."""
        match payload:
            case ChildIdentified():
                await session.execute(
                    update(cases)
                    .where(cases.c.case_id == payload.case_id)
                    .values(child_id=payload.child_id)
                )
            case ChildRegistered():
                for guardian in payload.guardians:
                    await self._guardian(
                        session,
                        payload.child_id,
                        guardian.person_id,
                        guardian.parental_responsibility,
                    )
            case GuardianAdded():
                await self._guardian(
                    session,
                    payload.child_id,
                    payload.guardian.person_id,
                    payload.guardian.parental_responsibility,
                )
            case ParentalResponsibilityChanged():
                await self._guardian(
                    session, payload.child_id, payload.person_id, payload.parental_responsibility
                )
            case GuardianRemoved():
                await session.execute(
                    delete(guardians).where(
                        guardians.c.child_id == payload.child_id,
                        guardians.c.person_id == payload.person_id,
                    )
                )

    @staticmethod
    async def _guardian(
        session: AsyncSession, child_id: str, person_id: str, responsible: bool
    ) -> None:
        await upsert(
            session,
            guardians,
            {
                "child_id": child_id,
                "person_id": person_id,
                "parental_responsibility": responsible,
            },
        )

    async def case_facts(
        self,
        session: AsyncSession,
        case_id: str,
        *,
        leaders: bool = True,
        family: bool = False,
    ) -> domain.CaseFacts | None:
        """The case's holder, unit, level and team in one read, its unit's leaders when
        ``leaders`` (see ``domain.LEADER_EVENTS``), and the child's guardians with parental
        responsibility when ``family`` (``domain.FAMILY_EVENTS``)."""
        rows = (await session.execute(_CASE_AND_TEAM, {"case_id": case_id})).all()
        if not rows:
            return None
        row = rows[0]
        unit_leaders: Sequence[str] = ()
        if leaders:
            unit_leaders = (
                await session.scalars(
                    select(roles.c.person_id).where(
                        roles.c.unit_id == row.unit_id, roles.c.role == "leader"
                    )
                )
            ).all()
        responsible: Sequence[str] = ()
        if family and row.child_id is not None:
            responsible = (
                await session.scalars(
                    select(guardians.c.person_id).where(
                        guardians.c.child_id == row.child_id,
                        guardians.c.parental_responsibility.is_(True),
                    )
                )
            ).all()
        return domain.CaseFacts(
            row.case_id,
            row.holder_id,
            row.unit_id,
            row.level,
            frozenset(r.member for r in rows if r.member is not None),
            frozenset(unit_leaders),
            guardians=frozenset(responsible),
        )

    @staticmethod
    async def _intake(session: AsyncSession, unit_id: str | None) -> frozenset[str]:
        """Who takes in reports of concern at the unit (decision 0026)."""
        if unit_id is None:
            return frozenset()
        people = await session.scalars(
            select(roles.c.person_id).where(
                roles.c.unit_id == unit_id, roles.c.role.in_(INTAKE_ROLES)
            )
        )
        return frozenset(people.all())

    async def _notices(
        self, session: AsyncSession, event: CloudEvent, payload: EventData, seq: int
    ) -> None:
        case_id = domain.notice_case(payload)
        if case_id is None:
            return  # no notice whatever the case's facts: do not read them
        view = domain.EventView(event.id, event.subject, event.actor, payload)
        leaders = isinstance(payload, domain.LEADER_EVENTS)
        family = isinstance(payload, domain.FAMILY_EVENTS)
        facts = await self.case_facts(session, case_id, leaders=leaders, family=family)
        if isinstance(payload, ChildWelfareReported) and facts is not None:
            facts = replace(facts, intake=await self._intake(session, payload.unit_id))
        for draft in domain.drafts(view, facts):
            for recipient in sorted(draft.recipients):
                await self._queue(session, draft, case_id, recipient, event, seq)

    async def _queue(  # noqa: PLR0917 - one notice's parts
        self,
        session: AsyncSession,
        draft: domain.Draft,
        case_id: str,
        recipient: str,
        event: CloudEvent,
        seq: int,
    ) -> None:
        assert self.access is not None
        person = Principal(kind="person", id=recipient, issuer="stafett")
        try:
            decision = await self.access.check(
                person, domain.action(draft.kind), case_id, min_seq=seq
            )
        except AccessUnavailable:
            raise  # the projector retries the commit: no notice is decided without an answer
        if not decision.permitted:
            return  # no basis to read the case, no notice about it
        prefs = (
            await session.execute(select(preferences).where(preferences.c.person_id == recipient))
        ).first()
        hooks = (
            await session.execute(select(webhooks).where(webhooks.c.owner_id == recipient))
        ).all()
        wanted = domain.channels_for(
            {"email": bool(prefs and prefs.email), "webhook": bool(prefs and prefs.webhook)},
            has_email=bool(prefs and prefs.email_address),
            has_webhook=bool(hooks),
        )
        now = datetime.now(UTC)
        for channel in wanted:
            notice = domain.notice_id(event.id, recipient, channel)
            targets: list[tuple[str, str | None]] = [(notice, None)]
            if channel == "webhook":
                targets = [
                    (webhook_delivery_id(notice, h.webhook_id), h.webhook_id)
                    for h in hooks
                    if not h.event_types or draft.kind in h.event_types
                ]
            for delivery_id, webhook_id in targets:
                await upsert(
                    session,
                    outbox,
                    {
                        "delivery_id": delivery_id,
                        "notice_id": notice,
                        "recipient": recipient,
                        "channel": channel,
                        "webhook_id": webhook_id,
                        "kind": draft.kind,
                        "case_id": case_id,
                        "event_id": event.id,
                        "created_at": now,
                        "queued": False,
                    },
                    update=False,
                )

    def link(self, case_id: str) -> str:
        return f"{self.link_base}/saker/{case_id}"


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
