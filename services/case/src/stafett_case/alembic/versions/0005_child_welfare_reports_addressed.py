"""reports of concern addressed to a child welfare service, with their receipt

``child_welfare_reports`` gains the child welfare unit a report was sent to, its encrypted
text, the case's organisation and unit when it was sent, and its receipt (status ``sent`` or
``received``, when and by whom); ``child_welfare_services`` keeps the unit each organisation
names for its reports (the region document's ``child_welfare_unit_id``). The text of reports
sent before this revision is only in the stream, so this empties the case projection's
tables and its position, as 0003 does: the service replays the stream at start, before it
answers. Idempotency keys and the record of deadlines already published are not read
models and stay.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The case projection's tables at this revision, but deadlines_sent (no foreign keys).
READ_MODELS = (
    "cases",
    "team",
    "measures",
    "evaluations",
    "handovers",
    "level_history",
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
    with op.batch_alter_table("child_welfare_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("from_org_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("from_unit_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="sent")
        )
        batch_op.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("received_by", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_child_welfare_reports_inbox", ["unit_id", "report_id"], unique=False
        )
    op.create_table(
        "child_welfare_services",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("child_welfare_services")
    with op.batch_alter_table("child_welfare_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_child_welfare_reports_inbox")
        batch_op.drop_column("received_by")
        batch_op.drop_column("received_at")
        batch_op.drop_column("status")
        batch_op.drop_column("from_unit_id")
        batch_op.drop_column("from_org_id")
        batch_op.drop_column("text")
        batch_op.drop_column("unit_id")
