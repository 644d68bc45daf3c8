"""Where an account's unpaid rewards stand with the keeper, for the rewards API, page and command:
its last automatic payment (when, which transaction, how much), and for what is still unpaid
whether the keeper pays it now, after the next root, once it reaches the threshold, or never
(a token it does not pay, or an account whose ETH payment failed: claim it yourself)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import Chain
from backend.epochs import latest_epoch
from backend.keeper.keeper import rules_of
from backend.keeper.plan import AutoPay, auto_pay
from backend.models import EpochStatus, PayoutBatch, PayoutLeaf, PayoutOutcome, PayoutStatus
from backend.rewards import TokenRewards
from backend.settings import Settings


@dataclass(frozen=True)
class AutoPayout:
    """One token's automatic payments for one account."""

    state: AutoPay
    threshold: int | None  # the least unpaid amount paid automatically (None: never)
    expected_at: int | None  # chain time, roughly, of the root that would make it due
    paid_at: int | None = None  # the last automatic payment: its block's time
    paid_tx: str | None = None
    paid_amount: int | None = None


def auto_payouts(
    session: Session,
    chain: Chain,
    settings: Settings,
    account: str,
    tokens: list[TokenRewards],
    *,
    keeper: bool,
) -> dict[str, AutoPayout]:
    """Per token in `tokens`, where its unpaid part stands; `keeper`: whether a keeper runs."""
    account = account.lower()
    rules = rules_of(settings)
    last = _last_payments(session, account)
    blocked: bool | None = None
    gas_price: int | None = None
    next_root: int | None = None
    result: dict[str, AutoPayout] = {}
    for t in tokens:
        threshold = rules.threshold(t.token) if keeper else None
        unclaimed = max(t.earned - t.claimed, 0)
        state = AutoPay.MANUAL if threshold is None and unclaimed > 0 else AutoPay.NOTHING
        expected = None
        if threshold is not None and unclaimed > 0:
            if blocked is None:
                blocked = bool(chain.view("payoutBlocked", to_checksum_address(account)))
            if gas_price is None and t.claimable >= threshold:
                block = chain.call(lambda: chain.w3.eth.get_block("latest"))
                gas_price = int(block.get("baseFeePerGas") or 0) + int(
                    chain.call(lambda: chain.w3.eth.max_priority_fee)
                )
            state = auto_pay(
                rules,
                t.token,
                claimable=t.claimable,
                unclaimed=unclaimed,
                blocked=blocked,
                gas_price=gas_price or 0,
            )
            if state == AutoPay.NEXT_ROOT:
                if next_root is None:
                    next_root = _next_root_at(session, chain, settings)
                expected = next_root
        paid = last.get(t.token)
        result[t.token] = AutoPayout(
            state, threshold, expected, *(paid if paid is not None else (None, None, None))
        )
    return result


def _last_payments(session: Session, account: str) -> dict[str, tuple[int, str, int]]:
    """Per token, the account's newest automatic payment: (block time, transaction, amount)."""
    rows = session.execute(
        select(PayoutLeaf.token, PayoutBatch.mined_at, PayoutBatch.tx_hash, PayoutLeaf.amount)
        .join(PayoutBatch, PayoutBatch.id == PayoutLeaf.batch_id)
        .where(
            PayoutLeaf.account == account,
            PayoutLeaf.outcome == PayoutOutcome.PAID,
            PayoutBatch.status == PayoutStatus.MINED,
        )
        .order_by(PayoutBatch.mined_at)
    ).tuples()
    return {token: (int(at or 0), tx, amount) for token, at, tx, amount in rows}


def _next_root_at(session: Session, chain: Chain, settings: Settings) -> int:
    """When the next root should become claimable: a pending one's activation, or the next
    epoch's close plus the contract's root delay (an estimate: an epoch closes only when due)."""
    root, _epoch, active_at = chain.view("pendingRoot")
    if int.from_bytes(bytes(root), "big") != 0:
        return int(active_at)
    last = latest_epoch(session, (EpochStatus.POSTED, EpochStatus.CLOSED, EpochStatus.SENDING))
    now = int(time.time())
    closes = now if last is None else max(now, last.created_at + settings.epoch_length)
    return closes + int(chain.view("rootDelay"))
