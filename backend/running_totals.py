"""Settling an epoch from the previous epoch's running totals, not from all history.

A frozen purchase's payout is fixed (the receipt sink refuses receipts for it from the moment it
freezes), so each epoch stores what its frozen purchases paid out per (account, token)
(`epoch_settlements`) and the next epoch reads those totals, settles the purchases frozen since and
the open ones, and nothing older: its cost follows the epoch's work, not the store's history.
Purchases are read in id order in chunks, each with its receipts through an index range scan,
so memory follows the chunk and the number of accounts. The totals are stored as the canonical
document the publication carries (one compressed row per epoch, not a row per account). The root
is the full recomputation's, bit for bit (`tests/backend/test_settlement_properties.py` compares
them over random histories).
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, delete, func, insert, select
from sqlalchemy.orm import Session

from backend.models import (
    Epoch,
    EpochSettlement,
    EpochStatus,
    FrozenPurchase,
    Product,
    Purchase,
    StoredReceipt,
)
from backend.settlement import EMPTY, Earnings, PurchaseTerms, Settled, add_into, advance, canonical, settle

if TYPE_CHECKING:
    from backend.epochs import Cut

CHUNK = 20_000  # purchases per round trip


@dataclass(frozen=True)
class Settlement:
    """An epoch's earnings and the settled totals they build on and produce."""

    base: Settled
    settled: Settled
    earnings: Earnings
    purchases: int  # purchases settled in this epoch (newly frozen and open)
    newly_frozen: int  # how many of them froze since the base


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: an epoch allocates hundreds of thousands of tuples
    and none of them form cycles, yet each collection would walk them all, again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def base_row(session: Session, number: int) -> EpochSettlement | None:
    """The settlement of the newest stored epoch before `number` (a failed one is never a base)."""
    return session.scalars(
        select(EpochSettlement)
        .join(Epoch, Epoch.number == EpochSettlement.epoch)
        .where(EpochSettlement.epoch < number, Epoch.status != EpochStatus.FAILED)
        .order_by(EpochSettlement.epoch.desc())
        .limit(1)
    ).first()


def open_from(session: Session, number: int) -> int:
    """Every purchase below this id is frozen already: what epoch `number` need not look at."""
    row = base_row(session, number)
    return 0 if row is None else row.open_from


def load_settled(row: EpochSettlement | None) -> Settled:
    """An epoch's settled totals as stored."""
    return EMPTY if row is None else Settled.from_document(json.loads(zlib.decompress(row.document)))


def stored_document(row: EpochSettlement) -> dict[str, Any]:
    """An epoch's settled totals as published (the canonical document)."""
    document: dict[str, Any] = json.loads(zlib.decompress(row.document))
    return document


def _chunks(session: Session, cut: Cut, first: int) -> Iterator[list[tuple[Any, ...]]]:
    """(id, buyer, token, pool, size, frozen epoch, recipient) of the purchases from `first` on
    that the cut covers, in id order, CHUNK at a time."""
    after = first - 1
    while True:
        rows = session.execute(
            select(
                Purchase.id,
                Purchase.buyer,
                Purchase.token,
                Purchase.seeder_pool,
                Product.size,
                FrozenPurchase.epoch,
                FrozenPurchase.recipient,
            )
            .join(Product, Product.id == Purchase.product_id)
            .outerjoin(
                FrozenPurchase,
                and_(FrozenPurchase.purchase_id == Purchase.id, FrozenPurchase.epoch <= cut.number),
            )
            .where(Purchase.id > after, Purchase.block_number <= cut.block_number)
            .order_by(Purchase.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        yield [tuple(r) for r in rows]
        after = rows[-1][0]


def _credits(
    session: Session, first: int, last: int, receipt_cut: int, terms: dict[int, PurchaseTerms]
) -> Iterator[tuple[int, str, int]]:
    """(purchase, seeder, credited) of purchases `first`..`last` as of the cut, for those in
    `terms` and signed by their current buyer: credits only grow, so the max counts."""
    rows = session.execute(
        select(
            StoredReceipt.purchase_id,
            StoredReceipt.seeder,
            StoredReceipt.signer,
            func.max(StoredReceipt.credited),
        )
        .where(
            StoredReceipt.purchase_id >= first,
            StoredReceipt.purchase_id <= last,
            StoredReceipt.id <= receipt_cut,
        )
        .group_by(StoredReceipt.purchase_id, StoredReceipt.seeder, StoredReceipt.signer)
    ).tuples()
    for purchase_id, seeder, signer, credited in rows:
        purchase = terms.get(purchase_id)
        if purchase is not None and purchase.buyer == signer:
            yield purchase_id, seeder, credited


def settle_cut(session: Session, cut: Cut, store_account: str) -> Settlement:
    """Epoch `cut.number`'s earnings from the newest earlier epoch's settled totals."""
    base = load_settled(base_row(session, cut.number))
    store = store_account.lower()
    payouts: Earnings = {}
    open_earnings: Earnings = {}
    highest: int | None = None
    lowest_open: int | None = None
    above_open: list[int] = []  # purchases frozen since, past the lowest open one
    purchases = frozen_count = 0
    for chunk in _chunks(session, cut, base.open_from):
        terms: dict[int, PurchaseTerms] = {}
        for pid, buyer, token, pool, size, frozen_epoch, recipient in chunk:
            highest = pid  # in id order
            if base.covers(pid):
                continue
            frozen = frozen_epoch is not None
            if frozen:
                frozen_count += 1
                if lowest_open is not None:
                    above_open.append(pid)
            elif lowest_open is None:
                lowest_open = pid
            terms[pid] = PurchaseTerms(pid, buyer, token, pool, size, frozen, recipient or "")
        if not terms:
            continue
        purchases += len(terms)
        credits = list(_credits(session, chunk[0][0], chunk[-1][0], cut.receipt_cut, terms))
        frozen_terms = {pid: t for pid, t in terms.items() if t.frozen}
        open_terms = {pid: t for pid, t in terms.items() if not t.frozen}
        add_into(payouts, settle(frozen_terms, (c for c in credits if c[0] in frozen_terms), store))
        add_into(open_earnings, settle(open_terms, (c for c in credits if c[0] in open_terms), store))
    settled = advance(base, cut.number, (highest, lowest_open), above_open, payouts)
    earnings = dict(settled.totals)
    add_into(earnings, open_earnings)
    return Settlement(base, settled, earnings, purchases, frozen_count)


def store_settled(session: Session, settlement: Settlement) -> str:
    """Store an epoch's settled totals (replacing those of a failed epoch of the same number);
    their digest."""
    settled = settlement.settled
    encoded = canonical(settled.document())
    digest = "0x" + hashlib.sha256(encoded).hexdigest()
    session.execute(delete(EpochSettlement).where(EpochSettlement.epoch == settled.epoch))
    session.add(
        EpochSettlement(
            epoch=settled.epoch,
            base=settlement.base.epoch,
            open_from=settled.open_from,
            digest=digest,
            document=zlib.compress(encoded, 1),
        )
    )
    return digest


def bulk_insert(
    session: Session, target: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert many rows: PostgreSQL's COPY, or one executemany elsewhere (plain ints and strings)."""
    if session.get_bind().dialect.name == "postgresql":
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(str(v) for v in row))
            buffer.write("\n")
        raw = session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            names = ", ".join(columns)
            with cursor.copy(f"COPY {target.name} ({names}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        return
    values = [dict(zip(columns, row, strict=True)) for row in rows]
    if values:
        session.execute(insert(target), values)
