"""access record entries: which entries each read served

The who-read view counts, for each read, only the entries the viewer may see themselves;
this table keeps the entry ids of each access record. Records read before it have none:
run `stafett projections rebuild log` after upgrading to fill it from the stream.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_record_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("entry_id", sa.String(26), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("access_record_entries")
