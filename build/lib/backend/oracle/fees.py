"""The oracle's fee rules, pure: what a transaction offers per gas, first and when it is replaced.

EIP-1559 fees in wei per gas. A first offer is twice the latest base fee plus the node's suggested
tip, so that it survives a few fuller blocks, and never above the operator's ceiling
(`max_fee_gwei`). A replacement (same nonce) must raise both the fee cap and the tip by at least
10 % for nodes to take it; we raise by 12.5 % (+1 wei against rounding) or to the current first
offer, whichever is higher, and give up rather than cross the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

GWEI = 10**9


@dataclass(frozen=True, slots=True)
class Offer:
    """What a transaction offers: `max_fee` per gas at most, `tip` of it to the block's producer."""

    max_fee: int
    tip: int


def _check(*values: int) -> None:
    if any(v < 0 for v in values):
        raise ValueError(f"fees are wei per gas, never negative: {values}")


def first_offer(base_fee: int, tip: int, ceiling: int) -> Offer:
    """The first offer: twice the base fee plus the tip, capped at `ceiling` (the tip too)."""
    _check(base_fee, tip, ceiling)
    max_fee = min(2 * base_fee + tip, ceiling)
    return Offer(max_fee, min(tip, max_fee))


def bumped(fee: int) -> int:
    """The least fee a node accepts as a replacement of `fee` (+12.5 %, +1 wei against rounding)."""
    _check(fee)
    return fee * 9 // 8 + 1


def replacement_offer(base_fee: int, tip: int, previous: Offer, ceiling: int) -> Offer | None:
    """The offer that replaces `previous` now, or None when it would cross `ceiling` (then wait)."""
    _check(base_fee, tip, ceiling, previous.max_fee, previous.tip)
    new_tip = max(tip, bumped(previous.tip))
    max_fee = max(2 * base_fee + new_tip, bumped(previous.max_fee))
    if max_fee > ceiling:
        return None
    return Offer(max_fee, min(new_tip, max_fee))
