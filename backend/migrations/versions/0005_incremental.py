"""Incremental settlement: each epoch's settled totals of frozen purchases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add `epoch_settlements` (empty: the next epoch settles from nothing, once)."""
    op.create_table(
        "epoch_settlements",
        sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.Column("open_from", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("epoch"),
    )


def downgrade() -> None:
    """Back to 0004."""
    op.drop_table("epoch_settlements")
