"""Which leaves the keeper pays, in which batches: the rules, pure (no chain, no database).

A leaf is paid automatically when its unpaid part (cumulative amount minus what its account has
claimed) is at least its token's threshold and its share of its batch's gas, at the current price
per gas, costs at most `gas_fraction` of that unpaid part. ETH leaves have a threshold in wei; an
ERC-20 is paid automatically only when the operator gives it a threshold, and its gas share is
checked only when the operator also gives its price in wei (gas is paid in ETH; without a price the
two cannot be compared). Batches are filled smallest gas per payee first (a repeat payee before a
first one, ETH before ERC-20s) up to `batch_gas`; a payee the gas rule drops makes the others'
share of the batch's fixed cost larger, so the rule is applied until no payee is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

ETH = "0x" + "00" * 20

# Gas model, for planning only (each batch's gas limit comes from the node's estimate). The
# per-payee figures are the targets for a first payout in a batch of 100 leaves of a
# 100,000-leaf tree (bench/gas.py measures the real ones); a repeat payee writes a nonzero slot
# instead of a zero one (5,000 instead of 22,100 gas: EIP-2200/2929).
BATCH_GAS = 50_000  # the transaction, the root checks, the loop's set-up
ETH_PAYEE_GAS = 40_000
TOKEN_PAYEE_GAS = 60_000
REPEAT_SAVING = 17_100


@dataclass(frozen=True, slots=True)
class Candidate:
    """A leaf of the claimable root with something unpaid."""

    account: str  # lowercase 0x-hex
    token: str
    cumulative: int
    claimed: int

    @property
    def unpaid(self) -> int:
        """What paying the leaf now would send."""
        return max(self.cumulative - self.claimed, 0)

    @property
    def gas(self) -> int:
        """The gas paying it adds to a batch (the model above)."""
        gas = ETH_PAYEE_GAS if self.token == ETH else TOKEN_PAYEE_GAS
        return gas - REPEAT_SAVING if self.claimed > 0 else gas


@dataclass(frozen=True)
class Rules:
    """The operator's rules (`keeper_*` settings)."""

    eth_threshold: int
    gas_fraction: float
    batch_gas: int
    token_thresholds: Mapping[str, int] = field(default_factory=dict)
    token_prices: Mapping[str, float] = field(default_factory=dict)  # wei per base unit

    def threshold(self, token: str) -> int | None:
        """The least unpaid amount paid automatically; None: this token never is."""
        return self.eth_threshold if token == ETH else self.token_thresholds.get(token)

    def worth_wei(self, token: str, amount: int) -> float | None:
        """`amount` of `token` in wei, when known."""
        if token == ETH:
            return float(amount)
        price = self.token_prices.get(token)
        return None if price is None else amount * price

    def affordable(self, candidate: Candidate, gas: float, gas_price: int) -> bool:
        """Whether `gas` at `gas_price` costs at most `gas_fraction` of the candidate's unpaid part."""
        worth = self.worth_wei(candidate.token, candidate.unpaid)
        return worth is None or gas * gas_price <= self.gas_fraction * worth


@dataclass(frozen=True)
class Batch:
    """One payout transaction's payees (smallest gas first) and its planned gas."""

    payees: tuple[Candidate, ...]

    @property
    def gas(self) -> int:
        """Planned gas: the fixed part and each payee's."""
        return BATCH_GAS + sum(c.gas for c in self.payees)

    def share(self, candidate: Candidate) -> float:
        """A payee's gas with its part of the batch's fixed cost."""
        return candidate.gas + BATCH_GAS / len(self.payees)


@dataclass(frozen=True)
class Plan:
    """What to pay now, and what waits (below its threshold, or its gas too dear for now)."""

    batches: list[Batch]
    below_threshold: list[Candidate]
    too_costly: list[Candidate]

    @property
    def payees(self) -> int:
        """How many leaves the batches pay."""
        return sum(len(b.payees) for b in self.batches)


def pack(candidates: Iterable[Candidate], batch_gas: int) -> list[Batch]:
    """Candidates in batches of at most `batch_gas` planned gas, smallest gas per payee first."""
    ordered = sorted(candidates, key=lambda c: (c.gas, -c.unpaid, c.token, c.account))
    batches: list[Batch] = []
    current: list[Candidate] = []
    gas = BATCH_GAS
    for candidate in ordered:
        if current and gas + candidate.gas > batch_gas:
            batches.append(Batch(tuple(current)))
            current, gas = [], BATCH_GAS
        current.append(candidate)
        gas += candidate.gas
    if current:
        batches.append(Batch(tuple(current)))
    return batches


def plan(candidates: Iterable[Candidate], rules: Rules, gas_price: int) -> Plan:
    """The batches that pay every candidate the rules allow at `gas_price` (wei per gas)."""
    eligible: list[Candidate] = []
    below: list[Candidate] = []
    for candidate in candidates:
        threshold = rules.threshold(candidate.token)
        if candidate.unpaid == 0:
            continue
        if threshold is None or candidate.unpaid < threshold:
            below.append(candidate)
        else:
            eligible.append(candidate)
    too_costly: list[Candidate] = []
    while True:
        batches = pack(eligible, rules.batch_gas)
        dropped = {c for b in batches for c in b.payees if not rules.affordable(c, b.share(c), gas_price)}
        if not dropped:
            return Plan(batches, below, too_costly)
        too_costly.extend(c for c in eligible if c in dropped)
        eligible = [c for c in eligible if c not in dropped]


class AutoPay(StrEnum):
    """Where one account's unpaid part in one token stands with the keeper."""

    DUE = "due"  # in the claimable root, above the threshold: the keeper pays it now
    WAITING_FOR_FEES = "waiting-for-fees"  # due, but its gas costs too much of it at today's fees
    NEXT_ROOT = "next-root"  # enough earned, but not in the claimable root yet
    BELOW_THRESHOLD = "below-threshold"  # paid once it reaches the threshold
    BLOCKED = "blocked"  # an automatic ETH payment to it failed: claim it yourself
    MANUAL = "manual"  # a token the keeper does not pay (claim it)
    NOTHING = "nothing"  # nothing unpaid


def auto_pay(
    rules: Rules, token: str, *, claimable: int, unclaimed: int, blocked: bool, gas_price: int
) -> AutoPay:
    """Where an unpaid part stands: `claimable` now, `unclaimed` earned in all (claimable included)."""
    threshold = rules.threshold(token)
    if unclaimed <= 0:
        return AutoPay.NOTHING
    if threshold is None:
        return AutoPay.MANUAL
    if blocked:
        return AutoPay.BLOCKED
    if claimable >= threshold:
        due = Candidate("", token, claimable, 0)
        full = rules.batch_gas // (ETH_PAYEE_GAS if token == ETH else TOKEN_PAYEE_GAS)
        share = due.gas + BATCH_GAS / max(full, 1)
        return AutoPay.DUE if rules.affordable(due, share, gas_price) else AutoPay.WAITING_FOR_FEES
    return AutoPay.NEXT_ROOT if unclaimed >= threshold else AutoPay.BELOW_THRESHOLD
