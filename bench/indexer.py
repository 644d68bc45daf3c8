"""Indexer benchmark: events per second from a local anvil with 10,000 purchases.

A Marketplace on a fresh anvil gets 100 products and 10,000 purchases (100 buyers x 100
products, 200 purchases a block); then the store's indexer reads every event into a fresh
database (SQLite, and PostgreSQL when reachable). The peer is web3.py's own log reading and
decoding (`contract.events.Purchased().get_logs`) with no database at all.

    python bench/indexer.py [--purchases N] [--postgres URL | --no-postgres]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from backend.chain import ZERO_ADDRESS, Chain, load_abi
from backend.db import Database
from backend.indexer import Indexer
from backend.models import ChainEvent, Purchase
from bench._lib import drop_postgres, postgres_database
from dev.devnet import Anvil, deploy_marketplace

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".build" / "__local__.json"
PER_BLOCK = 200
PRICE = 10**15


def populate(node: Anvil, purchases: int) -> tuple[str, int, int]:
    """Deploy, list and buy; (contract address, deployment block, events emitted)."""
    accounts = node.accounts
    seller, buyers = accounts[0], accounts[1:]
    products = -(-purchases // len(buyers))
    deployed = deploy_marketplace(node.w3, MANIFEST, owner=seller)
    contract = node.w3.eth.contract(address=deployed.address, abi=load_abi(MANIFEST))
    for i in range(products):
        infohash = (i + 1).to_bytes(20, "big").ljust(32, b"\0")
        data = contract.encode_abi("listProduct", [infohash, 1000, ZERO_ADDRESS, PRICE, 2000, "bench"])
        node.rpc("eth_sendTransaction", [{"from": seller, "to": deployed.address, "data": data}])
    node.rpc("evm_setAutomine", [False])
    # Explicit nonces: a batch holds several transactions of one buyer.
    nonces = {buyer: node.w3.eth.get_transaction_count(buyer) for buyer in buyers}
    calls = []
    for product in range(1, products + 1):
        data = contract.encode_abi("purchase", [product])
        for buyer in buyers:
            if len(calls) == purchases:
                break
            tx = {
                "from": buyer,
                "to": deployed.address,
                "data": data,
                "value": hex(PRICE),
                "gas": hex(300_000),
                "nonce": hex(nonces[buyer]),
            }
            nonces[buyer] += 1
            calls.append(("eth_sendTransaction", [tx]))
    for start in range(0, len(calls), PER_BLOCK):
        answers = node.w3.provider.make_batch_request(calls[start : start + PER_BLOCK])  # type: ignore[arg-type]
        assert isinstance(answers, list), answers
        failed = [a for a in answers if "result" not in a]
        assert not failed, f"{len(failed)} transactions refused, e.g. {failed[0]}"
        node.rpc("evm_mine")
    node.rpc("evm_setAutomine", [True])
    bought = contract.functions.purchaseCount().call()
    assert bought == len(calls), f"only {bought} of {len(calls)} purchases went through"
    return deployed.address, deployed.block, products + bought


def index_into(url: str, chain: Chain, block: int) -> tuple[float, int]:
    """Seconds to index everything into a fresh database, and the events stored."""
    db = Database(url)
    db.migrate()
    indexer = Indexer(db, chain, deployment_block=block, confirmations=0, batch_blocks=2000)
    started = time.perf_counter()
    indexer.sync()
    seconds = time.perf_counter() - started
    with db.reader() as session:
        events = session.scalar(select(func.count()).select_from(ChainEvent)) or 0
        purchases = session.scalar(select(func.count()).select_from(Purchase)) or 0
    db.dispose()
    assert purchases > 0
    return seconds, events


def web3_baseline(node: Anvil, address: str, block: int) -> tuple[float, int]:
    """web3.py reading and decoding the same Purchased logs, no database."""
    contract = node.w3.eth.contract(address=address, abi=load_abi(MANIFEST))
    started = time.perf_counter()
    logs = contract.events.Purchased().get_logs(from_block=block, to_block="latest")
    return time.perf_counter() - started, len(logs)


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=10_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    with Anvil(extra=["--accounts", "101", "--balance", "1000000"]) as node:
        started = time.perf_counter()
        address, block, emitted = populate(node, args.purchases)
        setup = time.perf_counter() - started
        chain = Chain(node.url, 31337, address, MANIFEST, timeout=60)
        results: dict[str, tuple[float, int]] = {}
        with tempfile.TemporaryDirectory() as folder:
            results["sqlite"] = index_into(f"sqlite:///{folder}/bench.db", chain, block)
        if not args.no_postgres:
            scratch = postgres_database(args.postgres)
            if scratch is not None:
                try:
                    results["postgresql"] = index_into(scratch[0], chain, block)
                finally:
                    drop_postgres(args.postgres, scratch[1])
        peer_seconds, peer_events = web3_baseline(node, address, block)

    print(
        f"Indexer benchmark: {args.purchases:,} purchases on anvil ({emitted:,} events, setup {setup:.1f} s)"
    )
    print(f"  {'reader':<34} {'events':>8} {'seconds':>8} {'events/s':>10}")
    for name, (seconds, events) in results.items():
        print(f"  {'indexer -> ' + name:<34} {events:>8,} {seconds:>8.2f} {events / seconds:>10,.0f}")
    peer_rate = peer_events / peer_seconds
    print(
        f"  {'web3.py get_logs (no database)':<34} {peer_events:>8,} {peer_seconds:>8.2f} {peer_rate:>10,.0f}"
    )
    ours = results["sqlite"][1] / results["sqlite"][0]
    peer = peer_events / peer_seconds
    line = {
        "name": "indexer_events_per_second_10k_purchases",
        "ours": round(ours),
        "peer": round(peer),
        "ratio": round(ours / peer, 3),
        "unit": "events/s",
        "backend": "sqlite",
    }
    if "postgresql" in results:
        line["postgresql_events_per_s"] = round(results["postgresql"][1] / results["postgresql"][0])
    print(json.dumps(line))


if __name__ == "__main__":
    main()
