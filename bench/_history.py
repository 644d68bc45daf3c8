"""A store's history on PostgreSQL for `bench/settlement.py --history`: written with COPY.

History: `history` purchases with five receipts each, all frozen at epoch 1, and epoch 1 stored as
the oracle would have left it (its leaves, its settled totals, computed here while the rows are
generated). New: `new` purchases with five receipts each, the first 30 % old enough to freeze at
epoch 2. Deterministic for a seed; the rows are kept between runs (`bench_meta` says for what).
"""

from __future__ import annotations

import io
import json
import random
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from backend.db import Database
from backend.merkle import MerkleTree
from backend.settlement import Earnings, Settled, canonical, leaves_of, token_totals

STORE = "0x" + "5707e" * 8
TOKENS = ["0x" + "00" * 20, "0x" + "a0" * 20, "0x" + "b0" * 20]
SEEDERS = 50_000
PRODUCTS = 1_000
PER_PURCHASE = 5
SETTLE_AFTER = 1_000_000
T0 = 1_000_000_000  # history purchases' time; new ones come after
CUTOFF = T0 + 3 * SETTLE_AFTER
_ROWS_PER_WRITE = 50_000
# Indexes dropped for the load and built once at the end (much faster than row by row).
_INDEXES = {
    "purchases": [
        "ix_purchases_buyer",
        "ix_purchases_product_id",
        "ix_purchases_block_number",
        "ix_purchases_buyer_product",
    ],
    "receipts": ["ix_receipts_pair"],
    "frozen_purchases": ["ix_frozen_purchases_epoch"],
}


def ensure_database(url: str) -> None:
    """Create the benchmark's own database when it does not exist."""
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        if (
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone()
            is None
        ):
            connection.execute(f'CREATE DATABASE "{parsed.database}"')


def _raw(db: Database) -> psycopg.Connection[Any]:
    return psycopg.connect(db.url.set(drivername="postgresql").render_as_string(hide_password=False))


def loaded(db: Database) -> dict[str, Any] | None:
    """What history is in the database already, if any."""
    with _raw(db) as connection:
        if connection.execute("SELECT to_regclass('bench_meta')").fetchone() == (None,):
            return None
        row = connection.execute("SELECT params FROM bench_meta").fetchone()
        return None if row is None else dict(json.loads(row[0]))


class _Rows:
    """Rows of one table written through COPY in large writes, on a connection of its own (one
    connection runs one COPY at a time); committed by `close`."""

    def __init__(self, db: Database, table: str, columns: str) -> None:
        self._connection = _raw(db)
        self._context = self._connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN")
        self._copy = self._context.__enter__()
        self._buffer = io.StringIO()
        self._count = 0

    def add(self, line: str) -> None:
        self._buffer.write(line)
        self._count += 1
        if self._count % _ROWS_PER_WRITE == 0:
            self._copy.write(self._buffer.getvalue())
            self._buffer = io.StringIO()

    def close(self) -> None:
        self._copy.write(self._buffer.getvalue())
        self._context.__exit__(None, None, None)
        self._connection.commit()
        self._connection.close()


def _addresses(rng: random.Random, count: int) -> list[str]:
    return ["0x" + rng.randbytes(20).hex() for _ in range(count)]


def _purchases(
    rng: random.Random, first: int, count: int, sizes: list[int], tokens: list[str], seeders: list[str]
) -> Iterator[tuple[int, str, str, int, int, int, list[tuple[str, int]]]]:
    """(id, buyer, token, pool, size, product, [(seeder, credited), ...]): five distinct seeders."""
    for pid in range(first, first + count):
        product = rng.randrange(PRODUCTS)
        size = sizes[product]
        start, step = rng.randrange(SEEDERS), rng.randrange(1, SEEDERS // PER_PURCHASE)
        credits = [
            (seeders[(start + j * step) % SEEDERS], rng.randrange(1, size // PER_PURCHASE))
            for j in range(PER_PURCHASE)
        ]
        buyer = "0x" + rng.randbytes(20).hex()
        yield pid, buyer, tokens[product], rng.randrange(10**15, 10**18), size, product, credits


def generate(db: Database, history: int, new: int, seed: int = 7) -> None:
    """Write the history and the new epoch's rows, then `bench_meta` saying so."""
    rng = random.Random(seed)
    seeders = _addresses(rng, SEEDERS)
    sizes = [rng.randrange(10**6, 10**10) for _ in range(PRODUCTS)]
    tokens = [rng.choice(TOKENS) for _ in range(PRODUCTS)]
    with _raw(db) as connection, connection.cursor() as cursor:
        for names in _INDEXES.values():
            for name in names:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute("DROP TABLE IF EXISTS bench_meta")
        cursor.execute(
            "TRUNCATE products, purchases, receipts, frozen_purchases, epochs, epoch_leaves, "
            "epoch_settlements, indexer_cursor RESTART IDENTITY"
        )
        connection.commit()
        products = _Rows(
            db,
            "products",
            "id, seller, infohash, size, token, price, discount_bps, terms_version, active, metadata_uri, "
            "listed_block, listed_at",
        )
        for product in range(PRODUCTS):
            products.add(
                f"{product}\t{STORE}\t{product:064x}\t{sizes[product]}\t{tokens[product]}\t1\t2000\t1\tt\t\t1\t0\n"
            )
        products.close()
        totals: Earnings = defaultdict(int)
        _write(db, rng, 1, history, (sizes, tokens, seeders), totals, frozen=True)
        _write(db, rng, history + 1, new, (sizes, tokens, seeders), None, frozen=False)
        _epoch_one(db, cursor, history, dict(totals))
        cursor.execute(
            "INSERT INTO indexer_cursor (id, chain_id, contract, block_number, block_hash, block_timestamp) "
            f"VALUES (1, 1, '{STORE}', {history + new + 1}, '0x', {CUTOFF})"
        )
        connection.commit()
        for table, names in _INDEXES.items():
            for name in names:
                columns = {
                    "ix_purchases_buyer": "buyer",
                    "ix_purchases_product_id": "product_id",
                    "ix_purchases_block_number": "block_number",
                    "ix_purchases_buyer_product": "buyer, product_id",
                    "ix_receipts_pair": "purchase_id, seeder, id",
                    "ix_frozen_purchases_epoch": "epoch",
                }[name]
                print(f"  ... index {name}", file=sys.stderr, flush=True)
                cursor.execute(f"CREATE INDEX {name} ON {table} ({columns})")
        cursor.execute("CREATE TABLE bench_meta (params text)")
        cursor.execute(
            "INSERT INTO bench_meta VALUES (%s)",
            (json.dumps({"history": history, "new": new, "seed": seed}),),
        )
        connection.commit()
    with _raw(db) as connection:
        connection.autocommit = True
        print("  ... VACUUM ANALYZE", file=sys.stderr, flush=True)
        connection.execute("VACUUM ANALYZE")


def _write(
    db: Database,
    rng: random.Random,
    first: int,
    count: int,
    catalog: tuple[list[int], list[str], list[str]],
    totals: Earnings | None,
    *,
    frozen: bool,
) -> None:
    """Purchases `first`.. with their receipts; history ones frozen at epoch 1, their payouts
    added to `totals`."""
    purchases = _Rows(
        db,
        "purchases",
        "id, product_id, buyer, token, price, seller_amount, operator_fee, seeder_pool, timestamp, "
        "block_number, tx_hash, log_index",
    )
    receipts = _Rows(
        db, "receipts", "purchase_id, seeder, signer, signed_bytes, credited, signature, accepted_at"
    )
    freezes = _Rows(db, "frozen_purchases", "purchase_id, epoch, recipient") if frozen else None
    for pid, buyer, token, pool, size, product, credits in _purchases(rng, first, count, *catalog):
        if pid % 1_000_000 == 0:
            print(f"  ... purchase {pid:,} written", file=sys.stderr, flush=True)
        # History: old. New: the first 30 % past their window at the cutoff, the rest open.
        when = T0 if frozen else T0 + (SETTLE_AFTER if pid - first < 0.3 * count else 2 * SETTLE_AFTER + 1)
        purchases.add(f"{pid}\t{product}\t{buyer}\t{token}\t{pool}\t0\t0\t{pool}\t{when}\t{pid}\t0x\t0\n")
        paid = 0
        for seeder, credited in credits:
            receipts.add(f"{pid}\t{seeder}\t{buyer}\t{credited}\t{credited}\t\\\\x00\t0\n")
            if totals is not None:
                amount = pool * credited // size
                if amount:
                    totals[(seeder, token)] += amount
                    paid += amount
        if totals is not None:
            totals[(STORE, token)] += pool - paid
        if freezes is not None:
            freezes.add(f"{pid}\t1\t{STORE}\n")
    purchases.close()
    receipts.close()
    if freezes is not None:
        freezes.close()


def _epoch_one(db: Database, cursor: psycopg.Cursor[Any], history: int, totals: Earnings) -> None:
    """Epoch 1 as the oracle would have stored it: everything frozen, so its leaves are its totals."""
    settled = Settled(1, history + 1, frozenset(), {k: v for k, v in totals.items() if v > 0})
    leaves = leaves_of(settled.totals)
    tree = MerkleTree(leaves)
    token_sums = json.dumps({t: str(v) for t, v in token_totals(settled.totals).items()})
    cursor.execute(
        "INSERT INTO epochs (number, status, root, cutoff, block_number, receipt_cut, settle_after, "
        "store_account, totals, leaf_count, tree_nodes, data_uri, created_at, updated_at) VALUES "
        "(1, 'posted', %s, %s, %s, %s, %s, %s, %s, %s, %s, 'bench', 0, 0)",
        (
            "0x" + tree.root.hex(),
            T0,
            history,
            history * PER_PURCHASE,
            SETTLE_AFTER,
            STORE,
            token_sums,
            len(leaves),
            b"".join(tree.tree),
        ),
    )
    rows = _Rows(db, "epoch_leaves", "epoch, account, token, amount, tree_index")
    for i, leaf in enumerate(leaves):
        rows.add(
            f"1\t{leaf.account.lower()}\t{leaf.token.lower()}\t{leaf.cumulative_amount}\t{tree.tree_index(i)}\n"
        )
    rows.close()
    encoded = canonical(settled.document())
    cursor.execute(
        "INSERT INTO epoch_settlements (epoch, base, open_from, digest, document) VALUES (1, 0, %s, %s, %s)",
        (settled.open_from, settled.digest(), zlib.compress(encoded, 1)),
    )


def reset_epoch_two(db: Database) -> None:
    """Undo a previous run's epoch 2 so it can be closed again."""
    with _raw(db) as connection:
        for table, column in (
            ("epoch_leaves", "epoch"),
            ("epoch_settlements", "epoch"),
            ("frozen_purchases", "epoch"),
            ("epochs", "number"),
        ):
            connection.execute(f"DELETE FROM {table} WHERE {column} >= 2")
