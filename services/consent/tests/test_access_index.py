"""Lists never show more or less than checks allow: for any event history, the access
index's filter answers exactly the cases on which a single check permits."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

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
from stafett_shared.db import create_engine, sessionmaker
from stafett_shared.envelope import CloudEvent
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
GUARDIANS = ["01JGUARD000000000000000001", "01JGUARD000000000000000002"]
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


def _event(kind: str, subject: str, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent(
        source="stafett/test",
        type=f"no.stafett.{kind}.v1",
        subject=subject,
        time=NOW,
        tenant="4010",
        actor="test",
        data=data,
    )


def _directory() -> list[CloudEvent]:
    events = [
        _event(
            "directory.organisation_registered",
            "org-4010",
            {"org_id": "4010", "region": "grenland", "name": "Siljan", "kind": "municipality"},
        ),
        _event(
            "directory.organisation_registered",
            "org-40",
            {
                "org_id": "40",
                "region": "grenland",
                "name": "Vestfold og Telemark",
                "kind": "county",
            },
        ),
    ]
    for unit, (org, sector) in UNITS.items():
        events.append(
            _event(
                "directory.unit_registered",
                f"org-{org}",
                {"org_id": org, "unit_id": unit, "name": unit, "sector": sector},
            )
        )
    return events


times = st.integers(min_value=-72, max_value=72).map(lambda h: NOW + timedelta(hours=h))
role_events = st.builds(
    lambda person, unit, role, grant: _event(
        "directory.role_granted" if grant else "directory.role_ended",
        f"person-{person}",
        {"person_id": person, "org_id": UNITS[unit][0], "unit_id": unit, "role": role},
    ),
    # A small space, so that roles granted earlier are often ended later in a history.
    st.sampled_from(STAFF[:3]),
    st.sampled_from(list(UNITS)[:2]),
    st.sampled_from(["leader", "health_nurse"]),
    st.booleans(),
)
case_opened = st.builds(
    lambda case, unit, holder: _event(
        "case.opened",
        case,
        {
            "case_id": case,
            "org_id": UNITS[unit][0],
            "unit_id": unit,
            "level": 1,
            "holder": {"person_id": holder, "unit_id": unit},
        },
    ),
    st.sampled_from(CASES),
    st.sampled_from(list(UNITS)[:2]),
    st.sampled_from(STAFF),
)
child_identified = st.builds(
    lambda case, child: _event("case.child_identified", case, {"child_id": child}),
    st.sampled_from(CASES),
    st.sampled_from(CHILDREN),
)
team_change = st.builds(
    lambda case, person, unit, access, add: _event(
        "case.team_member_added" if add else "case.team_member_removed",
        case,
        {"person_id": person, "unit_id": unit, "access": access} if add else {"person_id": person},
    ),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    st.sampled_from(list(UNITS)),
    st.sampled_from(["read", "write"]),
    st.booleans(),
)
handover = st.builds(
    lambda case, person, unit: _event(
        "case.handover_accepted",
        case,
        {
            "handover_id": "h",
            "to_person_id": person,
            "to_unit_id": unit,
            "to_org_id": UNITS[unit][0],
        },
    ),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    st.sampled_from(list(UNITS)),
)
# Every handover is "h": an answer meets the pending request more often than not.
handover_requested = st.builds(
    lambda case, person, unit: _event(
        "case.handover_requested",
        case,
        {
            "handover_id": "h",
            "from_person_id": "x",
            "from_unit_id": "x",
            "to_person_id": person,
            "to_unit_id": unit,
            "to_org_id": UNITS[unit][0],
            "requested_by": "x",
        },
    ),
    st.sampled_from(CASES),
    st.sampled_from(STAFF[:3]),
    st.sampled_from(list(UNITS)[:2]),
)
handover_answered = st.builds(
    lambda case, answer: _event(f"case.handover_{answer}", case, {"handover_id": "h"}),
    st.sampled_from(CASES),
    st.sampled_from(["declined", "cancelled"]),
)
child_registered = st.builds(
    lambda child, age, responsible: _event(
        "directory.child_registered",
        f"child-{child}",
        {
            "child_id": child,
            "national_id": "x",
            "national_id_index": f"idx-{child}",
            "name": "x",
            "birth_date": date(2026 - age, 6, 1).isoformat(),
            "registered_by": "ann",
            "guardians": [
                {
                    "person_id": g,
                    "national_id": "x",
                    "national_id_index": f"idx-{child}-{g}",
                    "name": "x",
                    "parental_responsibility": r,
                }
                for g, r in zip(GUARDIANS, responsible, strict=True)
            ],
        },
    ),
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
    requested = _event(
        "consent.requested",
        consent_id,
        {
            "consent_id": consent_id,
            "case_id": case,
            "child_id": CHILDREN[0],
            "scope": {
                "org_ids": org_ids,
                "sectors": sectors,
                "unit_ids": [],
                "history_travels": False,
                "excluded_categories": [],
                "purpose": "x",
            },
            "valid_from": start.isoformat(),
            "valid_until": (end + timedelta(hours=1)).isoformat(),
            "evidence": {"method": "paper"},
            "grantors": [],
            "rule": "guardians",
            "age_applied": 12,
            "threshold_age": 15,
            "requested_by": "ann",
        },
    )
    out = [requested]
    if draw(st.booleans()):
        out.append(
            _event("consent.activated", consent_id, {"consent_id": consent_id, "case_id": case})
        )
        if draw(st.booleans()):
            out.append(
                _event(
                    "consent.withdrawn",
                    consent_id,
                    {
                        "consent_id": consent_id,
                        "case_id": case,
                        "grantor_person_id": GUARDIANS[0],
                        "recorded_by": "ann",
                    },
                )
            )
    return out


emergency = st.builds(
    lambda n, case, person, start: _event(
        "consent.emergency_access_granted",
        f"01JEMERG{n:018d}",
        {
            "grant_id": f"01JEMERG{n:018d}",
            "case_id": case,
            "person_id": person,
            "reason": "x",
            "valid_from": start.isoformat(),
            "valid_until": (start + timedelta(hours=24)).isoformat(),
            "notify_person_ids": [],
        },
    ),
    st.integers(0, 10**15),
    st.sampled_from(CASES),
    st.sampled_from(STAFF),
    times,
)
audit_scope = st.builds(
    lambda n, auditor, org, cases, until: _event(
        "consent.audit_scope_granted",
        f"01JSCOPE{n:018d}",
        {
            "scope_id": f"01JSCOPE{n:018d}",
            "auditor_person_id": auditor,
            "org_id": org,
            "case_ids": cases,
            "valid_until": until.isoformat(),
            "reason": "tilsyn",
            "granted_by": "admin",
        },
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
    role = {
        "person_id": person,
        "org_id": "4010",
        "unit_id": "siljan-ungdomsskole",
        "role": "leader",
    }
    granted = _event("directory.role_granted", f"person-{person}", role)
    opened = _event(
        "case.opened",
        case,
        {
            "case_id": case,
            "org_id": "4010",
            "unit_id": "siljan-helsestasjon",
            "level": 1,
            "holder": {"person_id": "bjorn", "unit_id": "siljan-helsestasjon"},
        },
    )
    grant = _event(
        "consent.emergency_access_granted",
        "01JEMERG000000000000000000",
        {
            "grant_id": "01JEMERG000000000000000000",
            "case_id": case,
            "person_id": person,
            "reason": "x",
            "valid_from": NOW.isoformat(),
            "valid_until": (NOW + timedelta(hours=24)).isoformat(),
            "notify_person_ids": [],
        },
    )
    if role_after:
        return [[opened], [grant], [granted]]
    ended = _event("directory.role_ended", f"person-{person}", role)
    return [[granted], [opened], [grant], [ended]]


def test_a_role_granted_after_an_emergency_grant_opens_its_case_in_the_index(
    tmp_path: Path,
) -> None:
    asyncio.run(_check_history(_emergency_history("ann", CASES[0], role_after=True), tmp_path))


def test_the_last_role_ended_after_an_emergency_grant_closes_its_case_in_the_index(
    tmp_path: Path,
) -> None:
    asyncio.run(_check_history(_emergency_history("ann", CASES[0], role_after=False), tmp_path))
