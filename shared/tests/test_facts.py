"""The facts that several read models derive from the same events: where a new holder's
history starts after a handover, where a case stands, its team, and the roles kept from the
directory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, select
from sqlalchemy.engine import Connection

from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    CloseReason,
    HandoverAccepted,
    HolderRef,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.directory import RoleEnded, RoleGranted, StaffRole
from stafett_shared.facts import (
    apply_role,
    apply_team_change,
    case_status,
    history_from,
    placement,
)

AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
CASE = "01JABCDEFGHJKMNPQRSTVWXYZ0"


def _accepted(*, travels: bool, start: datetime | None = None) -> HandoverAccepted:
    return HandoverAccepted(
        case_id=CASE,
        handover_id="01JABCDEFGHJKMNPQRSTVWXYZ1",
        from_person_id="p-from",
        to_person_id="p-to",
        to_unit_id="unit-b",
        to_org_id="org-b",
        history_travels=travels,
        history_from=start,
    )


def test_a_history_that_travels_keeps_its_start() -> None:
    assert history_from(_accepted(travels=True, start=AT - timedelta(days=3)), AT) is None


def test_a_history_that_stays_starts_at_the_handover_or_its_own_start_in_utc() -> None:
    assert history_from(_accepted(travels=False), AT) == AT
    oslo = (AT - timedelta(days=1)).astimezone(timezone(timedelta(hours=1)))
    start = history_from(_accepted(travels=False, start=oslo), AT)
    assert start == AT - timedelta(days=1)
    assert start is not None and start.tzinfo is UTC


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def _roles(metadata: MetaData, *, with_org: bool) -> Table:
    columns = [
        Column("person_id", String, primary_key=True),
        Column("unit_id", String, primary_key=True),
        Column("role", String, primary_key=True),
    ]
    if with_org:
        columns.append(Column("org_id", String, nullable=False))
    return Table("roles", metadata, *columns)


@pytest.mark.parametrize("with_org", [False, True])
def test_roles_are_granted_once_and_ended(conn: Connection, with_org: bool) -> None:
    metadata = MetaData()
    roles = _roles(metadata, with_org=with_org)
    metadata.create_all(conn)
    fields = {"person_id": "p-1", "org_id": "org-a", "unit_id": "unit-a"}
    granted = RoleGranted(role=StaffRole.LEADER, **fields)
    apply_role(conn, roles, granted)
    apply_role(conn, roles, granted)  # a replayed grant changes nothing
    apply_role(conn, roles, RoleGranted(role=StaffRole.TEACHER, **fields))
    rows = {tuple(row) for row in conn.execute(select(roles))}
    extra = ("org-a",) if with_org else ()
    assert rows == {
        ("p-1", "unit-a", "leader", *extra),
        ("p-1", "unit-a", "teacher", *extra),
    }
    apply_role(conn, roles, RoleEnded(role=StaffRole.LEADER, **fields))
    assert list(conn.execute(select(roles.c.role))) == [("teacher",)]


def test_a_case_is_closed_or_open_again() -> None:
    closed = CaseClosedEvent(case_id=CASE, reason=CloseReason.RESOLVED)
    assert case_status(closed) == "closed"
    assert case_status(CaseReopened(case_id=CASE, reason="enc:v1:x")) == "open"


def test_a_case_stands_where_it_was_opened_then_with_its_receiver() -> None:
    columns = ("holder_id", "holder_unit_id", "unit_id", "org_id")
    cases = Table("cases", MetaData(), *(Column(name, String) for name in columns))
    opened = CaseOpened(
        case_id=CASE,
        org_id="org-a",
        unit_id="unit-a",
        level=0,
        holder=HolderRef(person_id="p-from", unit_id="unit-h"),
        concern="enc:v1:x",
    )
    assert placement(cases, opened) == {
        "holder_id": "p-from",
        "holder_unit_id": "unit-h",
        "unit_id": "unit-a",
        "org_id": "org-a",
    }
    assert placement(cases, _accepted(travels=True)) == {
        "holder_id": "p-to",
        "holder_unit_id": "unit-b",
        "unit_id": "unit-b",
        "org_id": "org-b",
    }
    # A read model without some of the columns gets only those it has.
    narrow = Table("cases", MetaData(), Column("unit_id", String), Column("org_id", String))
    assert placement(narrow, opened) == {"unit_id": "unit-a", "org_id": "org-a"}


def test_team_members_are_added_once_with_the_columns_a_table_has_and_removed(
    conn: Connection,
) -> None:
    metadata = MetaData()
    team = Table(
        "team",
        metadata,
        Column("case_id", String, primary_key=True),
        Column("person_id", String, primary_key=True),
        Column("access", String, nullable=False),
        Column("note", String, nullable=True),
    )
    metadata.create_all(conn)
    fields = {"case_id": CASE, "unit_id": "unit-a", "org_id": "org-a"}
    added = TeamMemberAdded(person_id="p-1", access="read", **fields)
    apply_team_change(conn, team, CASE, added, note="n")
    apply_team_change(conn, team, CASE, added, note="n")  # a replayed addition changes nothing
    apply_team_change(conn, team, CASE, TeamMemberAdded(person_id="p-2", access="write", **fields))
    rows = {tuple(row) for row in conn.execute(select(team))}
    assert rows == {(CASE, "p-1", "read", "n"), (CASE, "p-2", "write", None)}
    apply_team_change(conn, team, CASE, TeamMemberRemoved(case_id=CASE, person_id="p-1"))
    assert list(conn.execute(select(team.c.person_id))) == [("p-2",)]
