"""Helpers for the Marketplace tests: constants, listing and buying, seeder trees, roots."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.exceptions import ContractLogicError
from ape.managers import ChainManager

from backend.merkle import Leaf, MerkleTree

ETH = "0x0000000000000000000000000000000000000000"
FEE_BPS = 2_000  # the operator's share of each purchase's pool
ROOT_DELAY = 3_600
MIN_ROOT_DELAY = 600  # the floor and ceiling the test market is deployed with
MAX_ROOT_DELAY = 86_400
ETHER = 10**18
PRICE = ETHER
DISCOUNT_BPS = 2_500
MAX_UINT256 = 2**256 - 1


def address(account: Any) -> str:
    """The address of an ape account or contract, or the string itself."""
    return str(getattr(account, "address", account))


def in_address_order(tokens: Iterable[Any]) -> list[str]:
    """Token addresses (or ape contracts) in the ascending order `postRoot` wants."""
    return sorted((address(t) for t in tokens), key=lambda t: int(t, 16))


def listed(
    market: ContractInstance,
    seller: AccountAPI,
    token: str = ETH,
    price: int = PRICE,
    discount_bps: int = DISCOUNT_BPS,
    infohash: bytes | None = None,
    size: int = 1 << 20,
) -> int:
    """List a product and return its id."""
    infohash = infohash or (market.productCount() + 1).to_bytes(20, "big").ljust(32, b"\0")
    receipt = market.listProduct(infohash, size, token, price, discount_bps, "ipfs://meta", sender=seller)
    return int(receipt.events.filter(market.ProductListed)[0].productId)


def terms(market: ContractInstance, product_id: int) -> tuple[str, int, int]:
    """(token, price, terms version) a buyer agrees to: the product's current ones, or those of a
    fresh ETH listing when there is no such product (for tests of the product checks)."""
    try:
        product = market.product(product_id)
    except ContractLogicError:
        return ETH, PRICE, 1
    return product.token, product.price, product.termsVersion


def bought(market: ContractInstance, product_id: int, buyer: AccountAPI) -> int:
    """Buy a product on its current terms (paying ETH when it is priced in ETH); the purchase id."""
    token, price, version = terms(market, product_id)
    value = price if token == ETH else 0
    receipt = market.purchase(product_id, token, price, version, sender=buyer, value=value)
    return int(receipt.events.filter(market.Purchased)[0].purchaseId)


def split(price: int, discount_bps: int = DISCOUNT_BPS, fee_bps: int = FEE_BPS) -> tuple[int, int, int]:
    """(seller amount, operator fee, seeder pool) of one purchase, as the contract must split it."""
    pool = price * discount_bps // 10_000
    fee = pool * fee_bps // 10_000
    return price - pool, fee, pool - fee


@dataclass
class Seeders:
    """An earnings tree of (account, token, cumulative amount) leaves with proofs by account."""

    tree: MerkleTree

    @classmethod
    def of(cls, earnings: Iterable[tuple[Any, str, int]]) -> Seeders:
        return cls(MerkleTree([Leaf.of(address(a), str(t), amount) for a, t, amount in earnings]))

    @property
    def root(self) -> bytes:
        return self.tree.root

    def totals(self, tokens: Sequence[str]) -> list[int]:
        """The sum of the leaves of each token, in the order of `tokens`."""
        return [sum(leaf.cumulative_amount for leaf in self.tree.leaves if leaf.token == t) for t in tokens]

    def claim_args(self, account: Any, token: str) -> tuple[str, str, int, list[bytes]]:
        """The arguments of `claim` for `account`'s leaf in `token`."""
        index = self.tree.find(address(account), token)
        assert index is not None, "no such leaf"
        leaf = self.tree.leaves[index]
        return leaf.account, leaf.token, leaf.cumulative_amount, self.tree.proof(index)

    def payout_args(
        self, keys: Iterable[tuple[Any, str]]
    ) -> tuple[list[tuple[str, str, int]], list[bytes], list[bool]]:
        """The arguments of `payout` for the leaves of `keys` (account, token): one multiproof."""
        indices = []
        for account, token in keys:
            index = self.tree.find(address(account), token)
            assert index is not None, "no such leaf"
            indices.append(index)
        multi = self.tree.multiproof(indices)
        leaves = [(leaf.account, leaf.token, leaf.cumulative_amount) for leaf in multi.leaves]
        return leaves, multi.proof, multi.proof_flags


def funded_tokens(market: ContractInstance, candidates: Iterable[str]) -> list[str]:
    """The candidates whose seeder pool is funded, in the ascending order `postRoot` wants."""
    return in_address_order(t for t in candidates if market.seederPool(t)[0] > 0)


def post(
    market: ContractInstance,
    oracle: AccountAPI,
    seeders: Seeders,
    tokens: Sequence[str],
    totals: Sequence[int] | None = None,
    epoch: int | None = None,
) -> Any:
    """Post the seeders' root with their exact totals (or the given ones) as the next epoch."""
    epoch = market.lastEpoch() + 1 if epoch is None else epoch
    totals = seeders.totals(tokens) if totals is None else totals
    return market.postRoot(seeders.root, epoch, list(tokens), list(totals), "ipfs://epoch", sender=oracle)


def activate(chain: ChainManager) -> None:
    """Let the pending root's delay pass."""
    chain.mine(deltatime=ROOT_DELAY)
