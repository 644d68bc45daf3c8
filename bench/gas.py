"""Gas used by the Marketplace's transactions, measured on anvil through ape.

    python bench/gas.py            # from the repository root; starts and stops its own anvil

Every figure is the `gasUsed` of a real transaction in a realistic state: balances and pools that
earlier purchases already created, and, unless a row says otherwise, claims sent by the seeder
itself. Proofs come from real OpenZeppelin standard trees built by `backend.merkle` (the depth-20
tree has 2^20 leaves and takes some seconds to build). The yardstick is measured in the same
run: `contracts/test/BitmapDistributor.sol`, a one-shot distributor in the style of Uniswap's
MerkleDistributor, claimed by a recipient's first tokens in a 2-leaf and a 100,000-leaf tree;
Uniswap's own published figures are printed beside it. Batch payouts (issue 13) are measured last,
per payee, in a 100,000-leaf root: batches of 1, 10, 100 and 1,000 first ETH payouts taken in tree
order, 100 scattered ones and 100 first ERC-20 payouts, with the breakdown of a payee's gas; the
final JSON line carries them as `payout_*`.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ape
from ape.logging import LogLevel, logger
from eth_utils import to_checksum_address

from backend.merkle import Leaf, MerkleTree, layout, proof_at
from tracker.hashing import keccak256

REPO = Path(__file__).resolve().parent.parent
ETH = "0x0000000000000000000000000000000000000000"
ETHER = 10**18
FEE_BPS = 2_000
ROOT_DELAY = 60
# Uniswap merkle-distributor's published claim gas (ERC-20, the recipient's first tokens).
UNISWAP_TWO_LEAVES = 81_970
UNISWAP_100K_LEAVES = 95_256
GOALS = {
    "purchase, ETH": 100_000,
    "first claim, depth 20, ETH": 75_000,
    "first claim, depth 20, ERC-20": 95_000,
    "postRoot, later": 80_000,
}
# Issue 13: gas per payee of a batch of 100 first payouts in a 100,000-leaf tree.
PAYOUT_GOALS = [
    ("payout per payee, 100 first ETH payouts", "payout_eth_100", 40_000),
    ("payout per payee, 100 first ERC-20 payouts", "payout_erc20_100", 60_000),
]


@dataclass
class Row:
    name: str
    gas: int
    calldata: int  # of `gas`: what the transaction's input costs (16 per nonzero byte, 4 per zero)
    note: str = ""


def calldata_gas(data: bytes) -> int:
    return sum(16 if byte else 4 for byte in data)


class Bench:
    """Deploys a market and a token, and records the gas of each transaction worth a row."""

    def __init__(self) -> None:
        test = ape.accounts.test_accounts
        self.owner, self.oracle, self.guardian, self.treasury, self.seller = (test[i] for i in range(5))
        self.buyers = [test[i] for i in range(5, 10)]
        self.keeper = self.buyers[0]  # sends claims for others
        # Seeders: fresh accounts with some ETH for gas, so that none of them is "new" to the chain.
        self.seeders = [test.generate_test_account() for _ in range(24)]
        for seeder in self.seeders:
            self.owner.transfer(seeder, ETHER // 10)
        project = ape.project
        self.market = self.owner.deploy(
            project.Marketplace,
            self.owner,
            self.oracle,
            self.guardian,
            self.treasury,
            FEE_BPS,
            ROOT_DELAY,
            ROOT_DELAY,
            2 * ROOT_DELAY,
        )
        self.token = self.owner.deploy(project.TestToken, "Test Token", "TT")
        self.market.setTokenAllowed(self.token, True, sender=self.owner)
        self.tokens = sorted([ETH, self.token.address], key=lambda t: int(t, 16))
        self.rows: list[Row] = []
        self.epoch = 0
        self.totals = dict.fromkeys(self.tokens, 0)
        self.earned: dict[tuple[str, str], int] = {}
        self.claimed_topic = "0x" + keccak256(b"Claimed(address,address,uint256,uint256)").hex()
        self.payout_parts: dict[str, tuple[int, float]] = {}

    def record(self, name: str, receipt: Any, note: str = "") -> int:
        self.rows.append(
            Row(name, int(receipt.gas_used), calldata_gas(bytes(receipt.transaction.data)), note)
        )
        return int(receipt.gas_used)

    # ----- sales -----

    def sales(self) -> None:
        m, seller = self.market, self.seller
        receipt = m.listProduct(
            b"\x01" * 20 + bytes(12), 1 << 30, ETH, ETHER, 2_500, "ipfs://product-1", sender=seller
        )
        self.record("listProduct", receipt, "a new product; its infohash and terms stored")
        m.listProduct(
            b"\x02" * 20 + bytes(12), 1 << 30, self.token, ETHER, 2_500, "ipfs://product-2", sender=seller
        )
        m.listProduct(b"\x03" * 20 + bytes(12), 1 << 30, ETH, ETHER, 2_500, "ipfs://product-3", sender=seller)
        for buyer in self.buyers:
            self.token.mint(buyer, 100 * ETHER, sender=buyer)
            self.token.approve(m, 2**256 - 1, sender=buyer)

        first, second, *rest = self.buyers
        self.record(
            "purchase, ETH, the store's first",
            m.purchase(1, ETH, ETHER, 1, sender=first, value=ETHER),
            "fresh slots",
        )
        self.record(
            "purchase, ETH",
            m.purchase(1, ETH, ETHER, 1, sender=second, value=ETHER),
            "seller and pool already credited",
        )
        self.record(
            "purchase, ERC-20, first in the token",
            m.purchase(2, self.token, ETHER, 1, sender=first),
            "fresh slots",
        )
        self.record(
            "purchase, ERC-20",
            m.purchase(2, self.token, ETHER, 1, sender=second),
            "pulls the price, checks what arrived",
        )
        self.record("withdraw, ETH", m.withdraw(ETH, sender=seller), "seller's balance")
        self.record("withdraw, ERC-20", m.withdraw(self.token, sender=seller))
        m.withdraw(ETH, sender=self.treasury)
        self.record(
            "purchase, ETH, after withdrawals",
            m.purchase(1, ETH, ETHER, 1, sender=rest[0], value=ETHER),
            "withdrawn balances are re-credited, not re-created",
        )
        for buyer in rest[1:]:
            m.purchase(1, ETH, ETHER, 1, sender=buyer, value=ETHER)
            m.purchase(2, self.token, ETHER, 1, sender=buyer)
        for buyer in self.buyers:
            m.purchase(3, ETH, ETHER, 1, sender=buyer, value=ETHER)
        newcomer = self.seeders[-2]
        m.listProduct(
            b"\x04" * 20 + bytes(12), 1 << 30, ETH, ETHER, 2_500, "ipfs://product-4", sender=newcomer
        )
        self.record(
            "purchase, ETH, a seller's first sale",
            m.purchase(4, ETH, ETHER, 1, sender=first, value=ETHER),
            "fresh seller balance",
        )

    # ----- roots and claims -----

    def tree(self, named: list[tuple[Any, str, int]], size: int, seed: int) -> MerkleTree:
        """A standard tree of `size` leaves: everything earned so far, with `named` added (cumulative
        amounts, as the oracle publishes them), and random fillers of 1 wei."""
        for account, token, amount in named:
            self.earned[(str(account.address), token)] = amount
        rng = random.Random(seed)
        leaves = [Leaf(account, token, amount) for (account, token), amount in self.earned.items()]
        leaves += [
            Leaf("0x" + rng.randbytes(20).hex(), rng.choice(self.tokens), 1)
            for _ in range(size - len(leaves))
        ]
        return MerkleTree(leaves)

    def post(
        self, tree: MerkleTree, name: str | None = None, note: str = "", totals: dict[str, int] | None = None
    ) -> int:
        """Post `tree` as the next epoch, with its leaves' totals unless given, and let its delay pass."""
        if totals is None:
            totals = {
                t: sum(leaf.cumulative_amount for leaf in tree.leaves if leaf.token == t) for t in self.tokens
            }
            self.totals = totals
        self.epoch += 1
        receipt = self.market.postRoot(
            tree.root,
            self.epoch,
            self.tokens,
            [totals[t] for t in self.tokens],
            f"ipfs://epoch-{self.epoch}",
            sender=self.oracle,
        )
        ape.chain.mine(deltatime=ROOT_DELAY)
        return self.record(name, receipt, note) if name else int(receipt.gas_used)

    def claim(
        self, tree: MerkleTree, account: Any, token: str, name: str, sender: Any = None, note: str = ""
    ) -> int:
        index = tree.find(str(account.address), token)
        assert index is not None, "the seeder has a leaf"
        leaf, proof = tree.leaves[index], tree.proof(index)
        receipt = self.market.claim(
            leaf.account, token, leaf.cumulative_amount, proof, sender=sender or account
        )
        return self.record(f"{name} (depth {len(proof)})", receipt, note)

    def roots_and_claims(self) -> dict[str, int]:
        s, eth, tkn = self.seeders, ETH, self.token.address
        reward = ETHER // 100
        for holder in (s[1], s[3], s[6]):  # these seeders already hold some of the token
            self.token.mint(holder, ETHER, sender=self.owner)
        found: dict[str, int] = {}

        two = self.tree([(s[0], eth, reward), (s[1], tkn, reward)], 2, seed=1)
        self.post(two, "postRoot, the store's first", "fresh slots for the roots and each token's totals")
        self.claim(two, s[0], eth, "first claim, ETH")
        self.claim(two, s[1], tkn, "first claim, ERC-20")

        ten = self.tree([(s[2], eth, reward), (s[3], tkn, reward), (s[0], eth, 2 * reward)], 1 << 10, seed=2)
        self.post(ten, "postRoot, second", "the current root's slot is written the first time")
        self.claim(ten, s[2], eth, "first claim, ETH")
        self.claim(ten, s[3], tkn, "first claim, ERC-20")

        named = [(s[4], eth, reward), (s[5], eth, reward), (s[6], tkn, reward), (s[7], tkn, reward)]
        named += [(s[0], eth, 3 * reward)]
        deep = self.tree(named, 1 << 20, seed=3)
        found["postRoot, later"] = self.post(deep, "postRoot, later", "2^20 leaves; the usual case")
        found["first claim, depth 20, ETH"] = self.claim(deep, s[4], eth, "first claim, ETH")
        self.claim(deep, s[5], eth, "first claim, ETH, sent for the seeder", self.keeper, "cold recipient")
        self.claim(deep, s[0], eth, "later claim, ETH", note="claimed before: its slot exists")
        found["first claim, depth 20, ERC-20"] = self.claim(deep, s[6], tkn, "first claim, ERC-20")
        self.claim(deep, s[7], tkn, "first claim, ERC-20, the seeder's first tokens", note="as in Uniswap's")
        del deep

        batch = [(seeder, eth, reward) for seeder in s[10:20]]
        wide = self.tree([(s[8], tkn, reward), (s[9], eth, reward), *batch], 100_000, seed=4)
        self.post(wide)
        found["uniswap-like"] = self.claim(wide, s[8], tkn, "first claim, ERC-20, the seeder's first tokens")
        self.claim(wide, s[9], eth, "first claim, ETH")
        requests = []
        for seeder in s[10:20]:
            index = wide.find(str(seeder.address), eth)
            assert index is not None, "the seeder has a leaf"
            leaf = wide.leaves[index]
            requests.append((leaf.account, eth, leaf.cumulative_amount, wide.proof(index)))
        receipt = self.market.claimMany(requests, sender=self.keeper)
        self.record("claimMany of 10 first claims, ETH", receipt, f"{receipt.gas_used // 10:,} per claim")
        return found

    def yardstick(self) -> tuple[int, int]:
        """A bitmap distributor's ERC-20 claim, the recipient's first tokens, in a 2-leaf and a
        100,000-leaf tree of `(index, account, amount)` leaves: (gas, gas)."""
        rng = random.Random(6)
        reward = ETHER // 100
        gas = []
        for size, claimant in ((2, self.seeders[20]), (100_000, self.seeders[21])):
            accounts = [str(claimant.address)] + ["0x" + rng.randbytes(20).hex() for _ in range(size - 1)]
            amounts = [reward] + [1] * (size - 1)
            hashes = [
                keccak256(i.to_bytes(32, "big") + bytes.fromhex(a[2:]) + n.to_bytes(32, "big"))
                for i, (a, n) in enumerate(zip(accounts, amounts, strict=True))
            ]
            tree, where = layout(hashes)
            distributor = self.owner.deploy(ape.project.BitmapDistributor, self.token, tree[0])
            self.token.mint(distributor, sum(amounts), sender=self.owner)
            proof = proof_at(tree, where[0])
            receipt = distributor.claim(0, claimant, reward, proof, sender=claimant)
            name = f"yardstick: bitmap distributor claim, ERC-20, first tokens (depth {len(proof)})"
            gas.append(self.record(name, receipt, f"{size:,} leaves"))
        return gas[0], gas[1]

    # ----- batch payouts -----

    def send_raw(self, method: Any, *args: Any) -> dict[str, Any]:
        """Send a transaction through the node itself with all the block's gas: a batch of 1,000
        outlasts ape's 20 s wait under anvil's step tracing. Its receipt."""
        provider = ape.chain.provider
        tx = {
            "from": str(self.keeper.address),
            "to": str(self.market.address),
            "data": method.encode_input(*args).to_0x_hex(),
            "gas": hex(ape.chain.blocks.head.gas_limit),
        }
        sent = provider.make_request("eth_sendTransaction", [tx])
        deadline = time.monotonic() + 600
        while (receipt := provider.make_request("eth_getTransactionReceipt", [sent])) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"payout {sent} not mined")
            time.sleep(0.1)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"payout {sent} reverted")
        return dict(receipt)

    def payout(self, tree: MerkleTree, indices: list[int], name: str, note: str = "") -> Row:
        """Pay the leaves at `indices` of `tree` in one batch sent by the keeper; the row is per payee."""
        multi = tree.multiproof(indices)
        leaves = [(leaf.account, leaf.token, leaf.cumulative_amount) for leaf in multi.leaves]
        args = (leaves, multi.proof, multi.proof_flags)
        receipt = self.send_raw(self.market.payout, *args)
        paid = sum(1 for log in receipt["logs"] if log["topics"][0] == self.claimed_topic)
        assert paid == len(indices), f"{name}: paid {paid} of {len(indices)}"
        data = bytes(self.market.payout.encode_input(*args))
        count = len(indices)
        row = Row(
            f"{name}, {count:,} {'leaf' if count == 1 else 'leaves'}: per payee",
            int(receipt["gasUsed"], 16) // count,
            calldata_gas(data) // count,
            note or f"proof {len(multi.proof):,} nodes, {len(multi.proof_flags):,} flags",
        )
        self.rows.append(row)
        self.payout_parts[row.name] = (
            calldata_gas(data[4 + 4 * 32 : 4 + 4 * 32 + 96 * count]) // count,  # the leaves
            (len(multi.proof) + len(multi.proof_flags)) / count,  # proof nodes and flags
        )
        return row

    def payouts(self) -> dict[str, int]:
        """Batch payouts from a 100,000-leaf root where half the leaves are ETH and half the ERC-20:
        every seeder's first payout. The keeper takes leaves of one token in tree order (as it does
        when it pays everyone due); "scattered" takes 100 ETH leaves anywhere in the tree. Payees
        are existing accounts (they hold some ETH) but hold none of the token: an ERC-20 payout
        creates their balance, as in Uniswap's figure."""
        rng = random.Random(7)
        provider = ape.chain.provider
        reward = 10**12
        leaves = [Leaf(account, token, amount) for (account, token), amount in self.earned.items()]
        fresh = [
            Leaf(to_checksum_address(rng.randbytes(20)), self.tokens[i % 2], reward)
            for i in range(100_000 - len(leaves))
        ]
        tree = MerkleTree(leaves + fresh)
        self.post(tree)
        in_order = sorted(range(len(leaves), len(tree.leaves)), key=tree.tree_index)
        eth = [i for i in in_order if tree.leaves[i].token == ETH]
        erc20 = [i for i in in_order if tree.leaves[i].token != ETH]
        batches, start = [], 0
        for size in (1, 10, 100, 1_000):
            batches.append(eth[start : start + size])
            start += size
        scattered = rng.sample(eth[start:], 100)
        for i in [*(i for batch in batches for i in batch), *scattered]:
            provider.make_request("anvil_setBalance", [tree.leaves[i].account, hex(ETHER // 100)])
        limit = ape.chain.blocks.head.gas_limit
        provider.set_block_gas_limit(200_000_000)  # a batch of 1,000 passes mainnet's 36 million
        ape.chain.mine()
        found = {}
        for batch in batches:
            row = self.payout(tree, batch, "payout, first ETH", "leaves side by side in the tree")
            found[f"payout_eth_{len(batch)}"] = row.gas
        found["payout_eth_100_scattered"] = self.payout(
            tree, scattered, "payout, first ETH, scattered", "100 ETH leaves anywhere in the tree"
        ).gas
        found["payout_erc20_100"] = self.payout(
            tree, erc20[:100], "payout, first ERC-20, the seeders' first tokens"
        ).gas
        provider.set_block_gas_limit(limit)
        ape.chain.mine()
        return found

    def root_size_does_not_matter(self) -> tuple[int, int]:
        """Post a 10-leaf and a 100,000-leaf root from the same state with the same totals: one
        seeder earns a reward, the other leaves are zero."""
        chain = ape.chain
        rng = random.Random(5)
        reward = ETHER // 100
        gas = []
        for size in (10, 100_000):
            leaves = [Leaf("0x" + rng.randbytes(20).hex(), ETH, 0) for _ in range(size - 1)]
            tree = MerkleTree([Leaf(str(self.seeders[-1].address), ETH, reward), *leaves])
            snapshot = chain.snapshot()
            totals = {**self.totals, ETH: self.totals[ETH] + reward}
            gas.append(self.post(tree, f"postRoot, {size:,} leaves", "same state and totals", totals))
            chain.restore(snapshot)
            self.epoch -= 1  # the chain forgot that root: the next one takes its epoch again
        return gas[0], gas[1]


def table(rows: list[Row]) -> str:
    width = max(len(row.name) for row in rows)
    lines = [
        f"| {'transaction':<{width}} | {'gas':>8} | {'calldata':>8} | note |",
        f"|{'-' * (width + 2)}|{'-' * 9}:|{'-' * 9}:|------|",
    ]
    lines += [f"| {r.name:<{width}} | {r.gas:>8,} | {r.calldata:>8,} | {r.note} |" for r in rows]
    return "\n".join(lines)


def why_an_eth_claim_costs(row: Row) -> str:
    """Where the gas of a first ETH claim goes (EIP-2929 and EIP-2200 storage prices)."""
    parts = [
        ("transaction base", 21_000),
        ("calldata, mostly the proof", row.calldata),
        ("new `claimed` slot of the seeder (cold, zero to nonzero)", 22_100),
        ("per-token cap: read and update the token's claimed total", 2_100 + 2_900),
        ("status slot (pause flag, which root is active)", 2_100),
        ("the active root", 2_100),
        ("ETH transfer to the seeder (value, warm account, stipend back)", 9_000 + 100 - 2_300),
        ("Claimed event", 375 + 3 * 375 + 8 * 64),
    ]
    known = sum(gas for _, gas in parts)
    parts.append(("proof hashing, ABI decoding, reentrancy guard, the rest", row.gas - known))
    lines = [f"  {gas:>7,}  {what}" for what, gas in parts]
    return "\n".join([f"{row.name}: {row.gas:,} gas =", *lines])


def why_a_payout_costs(row: Row, leaf_calldata: int, nodes: float, count: int) -> str:
    """Where a payee's gas goes in a batch of first ETH payouts (EIP-2929 and EIP-2200 prices)."""
    parts = [
        (f"transaction base, shared by {count}", 21_000 // count),
        ("calldata: the leaf (account, token, amount)", leaf_calldata),
        (
            f"calldata: its share of the multiproof ({nodes:.1f} nodes and flags) and ABI heads",
            row.calldata - leaf_calldata,
        ),
        ("new `claimed` slot of the payee (cold read, zero to nonzero)", 22_100),
        ("ETH to the payee (value 9,000, cold account 2,600, stipend back -2,300)", 9_000 + 2_600 - 2_300),
        ("Claimed event (3 topics, 64 bytes)", 375 + 3 * 375 + 8 * 64),
        ("status slot, root, the token's books: once per batch, shared", (3 * 2_100 + 2_900) // count),
    ]
    known = sum(gas for _, gas in parts)
    parts.append(("leaf hashing, multiproof hashing, ABI decoding, the loop: the rest", row.gas - known))
    lines = [f"  {gas:>7,}  {what}" for what, gas in parts]
    return "\n".join([f"{row.name}: {row.gas:,} gas =", *lines])


def main() -> int:
    os.chdir(REPO)  # ape finds the project (and its compiled contracts) in the working directory
    logger.set_level(LogLevel.WARNING)  # keep ape's progress lines out of the table and the JSON line
    with ape.networks.parse_network_choice("ethereum:local:foundry"):
        bench = Bench()
        bench.sales()
        found = bench.roots_and_claims()
        small, large = bench.root_size_does_not_matter()
        yardstick_two, yardstick_wide = bench.yardstick()
        found["purchase, ETH"] = next(r.gas for r in bench.rows if r.name == "purchase, ETH")
        payouts = bench.payouts()

    print("Marketplace gas on anvil (real transactions; claims sent by the seeder unless noted)\n")
    print(table(bench.rows))
    print("\nThe yardstick, a bitmap distributor (one claimed bit per leaf, no cumulative amounts, pause,")
    print(f"root delay or per-token cap), measured above: {yardstick_two:,} gas in a 2-leaf tree,")
    print(f"{yardstick_wide:,} in a 100,000-leaf tree. Uniswap's MerkleDistributor publishes")
    print(f"{UNISWAP_TWO_LEAVES:,} and {UNISWAP_100K_LEAVES:,}.\n")
    print(why_an_eth_claim_costs(next(r for r in bench.rows if r.name == "first claim, ETH (depth 20)")))
    print()
    hundred = next(r for r in bench.rows if r.name == "payout, first ETH, 100 leaves: per payee")
    print(why_a_payout_costs(hundred, *bench.payout_parts[hundred.name], 100))
    print()
    goals = {name: found[name] <= limit for name, limit in GOALS.items()}
    for name, key, limit in PAYOUT_GOALS:
        goals[name] = payouts[key] <= limit
        print(f"goal {name} <= {limit:,}: {payouts[key]:,} {'met' if goals[name] else 'MISSED'}")
    goals["postRoot constant in the number of leaves"] = small == large
    for name, limit in GOALS.items():
        print(f"goal {name} <= {limit:,}: {found[name]:,} {'met' if goals[name] else 'MISSED'}")
    print(f"goal postRoot the same for 10 and 100,000 leaves: {small:,} and {large:,}")
    ours = found["uniswap-like"]
    result = {
        "name": "gas: first ERC-20 claim in a 100,000-leaf tree",
        "ours": ours,
        "peer": yardstick_wide,
        "peer_name": "bitmap distributor in the style of Uniswap's MerkleDistributor, same run",
        "ratio": round(ours / yardstick_wide, 3),
        "unit": "gas",
        "uniswap_published": UNISWAP_100K_LEAVES,
        "purchase_eth": found["purchase, ETH"],
        "claim_eth_depth20": found["first claim, depth 20, ETH"],
        "claim_erc20_depth20": found["first claim, depth 20, ERC-20"],
        "post_root": found["postRoot, later"],
        # Gas per payee of a batch payout, first payouts, 100,000-leaf tree (bench.payouts()).
        **payouts,
        "goals_met": goals,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
