"""The OpenZeppelin "standard" Merkle tree of cumulative earnings, leaf for leaf.

Leaves are `(address account, address token, uint256 cumulativeAmount)`, hashed as
`keccak256(bytes.concat(keccak256(abi.encode(account, token, amount))))`; leaves are sorted by
hash, laid out as a complete binary tree in an array (the last leaf first), and pairs are hashed
sorted. This is exactly what `@openzeppelin/merkle-tree`'s `StandardMerkleTree.of(values,
["address", "address", "uint256"])` builds, so its `dump()` format is what `dump()` returns here
and `StandardMerkleTree.load` reads it; `MerkleProof.verifyCalldata` in the contract checks it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from tracker.hashing import keccak256

LEAF_ENCODING = ("address", "address", "uint256")
DUMP_FORMAT = "standard-v1"
_WORD = 32
_MAX_UINT256 = (1 << 256) - 1


class MerkleError(ValueError):
    """A leaf, proof or dump that does not make a valid standard tree."""


@dataclass(frozen=True, slots=True)
class MultiProof:
    """Leaves proven together: `Marketplace.payout(leaves, proof, proof_flags)` takes them in this order."""

    leaves: list[Leaf]
    proof: list[bytes]
    proof_flags: list[bool]


@dataclass(frozen=True, slots=True)
class Leaf:
    """What one account may have claimed in one token, in total, as of an epoch."""

    account: str  # 0x-prefixed, checksummed
    token: str  # 0x-prefixed, checksummed; the zero address is ETH
    cumulative_amount: int

    @classmethod
    def of(cls, account: str, token: str, cumulative_amount: int) -> Leaf:
        """Validate and normalise a leaf's values."""
        if not 0 <= cumulative_amount <= _MAX_UINT256:
            raise MerkleError(f"cumulative amount {cumulative_amount} is not a uint256")
        try:
            return cls(to_checksum_address(account), to_checksum_address(token), cumulative_amount)
        except ValueError as exc:
            raise MerkleError(f"not an address: {exc}") from None

    def hash(self) -> bytes:
        """The double-hashed leaf the contract computes."""
        return leaf_hash(self.account, self.token, self.cumulative_amount)


def leaf_hash(account: str, token: str, cumulative_amount: int) -> bytes:
    """The double-hashed leaf of two 0x-hex addresses (any case) and an amount."""
    encoded = (
        bytes.fromhex(account[2:]).rjust(_WORD, b"\0")
        + bytes.fromhex(token[2:]).rjust(_WORD, b"\0")
        + cumulative_amount.to_bytes(_WORD, "big")
    )
    return keccak256(keccak256(encoded))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Hash two nodes in sorted order, as OpenZeppelin's `MerkleProof` does."""
    return keccak256(a + b) if a < b else keccak256(b + a)


def process_proof(leaf_hash: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf_hash`."""
    node = leaf_hash
    for sibling in proof:
        if len(sibling) != _WORD:
            raise MerkleError("proof nodes must be 32 bytes")
        node = hash_pair(node, sibling)
    return node


def proof_at(tree: Sequence[bytes], tree_index: int) -> list[bytes]:
    """The sibling path from node `tree_index` up to the root of a tree laid out as `dump()["tree"]`."""
    if not 0 <= tree_index < len(tree):
        raise MerkleError(f"tree index {tree_index} is outside the tree")
    path = []
    index = tree_index
    while index > 0:
        path.append(tree[index + 1 if index % 2 else index - 1])
        index = (index - 1) // 2
    return path


def multiproof_at(
    tree: Sequence[bytes], tree_indices: Sequence[int]
) -> tuple[list[int], list[bytes], list[bool]]:
    """OpenZeppelin's multiproof of the leaves at `tree_indices` of a tree laid out as `dump()["tree"]`:
    (their tree indices in the order the proof consumes them, the proof, the proof flags)."""
    first_leaf = len(tree) // 2
    for index in tree_indices:
        if not first_leaf <= index < len(tree):
            raise MerkleError(f"tree index {index} is not a leaf")
    indices = sorted(tree_indices, reverse=True)
    if len(set(indices)) != len(indices):
        raise MerkleError("cannot prove a leaf twice")
    queue = deque(indices)
    proof: list[bytes] = []
    flags: list[bool] = []
    while queue and queue[0] > 0:
        index = queue.popleft()
        sibling = index + 1 if index % 2 else index - 1
        if queue and queue[0] == sibling:
            flags.append(True)
            queue.popleft()
        else:
            flags.append(False)
            proof.append(tree[sibling])
        queue.append((index - 1) // 2)
    if not indices:
        proof.append(tree[0])
    return indices, proof, flags


def process_multiproof(leaf_hashes: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool]) -> bytes:
    """The root a multiproof leads to, as OpenZeppelin's `MerkleProof.processMultiProof` computes it
    (and with its checks: every proof node used, nothing left over)."""
    if len(leaf_hashes) + len(proof) != len(flags) + 1:
        raise MerkleError("the multiproof's lengths do not add up")
    hashes = [bytes(_WORD)] * len(flags)  # read before written is zero, as in the contract
    leaf_pos = hash_pos = proof_pos = 0

    def take() -> bytes:
        nonlocal leaf_pos, hash_pos
        if leaf_pos < len(leaf_hashes):
            leaf_pos += 1
            return leaf_hashes[leaf_pos - 1]
        hash_pos += 1
        return hashes[hash_pos - 1]

    try:
        for i, flag in enumerate(flags):
            a = take()
            if flag:
                b = take()
            else:
                b = proof[proof_pos]
                proof_pos += 1
            hashes[i] = hash_pair(a, b)
    except IndexError:  # the contract's array bounds check reverts
        raise MerkleError("the multiproof reads past its proof or its hashes") from None
    if flags:
        if proof_pos != len(proof):
            raise MerkleError("the multiproof leaves proof nodes unused")
        return hashes[-1]
    return leaf_hashes[0] if leaf_hashes else proof[0]


def layout(hashes: Sequence[bytes]) -> tuple[list[bytes], list[int]]:
    """The tree over leaf hashes as OpenZeppelin lays it out: leaves sorted by hash and placed from
    the end of one array, each inner node the sorted-pair hash of its children, the root first.
    Returns (tree, tree index of each leaf in input order)."""
    order = sorted(range(len(hashes)), key=hashes.__getitem__)
    size = 2 * len(hashes) - 1
    tree: list[bytes] = [b""] * size
    tree_index = [0] * len(hashes)
    for position, value_index in enumerate(order):
        tree[size - 1 - position] = hashes[value_index]
        tree_index[value_index] = size - 1 - position
    for i in range(size - 1 - len(hashes), -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree, tree_index


class MerkleTree:
    """A standard tree over distinct leaves; proofs by leaf position or by (account, token)."""

    def __init__(self, leaves: Sequence[Leaf]) -> None:
        if not leaves:
            raise MerkleError("a tree needs at least one leaf")
        self.leaves = list(leaves)
        self.tree, self._tree_index = layout([leaf.hash() for leaf in self.leaves])
        self._by_key: dict[tuple[str, str], int] = {}
        for value_index, leaf in enumerate(self.leaves):
            key = (leaf.account, leaf.token)
            if key in self._by_key:
                raise MerkleError(f"two leaves for account {leaf.account} and token {leaf.token}")
            self._by_key[key] = value_index

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self.tree[0]

    def proof(self, value_index: int) -> list[bytes]:
        """The sibling path from the leaf at `value_index` (input order) up to the root."""
        return proof_at(self.tree, self._tree_index[value_index])

    def multiproof(self, value_indices: Sequence[int]) -> MultiProof:
        """One proof of the leaves at `value_indices` (input order), as `getMultiProof` of
        `@openzeppelin/merkle-tree` gives it: the leaves come back in the order the proof needs.
        Leaves next to each other in the tree (close `tree_index`) share most of their proof."""
        for value_index in value_indices:
            if not 0 <= value_index < len(self.leaves):
                raise MerkleError(f"no leaf at {value_index}")
        indices, proof, flags = multiproof_at(self.tree, [self._tree_index[i] for i in value_indices])
        by_tree_index = {self._tree_index[i]: i for i in value_indices}
        return MultiProof([self.leaves[by_tree_index[i]] for i in indices], proof, flags)

    def tree_index(self, value_index: int) -> int:
        """Where the leaf at `value_index` (input order) sits in the tree array."""
        return self._tree_index[value_index]

    def find(self, account: str, token: str) -> int | None:
        """The input position of the leaf of (account, token), if it is in the tree."""
        return self._by_key.get((to_checksum_address(account), to_checksum_address(token)))

    def dump(self) -> dict[str, Any]:
        """The JSON that `StandardMerkleTree.load` reads."""
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {
                    "value": [leaf.account, leaf.token, str(leaf.cumulative_amount)],
                    "treeIndex": tree_index,
                }
                for leaf, tree_index in zip(self.leaves, self._tree_index, strict=True)
            ],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> MerkleTree:
        """Rebuild a tree from a dump, checking that it is the tree of its values."""
        if data.get("format") != DUMP_FORMAT:
            raise MerkleError(f"unknown tree format {data.get('format')!r}")
        if list(data.get("leafEncoding", [])) != list(LEAF_ENCODING):
            raise MerkleError(f"leaf encoding must be {list(LEAF_ENCODING)}")
        try:
            leaves = [Leaf.of(v["value"][0], v["value"][1], int(v["value"][2])) for v in data["values"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MerkleError(f"malformed tree values: {exc}") from None
        tree = cls(leaves)
        if ["0x" + node.hex() for node in tree.tree] != [str(node).lower() for node in data.get("tree", [])]:
            raise MerkleError("the dump's nodes are not the tree of its values")
        return tree
