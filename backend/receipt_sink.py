"""The database-backed `ReceiptSink`: receipts decided against indexed purchases and kept.

Rules (DESIGN.md "Receipts"): the signer must be the purchase's buyer; the seeder must not be
the buyer; a frozen (settled) purchase takes no more receipts; only the highest receipt per
(purchase, seeder) counts, and a lower or equal one is answered with the current credit; the
credits of one purchase never add up to more than its content length (a receipt that would pass
it is credited up to what is left: "clipped"). A receipt that raises a credit is appended to
`receipts` with its signatures, so epochs can publish it and anyone can re-verify it.

Concurrency: the whole batch is one transaction. On SQLite it holds the write lock
(`BEGIN IMMEDIATE`). On PostgreSQL the purchases' rows are locked `FOR UPDATE` (two sinks never
both spend the same remaining length), and the `receipts` table is locked in ROW EXCLUSIVE mode
first, which an epoch close's SHARE lock waits for: a receipt is either inside an epoch's cut
or sees the purchases that epoch froze.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import Credit, FrozenPurchase, Product, Purchase, StoredReceipt
from tracker.policy import ReceiptOutcome
from tracker.receipts import VerifiedReceipt, to_hex_address

_MAX_DB_ID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Decision:
    """What one receipt does to its (purchase, seeder) credit."""

    status: str  # "accepted" or "clipped"
    credited: int
    raises: bool  # a higher signed count than before: store it


def decide(credited: int, highest_signed: int, purchase_credited: int, length: int, signed: int) -> Decision:
    """Apply one receipt of `signed` cumulative bytes to a pair's credit (pure; see module doc)."""
    if signed <= highest_signed:
        return Decision("accepted" if signed <= credited else "clipped", credited, raises=False)
    room = max(length - purchase_credited, 0)
    new = min(signed, credited + room)
    return Decision("accepted" if new == signed else "clipped", new, raises=True)


@dataclass
class _PurchaseState:
    buyer: str
    length: int
    frozen: bool
    credited: int  # sum over seeders


class DatabaseReceiptSink:
    """Decides verified receipts against the indexed purchases; commits before answering."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def store(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        """One outcome per receipt, in order; accepted ones are committed before this returns."""
        return await asyncio.to_thread(self.store_now, receipts)

    def store_now(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        """`store`, blocking."""
        if not receipts:
            return []
        with self.db.writer() as session:
            if not self.db.is_sqlite:
                session.execute(text("LOCK TABLE receipts IN ROW EXCLUSIVE MODE"))
            ids = sorted({r.receipt.purchase_id for r in receipts if r.receipt.purchase_id <= _MAX_DB_ID})
            purchases = self._load(session, ids)
            credits = {
                (c.purchase_id, c.seeder): c
                for c in session.scalars(select(Credit).where(Credit.purchase_id.in_(ids)))
            }
            for credit in credits.values():
                state = purchases.get(credit.purchase_id)
                if state is not None and credit.signer == state.buyer:
                    state.credited += credit.credited
            now = int(self.clock())
            batch = _Batch()
            outcomes = [self._apply(purchases, credits, verified, now, batch) for verified in receipts]
            batch.write(session)
            return outcomes

    def _load(self, session: Session, ids: list[int]) -> dict[int, _PurchaseState]:
        rows = session.execute(
            select(Purchase.id, Purchase.buyer, Product.size)
            .join(Product, Product.id == Purchase.product_id)
            .where(Purchase.id.in_(ids))
            .order_by(Purchase.id)
            .with_for_update(of=Purchase)
        ).tuples()
        frozen = set(
            session.scalars(select(FrozenPurchase.purchase_id).where(FrozenPurchase.purchase_id.in_(ids)))
        )
        return {pid: _PurchaseState(buyer, size, pid in frozen, 0) for pid, buyer, size in rows}

    def _apply(
        self,
        purchases: dict[int, _PurchaseState],
        credits: dict[tuple[int, str], Credit],
        verified: VerifiedReceipt,
        now: int,
        batch: _Batch,
    ) -> ReceiptOutcome:
        receipt = verified.receipt
        state = purchases.get(receipt.purchase_id)
        if state is None:
            return ReceiptOutcome("rejected", reason="unknown-purchase")
        signer = to_hex_address(verified.signer)
        seeder = to_hex_address(receipt.seeder)
        if signer != state.buyer:
            return ReceiptOutcome("rejected", reason="wrong-signer")
        if seeder == state.buyer:
            return ReceiptOutcome("rejected", reason="seeder-is-buyer")
        if state.frozen:
            return ReceiptOutcome("rejected", reason="settled")
        key = (receipt.purchase_id, seeder)
        credit = credits.get(key)
        if credit is None:
            credit = Credit(
                purchase_id=receipt.purchase_id, seeder=seeder, signer=signer, credited=0, signed_bytes=0
            )
            credits[key] = credit
        elif credit.signer != state.buyer:
            # Left by a purchase that a reorganisation replaced: it counts for nothing now.
            credit.signer, credit.credited, credit.signed_bytes = state.buyer, 0, 0
        current = credit.credited
        decision = decide(current, credit.signed_bytes, state.credited, state.length, receipt.byte_count)
        if decision.raises:
            delegation = verified.signed.delegation
            batch.add(
                credit,
                StoredReceipt(
                    purchase_id=receipt.purchase_id,
                    seeder=seeder,
                    signer=signer,
                    signed_bytes=receipt.byte_count,
                    credited=decision.credited,
                    signature=verified.signed.signature,
                    key_address=to_hex_address(delegation.key.key) if delegation else None,
                    key_expires=delegation.key.expires if delegation else None,
                    key_signature=delegation.signature if delegation else None,
                    accepted_at=now,
                ),
            )
            state.credited += decision.credited - current
            credit.credited = decision.credited
            credit.signed_bytes = receipt.byte_count
        return ReceiptOutcome(decision.status, byte_count=decision.credited)  # type: ignore[arg-type]


class _Batch:
    """The receipts a batch appends and the credits they raise, written with one flush."""

    def __init__(self) -> None:
        self.receipts: list[StoredReceipt] = []
        self.latest: dict[int, tuple[Credit, StoredReceipt]] = {}

    def add(self, credit: Credit, row: StoredReceipt) -> None:
        self.receipts.append(row)
        self.latest[id(credit)] = (credit, row)

    def write(self, session: Session) -> None:
        if not self.receipts:
            return
        session.add_all(self.receipts)
        session.flush()  # assigns the receipts' ids
        for credit, row in self.latest.values():
            credit.receipt_id = row.id
            session.add(credit)
