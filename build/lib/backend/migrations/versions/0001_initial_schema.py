"""The initial schema: the chain cache, receipts and credits, epochs, listings and sign-in.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "auth_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    with op.batch_alter_table("auth_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_nonces_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_sessions_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_sessions_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "chain_blocks",
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "chain_events",
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_events_name"), ["name"], unique=False)

    op.create_table(
        "credits",
        sa.Column("purchase_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seeder", sa.String(length=42), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("signed_bytes", sa.String(length=78), nullable=False),
        sa.Column("credited", sa.BigInteger(), nullable=False),
        sa.Column("receipt_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id", "seeder"),
    )
    op.create_table(
        "epoch_leaves",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.String(length=78), nullable=False),
        sa.Column("tree_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("epoch", "account", "token"),
        sa.UniqueConstraint("epoch", "tree_index", name="uq_epoch_leaves_tree_index"),
    )
    with op.batch_alter_table("epoch_leaves", schema=None) as batch_op:
        batch_op.create_index("ix_epoch_leaves_account", ["account", "epoch"], unique=False)

    op.create_table(
        "epochs",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("cutoff", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("receipt_cut", sa.BigInteger(), nullable=False),
        sa.Column("settle_after", sa.BigInteger(), nullable=False),
        sa.Column("store_account", sa.String(length=42), nullable=False),
        sa.Column("totals", sa.Text(), nullable=False),
        sa.Column("leaf_count", sa.Integer(), nullable=False),
        sa.Column("tree_nodes", sa.LargeBinary(), nullable=False),
        sa.Column("data_uri", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=True),
        sa.Column("tx_nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_tokens", sa.Text(), nullable=True),
        sa.Column("posted_block", sa.BigInteger(), nullable=True),
        sa.Column("active_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_epochs_status"), ["status"], unique=False)

    op.create_table(
        "frozen_purchases",
        sa.Column("purchase_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id"),
    )
    with op.batch_alter_table("frozen_purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_frozen_purchases_epoch"), ["epoch"], unique=False)

    op.create_table(
        "indexer_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "listings",
        sa.Column("product_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("torrent", sa.LargeBinary(), nullable=False),
        sa.Column("info_hash", sa.String(length=40), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("total_length", sa.String(length=78), nullable=False),
        sa.Column("registered_by", sa.String(length=42), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("product_id"),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_listings_info_hash"), ["info_hash"], unique=False)

    op.create_table(
        "passkeys",
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("passkey", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("wallet"),
        sa.UniqueConstraint("passkey"),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seller", sa.String(length=42), nullable=False),
        sa.Column("infohash", sa.String(length=64), nullable=False),
        sa.Column("size", sa.String(length=78), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("price", sa.String(length=78), nullable=False),
        sa.Column("discount_bps", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("metadata_uri", sa.Text(), nullable=False),
        sa.Column("listed_block", sa.BigInteger(), nullable=False),
        sa.Column("listed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("infohash"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_seller"), ["seller"], unique=False)

    op.create_table(
        "purchases",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("price", sa.String(length=78), nullable=False),
        sa.Column("seller_amount", sa.String(length=78), nullable=False),
        sa.Column("operator_fee", sa.String(length=78), nullable=False),
        sa.Column("seeder_pool", sa.String(length=78), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchases_block_number"), ["block_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchases_buyer"), ["buyer"], unique=False)
        batch_op.create_index("ix_purchases_buyer_product", ["buyer", "product_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchases_product_id"), ["product_id"], unique=False)

    op.create_table(
        "receipts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("purchase_id", sa.BigInteger(), nullable=False),
        sa.Column("seeder", sa.String(length=42), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("signed_bytes", sa.String(length=78), nullable=False),
        sa.Column("credited", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("key_address", sa.String(length=42), nullable=True),
        sa.Column("key_expires", sa.String(length=78), nullable=True),
        sa.Column("key_signature", sa.LargeBinary(), nullable=True),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index("ix_receipts_pair", ["purchase_id", "seeder", "id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_receipts_pair")

    op.drop_table("receipts")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_product_id"))
        batch_op.drop_index("ix_purchases_buyer_product")
        batch_op.drop_index(batch_op.f("ix_purchases_buyer"))
        batch_op.drop_index(batch_op.f("ix_purchases_block_number"))

    op.drop_table("purchases")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_seller"))

    op.drop_table("products")
    op.drop_table("passkeys")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_info_hash"))

    op.drop_table("listings")
    op.drop_table("indexer_cursor")
    with op.batch_alter_table("frozen_purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_frozen_purchases_epoch"))

    op.drop_table("frozen_purchases")
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epochs_status"))

    op.drop_table("epochs")
    with op.batch_alter_table("epoch_leaves", schema=None) as batch_op:
        batch_op.drop_index("ix_epoch_leaves_account")

    op.drop_table("epoch_leaves")
    op.drop_table("credits")
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_events_name"))

    op.drop_table("chain_events")
    op.drop_table("chain_blocks")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_auth_sessions_address"))

    op.drop_table("auth_sessions")
    with op.batch_alter_table("auth_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_nonces_expires_at"))

    op.drop_table("auth_nonces")
