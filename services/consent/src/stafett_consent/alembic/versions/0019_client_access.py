"""what an agency's client may be given (``clients.scopes``, ``sectors``, ``purposes``)

``directory.client_registered`` now carries the scopes a client may use, the services
(sectors) it works for and the legal grounds it serves
(docs/decisions/0039-what-a-client-may-see.md); the read model keeps them for the access
policy. Clients registered before this revision keep ``NULL``, which gives them no case data,
as before; loading the region document again with the new fields registers them anew.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_COLUMNS = ("scopes", "sectors", "purposes")


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
