"""Settlement benchmark: an epoch of 100,000 purchases and 500,000 receipts.

Times, on one core: settlement (earnings per account and token), the Merkle tree, and a proof
for every leaf; then the same epoch closed through the database (SQLite) as the oracle does it.
Goal: settlement + tree + all proofs <= 10 s. Memory is the process's peak RSS.

    python bench/settlement.py [--purchases N] [--receipts N] [--seeders N] [--skip-db]

The history case (PostgreSQL): a store with `--history` purchases (five receipts each) settled in
earlier epochs, then an epoch with `--new` purchases and five times as many receipts. Times the
epoch's close as the oracle runs it (incremental: the previous epoch's settled totals plus what
changed) and the full recomputation of the same cut from all history, each in a process of its
own (so each peak RSS is its own; the full one under `--full-memory-gib`). Goal: <= 10 s and
<= 1 GiB for 10,000,000 + 100,000 purchases. The rows stay in `--db` for the next run.

    python bench/settlement.py --history 10000000 [--new 100000] [--db URL] [--full-memory-gib 12]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


BENCH_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_settle"
GOAL_MIB = 1024


def epoch_child(mode: str, url: str) -> None:
    """In a process of its own: close epoch 2 incrementally, or recompute it in full; one JSON line."""
    from backend.epochs import Cut, close_epoch, full_earnings  # noqa: PLC0415
    from backend.models import Epoch  # noqa: PLC0415
    from bench._history import SETTLE_AFTER, STORE  # noqa: PLC0415

    db = Database(url)
    started = time.perf_counter()
    if mode == "incremental":
        epoch = close_epoch(db, 2, settle_after=SETTLE_AFTER, store_account=STORE, data_uri="bench")
        assert epoch is not None
        root = epoch.root
    else:
        with db.reader() as session:
            stored = session.get(Epoch, 2)
            assert stored is not None
        cut = Cut(2, stored.cutoff, stored.block_number, stored.receipt_cut, stored.settle_after)
        tree = build_tree(full_earnings(db, cut, STORE))
        assert tree is not None
        root = "0x" + tree.root.hex()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "root": root}))


def _child(mode: str, url: str, memory_gib: float | None = None) -> dict[str, Any]:
    def limit() -> None:
        if memory_gib is not None:
            size = int(memory_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--db", url],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {done.returncode}: {last}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def history_case(args: argparse.Namespace) -> None:
    """The history case: see the module's docstring."""
    from bench import _history  # noqa: PLC0415

    _history.ensure_database(args.db)
    db = Database(args.db)
    db.migrate()
    wanted = {"history": args.history, "new": args.new, "seed": 7}
    generated = None
    if _history.loaded(db) != wanted:
        started = time.perf_counter()
        _history.generate(db, args.history, args.new)
        generated = time.perf_counter() - started
    _history.reset_epoch_two(db)
    db.dispose()
    load = os.getloadavg()
    ours = _child("incremental", args.db)
    full = _child("full", args.db, args.full_memory_gib) if not args.skip_full else {"error": "skipped"}
    rows = [
        ("history", f"{args.history:,} purchases, {5 * args.history:,} receipts"),
        ("new in the epoch", f"{args.new:,} purchases, {5 * args.new:,} receipts"),
        ("history written (COPY, indexes)", "reused" if generated is None else f"{generated:.0f} s"),
        ("load average at the start", " ".join(f"{x:.2f}" for x in load)),
    ]
    for name, result in (("incremental close_epoch", ours), ("full recomputation", full)):
        if "error" in result:
            rows.append((name, f"did not finish: {result['error']}"))
        else:
            rows.append((name, f"{result['seconds']:.2f} s, peak RSS {result['peak_rss_mib']:.0f} MiB"))
    same = "root" in ours and ours.get("root") == full.get("root")
    rows.append(("same root", "yes" if same else ("not compared" if "error" in full else "NO")))
    width = max(len(name) for name, _ in rows)
    print("Settlement with history (PostgreSQL)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    seconds = ours.get("seconds")
    result = {
        "name": f"settlement_epoch_{args.new}_new_purchases_{args.history}_history",
        "ours": None if seconds is None else round(seconds, 3),
        "peer": None if "error" in full else round(full["seconds"], 3),
        "ratio": None if seconds is None or "error" in full else round(seconds / full["seconds"], 4),
        "unit": "s",
        "ours_peak_rss_mib": ours.get("peak_rss_mib"),
        "peer_peak_rss_mib": full.get("peak_rss_mib"),
        "peer_error": full.get("error"),
        "same_root": same,
        "goal_s": GOAL_SECONDS,
        "goal_mib": GOAL_MIB,
    }
    print(json.dumps(result))
    if "root" in full and not same:
        raise SystemExit("the incremental root is not the full recomputation's")


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--receipts", type=int, default=500_000)
    parser.add_argument("--seeders", type=int, default=50_000)
    parser.add_argument("--skip-db", action="store_true", help="only the in-memory computation")
    parser.add_argument("--history", type=int, help="history case: purchases settled before")
    parser.add_argument("--new", type=int, default=100_000, help="history case: purchases new in the epoch")
    parser.add_argument("--db", default=BENCH_DB, help="history case: a PostgreSQL database of its own")
    parser.add_argument("--full-memory-gib", type=float, default=12.0, help="history case: full's limit")
    parser.add_argument("--skip-full", action="store_true", help="history case: no full recomputation")
    parser.add_argument("--child", choices=["incremental", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        epoch_child(args.child, args.db)
        return
    if args.history is not None:
        history_case(args)
        return

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
