"""consent renewals and expiry reminders

``consents`` learns which consent a consent renews (``renews``) and whether its grantors have
been reminded that it ends (``reminded``), for the expiry loop and the consent list
(docs/decisions/0032-consent-renewal.md). No ``ConsentRequested`` carried ``renews`` and no
reminder was written before this revision, so the read models need no replay.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renews", sa.String(26), nullable=True))
        batch_op.add_column(
            sa.Column("reminded", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_consents_renews", ["renews"])


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_renews")
        batch_op.drop_column("reminded")
        batch_op.drop_column("renews")
