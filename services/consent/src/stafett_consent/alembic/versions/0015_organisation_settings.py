"""organisations' own settings (youth consent ages, consent lengths)

An organisation's part of the region document may set its own policy settings; the directory
publishes them as ``directory.organisation_settings_set`` and the consent service keeps them
as a JSON column of ``organisations`` (``NULL``: the region's settings throughout). No event
of that type was written before this revision, so the read models need no replay.

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("settings")
