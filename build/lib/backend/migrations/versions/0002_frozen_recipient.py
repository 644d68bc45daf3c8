"""Frozen purchases record who got the unearned part of their pool.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `frozen_purchases.recipient` ("" for rows frozen before: the epoch's store account)."""
    with op.batch_alter_table("frozen_purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient", sa.String(length=42), server_default="", nullable=False))


def downgrade() -> None:
    """Drop `frozen_purchases.recipient`."""
    with op.batch_alter_table("frozen_purchases", schema=None) as batch_op:
        batch_op.drop_column("recipient")
