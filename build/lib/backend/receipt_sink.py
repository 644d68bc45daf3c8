"""The database-backed `ReceiptSink`: receipts decided against indexed purchases and kept.

Rules (docs/ARCHITECTURE.md "Receipts"): the signer must be the purchase's buyer; the seeder must not be
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

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import Credit, FrozenPurchase, Product, Purchase, StoredReceipt, table
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


@dataclass
class _Pair:
    """One (purchase, seeder) credit as loaded, and what this batch does to it."""

    signer: str
    credited: int
    signed_bytes: int
    stored: bool  # a row exists in `credits`
    changed: bool = False
    receipt: int | None = None  # index in the batch's new receipt rows of its newest one


CREDITS = table(Credit)
RECEIPTS = table(StoredReceipt)


class DatabaseReceiptSink:
    """Decides verified receipts against the indexed purchases; commits before answering."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] = time.time,
        on_stored: Callable[[list[ReceiptOutcome]], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        # Told each batch's outcomes once committed: counts them, wakes an oracle waiting for work.
        self.on_stored = on_stored

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
            pairs: dict[tuple[int, str], _Pair] = {}
            for pid, seeder, signer, credited, signed in session.execute(
                select(CREDITS.c.purchase_id, CREDITS.c.seeder, CREDITS.c.signer, CREDITS.c.credited,
                       CREDITS.c.signed_bytes).where(CREDITS.c.purchase_id.in_(ids))
            ).tuples():  # fmt: skip
                pairs[(pid, seeder)] = _Pair(signer, credited, int(signed), stored=True)
                state = purchases.get(pid)
                if state is not None and signer == state.buyer:
                    state.credited += credited
            now = int(self.clock())
            rows: list[dict[str, object]] = []
            outcomes = [self._apply(purchases, pairs, verified, now, rows) for verified in receipts]
            self._write(session, pairs, rows)
        if self.on_stored is not None:
            self.on_stored(outcomes)
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
        pairs: dict[tuple[int, str], _Pair],
        verified: VerifiedReceipt,
        now: int,
        rows: list[dict[str, object]],
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
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = _Pair(signer, 0, 0, stored=False)
        elif pair.signer != state.buyer:
            # Left by a purchase that a reorganisation replaced: it counts for nothing now.
            pair.signer, pair.credited, pair.signed_bytes, pair.changed = state.buyer, 0, 0, True
        current = pair.credited
        decision = decide(current, pair.signed_bytes, state.credited, state.length, receipt.byte_count)
        if decision.raises:
            delegation = verified.signed.delegation
            pair.receipt = len(rows)
            rows.append(
                {
                    "purchase_id": receipt.purchase_id,
                    "seeder": seeder,
                    "signer": signer,
                    "signed_bytes": receipt.byte_count,
                    "credited": decision.credited,
                    "signature": verified.signed.signature,
                    "key_address": to_hex_address(delegation.key.key) if delegation else None,
                    "key_expires": delegation.key.expires if delegation else None,
                    "key_signature": delegation.signature if delegation else None,
                    "accepted_at": now,
                }
            )
            state.credited += decision.credited - current
            pair.credited, pair.signed_bytes, pair.changed = decision.credited, receipt.byte_count, True
        return ReceiptOutcome(decision.status, byte_count=decision.credited)  # type: ignore[arg-type]

    def _write(
        self, session: Session, pairs: dict[tuple[int, str], _Pair], rows: list[dict[str, object]]
    ) -> None:
        """Append the new receipts and write the credits they raised (a few executemany calls)."""
        ids: list[int] = []
        if rows:
            inserted = session.execute(
                insert(RECEIPTS).returning(RECEIPTS.c.id, sort_by_parameter_order=True), rows
            )
            ids = list(inserted.scalars())
        fresh: list[dict[str, object]] = []
        changed: list[dict[str, object]] = []
        for (pid, seeder), pair in pairs.items():
            if not pair.changed:
                continue
            values = {
                "p_purchase": pid,
                "p_seeder": seeder,
                "p_signer": pair.signer,
                "p_credited": pair.credited,
                "p_signed": pair.signed_bytes,
                "p_receipt": ids[pair.receipt] if pair.receipt is not None else 0,
            }
            (changed if pair.stored else fresh).append(values)
        if fresh:
            session.execute(
                insert(CREDITS).values(
                    purchase_id=bindparam("p_purchase"),
                    seeder=bindparam("p_seeder"),
                    signer=bindparam("p_signer"),
                    credited=bindparam("p_credited"),
                    signed_bytes=bindparam("p_signed"),
                    receipt_id=bindparam("p_receipt"),
                ),
                fresh,
            )
        if changed:
            session.execute(
                update(CREDITS)
                .where(
                    CREDITS.c.purchase_id == bindparam("p_purchase"),
                    CREDITS.c.seeder == bindparam("p_seeder"),
                )
                .values(
                    signer=bindparam("p_signer"),
                    credited=bindparam("p_credited"),
                    signed_bytes=bindparam("p_signed"),
                    receipt_id=bindparam("p_receipt"),
                ),
                changed,
            )
