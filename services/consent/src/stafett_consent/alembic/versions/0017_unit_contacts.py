"""units' contact details (phone, e-mail) for families

A unit in the region document may give its organisational phone number and e-mail address;
the directory carries them on ``directory.unit_registered`` and ``directory.unit_changed``
and the consent service keeps them as two columns of ``units`` (``NULL``: none given). Events
written before this revision have no contact details, so the read models need no replay.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-03 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_column("email")
        batch_op.drop_column("phone")
