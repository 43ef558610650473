"""level history and the handover timeline

``level_history`` keeps every level a case has had (the opening level first) with the
encrypted reason and who changed it; ``handovers`` gains the sender's unit and the encrypted
reason of a decline. Both are filled from events already in the stream by a replay: this
empties the case projection's tables and its position, so the service replays the stream at
start before it answers. Idempotency keys and the record of deadlines already published are
not read models and stay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The case projection's tables at this revision, but deadlines_sent (no foreign keys).
READ_MODELS = (
    "cases",
    "team",
    "measures",
    "evaluations",
    "handovers",
    "child_welfare_reports",
    "units",
    "roles",
    "children",
    "consents",
    "log_entries",
)


def upgrade() -> None:
    for table in READ_MODELS:
        op.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - names fixed above
    op.execute(sa.text("UPDATE projection_position SET last_seq = 0 WHERE name = 'case'"))
    op.create_table(
        "level_history",
        sa.Column("case_id", sa.String(length=26), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("previous_level", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_person_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "seq"),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_unit_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("decline_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_column("decline_reason")
        batch_op.drop_column("from_unit_id")
    op.drop_table("level_history")
