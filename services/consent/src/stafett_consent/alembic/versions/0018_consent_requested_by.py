"""who asked for a consent (``consents.requested_by``)

``consent.requested`` has always named the staff member who asked (``requested_by``); the
read model now keeps it, so the consent list and a single consent can say who asks
(docs/decisions/0034-who-asks-and-what-for.md). Consents requested before this revision keep
``NULL`` until ``stafett projections rebuild consent`` replays the stream (docs/operators.md);
the read models are not emptied for it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("requested_by")
