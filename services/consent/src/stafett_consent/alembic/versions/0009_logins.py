"""logins: the staff issuers' logins the directory binds to staff members

A staff member in the region document may list ``logins`` (a configured issuer and the
subject its tokens carry); the directory publishes them as ``directory.login_bound`` and
``login_unbound``, and this table answers ``stafett.rpc.consent.login`` (issuer and subject
to person id; docs/decisions/0022). No event of either type was written before this
revision, so the read models need no replay.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-11 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logins",
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("login"),
    )
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logins_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logins_person_id"))
    op.drop_table("logins")
