"""Facts that more than one service's read model derives from the same events, derived in one
place from the typed contracts, so that the read models cannot drift apart.

- :func:`history_from`: where the history a case's new holder may see starts, after a
  handover that the history did not travel with (the case and log read models).
- :func:`case_status`: a case's status after it closed or reopened.
- :func:`placement`: where a case stands after it was opened or handed over: its holder, its
  unit and its organisation.
- :func:`apply_team_change`: the members of a case's team, kept from ``TeamMemberAdded`` and
  ``TeamMemberRemoved`` (a ``team`` table of ``case_id`` and ``person_id``, and of the
  event's ``unit_id``, ``org_id`` and ``access`` where the table has those columns).
- :func:`apply_role`: a staff member's roles in units, kept from the directory's
  ``RoleGranted`` and ``RoleEnded`` (a ``roles`` table of ``person_id``, ``unit_id`` and
  ``role``, and ``org_id`` where the table has that column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete
from sqlalchemy.engine import Connection

from stafett_shared.contracts.case import (
    CaseClosedEvent,
    CaseOpened,
    CaseReopened,
    HandoverAccepted,
    TeamMemberAdded,
    TeamMemberRemoved,
)
from stafett_shared.contracts.directory import RoleEnded, RoleGranted
from stafett_shared.db import as_utc, upsert_sync

__all__ = ["apply_role", "apply_team_change", "case_status", "history_from", "placement"]


def history_from(accepted: HandoverAccepted, at: datetime) -> datetime | None:
    """The start of the history the new holder sees once ``accepted`` (an event of time
    ``at``) took effect: the handover's own ``history_from``, else ``at``; None when the
    history travels with the case (the read model keeps the start it had)."""
    if accepted.history_travels:
        return None
    return as_utc(accepted.history_from) if accepted.history_from is not None else at


def case_status(event: CaseClosedEvent | CaseReopened) -> str:
    """A case's status once ``event`` took effect: ``closed`` or ``open``."""
    return "closed" if isinstance(event, CaseClosedEvent) else "open"


def placement(table: Table, event: CaseOpened | HandoverAccepted) -> dict[str, str]:
    """Where a case stands once ``event`` took effect, as values of those of ``table``'s
    columns that it has: the holder (``holder_id``) and the holder's unit
    (``holder_unit_id``), the case's unit (``unit_id``) and organisation (``org_id``). A case
    opened stands at the unit it was opened at; one handed over, at the receiver's unit."""
    if isinstance(event, CaseOpened):
        values = {
            "holder_id": event.holder.person_id,
            "holder_unit_id": event.holder.unit_id,
            "unit_id": event.unit_id,
            "org_id": event.org_id,
        }
    else:
        values = {
            "holder_id": event.to_person_id,
            "holder_unit_id": event.to_unit_id,
            "unit_id": event.to_unit_id,
            "org_id": event.to_org_id,
        }
    return {column: value for column, value in values.items() if column in table.c}


def apply_team_change(
    conn: Connection,
    table: Table,
    case_id: str,
    event: TeamMemberAdded | TeamMemberRemoved,
    **extra: Any,
) -> None:
    """Record a member added to the team of case ``case_id`` in ``table`` (with ``extra``, the
    read model's own columns), or remove one."""
    match event:
        case TeamMemberAdded():
            fields = {
                "case_id": case_id,
                "person_id": event.person_id,
                "unit_id": event.unit_id,
                "org_id": event.org_id,
                "access": event.access,
            }
            upsert_sync(conn, table, {k: v for k, v in fields.items() if k in table.c} | extra)
        case TeamMemberRemoved():
            conn.execute(
                delete(table).where(
                    table.c.case_id == case_id, table.c.person_id == event.person_id
                )
            )


def apply_role(conn: Connection, table: Table, event: RoleGranted | RoleEnded) -> None:
    """Record a granted role in ``table``, or remove an ended one."""
    match event:
        case RoleGranted():
            row = {"person_id": event.person_id, "unit_id": event.unit_id, "role": event.role.value}
            if "org_id" in table.c:
                row["org_id"] = event.org_id
            upsert_sync(conn, table, row)
        case RoleEnded():
            conn.execute(
                delete(table).where(
                    table.c.person_id == event.person_id,
                    table.c.unit_id == event.unit_id,
                    table.c.role == event.role.value,
                )
            )
