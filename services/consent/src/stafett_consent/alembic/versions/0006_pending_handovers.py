"""pending handovers: the receiver of a pending handover may see its header

The consent service learns a case's pending handover (``case.handover_requested``, answered
by ``accepted``, ``declined`` or ``cancelled``) so that the policy can give its receiver
``case:handover`` (basis ``handover_addressee``; docs/decisions/0018). The handovers already
in the stream are learnt by a replay: this empties the consent projection's tables and its
position, as 0004 does, so the service replays the stream at start before it answers. Stop
every instance of the consent service before upgrading. Decision records and the outbox are
not read models and stay.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The consent projection's tables at this revision (no foreign keys between them).
READ_MODELS = (
    "access_index",
    "audit_scopes",
    "emergency_grants",
    "entries",
    "pending_handovers",
    "consents",
    "team",
    "cases",
    "guardians",
    "children",
    "roles",
    "staff",
    "units",
    "organisations",
)


def upgrade() -> None:
    op.create_table(
        "pending_handovers",
        sa.Column("case_id", sa.String(length=26), nullable=False),
        sa.Column("handover_id", sa.String(length=26), nullable=False),
        sa.Column("to_person_id", sa.String(length=64), nullable=False),
        sa.Column("to_unit_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("pending_handovers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_handovers_to_person_id"), ["to_person_id"], unique=False
        )
    for table in READ_MODELS:
        op.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - names fixed above
    op.execute(sa.text("UPDATE projection_position SET last_seq = 0 WHERE name = 'consent'"))


def downgrade() -> None:
    with op.batch_alter_table("pending_handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_handovers_to_person_id"))
    op.drop_table("pending_handovers")
