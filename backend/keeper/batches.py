"""The keeper's payout batches in the database (`payout_batches`, `payout_leaves`): the one
writer of those tables. A batch is stored signed before it is broadcast, its fee replacements are
stored (with the hashes they replace) before they are broadcast, and once mined it records what
it did with each leaf: paid, skipped (paid up already, or blocked), or failed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from backend.db import Database
from backend.errors import KeeperError
from backend.keeper.plan import Batch
from backend.models import Epoch, PayoutBatch, PayoutLeaf, PayoutOutcome, PayoutStatus, table
from backend.oracle.sender import SignedTx


@dataclass(frozen=True)
class Mined:
    """What a mined batch's receipt says."""

    tx_hash: str  # the version that was mined
    block: int
    block_time: int
    gas_used: int
    fee_paid: int  # wei
    outcomes: dict[tuple[str, str], PayoutOutcome]  # (account, token) -> paid or failed


class Batches:
    """Stores and updates the keeper's batches."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def store(self, epoch: Epoch, signed: list[tuple[SignedTx, int, Batch]]) -> None:
        """Store signed batches (transaction, gas limit, payees) of `epoch`, in one transaction."""
        now = int(time.time())
        with self.db.writer() as session:
            for tx, gas_limit, batch in signed:
                row = PayoutBatch(
                    epoch=epoch.number,
                    root=epoch.root,
                    status=PayoutStatus.SENDING,
                    raw_tx=tx.raw,
                    tx_hash=tx.hash,
                    tx_nonce=tx.nonce,
                    prior_hashes="[]",
                    gas_limit=gas_limit,
                    payees=len(batch.payees),
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                session.execute(
                    insert(table(PayoutLeaf)),
                    [
                        {
                            "batch_id": row.id,
                            "account": c.account,
                            "token": c.token,
                            "cumulative": c.cumulative,
                            "amount": c.unpaid,
                            "outcome": None,
                        }
                        for c in batch.payees
                    ],
                )

    def in_flight(self) -> list[PayoutBatch]:
        """Batches signed and not settled yet, oldest nonce first."""
        with self.db.reader() as session:
            return list(
                session.scalars(
                    select(PayoutBatch)
                    .where(PayoutBatch.status == PayoutStatus.SENDING)
                    .order_by(PayoutBatch.tx_nonce)
                )
            )

    def replace(self, row: PayoutBatch, signed: SignedTx) -> None:
        """Store a fee replacement of `row`'s transaction, keeping the hash it replaces."""
        with self.db.writer() as session:
            fresh = session.get(PayoutBatch, row.id)
            assert fresh is not None
            if fresh.status != PayoutStatus.SENDING or fresh.tx_hash != row.tx_hash:
                raise KeeperError(f"payout batch {row.id} changed state under us ({fresh.status})")
            fresh.move_to(PayoutStatus.SENDING)
            fresh.prior_hashes = json.dumps([*json.loads(fresh.prior_hashes), fresh.tx_hash])
            fresh.raw_tx, fresh.tx_hash = signed.raw, signed.hash

    def mined(self, batch_id: int, mined: Mined) -> int:
        """Record a batch mined and succeeded; how many leaves it paid."""
        paid = sum(1 for o in mined.outcomes.values() if o == PayoutOutcome.PAID)
        with self.db.writer() as session:
            for leaf in session.scalars(select(PayoutLeaf).where(PayoutLeaf.batch_id == batch_id)):
                leaf.outcome = mined.outcomes.get((leaf.account, leaf.token), PayoutOutcome.SKIPPED)
            row = session.get(PayoutBatch, batch_id)
            assert row is not None
            row.move_to(PayoutStatus.MINED)
            row.tx_hash = mined.tx_hash
            row.mined_block = mined.block
            row.mined_at = mined.block_time
            row.gas_used = mined.gas_used
            row.fee_paid = mined.fee_paid
            row.paid_count = paid
        return paid

    def mark(self, batch_id: int, status: PayoutStatus, *, error: str | None = None, **fields: Any) -> None:
        """Move a batch to `status` (reverted, dropped) with an error and other columns."""
        with self.db.writer() as session:
            row = session.get(PayoutBatch, batch_id)
            assert row is not None
            row.move_to(status)
            row.error = error
            for name, value in fields.items():
                setattr(row, name, value)
