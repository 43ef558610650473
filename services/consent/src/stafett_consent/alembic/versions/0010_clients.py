"""clients: the agency clients the directory registers

The region document may list ``clients`` (a directory id ``client-…``, the organisation it
belongs to, a configured client issuer, the issuer's ``client_id`` and the consumer's
organisation number); the directory publishes them as ``directory.client_registered`` and
``client_unregistered``, and this table answers the client lookups of
``stafett.rpc.consent.login`` (issuer, client id and consumer to the client's id;
docs/decisions/0023-citizens-and-clients.md). No event of either type was written before
this revision, so the read models need no replay.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("registration", sa.String(length=64), nullable=False),
        sa.Column("issued_as", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("consumer_org", sa.String(length=9), nullable=False),
        sa.PrimaryKeyConstraint("registration"),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clients_issued_as"), ["issued_as"], unique=False)
        batch_op.create_index(batch_op.f("ix_clients_client"), ["client"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clients_client"))
        batch_op.drop_index(batch_op.f("ix_clients_issued_as"))
    op.drop_table("clients")
