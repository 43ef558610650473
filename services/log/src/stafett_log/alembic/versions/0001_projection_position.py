"""Projection position table.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from stafett_shared.db import create_position_table_op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_position_table_op()


def downgrade() -> None:
    op.drop_table("projection_position")
