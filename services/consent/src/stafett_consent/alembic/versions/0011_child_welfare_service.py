"""organisations: the child welfare service named for reports of concern

The region document may name, per organisation, the child welfare unit that receives its
reports of concern (`child_welfare_unit_id`, e.g. an inter-municipal service); the directory
publishes it as `directory.organisation_child_welfare_service_set` and this column keeps it,
so that loading the document again sees what changed. No event of that type was written
before this revision, so the read models need no replay.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-15 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("child_welfare_unit_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("child_welfare_unit_id")
