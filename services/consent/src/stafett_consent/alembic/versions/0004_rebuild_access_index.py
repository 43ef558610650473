"""rebuild the consent read models: the access index missed emergency-grant cases

A change of a person's roles did not index again the cases the person held an emergency
grant on, though such a grant holds only while the person has a role somewhere. The index
could list a case that a single check denies (after the last role ended), or leave out one
it permits. This empties the consent projection's tables and its position, so the service
replays the stream at start, before it answers, with the corrected projection. Decision
records and the outbox are not read models and stay.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
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
    for table in READ_MODELS:
        op.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - names fixed above
    op.execute(sa.text("UPDATE projection_position SET last_seq = 0 WHERE name = 'consent'"))


def downgrade() -> None:
    """Nothing to undo: the read models are rebuilt from the stream either way."""
