"""The keeper's automatic payouts: its batches (signed transactions) and their leaves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create `payout_batches` and `payout_leaves`."""
    op.create_table(
        "payout_batches",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(66), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("tx_nonce", sa.BigInteger(), nullable=False),
        sa.Column("prior_hashes", sa.Text(), server_default="[]", nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("payees", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("mined_block", sa.BigInteger(), nullable=True),
        sa.Column("mined_at", sa.BigInteger(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("fee_paid", sa.String(length=78), nullable=True),
        sa.Column("paid_count", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_payout_batches_epoch", "payout_batches", ["epoch"])
    op.create_index("ix_payout_batches_status", "payout_batches", ["status"])
    op.create_table(
        "payout_leaves",
        sa.Column("batch_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(42), primary_key=True),
        sa.Column("token", sa.String(42), primary_key=True),
        sa.Column("cumulative", sa.String(length=78), nullable=False),
        sa.Column("amount", sa.String(length=78), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=True),
    )
    op.create_index("ix_payout_leaves_account", "payout_leaves", ["account", "token"])


def downgrade() -> None:
    """Back to 0003."""
    op.drop_index("ix_payout_leaves_account", table_name="payout_leaves")
    op.drop_table("payout_leaves")
    op.drop_index("ix_payout_batches_status", table_name="payout_batches")
    op.drop_index("ix_payout_batches_epoch", table_name="payout_batches")
    op.drop_table("payout_batches")
