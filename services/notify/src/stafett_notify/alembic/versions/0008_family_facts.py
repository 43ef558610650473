"""family facts: the child of a case and the child's guardians

Notices to families (decision 0032) go to the guardians with parental responsibility when a
case gets a new holder: the notify projection keeps which child a case is about
(``cases.child_id``) and each child's guardians (``guardians``). Ids only, no names. Cases
and guardians projected before this revision are learnt by rebuilding the projection
(``stafett projections rebuild notify``); until then no such notice is sent for them.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("child_id", sa.String(26), nullable=True))
    op.create_table(
        "guardians",
        sa.Column("child_id", sa.String(26), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("parental_responsibility", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("guardians")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("child_id")
