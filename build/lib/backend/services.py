"""The store's parts built from one settings object: database, chain, indexer, oracle, sink, policy."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from backend.chain import Chain
from backend.db import Database
from backend.errors import ConfigError
from backend.indexer import Indexer
from backend.metrics import ReceiptCounts
from backend.oracle import Oracle
from backend.oracle_key import load_oracle_account
from backend.receipt_sink import DatabaseReceiptSink
from backend.settings import Settings
from backend.tracker_policy import DatabaseSwarmPolicy
from tracker.policy import ReceiptOutcome
from tracker.receipts import Domain, ReceiptVerifier


@dataclass
class Services:
    """Lazily built parts of one store; `close()` releases the database."""

    settings: Settings
    db: Database = field(init=False)
    # Set when receipts or chain events are committed; an idle oracle sleeps until then.
    wake: threading.Event = field(init=False, default_factory=threading.Event)
    receipt_counts: ReceiptCounts = field(init=False, default_factory=ReceiptCounts)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.db_url)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Open the database (migrated to the newest schema unless told otherwise)."""
        services = cls(settings)
        if migrate:
            services.db.migrate()
        return services

    @cached_property
    def chain(self) -> Chain:
        """The chain and Marketplace of the settings."""
        return Chain.from_settings(self.settings)

    @cached_property
    def domain(self) -> Domain:
        """The receipts' EIP-712 domain: this chain, this Marketplace."""
        return Domain(self.settings.chain_id, bytes.fromhex(self.chain.address[2:]))

    def indexer(self) -> Indexer:
        """An indexer following the Marketplace from its deployment block."""
        _, block = self.settings.marketplace
        return Indexer(
            self.db,
            self.chain,
            deployment_block=block,
            confirmations=self.settings.confirmations,
            batch_blocks=self.settings.log_batch_blocks,
            on_change=self.wake.set,
        )

    def oracle(self) -> Oracle:
        """The oracle with its signing key."""
        return Oracle(self.db, self.chain, self.settings, load_oracle_account(self.settings), self.wake)

    def sink(self) -> DatabaseReceiptSink:
        """The database-backed receipt sink."""
        return DatabaseReceiptSink(self.db, on_stored=self._receipts_stored)

    def _receipts_stored(self, outcomes: list[ReceiptOutcome]) -> None:
        self.receipt_counts.add(outcomes)
        if any(o.status != "rejected" for o in outcomes):
            self.wake.set()

    def verifier(self) -> ReceiptVerifier:
        """A receipt verifier for this store's domain."""
        return ReceiptVerifier(self.domain)

    def default_store_accounts(self) -> list[str]:
        """The store's seeding accounts when none are configured: the oracle's, if its key is here."""
        try:
            return [load_oracle_account(self.settings).address.lower()]
        except ConfigError:
            return []

    @property
    def store_accounts(self) -> list[str]:
        """The store's seeding accounts (the first gets the unearned part of settled pools)."""
        return list(self.settings.store_accounts) or self.default_store_accounts()

    def policy(self) -> DatabaseSwarmPolicy:
        """The database-backed swarm policy, with the store's seeding accounts in every swarm."""
        return DatabaseSwarmPolicy(self.db, self.store_accounts)

    def close(self) -> None:
        """Release the database's connections."""
        self.db.dispose()
