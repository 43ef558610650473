"""organisation reminders: an organisation's own reminder times for the case's deadlines

An organisation's administrator may set the reminder times (level 0, a measure's evaluation,
an unanswered handover, an inactive case) in its settings (decision 0030); the case service
keeps them from ``directory.organisation_settings_set``. Settings set before this revision
are found once the case projection is rebuilt (`stafett projections rebuild case`); until
then the region's times apply.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisation_reminders",
        sa.Column("org_id", sa.String(32), primary_key=True),
        sa.Column("level0_days", sa.Integer, nullable=True),
        sa.Column("evaluation_warning_days", sa.Integer, nullable=True),
        sa.Column("handover_days", sa.Integer, nullable=True),
        sa.Column("inactive_days", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("organisation_reminders")
