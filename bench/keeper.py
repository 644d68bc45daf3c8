"""Keeper benchmark: from a root's activation to the last payout transaction sent, 10,000 payees.

A Marketplace on a fresh anvil is funded by one purchase; an epoch of N leaves (N fresh accounts,
0.01 ETH each) is stored as the oracle stores one and posted by the oracle (no root delay: it is
active once mined). Then one keeper step reads what each leaf has claimed, plans its batches,
builds their multiproofs, estimates, signs, stores and broadcasts them: that step is timed, with
anvil holding the transactions unmined (as a busy network would). They are then mined and every
leaf is checked paid once. The peer is what a payee-by-payee keeper would do on the same chain:
N single `claim` transactions sent by one account (proofs, signing with consecutive nonces,
broadcasting), timed the same way, then mined and checked. The gas both spend is printed too.

    python bench/keeper.py [--payees N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_utils import keccak, to_checksum_address
from sqlalchemy import insert

from backend.chain import ZERO_ADDRESS, load_abi
from backend.merkle import Leaf, MerkleTree, proof_at
from backend.models import Epoch, EpochLeaf, EpochStatus, table
from backend.services import Services
from backend.settings import DEV_KEEPER_INDEX, load_settings, public_test_account
from dev.devnet import Anvil, Deployed, deploy_marketplace

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".build" / "__local__.json"
PRICE = 1_000 * 10**18  # one purchase funds the seeders' pool: 160 ETH
AMOUNT = 10**16  # each payee's leaf: 0.01 ETH
CLAIM_GAS = 150_000
CALLS_PER_REQUEST = 500
PROFILE = None  # a path: profile the keeper's step into it (--profile)


def payees(count: int, salt: bytes) -> list[str]:
    """`count` fresh, deterministic accounts (another set for each salt)."""
    return [to_checksum_address(keccak(salt + i.to_bytes(4, "big"))[:20]) for i in range(count)]


def existing(node: Anvil, accounts: list[str]) -> None:
    """Give each account 1 wei: seeders are accounts that already exist (they bought something),
    so no payment pays the 25,000 gas of creating one."""
    calls = [("anvil_setBalance", [a, "0x1"]) for a in accounts]
    for start in range(0, len(calls), CALLS_PER_REQUEST):
        node.w3.provider.make_batch_request(calls[start : start + CALLS_PER_REQUEST])  # type: ignore[arg-type]


def funded_market(node: Anvil) -> Deployed:
    """A Marketplace whose ETH seeders' pool holds enough for every payee."""
    owner, seller, buyer = node.accounts[0], node.accounts[1], node.accounts[2]
    deployed = deploy_marketplace(node.w3, MANIFEST, owner=owner)
    contract = node.w3.eth.contract(address=deployed.address, abi=load_abi(MANIFEST))
    infohash = b"\x01" * 20 + b"\0" * 12
    for tx in (
        contract.functions.listProduct(infohash, 1000, ZERO_ADDRESS, PRICE, 2000, "bench").transact(
            {"from": seller}
        ),
        contract.functions.purchase(1, ZERO_ADDRESS, PRICE, 1).transact({"from": buyer, "value": PRICE}),
    ):
        assert node.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return deployed


def store_for(node: Anvil, deployed: Deployed, folder: Path) -> Services:
    settings = load_settings(
        environment="development",
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'store.db'}",
        rpc_url=node.url,
        chain_id=31337,
        contract_address=deployed.address,
        deployment_block=deployed.block,
        manifest=MANIFEST,
        confirmations=0,
        store_accounts=[node.accounts[9]],
    )
    return Services.open(settings)


def post_epoch(store: Services, accounts: list[str]) -> MerkleTree:
    """Store an epoch paying `AMOUNT` to each account, as `close_epoch` would, and post it."""
    tree = MerkleTree([Leaf.of(a, ZERO_ADDRESS, AMOUNT) for a in accounts])
    store.indexer().sync()
    now = int(time.time())
    with store.db.writer() as session:
        session.add(
            Epoch(
                number=1,
                status=EpochStatus.CLOSED,
                root="0x" + tree.root.hex(),
                cutoff=now,
                block_number=store.chain.head(),
                receipt_cut=0,
                settle_after=0,
                store_account=store.settings.store_accounts[0],
                totals=json.dumps({ZERO_ADDRESS: str(AMOUNT * len(accounts))}),
                leaf_count=len(accounts),
                tree_nodes=b"".join(tree.tree),
                data_uri="bench",
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.execute(
            insert(table(EpochLeaf)),
            [
                {
                    "epoch": 1,
                    "account": leaf.account.lower(),
                    "token": ZERO_ADDRESS,
                    "amount": AMOUNT,
                    "tree_index": tree.tree_index(i),
                }
                for i, leaf in enumerate(tree.leaves)
            ],
        )
    assert store.oracle().post(1).status == EpochStatus.POSTED
    return tree


def mine_all(node: Anvil) -> None:
    """Mine until no transaction is pending, at a steady base fee: our own transactions fill the
    blocks here, which on a real network they would not (its base fee would not climb for us)."""
    base_fee = node.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"]
    while node.rpc("eth_getBlockByNumber", ["pending", False])["transactions"]:
        node.rpc("anvil_setNextBlockBaseFeePerGas", [base_fee])
        node.rpc("evm_mine")


def gas_of_blocks(node: Anvil, first: int) -> int:
    """Gas used by every block after `first`."""
    head = int(node.rpc("eth_blockNumber"), 16)
    return sum(
        int(node.rpc("eth_getBlockByNumber", [hex(n), False])["gasUsed"], 16)
        for n in range(first + 1, head + 1)
    )


def paid_count(store: Services, accounts: list[str]) -> int:
    """How many accounts hold exactly their leaf."""
    calls = [("eth_getBalance", [a, "latest"]) for a in accounts]
    balances = []
    for start in range(0, len(calls), CALLS_PER_REQUEST):
        balances.extend(int(b, 16) for b in store.chain.batch(calls[start : start + CALLS_PER_REQUEST]))
    return sum(1 for b in balances if b == AMOUNT + 1)


def keeper_run(node: Anvil, count: int, folder: Path) -> tuple[float, int, int]:
    """(seconds from activation to the last batch sent, batches, gas)."""
    deployed = funded_market(node)
    store = store_for(node, deployed, folder / "keeper")
    accounts = payees(count, b"keeper")
    existing(node, accounts)
    post_epoch(store, accounts)
    node.rpc("anvil_setBalance", [public_test_account(DEV_KEEPER_INDEX).address, hex(10**22)])
    keeper = store.keeper()
    assert keeper is not None
    start_block = int(node.rpc("eth_blockNumber"), 16)
    node.rpc("evm_setAutomine", [False])
    try:
        started = time.perf_counter()
        if PROFILE:
            import cProfile  # noqa: PLC0415 - only when asked

            profiler = cProfile.Profile()
            result = profiler.runcall(keeper.step, wait=False)
            profiler.dump_stats(str(PROFILE))
        else:
            result = keeper.step(wait=False)
        elapsed = time.perf_counter() - started
        mine_all(node)
    finally:
        node.rpc("evm_setAutomine", [True])
    assert result.status == "sent" and result.payees == count, result
    assert keeper.step().status == "idle"
    assert paid_count(store, accounts) == count, "not every payee was paid exactly its leaf"
    gas = gas_of_blocks(node, start_block)
    store.close()
    return elapsed, result.batches, gas


def claims_run(node: Anvil, count: int, folder: Path) -> tuple[float, int]:
    """(seconds to send one claim per payee from one account, gas)."""
    deployed = funded_market(node)
    store = store_for(node, deployed, folder / "claims")
    accounts = payees(count, b"claims")
    existing(node, accounts)
    tree = post_epoch(store, accounts)
    sender = public_test_account(3)
    contract = store.chain.contract
    nodes = list(tree.tree)
    start_block = int(node.rpc("eth_blockNumber"), 16)
    node.rpc("evm_setAutomine", [False])
    try:
        started = time.perf_counter()
        nonce = int(node.rpc("eth_getTransactionCount", [sender.address, "pending"]), 16)
        block = node.rpc("eth_getBlockByNumber", ["latest", False])
        max_fee = 2 * int(block["baseFeePerGas"], 16) + 10**9  # the keeper's first offer
        raws = []
        for i, leaf in enumerate(tree.leaves):
            proof = proof_at(nodes, tree.tree_index(i))
            data = contract.encode_abi("claim", args=[leaf.account, ZERO_ADDRESS, AMOUNT, proof])
            tx = {
                "type": 2,
                "chainId": 31337,
                "nonce": nonce + i,
                "to": deployed.address,
                "data": data,
                "value": 0,
                "gas": CLAIM_GAS,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": 10**9,
            }
            raws.append("0x" + sender.sign_transaction(tx).raw_transaction.hex())
        calls = [("eth_sendRawTransaction", [raw]) for raw in raws]
        for start in range(0, len(calls), CALLS_PER_REQUEST):
            store.chain.batch(calls[start : start + CALLS_PER_REQUEST])
        elapsed = time.perf_counter() - started
        mine_all(node)
    finally:
        node.rpc("evm_setAutomine", [True])
    assert paid_count(store, accounts) == count, "not every claim went through"
    gas = gas_of_blocks(node, start_block)
    store.close()
    return elapsed, gas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payees", type=int, default=10_000)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the keeper's step here")
    args = parser.parse_args()
    global PROFILE  # noqa: PLW0603 - a development switch
    PROFILE = args.profile
    with tempfile.TemporaryDirectory() as tmp, Anvil(extra=("--gas-limit", "30000000")) as node:
        folder = Path(tmp)
        (folder / "keeper").mkdir()
        (folder / "claims").mkdir()
        ours, batches, keeper_gas = keeper_run(node, args.payees, folder)
        peer, claims_gas = claims_run(node, args.payees, folder)
    print(
        f"keeper: {args.payees:,} payees in {batches} batches sent {ours:.2f} s after activation; "
        f"{keeper_gas:,} gas ({keeper_gas / args.payees:,.0f} a payee)"
    )
    print(
        f"single claims from one account: {args.payees:,} sent in {peer:.2f} s; "
        f"{claims_gas:,} gas ({claims_gas / args.payees:,.0f} a payee)"
    )
    result = {
        "name": f"keeper: root activation to last payout sent, {args.payees:,} payees",
        "ours": round(ours, 3),
        "peer": round(peer, 3),
        "peer_name": f"{args.payees:,} single claims signed and sent by one account, same anvil",
        "ratio": round(ours / peer, 3),
        "unit": "s",
        "batches": batches,
        "keeper_gas_per_payee": round(keeper_gas / args.payees),
        "claim_gas_per_payee": round(claims_gas / args.payees),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
