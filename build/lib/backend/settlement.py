"""Settlement: what every (account, token) has earned, from purchases and credited receipts.

docs/ARCHITECTURE.md "Settlement": for a purchase with seeder pool P, content length L and credited bytes
b_s per seeder, seeder s has earned floor(P * b_s / L). Once the purchase is frozen (its
settlement window passed), the part of P nobody earned goes to the store's account as it was
when the purchase froze. Leaves are
cumulative over all purchases. Pure integer arithmetic over sorted inputs: the same inputs give
the same leaves and the same root, bit for bit, in the oracle and in `verify-epoch`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from backend.merkle import Leaf, MerkleTree
from tracker.addresses import checksum


@dataclass(frozen=True, slots=True)
class PurchaseTerms:
    """What settlement needs to know of one purchase; addresses lowercase 0x-hex."""

    purchase_id: int
    buyer: str
    token: str
    seeder_pool: int
    size: int  # the product's content length L, from the chain
    frozen: bool
    recipient: str = ""  # who gets the unearned part once frozen; "" = the store account


Earnings = dict[tuple[str, str], int]  # (account, token) -> cumulative amount


def settle(
    purchases: Mapping[int, PurchaseTerms],
    credits: Iterable[tuple[int, str, int]],
    store_account: str,
) -> Earnings:
    """Cumulative earnings per (account, token) from `(purchase_id, seeder, credited)` credits.

    Credits of unknown purchases, to the buyer itself, or of no bytes earn nothing. The receipt
    sink never credits a purchase beyond its length; should the inputs do so anyway, the
    purchase's credits are cut to the length in seeder-address order, so that a purchase can
    never pay out more than its pool whatever the inputs are.
    """
    by_purchase: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for purchase_id, seeder, credited in credits:
        terms = purchases.get(purchase_id)
        if terms is None or credited <= 0 or seeder == terms.buyer:
            continue
        by_purchase[purchase_id].append((seeder, credited))

    earnings: Earnings = defaultdict(int)
    paid: dict[int, int] = {}
    for purchase_id, given in by_purchase.items():
        terms = purchases[purchase_id]
        lines = given if sum(c for _, c in given) <= terms.size else _cut_to_length(given, terms.size)
        pool, size, token = terms.seeder_pool, terms.size, terms.token
        total = 0
        for seeder, credited in lines:
            amount = pool * credited // size
            if amount:
                earnings[(seeder, token)] += amount
                total += amount
        paid[purchase_id] = total
    for purchase_id, terms in purchases.items():
        if terms.frozen:
            rest = terms.seeder_pool - paid.get(purchase_id, 0)
            if rest > 0:
                earnings[(terms.recipient or store_account, terms.token)] += rest
    return {key: amount for key, amount in earnings.items() if amount > 0}


def _cut_to_length(lines: list[tuple[str, int]], size: int) -> list[tuple[str, int]]:
    """Credits cut so they add up to at most `size`, filling seeders in address order."""
    left = size
    cut = []
    for seeder, credited in sorted(lines):
        take = min(credited, left)
        left -= take
        cut.append((seeder, take))
    return cut


def leaves_of(earnings: Mapping[tuple[str, str], int]) -> list[Leaf]:
    """The tree's leaves in a canonical order (token, then account)."""
    ordered = sorted(earnings.items(), key=lambda item: (item[0][1], item[0][0]))
    tokens = {token: checksum(token) for (_, token) in earnings}
    return [Leaf(checksum(account), tokens[token], amount) for (account, token), amount in ordered]


def token_totals(earnings: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Each token's sum over all leaves: what the root promises in that token."""
    totals: dict[str, int] = defaultdict(int)
    for (_, token), amount in earnings.items():
        totals[token] += amount
    return dict(sorted(totals.items()))


def build_tree(earnings: Mapping[tuple[str, str], int]) -> MerkleTree | None:
    """The standard Merkle tree of the earnings, or None when nobody has earned anything yet."""
    leaves = leaves_of(earnings)
    return MerkleTree(leaves) if leaves else None
