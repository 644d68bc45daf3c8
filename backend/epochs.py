"""Closing an epoch: freeze what is due, cut the receipts, settle, build the tree, store it all.

An epoch is computed from a fixed cut of the store's data: purchases indexed through the
indexer's cursor block, receipts up to a receipt id, and the purchases frozen so far. The
cut is taken under a lock (see `receipt_sink`), so every receipt is either inside it or arrives
after the freeze it may depend on. The stored epoch (root, leaves, tree nodes) is what the
oracle posts, what proofs are served from, and what `publication` renders for auditors.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.orm import Session

from backend import running_totals
from backend.db import Database
from backend.errors import OracleError
from backend.merkle import DUMP_FORMAT, LEAF_ENCODING, MerkleTree, proof_at
from backend.models import (
    LIVE,
    Epoch,
    EpochLeaf,
    EpochSettlement,
    EpochStatus,
    FrozenPurchase,
    IndexerCursor,
    Product,
    Purchase,
    StoredReceipt,
    table,
)
from backend.publication import PUBLICATION_FORMAT, Publication
from backend.settlement import EMPTY, PurchaseTerms, Settled, earnings_tree, settle, token_totals
from tracker.addresses import checksum

log = logging.getLogger(__name__)

NODE = 32


@dataclass(frozen=True)
class Cut:
    """The fixed inputs of one epoch."""

    number: int
    cutoff: int  # chain time of the cursor block: settlement windows are measured against it
    block_number: int
    receipt_cut: int
    settle_after: int


def take_cut(db: Database, number: int, settle_after: int, store_account: str) -> Cut:
    """Freeze the purchases whose window has passed and fix the receipt cut, in one transaction."""
    with db.writer() as session:
        if not db.is_sqlite:
            # Waits for receipt batches in flight and holds new ones until the freeze is committed.
            session.execute(text("LOCK TABLE receipts IN SHARE MODE"))
        cursor = session.get(IndexerCursor, 1)
        if cursor is None:
            raise OracleError("the indexer has not read the chain yet; start it and wait for it")
        cutoff, block = cursor.block_timestamp, cursor.block_number
        due = session.scalars(
            select(Purchase.id)
            .outerjoin(FrozenPurchase, FrozenPurchase.purchase_id == Purchase.id)
            .where(
                # Below the last epoch's open_from every purchase is frozen: an index range, not history.
                Purchase.id >= running_totals.open_from(session, number),
                Purchase.block_number <= block,
                Purchase.timestamp <= cutoff - settle_after,
                FrozenPurchase.purchase_id.is_(None),
            )
        ).all()
        if due:
            recipient = store_account.lower()
            session.execute(
                insert(table(FrozenPurchase)),
                [{"purchase_id": pid, "epoch": number, "recipient": recipient} for pid in due],
            )
        receipt_cut = session.scalar(select(func.max(StoredReceipt.id))) or 0
    return Cut(number, cutoff, block, receipt_cut, settle_after)


def load_terms(session: Session, cut: Cut) -> dict[int, PurchaseTerms]:
    """Every purchase the cut covers, with its product's length and whether it is frozen."""
    rows = session.execute(
        select(
            Purchase.id,
            Purchase.buyer,
            Purchase.token,
            Purchase.seeder_pool,
            Product.size,
            FrozenPurchase.recipient,
        )
        .join(Product, Product.id == Purchase.product_id)
        .outerjoin(
            FrozenPurchase,
            and_(FrozenPurchase.purchase_id == Purchase.id, FrozenPurchase.epoch <= cut.number),
        )
        .where(Purchase.block_number <= cut.block_number)
    ).tuples()
    return {
        pid: PurchaseTerms(pid, buyer, token, pool, size, recipient is not None, recipient or "")
        for pid, buyer, token, pool, size, recipient in rows
    }


def load_credits(session: Session, receipt_cut: int) -> Iterator[tuple[int, str, str, int]]:
    """(purchase, seeder, signer, credited) as of the cut: credits only grow, so the max counts."""
    return iter(
        session.execute(
            select(
                StoredReceipt.purchase_id,
                StoredReceipt.seeder,
                StoredReceipt.signer,
                func.max(StoredReceipt.credited),
            )
            .where(StoredReceipt.id <= receipt_cut)
            .group_by(StoredReceipt.purchase_id, StoredReceipt.seeder, StoredReceipt.signer)
        ).tuples()
    )


def compute(
    terms: dict[int, PurchaseTerms], credits: Iterator[tuple[int, str, str, int]], store_account: str
) -> dict[tuple[str, str], int]:
    """Earnings from the cut; only credits signed by the purchase's current buyer count."""

    def valid() -> Iterator[tuple[int, str, int]]:
        for purchase_id, seeder, signer, credited in credits:
            purchase = terms.get(purchase_id)
            if purchase is not None and purchase.buyer == signer:
                yield purchase_id, seeder, credited

    return settle(terms, valid(), store_account.lower())


def latest_epoch(session: Session, statuses: tuple[str, ...] = LIVE) -> Epoch | None:
    """The newest epoch in one of `statuses`."""
    return session.scalars(
        select(Epoch).where(Epoch.status.in_(statuses)).order_by(Epoch.number.desc()).limit(1)
    ).first()


def leaf_amounts(session: Session, number: int) -> dict[tuple[str, str], int]:
    """An epoch's leaves as (account, token) -> amount."""
    rows = session.execute(
        select(EpochLeaf.account, EpochLeaf.token, EpochLeaf.amount).where(EpochLeaf.epoch == number)
    ).tuples()
    return {(account, token): amount for account, token, amount in rows}


def full_earnings(db: Database, cut: Cut, store_account: str) -> dict[tuple[str, str], int]:
    """An epoch's earnings recomputed from every purchase and receipt ever: the reference the
    incremental settlement must equal (tests and `bench/settlement.py`; memory grows with history)."""
    with db.reader() as session:
        return compute(load_terms(session, cut), load_credits(session, cut.receipt_cut), store_account)


def close_epoch(
    db: Database, number: int, *, settle_after: int, store_account: str, data_uri: str
) -> Epoch | None:
    """Compute and store epoch `number`; None when nobody earned anything new since the last one.

    Earnings come from the previous epoch's settled totals, the purchases frozen since and the
    open ones (`backend.running_totals`), never from all history."""
    with running_totals.gc_paused():
        return _close(db, number, settle_after=settle_after, store_account=store_account, data_uri=data_uri)


def _close(
    db: Database, number: int, *, settle_after: int, store_account: str, data_uri: str
) -> Epoch | None:
    started = time.perf_counter()
    cut = take_cut(db, number, settle_after, store_account)
    with db.reader() as session:
        settlement = running_totals.settle_cut(session, cut, store_account)
        previous = latest_epoch(session, (EpochStatus.POSTED,))
        previous_amounts = leaf_amounts(session, previous.number) if previous else {}
    earnings = settlement.earnings
    tree = earnings_tree(earnings)
    if tree is None:
        log.info("epoch %d: nobody has earned anything yet", number)
        return None
    for key, amount in previous_amounts.items():
        if earnings.get(key, 0) < amount:
            raise OracleError(
                f"epoch {number} would lower {key[0]}'s earnings in {key[1]} below epoch "
                f"{previous.number if previous else '?'}'s ({earnings.get(key, 0)} < {amount}); refusing"
            )
    del previous_amounts
    root = "0x" + tree.root.hex()
    now = int(time.time())
    with db.writer() as session:
        last = latest_epoch(session)
        if last is not None and last.root == root:
            log.info("epoch %d: same root as epoch %d, nothing to post", number, last.number)
            return None
        if session.get(Epoch, number) is not None:
            raise OracleError(f"epoch {number} exists already")
        epoch = Epoch(
            number=number,
            status=EpochStatus.CLOSED,
            root=root,
            cutoff=cut.cutoff,
            block_number=cut.block_number,
            receipt_cut=cut.receipt_cut,
            settle_after=cut.settle_after,
            store_account=store_account.lower(),
            totals=json.dumps({t: str(v) for t, v in token_totals(earnings).items()}),
            leaf_count=len(tree.leaves),
            tree_nodes=b"".join(tree.tree),
            data_uri=data_uri,
            created_at=now,
            updated_at=now,
        )
        session.add(epoch)
        session.flush()
        running_totals.bulk_insert(
            session,
            table(EpochLeaf),
            ("epoch", "account", "token", "amount", "tree_index"),
            (
                (number, account, token, amount, index)
                for (account, token, amount), index in zip(tree.leaves, tree.tree_index, strict=True)
            ),
        )
        running_totals.store_settled(session, settlement)
    log.info(
        "epoch %d closed: root %s, %d leaves, %d purchases settled (%d newly frozen), in %.2f s",
        number,
        root,
        len(tree.leaves),
        settlement.purchases,
        settlement.newly_frozen,
        time.perf_counter() - started,
    )
    return epoch


# ----- reading stored epochs -----


def nodes_of(epoch: Epoch) -> list[bytes]:
    """The epoch's tree nodes."""
    blob = epoch.tree_nodes
    return [blob[i : i + NODE] for i in range(0, len(blob), NODE)]


@dataclass(frozen=True)
class Proof:
    """What `claim` needs for one leaf."""

    epoch: int
    root: str
    account: str
    token: str
    cumulative_amount: int
    proof: list[str]


def proof_for(session: Session, epoch: Epoch, account: str, token: str) -> Proof | None:
    """The proof of (account, token) in a stored epoch, or None when it has no leaf there."""
    leaf = session.get(EpochLeaf, (epoch.number, account.lower(), token.lower()))
    if leaf is None:
        return None
    path = proof_at(nodes_of(epoch), leaf.tree_index)
    return Proof(
        epoch.number, epoch.root, leaf.account, leaf.token, leaf.amount, ["0x" + p.hex() for p in path]
    )


def dump_of(session: Session, epoch: Epoch) -> dict[str, Any]:
    """The epoch's tree in the `StandardMerkleTree.dump()` format, values in canonical order."""
    rows = session.execute(
        select(EpochLeaf.account, EpochLeaf.token, EpochLeaf.amount, EpochLeaf.tree_index)
        .where(EpochLeaf.epoch == epoch.number)
        .order_by(EpochLeaf.token, EpochLeaf.account)
    ).tuples()
    return {
        "format": DUMP_FORMAT,
        "leafEncoding": list(LEAF_ENCODING),
        "tree": ["0x" + node.hex() for node in nodes_of(epoch)],
        "values": [
            {"value": [checksum(account), checksum(token), str(amount)], "treeIndex": index}
            for account, token, amount, index in rows
        ],
    }


def published_receipts(session: Session, epoch: Epoch, base: Settled = EMPTY) -> list[dict[str, Any]]:
    """The receipts behind an epoch: the newest of each (purchase, seeder, signer) within its cut,
    of the purchases not settled in `base`."""
    newest = (
        select(func.max(StoredReceipt.id).label("id"))
        .where(StoredReceipt.id <= epoch.receipt_cut, StoredReceipt.purchase_id >= base.open_from)
        .group_by(StoredReceipt.purchase_id, StoredReceipt.seeder, StoredReceipt.signer)
        .subquery()
    )
    rows = session.scalars(
        select(StoredReceipt)
        .join(newest, newest.c.id == StoredReceipt.id)
        .order_by(StoredReceipt.purchase_id, StoredReceipt.seeder)
    )
    published = []
    for row in rows:
        if base.covers(row.purchase_id):
            continue
        entry: dict[str, Any] = {
            "purchase": row.purchase_id,
            "seeder": checksum(row.seeder),
            "bytes": row.signed_bytes,
            "sig": "0x" + row.signature.hex(),
            "credited": row.credited,
            "acceptedAt": row.accepted_at,
        }
        if row.key_address is not None and row.key_signature is not None:
            entry["key"] = {
                "key": checksum(row.key_address),
                "expires": row.key_expires,
                "sig": "0x" + row.key_signature.hex(),
            }
        published.append(entry)
    return published


def frozen_of(session: Session, epoch: Epoch, base: Settled = EMPTY) -> list[dict[str, Any]]:
    """Purchases frozen as of an epoch and not settled in `base`, with who got the unearned part."""
    rows = session.execute(
        select(FrozenPurchase.purchase_id, FrozenPurchase.recipient)
        .join(Purchase, Purchase.id == FrozenPurchase.purchase_id)
        .where(
            FrozenPurchase.epoch <= epoch.number,
            Purchase.block_number <= epoch.block_number,
            FrozenPurchase.purchase_id >= base.open_from,
        )
        .order_by(FrozenPurchase.purchase_id)
    ).tuples()
    return [
        {"purchase": pid, "recipient": checksum(recipient)} for pid, recipient in rows if not base.covers(pid)
    ]


def publication(session: Session, epoch: Epoch, chain_id: int, contract: str) -> Publication:
    """Everything needed to recompute an epoch's root from the chain and the settled totals it
    builds on: see `backend.audit`."""
    totals = json.loads(epoch.totals)
    settlement = session.get(EpochSettlement, epoch.number)
    base_row = None if settlement is None else session.get(EpochSettlement, settlement.base)
    base = running_totals.load_settled(base_row)
    chained: dict[str, Any] = {}
    if settlement is not None:
        chained["settled"] = settlement.digest
    if base_row is not None:
        chained["base"] = running_totals.stored_document(base_row)
        chained["previous"] = base_row.digest
    return Publication.model_validate(
        {
            "format": PUBLICATION_FORMAT,
            "epoch": epoch.number,
            "chainId": chain_id,
            "contract": contract,
            "root": epoch.root,
            "cutoff": epoch.cutoff,
            "block": epoch.block_number,
            "settleAfter": epoch.settle_after,
            "storeAccount": checksum(epoch.store_account),
            "totals": {checksum(token): amount for token, amount in totals.items()},
            "frozen": frozen_of(session, epoch, base),
            "tree": dump_of(session, epoch),
            "receipts": published_receipts(session, epoch, base),
            **chained,
        }
    )


def tree_of(session: Session, epoch: Epoch) -> MerkleTree:
    """The epoch's tree rebuilt from its leaves (checks the stored nodes)."""
    return MerkleTree.load(dump_of(session, epoch))
