"""child registrants: who registered a child, first or again, by national id

Opening a case or identifying a child by national id finds only children the caller has
registered (decision 0029). Registrations made before this revision are found once the case
projection is rebuilt (`stafett projections rebuild case`); until then a registrant
registers the child again.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_registrants",
        sa.Column("national_id_index", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("child_registrants")
