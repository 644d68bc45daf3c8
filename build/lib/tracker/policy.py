"""What the tracker asks the store: who may join which swarm, and where accepted receipts go.

The tracker knows nothing of purchases. It receives a `SwarmPolicy` and a `ReceiptSink` at
start-up; the backend supplies database-backed ones, and the in-memory ones below serve tests
and demos. Both calls are async because the backend's answer may need a database round trip; the
tracker server keeps a short TTL cache in front of `SwarmPolicy` (see `tracker.server.access`), so an
implementation need not cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from tracker.receipts import VerifiedReceipt

OutcomeStatus = Literal["accepted", "clipped", "rejected"]


class SwarmPolicy(Protocol):
    """Which wallet a passkey belongs to, and whether that wallet may join a swarm."""

    async def wallet_for_passkey(self, passkey: str) -> bytes | None:
        """The 20-byte wallet address of a passkey, or None for an unknown passkey."""
        ...

    async def may_join(self, wallet: bytes, info_hash: bytes) -> bool:
        """Whether `wallet` may announce and scrape the swarm of `info_hash` (bought it, or seeds
        for the store)."""
        ...


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What became of one receipt. For accepted and clipped, `byte_count` is the cumulative byte
    count now credited for the receipt's (purchase, seeder); for rejected, `reason` says why."""

    status: OutcomeStatus
    byte_count: int = 0
    reason: str | None = None


class ReceiptSink(Protocol):
    """Decides verified receipts against purchases and persists the accepted ones."""

    async def store(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        """One outcome per receipt, in order; accepted ones are durable before this returns."""
        ...


class MemoryPolicy:
    """A `SwarmPolicy` held in dictionaries, for tests and local demos."""

    def __init__(self) -> None:
        self._wallets: dict[str, bytes] = {}
        self._grants: set[tuple[bytes, bytes]] = set()
        self.lookups = 0  # how often the tracker asked; tests check its cache with this

    def add_passkey(self, passkey: str, wallet: bytes) -> None:
        """Let `passkey` stand for `wallet`."""
        self._wallets[passkey] = wallet

    def grant(self, wallet: bytes, info_hash: bytes) -> None:
        """Let `wallet` join the swarm of `info_hash`."""
        self._grants.add((wallet, info_hash))

    def revoke(self, wallet: bytes, info_hash: bytes) -> None:
        """Take a grant back."""
        self._grants.discard((wallet, info_hash))

    async def wallet_for_passkey(self, passkey: str) -> bytes | None:
        """The wallet of a passkey, or None."""
        self.lookups += 1
        return self._wallets.get(passkey)

    async def may_join(self, wallet: bytes, info_hash: bytes) -> bool:
        """Whether a grant exists."""
        self.lookups += 1
        return (wallet, info_hash) in self._grants


@dataclass(frozen=True, slots=True)
class MemoryPurchase:
    """What the in-memory sink knows of a purchase: who bought it and how long its content is."""

    buyer: bytes
    total_length: int


class MemorySink:
    """A `ReceiptSink` applying docs/ARCHITECTURE.md's rules in memory: the signer must be the purchase's
    buyer; the highest cumulative count per (purchase, seeder) counts; the credits of one purchase
    never add up to more than its content's length."""

    def __init__(self) -> None:
        self.purchases: dict[int, MemoryPurchase] = {}
        self.credited: dict[tuple[int, bytes], int] = {}

    def add_purchase(self, purchase_id: int, buyer: bytes, total_length: int) -> None:
        """Record a purchase the sink will accept receipts for."""
        self.purchases[purchase_id] = MemoryPurchase(buyer=buyer, total_length=total_length)

    def _apply(self, verified: VerifiedReceipt) -> ReceiptOutcome:
        receipt = verified.receipt
        purchase = self.purchases.get(receipt.purchase_id)
        if purchase is None:
            return ReceiptOutcome("rejected", reason="unknown-purchase")
        if verified.signer != purchase.buyer:
            return ReceiptOutcome("rejected", reason="wrong-signer")
        if receipt.seeder == purchase.buyer:
            return ReceiptOutcome("rejected", reason="self-receipt")
        key = (receipt.purchase_id, receipt.seeder)
        current = self.credited.get(key, 0)
        if receipt.byte_count <= current:
            return ReceiptOutcome("accepted", byte_count=current)
        spent = sum(count for (purchase_id, _), count in self.credited.items() if purchase_id == key[0])
        room = purchase.total_length - spent
        if receipt.byte_count - current <= room:
            self.credited[key] = receipt.byte_count
            return ReceiptOutcome("accepted", byte_count=receipt.byte_count)
        self.credited[key] = current + room
        return ReceiptOutcome("clipped", byte_count=current + room)

    async def store(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        """Apply each receipt in order."""
        return [self._apply(verified) for verified in receipts]
