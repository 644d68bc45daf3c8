"""The store's tables.

Two kinds of data live here. Chain data (`products`, `purchases`, `chain_events`, ...) is a
cache of the Marketplace's events that the indexer may delete and rebuild after a reorg. Store
data (`receipts`, `credits`, `frozen_purchases`, `epochs`, ...) is the store's own and is never
touched by a reorg; it refers to purchases by id only, without foreign keys, for that reason.

Addresses are lowercase 0x-hex strings; unsigned amounts that may pass 2**63 use `Uint`; times
are Unix seconds.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import cast

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.db import Uint
from backend.errors import OracleError

ADDRESS = String(42)
HASH = String(66)
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AUTO_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def table(model: type[Base]) -> Table:
    """A model's Core table (for bulk statements, which skip the ORM's per-object work)."""
    return cast(Table, model.__table__)


# ----- chain data (rebuilt by the indexer) -----


class IndexerCursor(Base):
    """How far the indexer has read: the last block whose events are all stored."""

    __tablename__ = "indexer_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(ADDRESS)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(HASH)
    block_timestamp: Mapped[int] = mapped_column(BigInteger, default=0)


class ChainBlock(Base):
    """A block the indexer has seen (with events, or as a cursor): to find a reorg's fork point."""

    __tablename__ = "chain_blocks"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(HASH)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class ChainEvent(Base):
    """One Marketplace log, decoded; the source the derived tables are rebuilt from."""

    __tablename__ = "chain_events"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_hash: Mapped[str] = mapped_column(HASH)
    tx_hash: Mapped[str] = mapped_column(HASH)
    name: Mapped[str] = mapped_column(String(32), index=True)
    args: Mapped[str] = mapped_column(Text)  # JSON; integers as decimal strings


class Product(Base):
    """A listing as the contract knows it (ProductListed, then ProductUpdated/ActiveSet)."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seller: Mapped[str] = mapped_column(ADDRESS, index=True)
    # bytes32, lowercase hex. Not unique: the chain lets anyone list any infohash; the store serves
    # only the listing whose seller registered the info dictionary (`Listing.info_hash` is unique).
    infohash: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Uint)
    token: Mapped[str] = mapped_column(ADDRESS)
    price: Mapped[int] = mapped_column(Uint)
    discount_bps: Mapped[int] = mapped_column(Integer)
    terms_version: Mapped[int] = mapped_column(BigInteger, server_default="1")  # what a purchase must name
    active: Mapped[bool] = mapped_column(Boolean)
    metadata_uri: Mapped[str] = mapped_column(Text)
    listed_block: Mapped[int] = mapped_column(BigInteger)
    listed_at: Mapped[int] = mapped_column(BigInteger)


class Purchase(Base):
    """A `Purchased` event."""

    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    product_id: Mapped[int] = mapped_column(BigInteger, index=True)
    buyer: Mapped[str] = mapped_column(ADDRESS, index=True)
    token: Mapped[str] = mapped_column(ADDRESS)
    price: Mapped[int] = mapped_column(Uint)
    seller_amount: Mapped[int] = mapped_column(Uint)
    operator_fee: Mapped[int] = mapped_column(Uint)
    seeder_pool: Mapped[int] = mapped_column(Uint)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    tx_hash: Mapped[str] = mapped_column(HASH)
    log_index: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_purchases_buyer_product", "buyer", "product_id"),)


# ----- store data (never touched by reorgs) -----


class Listing(Base):
    """A seller's description and `.torrent` of a listed product."""

    __tablename__ = "listings"

    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    torrent: Mapped[bytes] = mapped_column(LargeBinary)
    # First registration wins: a second product with the same content (a copy of someone's
    # listing, or the seller's own relisting) cannot be registered while this one is.
    info_hash: Mapped[str] = mapped_column(String(40), index=True, unique=True)
    name: Mapped[str] = mapped_column(Text)
    total_length: Mapped[int] = mapped_column(Uint)
    registered_by: Mapped[str] = mapped_column(ADDRESS)
    registered_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Passkey(Base):
    """A wallet's personal tracker passkey."""

    __tablename__ = "passkeys"

    wallet: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    passkey: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuthNonce(Base):
    """A sign-in nonce handed out and not yet used."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AuthSession(Base):
    """A signed-in wallet; the bearer token is stored hashed."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(ADDRESS, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class StoredReceipt(Base):
    """An accepted receipt that raised its (purchase, seeder) credit: append-only, signatures kept."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    purchase_id: Mapped[int] = mapped_column(BigInteger)
    seeder: Mapped[str] = mapped_column(ADDRESS)
    signer: Mapped[str] = mapped_column(ADDRESS)  # the buyer standing behind it
    signed_bytes: Mapped[int] = mapped_column(Uint)
    credited: Mapped[int] = mapped_column(BigInteger)  # cumulative credit for the pair after this one
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    key_address: Mapped[str | None] = mapped_column(ADDRESS)
    key_expires: Mapped[int | None] = mapped_column(Uint)
    key_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    accepted_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_receipts_pair", "purchase_id", "seeder", "id"),)


class Credit(Base):
    """The bytes currently credited to one seeder for one purchase (the newest receipt's credit)."""

    __tablename__ = "credits"

    purchase_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seeder: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    signer: Mapped[str] = mapped_column(ADDRESS)
    signed_bytes: Mapped[int] = mapped_column(Uint)
    credited: Mapped[int] = mapped_column(BigInteger)
    receipt_id: Mapped[int] = mapped_column(BigInteger)


class FrozenPurchase(Base):
    """A purchase past its settlement window: its earnings are final from `epoch` on, and the part
    of its pool nobody earned goes to `recipient` (the store's account when it froze)."""

    __tablename__ = "frozen_purchases"

    purchase_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger, index=True)  # uint64 on chain
    recipient: Mapped[str] = mapped_column(ADDRESS, server_default="")  # "": the epoch's store account


class EpochStatus(StrEnum):
    """How far posting an epoch's root has got (the `epochs.status` column)."""

    CLOSED = "closed"  # its tree is stored; nothing signed yet (or signed again after a revert)
    SENDING = "sending"  # a signed transaction is stored; it may or may not have been broadcast
    POSTED = "posted"  # the root is on chain
    FAILED = "failed"  # the contract can never accept it; a later epoch supersedes it
    CANCELED = "canceled"  # posted, then canceled by the guardian


# Every change of status the oracle may make; anything else is a bug and is refused.
EPOCH_TRANSITIONS: dict[EpochStatus, frozenset[EpochStatus]] = {
    EpochStatus.CLOSED: frozenset({EpochStatus.SENDING, EpochStatus.POSTED, EpochStatus.FAILED}),
    # -> CLOSED: reverted or its nonce went elsewhere, sign again; -> SENDING: a fee replacement.
    EpochStatus.SENDING: frozenset(
        {EpochStatus.SENDING, EpochStatus.POSTED, EpochStatus.CLOSED, EpochStatus.FAILED}
    ),
    EpochStatus.POSTED: frozenset({EpochStatus.CANCELED}),
    EpochStatus.FAILED: frozenset(),
    EpochStatus.CANCELED: frozenset(),
}
UNFINISHED = (EpochStatus.CLOSED, EpochStatus.SENDING)
LIVE = (EpochStatus.CLOSED, EpochStatus.SENDING, EpochStatus.POSTED)


class Epoch(Base):
    """A closed epoch: its tree, and how far posting its root has got."""

    __tablename__ = "epochs"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # uint64 on chain
    status: Mapped[str] = mapped_column(String(16), index=True)
    root: Mapped[str] = mapped_column(HASH)
    cutoff: Mapped[int] = mapped_column(BigInteger)  # chain time the settlement window is measured at
    block_number: Mapped[int] = mapped_column(BigInteger)  # purchases indexed through this block
    receipt_cut: Mapped[int] = mapped_column(BigInteger)  # receipts with id <= this one count
    settle_after: Mapped[int] = mapped_column(BigInteger)
    store_account: Mapped[str] = mapped_column(ADDRESS)
    totals: Mapped[str] = mapped_column(Text)  # JSON {token: decimal string}
    leaf_count: Mapped[int] = mapped_column(Integer)
    tree_nodes: Mapped[bytes] = mapped_column(LargeBinary)  # the dump's nodes, 32 bytes each
    data_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(HASH)
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary)
    tx_nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_tokens: Mapped[str | None] = mapped_column(Text)  # JSON [token, ...] as sent
    posted_block: Mapped[int | None] = mapped_column(BigInteger)
    active_at: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    def move_to(self, status: EpochStatus) -> None:
        """Change the status, refusing a change `EPOCH_TRANSITIONS` does not allow."""
        current = EpochStatus(self.status)
        if status not in EPOCH_TRANSITIONS[current]:
            raise OracleError(f"epoch {self.number} cannot go from {current} to {status}")
        self.status = status
        self.updated_at = int(time.time())


class EpochLeaf(Base):
    """One leaf of an epoch's tree."""

    __tablename__ = "epoch_leaves"

    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    token: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    amount: Mapped[int] = mapped_column(Uint)
    tree_index: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_epoch_leaves_account", "account", "epoch"),
        UniqueConstraint("epoch", "tree_index", name="uq_epoch_leaves_tree_index"),
    )


# ----- the keeper's automatic payouts (store data) -----


class PayoutStatus(StrEnum):
    """How far one payout batch has got (the `payout_batches.status` column)."""

    SENDING = "sending"  # signed and stored; it may or may not have been broadcast
    MINED = "mined"  # mined and succeeded: its leaves' outcomes are recorded
    REVERTED = "reverted"  # mined and reverted (a canceled root, paused): its leaves are free again
    DROPPED = "dropped"  # its nonce went to another transaction and none of its versions was mined


PAYOUT_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    # -> SENDING: a fee replacement (same nonce, higher fees).
    PayoutStatus.SENDING: frozenset(
        {PayoutStatus.SENDING, PayoutStatus.MINED, PayoutStatus.REVERTED, PayoutStatus.DROPPED}
    ),
    PayoutStatus.MINED: frozenset(),
    PayoutStatus.REVERTED: frozenset(),
    PayoutStatus.DROPPED: frozenset(),
}


class PayoutBatch(Base):
    """One `payout` transaction of the keeper: stored signed before it is broadcast."""

    __tablename__ = "payout_batches"

    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    epoch: Mapped[int] = mapped_column(BigInteger, index=True)
    root: Mapped[str] = mapped_column(HASH)
    status: Mapped[str] = mapped_column(String(16), index=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    tx_hash: Mapped[str] = mapped_column(HASH)
    tx_nonce: Mapped[int] = mapped_column(BigInteger)
    prior_hashes: Mapped[str] = mapped_column(Text, server_default="[]")  # JSON: the versions it replaced
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    payees: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    mined_block: Mapped[int | None] = mapped_column(BigInteger)
    mined_at: Mapped[int | None] = mapped_column(BigInteger)  # the block's timestamp
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    fee_paid: Mapped[int | None] = mapped_column(Uint)  # wei: gas used times the effective price
    paid_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    def move_to(self, status: PayoutStatus) -> None:
        """Change the status, refusing a change `PAYOUT_TRANSITIONS` does not allow."""
        current = PayoutStatus(self.status)
        if status not in PAYOUT_TRANSITIONS[current]:
            raise OracleError(f"payout batch {self.id} cannot go from {current} to {status}")
        self.status = status
        self.updated_at = int(time.time())


class PayoutOutcome(StrEnum):
    """What a mined batch did with one of its leaves."""

    PAID = "paid"
    SKIPPED = "skipped"  # paid up already (a claim got there first) or the account is blocked
    FAILED = "failed"  # the ETH send failed: the amount stays claimable, the account is blocked


class PayoutLeaf(Base):
    """One leaf in one payout batch: what it was to pay, and, once mined, what it did."""

    __tablename__ = "payout_leaves"

    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    token: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    cumulative: Mapped[int] = mapped_column(Uint)
    amount: Mapped[int] = mapped_column(Uint)  # its unpaid part when the batch was planned
    outcome: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (Index("ix_payout_leaves_account", "account", "token"),)


class EpochSettlement(Base):
    """An epoch's settled totals: what the purchases frozen as of it paid out per (account, token).
    A frozen purchase's payout never changes, so the next epoch starts from these totals."""

    __tablename__ = "epoch_settlements"

    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    base: Mapped[int] = mapped_column(BigInteger)  # the epoch whose totals it built on; 0: none
    # Every purchase below this id is frozen as of the epoch (and the document's `frozenAbove`).
    open_from: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(HASH)  # sha256 of the canonical document, 0x-hex
    document: Mapped[bytes] = mapped_column(LargeBinary)  # the canonical JSON, zlib-compressed
