"""idempotency keys: the first answer to a POST with an Idempotency-Key, per caller

A repeat of `POST /api/v1/notifications/{id}/read` or `POST /api/v1/webhooks` with the same
key (same caller, route and body) gets this answer and writes nothing; the key on another
request is 422 (stafett_shared.idempotency). The answer and the write are kept in one
transaction: notify's writes are not events, so no Nats-Msg-Id catches a repeat.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

from stafett_shared.idempotency import create_idempotency_table_op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_table_op()


def downgrade() -> None:
    op.drop_table("idempotency_keys")
