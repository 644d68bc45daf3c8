"""Settlement benchmark: an epoch of 100,000 purchases and 500,000 receipts.

Times, on one core: settlement (earnings per account and token), the Merkle tree, and a proof
for every leaf; then the same epoch closed through the database (SQLite) as the oracle does it.
Goal: settlement + tree + all proofs <= 10 s. Memory is the process's peak RSS.

    python bench/settlement.py [--purchases N] [--receipts N] [--seeders N] [--skip-db]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from backend.db import Database
from backend.epochs import close_epoch
from backend.models import IndexerCursor, Product, Purchase, StoredReceipt
from backend.settlement import PurchaseTerms, build_tree, settle
from bench._lib import peak_rss_mib

GOAL_SECONDS = 10.0
ETH = "0x" + "00" * 20
TOKENS = [ETH, "0x" + "a0" * 20, "0x" + "b0" * 20]


def _address(rng: random.Random) -> str:
    return "0x" + rng.randbytes(20).hex()


def make_epoch(
    purchases: int, receipts: int, seeders: int, seed: int = 7
) -> tuple[dict[int, PurchaseTerms], list]:
    """Deterministic inputs: purchases with pools and lengths, and credits that fit each length."""
    rng = random.Random(seed)
    accounts = [_address(rng) for _ in range(seeders)]
    terms = {}
    for pid in range(1, purchases + 1):
        size = rng.randrange(10**6, 10**10)
        pool = rng.randrange(10**15, 10**18)
        terms[pid] = PurchaseTerms(pid, _address(rng), rng.choice(TOKENS), pool, size, rng.random() < 0.3)
    credits = []
    per_purchase = receipts // purchases
    for pid, purchase in terms.items():
        chosen = rng.sample(accounts, per_purchase)
        for seeder in chosen:
            credits.append((pid, seeder, rng.randrange(1, purchase.size // per_purchase)))
    return terms, credits


def close_through_sqlite(terms: dict[int, PurchaseTerms], credits: list) -> tuple[float, float]:
    """(seconds to load the epoch's rows, seconds for `close_epoch`) on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/bench.db")
        db.migrate()
        started = time.perf_counter()
        with db.writer() as session:
            session.execute(
                insert(Product),
                [
                    dict(
                        id=pid,
                        seller=ETH,
                        infohash=f"{pid:064x}",
                        size=t.size,
                        token=t.token,
                        price=t.seeder_pool,
                        discount_bps=2000,
                        active=True,
                        metadata_uri="",
                        listed_block=1,
                        listed_at=0,
                    )
                    for pid, t in terms.items()
                ],
            )
            session.execute(
                insert(Purchase),
                [
                    dict(
                        id=pid,
                        product_id=pid,
                        buyer=t.buyer,
                        token=t.token,
                        price=t.seeder_pool,
                        seller_amount=0,
                        operator_fee=0,
                        seeder_pool=t.seeder_pool,
                        timestamp=0 if t.frozen else 10**9,
                        block_number=1,
                        tx_hash="0x",
                        log_index=0,
                    )
                    for pid, t in terms.items()
                ],
            )
            session.execute(
                insert(StoredReceipt),
                [
                    dict(
                        purchase_id=pid,
                        seeder=seeder,
                        signer=terms[pid].buyer,
                        signed_bytes=credited,
                        credited=credited,
                        signature=b"\0" * 65,
                        accepted_at=0,
                    )
                    for pid, seeder, credited in credits
                ],
            )
            session.add(
                IndexerCursor(
                    id=1, chain_id=1, contract=ETH, block_number=1, block_hash="0x", block_timestamp=10**9
                )
            )
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        epoch = close_epoch(db, 1, settle_after=10**9 - 1, store_account=ETH, data_uri="bench")
        closed = time.perf_counter() - started
        assert epoch is not None
        db.dispose()
    return loaded, closed


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--receipts", type=int, default=500_000)
    parser.add_argument("--seeders", type=int, default=50_000)
    parser.add_argument("--skip-db", action="store_true", help="only the in-memory computation")
    args = parser.parse_args()

    terms, credits = make_epoch(args.purchases, args.receipts, args.seeders)
    base_rss = peak_rss_mib()
    started = time.perf_counter()
    earnings = settle(terms, credits, ETH)
    settled = time.perf_counter() - started
    started = time.perf_counter()
    tree = build_tree(earnings)
    assert tree is not None
    built = time.perf_counter() - started
    started = time.perf_counter()
    proofs = sum(len(tree.proof(i)) for i in range(len(tree.leaves)))
    proved = time.perf_counter() - started
    total = settled + built + proved
    compute_rss = peak_rss_mib()
    loaded = closed = None
    if not args.skip_db:
        loaded, closed = close_through_sqlite(terms, credits)

    rows = [
        ("purchases", f"{len(terms):,}"),
        ("receipts (credits)", f"{len(credits):,}"),
        ("leaves", f"{len(tree.leaves):,}"),
        ("settlement", f"{settled:.2f} s"),
        ("tree", f"{built:.2f} s"),
        (f"all proofs ({proofs:,} nodes)", f"{proved:.2f} s"),
        ("settlement + tree + proofs", f"{total:.2f} s  (goal <= {GOAL_SECONDS:.0f} s)"),
        ("peak RSS: inputs / after compute", f"{base_rss:.0f} MiB / {compute_rss:.0f} MiB"),
    ]
    if loaded is not None and closed is not None:
        rows += [("SQLite: load rows (setup)", f"{loaded:.2f} s"), ("SQLite: close_epoch", f"{closed:.2f} s")]
        rows.append(("peak RSS overall", f"{peak_rss_mib():.0f} MiB"))
    width = max(len(name) for name, _ in rows)
    print("Settlement benchmark (one core)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    result = {
        "name": "settlement_epoch_100k_purchases_500k_receipts",
        "ours": round(total, 3),
        "peer": GOAL_SECONDS,
        "ratio": round(total / GOAL_SECONDS, 3),
        "unit": "s",
        "leaves": len(tree.leaves),
        "peak_rss_mib": round(compute_rss, 1),
        "sqlite_close_epoch_s": None if closed is None else round(closed, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
