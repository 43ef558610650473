"""projection quarantine: the stream messages the log projection refused and skipped

A message whose context, aggregate, source or payload is not what its subject allows, or
that does not decode, is recorded here (sequence, subject, reason, time; never its content)
and skipped; `stafett projections quarantine log` lists them (docs/operators.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

from stafett_shared.db import create_quarantine_table_op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_quarantine_table_op()


def downgrade() -> None:
    op.drop_table("projection_quarantine")
