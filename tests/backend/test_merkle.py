"""backend.merkle builds the same trees and proofs as @openzeppelin/merkle-tree."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from eth_utils import to_checksum_address

from backend.merkle import Leaf, MerkleError, MerkleTree, process_multiproof, process_proof
from tests.conftest import LONG, REPO

ETH = "0x0000000000000000000000000000000000000000"


def _random_leaves(rng: random.Random, count: int) -> list[Leaf]:
    tokens = [ETH] + [to_checksum_address(rng.randbytes(20)) for _ in range(2)]
    seen: set[tuple[str, str]] = set()
    leaves = []
    while len(leaves) < count:
        account = to_checksum_address(rng.randbytes(20))
        token = rng.choice(tokens)
        if (account, token) in seen:
            continue
        seen.add((account, token))
        amount = rng.choice([0, 1, rng.randrange(10**18), rng.randrange(2**256)])
        leaves.append(Leaf.of(account, token, amount))
    return leaves


def _run_node(script: str, payload: object) -> object:
    result = subprocess.run(
        ["node", str(REPO / "tests" / "backend" / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(result.stdout)


def _values(leaves: list[Leaf]) -> list[list[str]]:
    return [[leaf.account, leaf.token, str(leaf.cumulative_amount)] for leaf in leaves]


def test_random_trees_match_the_openzeppelin_library(node: str) -> None:
    rng = random.Random(2024)
    count = 1000 if not LONG else 5000
    sizes = [rng.choice([1, 2, 3, 5, 8, 13, 64, rng.randrange(1, 200)]) for _ in range(count)]
    forests = [_random_leaves(rng, size) for size in sizes]
    expected = _run_node("oz_merkle.js", [_values(leaves) for leaves in forests])
    assert isinstance(expected, list)
    for leaves, js in zip(forests, expected, strict=True):
        tree = MerkleTree(leaves)
        assert "0x" + tree.root.hex() == js["root"]
        for i in range(len(leaves)):
            assert ["0x" + node.hex() for node in tree.proof(i)] == js["proofs"][i]
        assert tree.dump() == js["dump"]


def test_openzeppelin_loads_our_dump_and_proves_the_same(node: str) -> None:
    leaves = _random_leaves(random.Random(7), 33)
    tree = MerkleTree(leaves)
    js = _run_node("oz_merkle_load.js", tree.dump())
    assert isinstance(js, dict)
    assert js["root"] == "0x" + tree.root.hex()
    assert js["proofs"] == [["0x" + n.hex() for n in tree.proof(i)] for i in range(len(leaves))]


def test_every_proof_leads_to_the_root() -> None:
    leaves = _random_leaves(random.Random(1), 100)
    tree = MerkleTree(leaves)
    for i, leaf in enumerate(leaves):
        assert process_proof(leaf.hash(), tree.proof(i)) == tree.root


def test_a_proof_does_not_prove_another_amount() -> None:
    leaves = _random_leaves(random.Random(2), 10)
    tree = MerkleTree(leaves)
    forged = Leaf.of(leaves[0].account, leaves[0].token, leaves[0].cumulative_amount + 1)
    assert process_proof(forged.hash(), tree.proof(0)) != tree.root


def test_load_round_trips_and_rejects_a_tampered_dump() -> None:
    tree = MerkleTree(_random_leaves(random.Random(3), 9))
    assert MerkleTree.load(tree.dump()).root == tree.root
    tampered = tree.dump()
    tampered["values"][0]["value"][2] = str(int(tampered["values"][0]["value"][2]) + 1)
    with pytest.raises(MerkleError):
        MerkleTree.load(tampered)


def test_find_locates_a_leaf_by_account_and_token_in_any_case() -> None:
    leaves = _random_leaves(random.Random(4), 5)
    tree = MerkleTree(leaves)
    assert tree.find(leaves[3].account.lower(), leaves[3].token) == 3
    assert tree.find(ETH, ETH) is None


@pytest.mark.parametrize(
    ("account", "token", "amount"),
    [("0x1234", ETH, 1), (ETH, "not an address", 1), (ETH, ETH, -1), (ETH, ETH, 2**256)],
)
def test_invalid_leaf_values_are_refused(account: str, token: str, amount: int) -> None:
    with pytest.raises(MerkleError):
        Leaf.of(account, token, amount)


def test_duplicate_account_and_token_is_refused() -> None:
    leaf = Leaf.of(ETH, ETH, 1)
    with pytest.raises(MerkleError):
        MerkleTree([leaf, Leaf.of(ETH, ETH, 2)])
    with pytest.raises(MerkleError):
        MerkleTree([])


def test_random_multiproofs_match_the_openzeppelin_library(node: str) -> None:
    rng = random.Random(2026)
    cases = []
    for _ in range(150 if not LONG else 2000):
        leaves = _random_leaves(rng, rng.choice([1, 2, 3, 7, 16, 33, rng.randrange(1, 300)]))
        picked = rng.sample(range(len(leaves)), rng.randrange(0, len(leaves) + 1))
        cases.append((leaves, picked))
    expected = _run_node(
        "oz_multiproof.js", [{"values": _values(leaves), "indices": picked} for leaves, picked in cases]
    )
    assert isinstance(expected, list)
    for (leaves, picked), js in zip(cases, expected, strict=True):
        tree = MerkleTree(leaves)
        multi = tree.multiproof(picked)
        assert _values(multi.leaves) == js["leaves"]
        assert ["0x" + n.hex() for n in multi.proof] == js["proof"]
        assert multi.proof_flags == js["proofFlags"]
        assert sorted(_values(multi.leaves)) == sorted(_values([leaves[i] for i in picked]))
        hashes = [leaf.hash() for leaf in multi.leaves]
        assert process_multiproof(hashes, multi.proof, multi.proof_flags) == tree.root


def test_a_multiproof_does_not_prove_other_leaves() -> None:
    leaves = _random_leaves(random.Random(5), 40)
    tree = MerkleTree(leaves)
    multi = tree.multiproof([3, 17, 29])
    hashes = [leaf.hash() for leaf in multi.leaves]
    tampered = Leaf.of(multi.leaves[1].account, multi.leaves[1].token, multi.leaves[1].cumulative_amount + 1)
    assert (
        process_multiproof([hashes[0], tampered.hash(), hashes[2]], multi.proof, multi.proof_flags)
        != tree.root
    )
    other = tree.multiproof([4, 17, 29])
    assert process_multiproof(hashes, other.proof, other.proof_flags) != tree.root
    # A proof node left over, or a flag missing, is refused as the contract refuses it.
    with pytest.raises(MerkleError):
        process_multiproof(hashes, [*multi.proof, tree.root], multi.proof_flags)
    with pytest.raises(MerkleError):
        process_multiproof(hashes, multi.proof, multi.proof_flags[:-1])


def test_a_multiproof_of_neighbours_in_the_tree_is_short() -> None:
    leaves = _random_leaves(random.Random(6), 1024)
    tree = MerkleTree(leaves)
    by_position = sorted(range(len(leaves)), key=tree.tree_index)
    neighbours = tree.multiproof(by_position[:64])
    scattered = tree.multiproof(by_position[::16])
    assert len(neighbours.proof) == 10 - 6
    assert len(scattered.proof) == 64 * 4


def test_a_multiproof_refuses_a_leaf_twice_or_outside_the_tree() -> None:
    tree = MerkleTree(_random_leaves(random.Random(8), 5))
    with pytest.raises(MerkleError):
        tree.multiproof([1, 1])
    with pytest.raises(MerkleError):
        tree.multiproof([5])
