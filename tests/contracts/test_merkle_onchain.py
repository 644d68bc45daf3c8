"""The Python tree's proofs verify on chain: in `EarningsTree` (beside OpenZeppelin's verifier) and as
real claims. The JavaScript comparison of the same trees is in tests/backend/test_merkle.py."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager
from eth_utils import to_checksum_address

from backend.merkle import Leaf, MerkleTree
from tests.conftest import LONG
from tests.contracts.helpers import ETH, Seeders, activate, bought, listed, post

TREES = 5_000 if LONG else 1_000
TREES_PER_CALL = 50
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33]


def random_leaves(rng: random.Random, count: int, tokens: list[str]) -> list[Leaf]:
    leaves: dict[tuple[str, str], Leaf] = {}
    while len(leaves) < count:
        account = to_checksum_address(rng.randbytes(20))
        token = rng.choice(tokens)
        amount = rng.choice([0, 1, rng.randrange(10**18), rng.randrange(2**256)])
        leaves[(account, token)] = Leaf(account, token, amount)
    return list(leaves.values())


def as_claim(leaf: Leaf, proof: list[bytes]) -> tuple[str, str, int, list[bytes]]:
    return (leaf.account, leaf.token, leaf.cumulative_amount, proof)


@pytest.fixture(scope="module")
def harness(project: Any, accounts: Any) -> ContractInstance:
    return accounts[0].deploy(project.EarningsTreeHarness)


def test_every_proof_of_random_trees_verifies_and_no_altered_leaf_does(harness: ContractInstance) -> None:
    rng = random.Random(20240611)
    tokens = [ETH] + [to_checksum_address(rng.randbytes(20)) for _ in range(2)]
    cases, expected = [], []
    checked = 0
    for n in range(TREES):
        leaves = random_leaves(rng, rng.choice([*SIZES, rng.randrange(1, 65)]), tokens)
        tree = MerkleTree(leaves)
        claims = [as_claim(leaf, tree.proof(i)) for i, leaf in enumerate(leaves)]
        # One altered leaf per tree: a raised amount with the leaf's own proof.
        victim = rng.randrange(len(leaves))
        account, token, amount, proof = claims[victim]
        claims.append((account, token, (amount + 1) % 2**256, proof))
        cases.append((tree.root, claims))
        expected += [True] * len(leaves) + [False]
        if len(cases) == TREES_PER_CALL or n == TREES - 1:
            ours, openzeppelin = harness.check(cases)
            assert list(ours) == expected
            assert list(openzeppelin) == expected
            checked += len(expected)
            cases, expected = [], []
    assert checked > TREES * 10


def test_the_contract_hashes_leaves_as_the_python_tree_does(harness: ContractInstance) -> None:
    rng = random.Random(5)
    for leaf in random_leaves(rng, 20, [ETH, to_checksum_address(rng.randbytes(20))]):
        assert harness.leaf(leaf.account, leaf.token, leaf.cumulative_amount) == leaf.hash()


def test_sampled_leaves_of_random_trees_are_paid_in_full(
    market: ContractInstance,
    oracle: AccountAPI,
    chain: ChainManager,
    owner: AccountAPI,
    seller: AccountAPI,
    buyer: AccountAPI,
    others: list[AccountAPI],
) -> None:
    # A 100 ETH pool, all for the seeders; five random trees in turn, three real claims from each.
    market.setOperatorFee(0, sender=owner)
    bought(market, listed(market, seller, price=100 * 10**18, discount_bps=10_000), buyer)
    pool = 100 * 10**18
    rng = random.Random(99)
    for _ in range(5):
        leaves = [
            Leaf(to_checksum_address(rng.randbytes(20)), ETH, rng.randrange(1, 10**15))
            for _ in range(rng.randrange(1, 300))
        ]
        seeders = Seeders(MerkleTree(leaves))
        post(market, oracle, seeders, [ETH], totals=[pool])
        activate(chain)
        for leaf in rng.sample(leaves, min(3, len(leaves))):
            before = chain.provider.get_balance(leaf.account)
            market.claim(*seeders.claim_args(leaf.account, ETH), sender=others[0])
            assert chain.provider.get_balance(leaf.account) == before + leaf.cumulative_amount
            assert market.claimed(leaf.account, ETH) == leaf.cumulative_amount
