"""organisations' guides and measure catalogues; staff names (encrypted) in the read model

The directory read by `GET /api/v1/directory` shows each organisation's handlingsveileder and
catalogue of measures, and the names of staff. Organisations gain two JSON columns, set by
the new `organisation_guide_set` and `organisation_measure_catalogue_set` events; staff gain
the name as the events carry it, encrypted with the staff member's own key. Names of staff
registered before this revision are only in the stream, so this empties the consent
projection's tables and its position, as 0004 does: the service replays the stream at
start, before it answers. Stop every instance of the consent service before upgrading.
Decision records and the outbox are not read models and stay.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The consent projection's tables at this revision (no foreign keys between them).
READ_MODELS = (
    "access_index",
    "audit_scopes",
    "emergency_grants",
    "entries",
    "consents",
    "team",
    "cases",
    "guardians",
    "children",
    "roles",
    "staff",
    "units",
    "organisations",
)


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guide", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("measure_catalogue", sa.JSON(), nullable=True))
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.Text(), nullable=True))
    for table in READ_MODELS:
        op.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - names fixed above
    op.execute(sa.text("UPDATE projection_position SET last_seq = 0 WHERE name = 'consent'"))


def downgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("name")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("measure_catalogue")
        batch_op.drop_column("guide")
