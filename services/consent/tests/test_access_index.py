"""Lists never show more or less than checks allow: for any event history, the access
index's filter answers exactly the cases on which a single check permits."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from stafett_consent.policy import Action, decide
from stafett_consent.projections import (
    ConsentProjection,
    filter_cases,
    load_case_facts,
    load_principal_facts,
    metadata,
)
from stafett_shared.contracts.base import ContractEvent
from stafett_shared.contracts.case import (
    Access,
    CaseOpened,
    ChildIdentified,
    HandoverAccepted,
    HandoverCancelled,
    HandoverDeclined,
    HandoverRequested,
    HolderRef,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.consent import (
    AuditScopeGranted,
    ConsentActivated,
    ConsentRequested,
    ConsentScope,
    ConsentWithdrawn,
    EmergencyAccessGranted,
    Evidence,
    EvidenceMethod,
)
from stafett_shared.contracts.directory import (
    ChildRegistered,
    GuardianRecord,
    OrganisationRegistered,
    OrgKind,
    RoleEnded,
    RoleGranted,
    Sector,
    StaffRole,
    UnitRegistered,
)
from stafett_shared.db import create_engine, sessionmaker
from stafett_shared.envelope import CloudEvent, registry
from stafett_shared.eventstore import StoredCommit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
UNITS = {
    "siljan-ungdomsskole": ("4010", "school"),
    "siljan-helsestasjon": ("4010", "health"),
    "siljan-barnevern": ("4010", "child_welfare"),
    "porsgrunn-vgs": ("40", "upper_secondary"),
}
STAFF = ["ann", "bjorn", "cecilie", "dag", "eva", "frode"]
CASES = ["01JCASE0000000000000000001", "01JCASE0000000000000000002", "01JCASE0000000000000000003"]
CHILDREN = ["01JCHILD000000000000000001", "01JCHILD000000000000000002"]
GUARDIANS = ["01JGARD0000000000000000001", "01JGARD0000000000000000002"]  # ULIDs
AUDITORS = ["tilsyn-a", "tilsyn-b"]
ROLES = ["leader", "teacher", "health_nurse", "child_welfare_worker"]
ACTIONS = [
    Action.CASE_READ,
    Action.LOG_READ,
    Action.CASE_WRITE,
    Action.AUDIT_READ,
    Action.CASE_MANAGE,
    Action.CASE_HANDOVER,
]


class _PlainBirthDates(ConsentProjection):
    """Birth dates in clear: this test is about the index, not about encryption."""

    async def _birth_date(self, child_id: str, token: str) -> date | None:
        return date.fromisoformat(token)


def _event(payload: ContractEvent, subject: str) -> CloudEvent:
    return registry.envelope(
        payload, subject=subject, source="stafett/test", time=NOW, tenant="4010", actor="test"
    )


def _directory() -> list[CloudEvent]:
    events = [
        _event(
            OrganisationRegistered(
                org_id="4010", region="grenland", name="Siljan", kind=OrgKind.MUNICIPALITY
            ),
            "org-4010",
        ),
        _event(
            OrganisationRegistered(
                org_id="40", region="grenland", name="Vestfold og Telemark", kind=OrgKind.COUNTY
            ),
            "org-40",
        ),
    ]
    for unit, (org, sector) in UNITS.items():
        events.append(
            _event(
                UnitRegistered(org_id=org, unit_id=unit, name=unit, sector=Sector(sector)),
                f"org-{org}",
            )
        )
    return events


def _role(person: str, unit: str, role: str, *, grant: bool) -> CloudEvent:
    fields = {"person_id": person, "org_id": UNITS[unit][0], "unit_id": unit}
    changed = (RoleGranted if grant else RoleEnded)(**fields, role=StaffRole(role))
    return _event(changed, f"person-{person}")


times = st.integers(min_value=-72, max_value=72).map(lambda h: NOW + timedelta(hours=h))
role_events = st.builds(
    lambda person, unit, role, grant: _role(person, unit, role, grant=grant),
    # A small space, so that roles granted earlier are often ended later in a history.
    st.sampled_from(STAFF[:3]),
    st.sampled_from(list(UNITS)[:2]),
    st.sampled_from(["leader", "health_nurse"]),
    st.booleans(),
)


def _opened(case: str, unit: str, holder: str) -> CloudEvent:
    opened = CaseOpened(
        case_id=case,
        org_id=UNITS[unit][0],
        unit_id=unit,
        level=1,
        holder=HolderRef(person_id=holder, unit_id=unit),
        concern="x",
    )
    return _event(opened, case)


case_opened = st.builds(
    _opened, st.sampled_from(CASES), st.sampled_from(list(UNITS)[:2]), st.sampled_from(STAFF)
)
child_identified = st.builds(
    lambda case, child: _event(ChildIdentified(case_id=case, child_id=child), case),
    st.sampled_from(CASES),
    st.sampled_from(CHILDREN),
)


def _team_change(case: str, person: str, unit: str, access: Access, *, add: bool) -> CloudEvent:
    if not add:
        return _event(TeamMemberRemoved(case_id=case, person_id=person), case)
    added = TeamMemberAdded(
        case_id=case, person_id=person, unit_id=unit, org_id=UNITS[unit][0], access=access
    )
    return _event(added, case)


team_change = st.builds(
    lambda case, person, unit, access, add: _team_change(case, person, unit, access, add=add),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    st.sampled_from(list(UNITS)),
    st.sampled_from(["read", "write"]),
    st.booleans(),
)
handover = st.builds(
    lambda case, person, unit: _event(
        HandoverAccepted(
            case_id=case,
            handover_id="h",
            from_person_id="x",
            to_person_id=person,
            to_unit_id=unit,
            to_org_id=UNITS[unit][0],
            history_travels=True,
        ),
        case,
    ),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    st.sampled_from(list(UNITS)),
)
# Every handover is "h": an answer meets the pending request more often than not.
handover_requested = st.builds(
    lambda case, person, unit: _event(
        HandoverRequested(
            case_id=case,
            handover_id="h",
            from_person_id="x",
            from_unit_id="x",
            to_person_id=person,
            to_unit_id=unit,
            to_org_id=UNITS[unit][0],
            requested_by="x",
        ),
        case,
    ),
    st.sampled_from(CASES),
    st.sampled_from(STAFF[:3]),
    st.sampled_from(list(UNITS)[:2]),
)
handover_answered = st.builds(
    lambda case, declined: _event(
        HandoverDeclined(case_id=case, handover_id="h", reason="x")
        if declined
        else HandoverCancelled(case_id=case, handover_id="h", cancelled_by="x"),
        case,
    ),
    st.sampled_from(CASES),
    st.booleans(),
)


def _child(child: str, age: int, responsible: tuple[bool, bool]) -> CloudEvent:
    registered = ChildRegistered(
        child_id=child,
        national_id="x",
        national_id_index=f"idx-{child}",
        name="x",
        birth_date=date(2026 - age, 6, 1).isoformat(),
        registered_by="ann",
        guardians=tuple(
            GuardianRecord(
                person_id=g,
                national_id="x",
                national_id_index=f"idx-{child}-{g}",
                name="x",
                parental_responsibility=r,
            )
            for g, r in zip(GUARDIANS, responsible, strict=True)
        ),
    )
    return _event(registered, f"child-{child}")


child_registered = st.builds(
    _child,
    st.sampled_from(CHILDREN),
    st.integers(min_value=10, max_value=17),
    st.tuples(st.booleans(), st.booleans()),
)


@st.composite
def consent_events(draw: st.DrawFn) -> list[CloudEvent]:
    consent_id = f"01JCONSENT{draw(st.integers(0, 10**15)):016d}"
    case = draw(st.sampled_from(CASES))
    org_ids = draw(st.lists(st.sampled_from(["4010", "40"]), min_size=1, unique=True))
    sectors = draw(
        st.lists(
            st.sampled_from(["school", "health", "child_welfare", "upper_secondary"]),
            min_size=1,
            unique=True,
        )
    )
    start, end = sorted([draw(times), draw(times)])
    requested = ConsentRequested(
        consent_id=consent_id,
        case_id=case,
        child_id=CHILDREN[0],
        scope=ConsentScope(
            org_ids=tuple(org_ids), sectors=tuple(Sector(s) for s in sectors), purpose="x"
        ),
        valid_from=start,
        valid_until=end + timedelta(hours=1),
        evidence=Evidence(method=EvidenceMethod.PAPER),
        grantors=(),
        rule="guardians",
        age_applied=12,
        threshold_age=15,
        requested_by="ann",
    )
    out = [_event(requested, consent_id)]
    if draw(st.booleans()):
        out.append(_event(ConsentActivated(consent_id=consent_id, case_id=case), consent_id))
        if draw(st.booleans()):
            withdrawn = ConsentWithdrawn(
                consent_id=consent_id,
                case_id=case,
                grantor_person_id=GUARDIANS[0],
                recorded_by="ann",
            )
            out.append(_event(withdrawn, consent_id))
    return out


def _emergency(grant_id: str, case: str, person: str, start: datetime) -> CloudEvent:
    granted = EmergencyAccessGranted(
        grant_id=grant_id,
        case_id=case,
        person_id=person,
        reason="x",
        valid_from=start,
        valid_until=start + timedelta(hours=24),
        notify_person_ids=(),
    )
    return _event(granted, grant_id)


emergency = st.builds(
    lambda n, case, person, start: _emergency(f"01JEMERG{n:018d}", case, person, start),
    st.integers(0, 10**15),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    times,
)


def _audit_scope(
    scope_id: str, auditor: str, org: str | None, case_ids: list[str], until: datetime
) -> CloudEvent:
    granted = AuditScopeGranted(
        scope_id=scope_id,
        auditor_person_id=auditor,
        org_id=org,
        case_ids=tuple(case_ids),
        valid_until=until,
        reason="tilsyn",
        granted_by="admin",
    )
    return _event(granted, scope_id)


audit_scope = st.builds(
    lambda n, auditor, org, cases, until: _audit_scope(
        f"01JSCOPE{n:018d}", auditor, org, cases, until
    ),
    st.integers(0, 10**15),
    st.sampled_from(AUDITORS),
    st.sampled_from([None, "4010", "40"]),
    st.lists(st.sampled_from(CASES), unique=True, max_size=2),
    times,
)
single = st.one_of(
    role_events,
    role_events,
    case_opened,
    child_identified,
    team_change,
    handover,
    handover_requested,
    handover_requested,
    handover_answered,
    child_registered,
    emergency,
    audit_scope,
).map(lambda e: [e])
# A mixed history, then a tail of directory changes alone: a change that forgets to reindex
# the cases it affects shows only when nothing later touches those cases.
histories = st.tuples(
    st.lists(st.one_of(single, consent_events()), min_size=1, max_size=25),
    st.lists(
        st.one_of(role_events, child_registered, emergency, audit_scope).map(lambda e: [e]),
        max_size=6,
    ),
).map(lambda parts: parts[0] + parts[1])


async def _check_history(history: list[list[CloudEvent]], folder: Path) -> None:
    engine = create_engine(f"sqlite:///{folder / 'index.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = sessionmaker(engine)
    projection = _PlainBirthDates()
    seq = 0
    for events in [_directory(), *history]:
        for event in events:
            seq += 1
            commit = StoredCommit(seq, f"stafett.ev.x.{event.subject}", b"", {}, NOW, (event,))
            async with sessions() as session, session.begin():
                await projection.apply(session, commit)
    principals = [*STAFF, *GUARDIANS, *CHILDREN, *AUDITORS]

    def compare(conn: Connection) -> None:
        for person in principals:
            facts = load_principal_facts(conn, person)
            for action in ACTIONS:
                listed = filter_cases(conn, person, action.value, CASES, NOW)
                checked = [
                    case_id
                    for case_id in CASES
                    if decide(facts, action, load_case_facts(conn, case_id), NOW).permit
                ]
                assert listed == checked, (person, action, listed, checked)

    async with engine.connect() as conn:
        await conn.run_sync(compare)
    await engine.dispose()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_filter_equals_the_cases_a_single_check_permits(
    history: list[list[CloudEvent]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_check_history(history, Path(folder)))


def _emergency_history(person: str, case: str, *, role_after: bool) -> list[list[CloudEvent]]:
    """A case held by another, an emergency grant to ``person``, and their only role
    granted after the grant (``role_after``) or ended after it."""
    granted = _role(person, "siljan-ungdomsskole", "leader", grant=True)
    opened = _opened(case, "siljan-helsestasjon", "bjorn")
    grant = _emergency("01JEMERG000000000000000000", case, person, NOW)
    if role_after:
        return [[opened], [grant], [granted]]
    ended = _role(person, "siljan-ungdomsskole", "leader", grant=False)
    return [[granted], [opened], [grant], [ended]]


def test_a_role_granted_after_an_emergency_grant_opens_its_case_in_the_index(
    tmp_path: Path,
) -> None:
    asyncio.run(_check_history(_emergency_history("ann", CASES[0], role_after=True), tmp_path))


def test_the_last_role_ended_after_an_emergency_grant_closes_its_case_in_the_index(
    tmp_path: Path,
) -> None:
    asyncio.run(_check_history(_emergency_history("ann", CASES[0], role_after=False), tmp_path))
