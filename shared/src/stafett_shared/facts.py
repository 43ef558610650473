"""Facts that more than one service's read model derives from the same events, derived in one
place from the typed contracts, so that the read models cannot drift apart.

- :func:`history_from`: where the history a case's new holder may see starts, after a
  handover that the history did not travel with (the case and log read models).
- :func:`case_status`: a case's status after it closed or reopened.
- :func:`apply_role`: a staff member's roles in units, kept from the directory's
  ``RoleGranted`` and ``RoleEnded`` (a ``roles`` table of ``person_id``, ``unit_id`` and
  ``role``, and ``org_id`` where the table has that column).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, delete
from sqlalchemy.engine import Connection

from stafett_shared.contracts.case import CaseClosedEvent, CaseReopened, HandoverAccepted
from stafett_shared.contracts.directory import RoleEnded, RoleGranted
from stafett_shared.db import as_utc, upsert_sync

__all__ = ["apply_role", "case_status", "history_from"]


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
