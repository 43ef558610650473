"""emergency requests: a repeat within 30 days waits for a leader's approval

A second emergency grant to the same person on the same case within 30 days of the first is
published as ``consent.emergency_access_requested`` and holds only once a leader of the
case's unit approves it (``consent.emergency_access_approved``;
docs/decisions/0027-emergency-access-guardrails.md). This table keeps the requests and
whether they wait. No event of either type was written before this revision, so the read
models need no replay.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-16 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emergency_requests",
        sa.Column("grant_id", sa.String(length=26), nullable=False),
        sa.Column("case_id", sa.String(length=26), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("grant_id"),
    )
    with op.batch_alter_table("emergency_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_emergency_requests_person_case", ["person_id", "case_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("emergency_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_emergency_requests_person_case")
    op.drop_table("emergency_requests")
