"""Settlement: what every (account, token) has earned, from purchases and credited receipts.

docs/ARCHITECTURE.md "Settlement": for a purchase with seeder pool P, content length L and credited bytes
b_s per seeder, seeder s has earned floor(P * b_s / L). Once the purchase is frozen (its
settlement window passed), the part of P nobody earned goes to the store's account as it was
when the purchase froze. Leaves are
cumulative over all purchases. Pure integer arithmetic over sorted inputs: the same inputs give
the same leaves and the same root, bit for bit, in the oracle and in `verify-epoch`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.merkle import Leaf, MerkleError, MerkleTree, layout, leaf_hash
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


@dataclass(frozen=True)
class EarningsTree:
    """The standard tree of some earnings, without a `Leaf` object per leaf (what the oracle stores)."""

    leaves: list[tuple[str, str, int]]  # (account, token, amount), lowercase, canonical order
    tree: list[bytes]
    tree_index: list[int]  # of each leaf, in `leaves` order

    @property
    def root(self) -> bytes:
        """The 32-byte root (the same as `build_tree(...).root`)."""
        return self.tree[0]


def earnings_tree(earnings: Mapping[tuple[str, str], int]) -> EarningsTree | None:
    """`build_tree`'s tree from the same earnings, cheaper; None when nobody has earned anything."""
    ordered = sorted(
        ((account, token, amount) for (account, token), amount in earnings.items() if amount > 0),
        key=lambda leaf: (leaf[1], leaf[0]),
    )
    if not ordered:
        return None
    if any(amount.bit_length() > 256 for _, _, amount in ordered):
        raise MerkleError("a cumulative amount is not a uint256")
    tree, tree_index = layout([leaf_hash(account, token, amount) for account, token, amount in ordered])
    return EarningsTree(ordered, tree, tree_index)


def add_into(total: Earnings, more: Mapping[tuple[str, str], int]) -> None:
    """Add `more` into `total`, in place."""
    for key, amount in more.items():
        total[key] = total.get(key, 0) + amount


@dataclass(frozen=True)
class Settled:
    """What the purchases frozen as of an epoch paid out, in total: the base the next epoch builds on.

    A frozen purchase's payout never changes, so epoch N's earnings are epoch M's settled totals,
    plus the payouts of the purchases frozen since, plus what the open purchases have earned so
    far. Which purchases are already in the totals is said compactly: every id below `open_from`,
    and the few at or above it listed in `frozen_above` (freezing goes in purchase order, so
    normally none). Its `digest` chains the epochs' publications.
    """

    epoch: int  # 0: before any epoch
    open_from: int
    frozen_above: frozenset[int] = frozenset()
    totals: Earnings = field(default_factory=dict)  # (account, token) -> amount, lowercase

    def covers(self, purchase_id: int) -> bool:
        """Whether the purchase's payout is in the totals already."""
        return purchase_id < self.open_from or purchase_id in self.frozen_above

    def document(self) -> dict[str, Any]:
        """The canonical JSON form: totals as [account, token, amount] ordered by token, account."""
        ordered = sorted(self.totals.items(), key=lambda item: (item[0][1], item[0][0]))
        return {
            "epoch": self.epoch,
            "openFrom": self.open_from,
            "frozenAbove": sorted(self.frozen_above),
            "totals": [[account, token, str(amount)] for (account, token), amount in ordered],
        }

    def digest(self) -> str:
        """sha256 of the canonical document, 0x-hex: what the next epoch names as `previous`."""
        return digest_of(self.document())

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Settled:
        """The totals from their JSON form (addresses lowercased)."""
        totals: Earnings = {}
        for account, token, amount in document["totals"]:
            totals[(str(account).lower(), str(token).lower())] = int(amount)
        return cls(
            int(document["epoch"]),
            int(document["openFrom"]),
            frozenset(int(p) for p in document["frozenAbove"]),
            totals,
        )


EMPTY = Settled(0, 0)


def canonical(document: Mapping[str, Any]) -> bytes:
    """A document's canonical JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest_of(document: Mapping[str, Any]) -> str:
    """sha256 of a document's canonical JSON, 0x-hex."""
    return "0x" + hashlib.sha256(canonical(document)).hexdigest()


def advance(
    base: Settled,
    number: int,
    scanned: tuple[int | None, int | None],
    newly_frozen: Iterable[int],
    payouts: Earnings,
) -> Settled:
    """Epoch `number`'s settled totals: `base` plus the `payouts` of the purchases `newly_frozen`.

    `scanned` is (the highest, the lowest still open) of the purchase ids at or above
    `base.open_from` that the epoch covers: the new `open_from` is that lowest open one, or past
    the highest when none is open. `newly_frozen` need only name those above the lowest open one.
    """
    highest, lowest_open = scanned
    if lowest_open is not None:
        open_from = lowest_open
    else:
        open_from = base.open_from if highest is None else max(base.open_from, highest + 1)
    frozen = {p for p in (*newly_frozen, *base.frozen_above) if p >= open_from}
    totals = dict(base.totals)
    add_into(totals, payouts)
    return Settled(number, open_from, frozenset(frozen), totals)
