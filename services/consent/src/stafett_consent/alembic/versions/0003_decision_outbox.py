"""decision outbox: denials recorded but not yet published as events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_outbox",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("tenant", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("decision_id"),
    )


def downgrade() -> None:
    op.drop_table("decision_outbox")
