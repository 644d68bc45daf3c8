"""The chain indexer: follows the Marketplace's events into the database.

It reads from the deployment block up to `head - confirmations`, a batch of blocks at a time.
Each batch (its events, the derived rows, the blocks it saw and the new cursor) is committed in
one transaction, so a crash or restart resumes at the cursor and re-reading a range never
duplicates anything. Before each batch it checks that the block under its cursor is still on
the chain; if not, a reorganisation happened: it walks back through the blocks it remembers to
the newest one the chain still has, deletes everything above it and reads forward again.
RPC failures only pause it: `run` backs off and retries until the node answers again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from backend.chain import Chain, DecodedLog
from backend.db import Database
from backend.errors import ChainError, ConfigError
from backend.models import ChainBlock, ChainEvent, IndexerCursor, Product, Purchase, table

log = logging.getLogger(__name__)

CURSOR_ID = 1
KEEP_BLOCKS = 1024  # how far back a reorg can be followed block by block (deeper: re-read all)
_HEADER_CHUNK = 256
_MAX_BACKOFF = 30.0
PRODUCT_EVENTS = ("ProductListed", "ProductUpdated", "ProductActiveSet")


@dataclass(frozen=True)
class Cursor:
    """Where the indexer stands: every event up to `block_number` is stored."""

    block_number: int
    block_hash: str | None
    block_timestamp: int


class Indexer:
    """Follows one Marketplace into one database."""

    def __init__(
        self,
        db: Database,
        chain: Chain,
        *,
        deployment_block: int,
        confirmations: int = 2,
        batch_blocks: int = 2000,
        keep_blocks: int = KEEP_BLOCKS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        # Told after new events (or a reorg) are committed: wakes an oracle waiting for work.
        self.on_change = on_change
        self.chain = chain
        self.start_block = max(deployment_block, 0)
        self.confirmations = confirmations
        self.batch_blocks = batch_blocks
        self.keep_blocks = keep_blocks
        self.reorgs = 0

    # ----- cursor -----

    def cursor(self) -> Cursor:
        """The stored cursor, or the block before the deployment when nothing was read yet."""
        with self.db.reader() as session:
            row = session.get(IndexerCursor, CURSOR_ID)
            if row is None:
                return Cursor(self.start_block - 1, None, 0)
            self._check_owner(row)
            return Cursor(row.block_number, row.block_hash, row.block_timestamp)

    def _check_owner(self, row: IndexerCursor) -> None:
        if row.chain_id != self.chain.chain_id or row.contract != self.chain.address.lower():
            raise ConfigError(
                f"this database indexes {row.contract} on chain {row.chain_id}, not "
                f"{self.chain.address} on chain {self.chain.chain_id}: use another database"
            )

    # ----- one step -----

    def sync_once(self) -> int:
        """Index one batch of confirmed blocks (or follow a reorg); the number of blocks advanced."""
        cursor = self.cursor()
        head = self.chain.head()
        if cursor.block_hash is not None:
            header = self.chain.headers([cursor.block_number])[cursor.block_number]
            if header is None or header[0] != cursor.block_hash:
                self._follow_reorg(cursor)
                return 0
        safe = head - self.confirmations
        if safe <= cursor.block_number:
            return 0
        first = cursor.block_number + 1
        last = min(safe, cursor.block_number + self.batch_blocks)
        events = self.chain.logs(first, last)
        numbers = sorted({e.block_number for e in events} | {last})
        check = [cursor.block_number] if cursor.block_hash is not None else []
        headers = self.chain.headers(check + numbers)
        # Read after the logs: if the chain moved under us, hashes disagree and we retry.
        if check and _hash(headers[check[0]]) != cursor.block_hash:
            raise ChainError("the chain reorganised while reading; retrying")
        known: dict[int, tuple[str, int]] = {}
        for number in numbers:
            header = headers[number]
            if header is None:
                raise ChainError(f"block {number} vanished while reading; retrying")
            known[number] = header
        for event in events:
            if event.block_hash != known[event.block_number][0]:
                raise ChainError("the chain reorganised while reading; retrying")
        with self.db.writer() as session:
            fresh = self._store_batch(session, cursor, events, known, last)
        if fresh and self.on_change is not None:
            self.on_change()
        return last - cursor.block_number

    def sync(self, max_batches: int | None = None) -> int:
        """Index until caught up with the confirmed head; the number of blocks advanced."""
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            before = self.cursor().block_number
            advanced = self.sync_once()
            batches += 1
            if advanced == 0 and self.cursor().block_number >= before:
                break
            total += advanced
        return total

    def run(self, stop: threading.Event, poll_interval: float = 2.0) -> None:
        """Follow the chain until `stop` is set, surviving RPC and database outages."""
        delay = poll_interval
        while not stop.is_set():
            try:
                advanced = self.sync_once()
                delay = poll_interval
                if advanced > 0:
                    continue  # behind the head: the next batch at once
            except (ChainError, OperationalError) as exc:  # ChainUnavailable is a ChainError
                log.warning("indexer: %s; retrying in %.0f s", exc, delay)
                delay = min(delay * 2, _MAX_BACKOFF)
            except ConfigError as exc:
                log.error("indexer stopped: %s", exc)
                return
            except Exception:  # a bug: keep the store following the chain, loudly
                log.exception("indexer: unexpected error; retrying in %.0f s", delay)
                delay = min(delay * 2, _MAX_BACKOFF)
            stop.wait(delay)

    # ----- storing -----

    def _store_batch(
        self,
        session: Session,
        cursor: Cursor,
        events: Sequence[DecodedLog],
        headers: dict[int, tuple[str, int]],
        last: int,
    ) -> int:
        """Store one batch; the number of events that were new."""
        row = session.get(IndexerCursor, CURSOR_ID)
        if row is not None:
            self._check_owner(row)
            if row.block_number != cursor.block_number:
                return 0  # another indexer got here first; the next poll starts from its cursor
        existing = set(
            session.execute(
                select(ChainEvent.block_number, ChainEvent.log_index).where(
                    ChainEvent.block_number > cursor.block_number, ChainEvent.block_number <= last
                )
            ).tuples()
        )
        fresh = [e for e in events if (e.block_number, e.log_index) not in existing]
        if fresh:
            session.execute(
                insert(table(ChainEvent)),
                [
                    {
                        "block_number": e.block_number,
                        "log_index": e.log_index,
                        "block_hash": e.block_hash,
                        "tx_hash": e.tx_hash,
                        "name": e.name,
                        "args": json.dumps(e.args, separators=(",", ":")),
                    }
                    for e in fresh
                ],
            )
        purchases = []
        for event in fresh:
            timestamp = headers[event.block_number][1]
            if event.name == "Purchased":
                purchases.append(_purchase_row(event, timestamp))
            elif event.name in PRODUCT_EVENTS:
                session.flush()
                _apply_product_event(session, event.name, event.args, event.block_number, timestamp)
        if purchases:
            session.execute(insert(table(Purchase)), purchases)
        seen = session.execute(
            select(ChainBlock.number).where(ChainBlock.number.in_(list(headers)))
        ).scalars()
        stored = set(seen)
        new_blocks = [
            {"number": n, "hash": h, "timestamp": t} for n, (h, t) in headers.items() if n not in stored
        ]
        if new_blocks:
            session.execute(insert(table(ChainBlock)), new_blocks)
        # Remember recent blocks only; a reorg deeper than that re-reads from the deployment block.
        session.execute(delete(ChainBlock).where(ChainBlock.number < last - self.keep_blocks))
        last_hash, last_time = headers[last]
        if row is None:
            row = IndexerCursor(
                id=CURSOR_ID,
                chain_id=self.chain.chain_id,
                contract=self.chain.address.lower(),
                block_number=last,
                block_hash=last_hash,
                block_timestamp=last_time,
            )
            session.add(row)
        else:
            row.block_number, row.block_hash, row.block_timestamp = last, last_hash, last_time
        if fresh:
            log.info("indexed blocks %d..%d: %d events", cursor.block_number + 1, last, len(fresh))
        return len(fresh)

    # ----- reorgs -----

    def _follow_reorg(self, cursor: Cursor) -> None:
        with self.db.reader() as session:
            remembered = list(
                session.execute(
                    select(ChainBlock.number, ChainBlock.hash)
                    .where(ChainBlock.number <= cursor.block_number)
                    .order_by(ChainBlock.number.desc())
                ).tuples()
            )
        fork: tuple[int, str | None, int] = (self.start_block - 1, None, 0)
        for start in range(0, len(remembered), _HEADER_CHUNK):
            chunk = remembered[start : start + _HEADER_CHUNK]
            headers = self.chain.headers([n for n, _ in chunk])
            match = next(((n, h) for n, h in chunk if _hash(headers[n]) == h), None)
            if match is not None:
                header = headers[match[0]]
                assert header is not None
                fork = (match[0], match[1], header[1])
                break
        self.rollback(fork[0], fork[1], fork[2])
        self.reorgs += 1
        log.warning(
            "indexer: reorganisation below block %d; re-reading from block %d",
            cursor.block_number,
            fork[0] + 1,
        )

    def rollback(self, block_number: int, block_hash: str | None, timestamp: int) -> None:
        """Forget everything above `block_number` and put the cursor there."""
        with self.db.writer() as session:
            touched = set(
                session.execute(
                    select(ChainEvent.args).where(
                        ChainEvent.block_number > block_number, ChainEvent.name.in_(PRODUCT_EVENTS)
                    )
                ).scalars()
            )
            product_ids = {json.loads(args)["productId"] for args in touched}
            session.execute(delete(ChainEvent).where(ChainEvent.block_number > block_number))
            session.execute(delete(Purchase).where(Purchase.block_number > block_number))
            session.execute(delete(ChainBlock).where(ChainBlock.number > block_number))
            for product_id in sorted(product_ids):
                _rebuild_product(session, product_id)
            row = session.get(IndexerCursor, CURSOR_ID)
            if row is not None:
                if block_hash is None:
                    session.delete(row)
                else:
                    row.block_number, row.block_hash, row.block_timestamp = (
                        block_number,
                        block_hash,
                        timestamp,
                    )
        if self.on_change is not None:
            self.on_change()


def _hash(header: tuple[str, int] | None) -> str | None:
    return None if header is None else header[0]


def _purchase_row(event: DecodedLog, timestamp: int) -> dict[str, object]:
    a = event.args
    return {
        "id": a["purchaseId"],
        "product_id": a["productId"],
        "buyer": a["buyer"],
        "token": a["token"],
        "price": a["price"],
        "seller_amount": a["sellerAmount"],
        "operator_fee": a["operatorFee"],
        "seeder_pool": a["seederPool"],
        "timestamp": timestamp,
        "block_number": event.block_number,
        "tx_hash": event.tx_hash,
        "log_index": event.log_index,
    }


def _apply_product_event(
    session: Session, name: str, args: dict[str, object], block_number: int, timestamp: int
) -> None:
    product_id = int(args["productId"])  # type: ignore[call-overload]
    product = session.get(Product, product_id)
    if name == "ProductListed":
        if product is not None:
            return
        session.add(
            Product(
                id=product_id,
                seller=args["seller"],
                infohash=str(args["infohash"])[2:],
                size=args["size"],
                token=args["token"],
                price=args["price"],
                discount_bps=args["discountBps"],
                terms_version=1,
                active=True,
                metadata_uri=args["metadataURI"],
                listed_block=block_number,
                listed_at=timestamp,
            )
        )
        return
    if product is None:
        log.error("indexer: %s for unknown product %d", name, product_id)
        return
    if name == "ProductUpdated":
        product.token = str(args["token"])
        product.price = int(args["price"])  # type: ignore[call-overload]
        product.discount_bps = int(args["discountBps"])  # type: ignore[call-overload]
        product.metadata_uri = str(args["metadataURI"])
        product.terms_version = int(args["termsVersion"])  # type: ignore[call-overload]
    elif name == "ProductActiveSet":
        product.active = bool(args["active"])


def _rebuild_product(session: Session, product_id: int) -> None:
    """Replay a product's remaining events after a rollback."""
    product = session.get(Product, product_id)
    if product is not None:
        session.delete(product)
        session.flush()
    rows = session.execute(
        select(ChainEvent.name, ChainEvent.args, ChainEvent.block_number)
        .where(ChainEvent.name.in_(PRODUCT_EVENTS))
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).tuples()
    listed_at = 0
    for name, raw, block_number in rows:
        args = json.loads(raw)
        if int(args["productId"]) != product_id:
            continue
        if name == "ProductListed":
            block = session.get(ChainBlock, block_number)
            listed_at = block.timestamp if block is not None else 0
        _apply_product_event(session, name, args, block_number, listed_at)
        session.flush()
