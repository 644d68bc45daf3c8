"""What the store tells whoever runs it: Prometheus metrics, and the facts `/readyz` checks.

Counters that only the process itself sees (receipts decided, tracker announces) are kept in
memory; everything the database or the chain knows (indexer lag, epoch age, the oracle's state,
transactions in flight) is read when scraped, so every instance on one database reports the
same state and nothing has to be kept in step. Each app has a registry of its own: two stores in
one process (as in the tests) do not mix their counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from backend.db import Database
from backend.errors import ChainError
from backend.models import Epoch, EpochStatus, IndexerCursor
from tracker.policy import ReceiptOutcome

# /readyz fails when the indexer is more than this many blocks behind the confirmed head.
MAX_READY_LAG = 100


class ReceiptCounts:
    """Receipts decided by this process's sink, by outcome (accepted, clipped, rejected:reason)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the sink runs in worker threads
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, outcomes: Sequence[ReceiptOutcome]) -> None:
        """Count one batch's outcomes."""
        with self._lock:
            for outcome in outcomes:
                self._counts[(outcome.status, outcome.reason or "")] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        """(status, reason) -> count so far."""
        with self._lock:
            return dict(self._counts)


class TrackerCounters(Protocol):
    """What a tracker running in this process counts (`tracker.server.TrackerServer`)."""

    announces: int
    requests: int
    refusals: int


@dataclass(frozen=True)
class Readiness:
    """Whether the store can do its work, and why not."""

    database: bool
    chain: bool
    lag: int | None  # blocks the indexer is behind the confirmed head, when both are known
    problems: list[str]

    @property
    def ready(self) -> bool:
        """Everything reachable and the indexer close enough to the chain."""
        return not self.problems


def indexer_lag(db: Database, head: Callable[[], int], confirmations: int) -> int | None:
    """Confirmed blocks the indexer has not read yet; None before it read anything."""
    with db.reader() as session:
        cursor = session.get(IndexerCursor, 1)
    if cursor is None:
        return None
    return max(head() - confirmations - cursor.block_number, 0)


def readiness(db: Database, head: Callable[[], int], confirmations: int) -> Readiness:
    """Check the database, the chain and the indexer's lag; never raises for an outage.

    `head` is the chain's newest block number (`Chain.head`)."""
    problems: list[str] = []
    database = chain_up = True
    lag = None
    try:
        with db.reader() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same: the database cannot be used
        database = False
        problems.append(f"database unreachable: {type(exc).__name__}")
    try:
        newest = head()
    except ChainError as exc:
        chain_up = False
        problems.append(f"chain unreachable: {exc}")
    if database and chain_up:
        with db.reader() as session:
            cursor = session.get(IndexerCursor, 1)
        if cursor is None:
            problems.append("the indexer has not read the chain yet")
        else:
            lag = max(newest - confirmations - cursor.block_number, 0)
            if lag > MAX_READY_LAG:
                problems.append(f"the indexer is {lag} blocks behind (more than {MAX_READY_LAG})")
    return Readiness(database, chain_up, lag, problems)


class StoreCollector(Collector):
    """The store's metrics, read at scrape time."""

    def __init__(
        self,
        db: Database,
        head: Callable[[], int],
        confirmations: int,
        receipts: ReceiptCounts,
        tracker: TrackerCounters | None,
    ) -> None:
        self.db = db
        self.head = head
        self.confirmations = confirmations
        self.receipts = receipts
        self.tracker = tracker

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        """One scrape."""
        received = CounterMetricFamily(
            "seedmarket_receipts", "Receipts decided by this process", labels=["outcome", "reason"]
        )
        for (status, reason), count in sorted(self.receipts.snapshot().items()):
            received.add_metric([status, reason], count)
        yield received
        if self.tracker is not None:
            yield CounterMetricFamily(
                "seedmarket_tracker_announces", "Announces received", value=self.tracker.announces
            )
            yield CounterMetricFamily(
                "seedmarket_tracker_requests", "Tracker requests received", value=self.tracker.requests
            )
            yield CounterMetricFamily(
                "seedmarket_tracker_refusals", "Tracker requests refused", value=self.tracker.refusals
            )
        yield from self._database_state()

    def _database_state(self) -> Iterable[GaugeMetricFamily]:
        with self.db.reader() as session:
            latest = session.scalars(select(Epoch).order_by(Epoch.number.desc()).limit(1)).first()
            sending = session.scalar(
                select(func.count()).select_from(Epoch).where(Epoch.status == EpochStatus.SENDING)
            )
        state = GaugeMetricFamily(
            "seedmarket_oracle_state", "The newest epoch's status (1 for the current one)", labels=["status"]
        )
        current = latest.status if latest is not None else "none"
        for status in [*(s.value for s in EpochStatus), "none"]:
            state.add_metric([status], 1.0 if status == current else 0.0)
        yield state
        yield GaugeMetricFamily(
            "seedmarket_pending_transactions", "Root transactions sent and not yet mined", value=sending or 0
        )
        if latest is not None:
            yield GaugeMetricFamily(
                "seedmarket_epoch_age_seconds",
                "Seconds since the newest epoch was closed",
                value=max(time.time() - latest.created_at, 0.0),
            )
        try:
            lag = indexer_lag(self.db, self.head, self.confirmations)
        except ChainError:
            lag = None  # the chain is down: no lag to report (readiness says so)
        if lag is not None:
            yield GaugeMetricFamily(
                "seedmarket_indexer_lag_blocks", "Confirmed blocks the indexer has not read yet", value=lag
            )


def registry_for(collector: StoreCollector) -> CollectorRegistry:
    """A registry of the store's own metrics (no process-global default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
