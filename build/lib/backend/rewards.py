"""What an account has earned, what the active root lets it claim, and the proof to claim it.

- earned: what settlement gives it right now, from every credited receipt (the next root's leaf);
- in_root: its leaf in the root that claims are checked against now (`activeRoot()` on chain);
- claimed: what it has claimed on chain (`claimed(account, token)`);
- claimable = in_root - claimed; pending = earned - in_root (waits for a later root).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import Chain
from backend.epochs import Proof, proof_for
from backend.models import Credit, Epoch, EpochLeaf, FrozenPurchase, Product, Purchase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenRewards:
    """One account's standing in one token."""

    token: str
    earned: int
    in_root: int
    claimed: int

    @property
    def claimable(self) -> int:
        """What a claim would pay now."""
        return max(self.in_root - self.claimed, 0)

    @property
    def pending(self) -> int:
        """Earned, but not in the active root yet."""
        return max(self.earned - self.in_root, 0)


def active_epoch(session: Session, chain: Chain) -> Epoch | None:
    """The stored epoch whose root the contract checks claims against now."""
    root, number = chain.view("activeRoot")
    if number == 0:
        return None
    epoch = session.get(Epoch, int(number))
    if epoch is None or epoch.root != "0x" + bytes(root).hex():
        log.warning("the active root (epoch %s) is not one this store computed", number)
        return None
    return epoch


def earned_now(session: Session, account: str) -> dict[str, int]:
    """Per token, what settlement gives `account` from the credits as they stand (with the
    unearned parts of the frozen purchases it received)."""
    account = account.lower()
    earned: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(Credit.credited, Purchase.token, Purchase.seeder_pool, Product.size)
        .join(Purchase, Purchase.id == Credit.purchase_id)
        .join(Product, Product.id == Purchase.product_id)
        .where(Credit.seeder == account, Credit.signer == Purchase.buyer, Credit.credited > 0)
    ).tuples()
    for credited, token, pool, size in rows:
        earned[token] += pool * credited // size
    remainders = list(
        session.execute(
            select(Purchase.id, Purchase.token, Purchase.seeder_pool)
            .join(FrozenPurchase, FrozenPurchase.purchase_id == Purchase.id)
            .where(FrozenPurchase.recipient == account)
        ).tuples()
    )
    if remainders:
        paid: dict[int, int] = defaultdict(int)
        for purchase_id, credited, pool, size in session.execute(
            select(Credit.purchase_id, Credit.credited, Purchase.seeder_pool, Product.size)
            .join(Purchase, Purchase.id == Credit.purchase_id)
            .join(Product, Product.id == Purchase.product_id)
            .join(FrozenPurchase, FrozenPurchase.purchase_id == Credit.purchase_id)
            .where(Credit.signer == Purchase.buyer, FrozenPurchase.recipient == account)
        ).tuples():
            paid[purchase_id] += pool * credited // size
        for purchase_id, token, pool in remainders:
            earned[token] += pool - paid.get(purchase_id, 0)
    return {token: amount for token, amount in earned.items() if amount > 0}


def rewards_of(
    session: Session, chain: Chain, account: str, store_account: str | None = None
) -> tuple[Epoch | None, list[TokenRewards]]:
    """The active epoch and the account's standing in every token it has anything in.

    `store_account` is accepted for older callers and ignored: frozen purchases now record who
    received their unearned part.
    """
    del store_account
    account = account.lower()
    epoch = active_epoch(session, chain)
    in_root: dict[str, int] = {}
    if epoch is not None:
        rows = session.execute(
            select(EpochLeaf.token, EpochLeaf.amount).where(
                EpochLeaf.epoch == epoch.number, EpochLeaf.account == account
            )
        ).tuples()
        in_root = {token: amount for token, amount in rows}
    earned = earned_now(session, account)
    result = []
    for token in sorted(set(earned) | set(in_root)):
        claimed = int(chain.view("claimed", to_checksum_address(account), to_checksum_address(token)))
        result.append(
            TokenRewards(
                token, max(earned.get(token, 0), in_root.get(token, 0)), in_root.get(token, 0), claimed
            )
        )
    return epoch, result


def claim_proof(session: Session, chain: Chain, account: str, token: str) -> Proof | None:
    """The proof for a claim against the active root, or None when the account has no leaf there."""
    epoch = active_epoch(session, chain)
    if epoch is None:
        return None
    return proof_for(session, epoch, account, token)
