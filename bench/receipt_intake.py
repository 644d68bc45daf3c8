"""Receipt intake benchmark: signed receipts through `POST /receipts` into the database.

The tracker runs in its own process with the store's database sink (SQLite, then PostgreSQL);
a client posts bencoded batches of 1,000 receipts over two keep-alive connections. Every receipt
raises its (purchase, seeder) credit, so every one is verified, decided, appended and committed
before its batch is answered. The peer is the same tracker with a sink that acknowledges
everything without deciding or storing anything: the same HTTP, parsing and signature checks,
i.e. the ceiling the database sink could reach.

    python bench/receipt_intake.py [--batches N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bencodepy
import httpx
import psycopg
from sqlalchemy.engine import make_url

from backend.chain import Chain
from backend.db import Database
from backend.indexer import Indexer
from backend.receipt_sink import DatabaseReceiptSink
from backend.settings import public_test_account
from backend.tracker_policy import DatabaseSwarmPolicy
from dev.devnet import Anvil, deploy_marketplace, free_port
from tracker.policy import MemoryPolicy, ReceiptOutcome
from tracker.receipts import (
    Domain,
    Receipt,
    ReceiptVerifier,
    SignedReceipt,
    VerifiedReceipt,
    sign_receipt,
    to_message,
)
from tracker.server import start_tracker

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".build" / "__local__.json"
BUYERS = range(2, 10)  # anvil development accounts that buy
SEEDERS_PER_PURCHASE = 125  # x 8 purchases = 1,000 receipts per batch
SIZE = 10**15
CONNECTIONS = 2


def _key(index: int) -> bytes:
    return bytes(public_test_account(index).key)


# ----- the tracker process -----


class AcceptAll:
    """A sink that acknowledges every receipt as accepted, deciding and storing nothing."""

    async def store(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        """Everything accepted at its own count."""
        return [ReceiptOutcome("accepted", byte_count=r.receipt.byte_count) for r in receipts]


async def _serve(kind: str, port: int, db_url: str, contract: str, purchases: dict[int, str]) -> None:
    domain = Domain(31337, bytes.fromhex(contract[2:]))
    if kind == "memory":
        server = await start_tracker("127.0.0.1", port, MemoryPolicy(), AcceptAll(), ReceiptVerifier(domain))
    else:
        db = Database(db_url)
        server = await start_tracker(
            "127.0.0.1", port, DatabaseSwarmPolicy(db, []), DatabaseReceiptSink(db), ReceiptVerifier(domain)
        )
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    server.close()
    await server.wait_closed()


# ----- the client -----


def make_batches(domain: Domain, purchases: dict[int, int], batches: int) -> list[bytes]:
    """Bencoded bodies; batch k raises every (purchase, seeder) pair to k * 1,000 bytes."""
    keys = {index: _key(index) for index in purchases.values()}
    seeders = [(0xFEED0000 + i).to_bytes(20, "big") for i in range(SEEDERS_PER_PURCHASE)]
    bodies = []
    for k in range(1, batches + 1):
        messages = []
        for pid, buyer in purchases.items():
            for seeder in seeders:
                receipt = Receipt(pid, seeder, k * 1000)
                signed = SignedReceipt(receipt, sign_receipt(domain, receipt, keys[buyer]))
                messages.append(to_message(signed))
        bodies.append(bytes(bencodepy.encode({"receipts": messages})))
    return bodies


async def post_all(url: str, bodies: list[bytes]) -> tuple[float, int]:
    """Post every body over CONNECTIONS connections, in order per connection; (seconds, accepted)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(timeout=120) as client:
            while not queue.empty():
                body = queue.get_nowait()
                answer = await client.post(url, content=body)
                assert answer.status_code == 200, answer.content[:200]
                results = bencodepy.decode(answer.content)[b"results"]
                accepted += sum(1 for r in results if r[b"status"] in (b"accepted", b"clipped"))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return time.perf_counter() - started, accepted


def run_backend(
    kind: str, db_url: str, contract: str, purchases: dict[int, str], bodies: list[bytes]
) -> float:
    """Start a tracker with one sink, post everything, stop it; receipts per second."""
    port = free_port()
    args = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--db", db_url,
            "--contract", contract, "--purchases", json.dumps(purchases)]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the {kind} tracker did not start") from None
                time.sleep(0.1)
        seconds, accepted = asyncio.run(post_all(f"http://127.0.0.1:{port}/receipts", bodies))
        expected = sum(len(bencodepy.decode(b)[b"receipts"]) for b in bodies)
        assert accepted == expected, f"{kind}: {accepted} of {expected} accepted"
        return expected / seconds
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--serve", choices=["memory", "db"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--contract", help=argparse.SUPPRESS)
    parser.add_argument("--purchases", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        purchases = {int(k): v for k, v in json.loads(args.purchases).items()}
        asyncio.run(_serve(args.serve, args.port, args.db, args.contract, purchases))
        return

    with Anvil() as node, tempfile.TemporaryDirectory() as folder:
        deployed = deploy_marketplace(node.w3, MANIFEST, owner=node.accounts[0])
        contract = node.w3.eth.contract(
            address=deployed.address, abi=Chain(node.url, 31337, deployed.address, MANIFEST).abi
        )
        tx = contract.functions.listProduct(
            os.urandom(20).ljust(32, b"\0"), SIZE, "0x" + "00" * 20, 10**15, 2000, "b"
        )
        node.w3.eth.wait_for_transaction_receipt(tx.transact({"from": node.accounts[1]}))
        bought: dict[int, int] = {}
        for index in BUYERS:
            buyer = node.accounts[index]
            node.w3.eth.wait_for_transaction_receipt(
                contract.functions.purchase(1).transact({"from": buyer, "value": 10**15})
            )
            bought[contract.functions.purchaseOf(1, buyer).call()] = index
        buyers = {pid: node.accounts[index].lower() for pid, index in bought.items()}
        domain = Domain(31337, bytes.fromhex(deployed.address[2:]))
        started = time.perf_counter()
        bodies = make_batches(domain, bought, args.batches)
        signing = time.perf_counter() - started
        total = sum(len(bencodepy.decode(b)[b"receipts"]) for b in bodies)

        chain = Chain(node.url, 31337, deployed.address, MANIFEST)
        targets = {"sqlite": f"sqlite:///{folder}/intake.db"}
        scratch = None
        if not args.no_postgres:
            name = f"seedmarket_bench_{uuid.uuid4().hex[:8]}"
            admin = make_url(args.postgres).set(drivername="postgresql").render_as_string(hide_password=False)
            try:
                with psycopg.connect(admin, autocommit=True) as connection:
                    connection.execute(f'CREATE DATABASE "{name}"')
                scratch = (admin, name)
                targets["postgresql"] = (
                    make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
                )
            except psycopg.OperationalError:
                print("PostgreSQL not reachable; skipping it")
        rates: dict[str, float] = {}
        try:
            for kind, url in targets.items():
                db = Database(url)
                db.migrate()
                Indexer(db, chain, deployment_block=deployed.block, confirmations=0).sync()
                db.dispose()
                rates[kind] = run_backend("db", url, deployed.address, buyers, bodies)
            rates["memory"] = run_backend("memory", "", deployed.address, buyers, bodies)
        finally:
            if scratch is not None:
                with psycopg.connect(scratch[0], autocommit=True) as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{scratch[1]}" WITH (FORCE)')

    print(
        f"Receipt intake: {total:,} receipts in {len(bodies)} bencoded batches over {CONNECTIONS} connections"
    )
    print(f"  (signing them took {signing:.1f} s; every receipt raises a credit)")
    print(f"  {'sink':<38} {'receipts/s':>11}")
    labels = {
        "sqlite": "database: SQLite",
        "postgresql": "database: PostgreSQL",
        "memory": "no sink: HTTP + verification (peer)",
    }
    for kind, rate in rates.items():
        print(f"  {labels[kind]:<38} {rate:>11,.0f}")
    line = {
        "name": "receipt_intake_post_receipts_sqlite",
        "ours": round(rates["sqlite"]),
        "peer": round(rates["memory"]),
        "ratio": round(rates["sqlite"] / rates["memory"], 3),
        "unit": "receipts/s",
    }
    if "postgresql" in rates:
        line["postgresql_receipts_per_s"] = round(rates["postgresql"])
    print(json.dumps(line))


if __name__ == "__main__":
    main()
