"""entries' author kind: the youth's own words are marked as the child's

An entry the child of the case wrote themselves (decision 0033) carries ``author.kind``
``child`` in its event; the read model keeps it beside the author. Entries before it were
all written by staff (NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-18 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("author_kind", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("entries", "author_kind")
