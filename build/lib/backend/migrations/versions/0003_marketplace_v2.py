"""Marketplace v2: 64-bit epochs, products' terms version, duplicate infohashes on chain.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Epoch numbers are uint64 on chain; INTEGER is 32-bit on PostgreSQL.
EPOCH_COLUMNS = [("epochs", "number"), ("epoch_leaves", "epoch"), ("frozen_purchases", "epoch")]
# The name SQLite's batch mode gives the unnamed unique constraint of `products.infohash`.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _drop_products_infohash_unique() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("products", naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint("uq_products_infohash", type_="unique")
    else:
        op.drop_constraint("products_infohash_key", "products", type_="unique")


def upgrade() -> None:
    """Widen epoch numbers; let several products share an infohash (one registered listing each);
    record each product's terms version."""
    for table, column in EPOCH_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
            )
    _drop_products_infohash_unique()
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_infohash"), ["infohash"], unique=False)
        batch_op.add_column(sa.Column("terms_version", sa.BigInteger(), server_default="1", nullable=False))
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_info_hash"))
        batch_op.create_index(batch_op.f("ix_listings_info_hash"), ["info_hash"], unique=True)


def downgrade() -> None:
    """Back to 0002 (fails if two products share an infohash or an epoch is beyond 32 bits)."""
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_info_hash"))
        batch_op.create_index(batch_op.f("ix_listings_info_hash"), ["info_hash"], unique=False)
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("terms_version")
        batch_op.drop_index(batch_op.f("ix_products_infohash"))
        batch_op.create_unique_constraint("products_infohash_key", ["infohash"])
    for table, column in EPOCH_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
            )
