"""decision records name the service that asked: `asked_by`

A decision asked over NATS names the asking service (`case`, `log`, `consent`, `notify`)
beside the principal; a decision asked over HTTP, and every record made before this
revision, has none. On SQLite the records live in a file of their own, which
`stafett_consent.decisions.create_records_schema` brings up to date at start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decision_records", sa.Column("asked_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decision_records") as batch:
        batch.drop_column("asked_by")
