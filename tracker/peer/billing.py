"""Receipts on one torrent, both ways: the leecher signs for verified bytes, the seeder checks,
journals and turns receipts into credit.

Seeder side, per purchase: a receipt must name our wallet and the purchase the peer announced,
verify under our domain, and come from the same buyer as the purchase's earlier receipts; only a
higher one is journaled, and only after the journal's fsync does the credit grow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.credit import CreditAccount, LeecherLedger, ReceiptSigner, SeederTally, credit_window
from tracker.peer.errors import ProtocolError
from tracker.peer.extension import Need, encode_need, encode_receipt
from tracker.receipts import ReceiptError, ReceiptVerifier, SignedReceipt

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.journal import AsyncJournal

log = logging.getLogger(__name__)

NEED_RESIGN_INTERVAL = 1.0  # seconds between re-signing an unchanged figure on a seeder's request


@dataclass(slots=True)
class PurchaseAccount(CreditAccount):
    """A seeder's credit account for one purchase, with the buyer its receipts came from."""

    buyer: bytes | None = None
    journaling: int = 0  # highest figure on its way to the journal
    frozen: str = ""  # why the tracker refused this purchase's receipts; no more credit then
    confirmed: bool = True  # the tracker accepted a receipt of it (False: only the first window)

    def room(self) -> int:
        """Bytes that may still be served within receipts + window: none once frozen, and only
        the first window until the tracker confirmed who signs for the purchase."""
        if self.frozen:
            return 0
        if not self.confirmed:
            return self.window - self.served
        return self.receipted + self.current_window() - self.served


class SeederBilling:
    """A seeder's receipts: verify, journal, extend credit."""

    def __init__(
        self,
        wallet: bytes,
        verifier: ReceiptVerifier,
        journal: AsyncJournal,
        piece_length: int,
        *,
        confirm_buyers: bool = False,
    ):
        self.wallet = wallet
        self.verifier = verifier
        self.journal = journal
        self.window = credit_window(piece_length)
        self.confirm_buyers = confirm_buyers
        self.accounts: dict[int, PurchaseAccount] = {}

    def account(self, purchase_id: int) -> PurchaseAccount:
        """The account of a purchase; after a restart it starts from the journaled receipt."""
        account = self.accounts.get(purchase_id)
        if account is None:
            journal = self.journal.journal
            paid = journal.highest_bytes(purchase_id, self.wallet)
            confirmed = not self.confirm_buyers or journal.settled_bytes(purchase_id, self.wallet) > 0
            account = PurchaseAccount(
                window=self.window, served=paid, receipted=paid, journaling=paid, confirmed=confirmed
            )
            self.accounts[purchase_id] = account
        return account

    def check(self, conn: PeerConnection, signed: SignedReceipt) -> PurchaseAccount | None:
        """Validate a receipt from `conn`; the account to journal it for, or None when it adds
        nothing. Raises ProtocolError for a receipt that is wrong or forged."""
        receipt = signed.receipt
        account = conn.up.account
        if not isinstance(account, PurchaseAccount) or conn.purchase is None:
            raise ProtocolError("a receipt from a peer that announced no purchase")
        if receipt.seeder != self.wallet:
            raise ProtocolError("a receipt naming another seeder")
        if receipt.purchase_id != conn.purchase:
            raise ProtocolError("a receipt for another purchase than the peer announced")
        if account.frozen:
            raise ProtocolError(f"the tracker refuses this purchase's receipts ({account.frozen})")
        if receipt.byte_count <= account.journaling:
            return None  # adds nothing: not worth a signature check (a flood of these costs little)
        try:
            verified = self.verifier.verify(signed)
        except ReceiptError as exc:
            raise ProtocolError(f"receipt rejected ({exc.reason}): {exc}") from None
        if account.buyer is None:
            account.buyer = verified.signer
        elif account.buyer != verified.signer:
            raise ProtocolError("a receipt signed by another buyer than the purchase's earlier ones")
        account.journaling = receipt.byte_count
        return account

    async def journal_receipt(self, account: PurchaseAccount, signed: SignedReceipt) -> bool:
        """Store the receipt durably, then raise the account's credit; returns whether it grew."""
        await self.journal.append(signed)
        return account.record_receipt(signed.receipt.byte_count)

    def confirm(self, purchase_id: int) -> PurchaseAccount | None:
        """The tracker accepted a receipt of this purchase: its signer is the buyer, so receipts
        count in full from now on. The account when that is news (its credit grew), else None."""
        account = self.accounts.get(purchase_id)
        if account is None or account.confirmed:
            return None
        account.confirmed = True
        return account

    def freeze(self, purchase_id: int, reason: str) -> PurchaseAccount | None:
        """The tracker rejected a receipt of this purchase (say, not signed by its buyer): the
        first receipt's signer was trusted on first use, and that trust is now withdrawn."""
        account = self.accounts.get(purchase_id)
        if account is not None:
            account.frozen = reason or "rejected"
        return account

    def need_message(
        self, conn: PeerConnection, account: PurchaseAccount, *, force: bool = False
    ) -> bytes | None:
        """A `need` message when the account is due for a receipt (once per receipt), or at
        once if `force` (the peer is being choked for want of one)."""
        if conn.extension is None or not conn.extension.receipt_id:
            return None
        if not force and not account.wants_receipt():
            return None
        account.asked()
        return wire.extended(conn.extension.receipt_id, encode_need(account.served))


class LeecherBilling:
    """A leecher's receipts: count verified bytes per seeder and sign for them."""

    def __init__(
        self,
        signer: ReceiptSigner,
        info_hash: bytes,
        ledger_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.signer = signer
        self.clock = clock
        self.info_hash = info_hash
        self.ledger_path = ledger_path
        self.ledger = LeecherLedger()
        if ledger_path is not None:
            self.ledger = LeecherLedger.load(ledger_path, info_hash, signer.purchase_id)
        self._resigned_at: dict[bytes, float] = {}
        self._unsaved = False

    def save(self) -> None:
        """Persist the signed figures, when something changed since the last save."""
        if self.ledger_path is not None and self._unsaved:
            self.ledger.save(self.ledger_path, self.info_hash, self.signer.purchase_id)
            self._unsaved = False

    def credit_piece(self, senders: list[PeerConnection | None], block_lengths: list[int]) -> set[bytes]:
        """Count a verified piece's blocks for the wallets that sent them; the wallets touched."""
        first = senders[0]
        if first is not None and senders.count(first) == len(senders):  # the usual case: one peer
            wallet = first.wallet
            if wallet is None:
                return set()
            self.ledger.credit(wallet, sum(block_lengths))
            self._unsaved = True
            return {wallet}
        counts: dict[bytes, int] = {}
        for sender, length in zip(senders, block_lengths, strict=True):
            wallet = sender.wallet if sender is not None else None
            if wallet is not None:
                counts[wallet] = counts.get(wallet, 0) + length
        for wallet, count in counts.items():
            self.ledger.credit(wallet, count)
        self._unsaved = self._unsaved or bool(counts)
        return set(counts)

    def receipt_for(self, wallet: bytes, *, force: bool = False) -> bytes | None:
        """A signed receipt message payload for `wallet` when one is due (or forced)."""
        tally = self.ledger.tally(wallet)
        if tally.verified <= tally.receipted or not (force or tally.due(self.clock())):
            return None
        return self._sign(wallet, tally)

    def answer_need(self, wallet: bytes, need: Need, now: float) -> bytes | None:
        """Answer a seeder's `need`: sign what we verified from it. An unchanged figure is signed
        again at most once per NEED_RESIGN_INTERVAL, so a seeder cannot keep us busy signing."""
        tally = self.ledger.tally(wallet)
        if tally.verified == 0:
            return None
        if tally.verified == tally.receipted and now - self._resigned_at.get(
            wallet, -NEED_RESIGN_INTERVAL
        ) < (NEED_RESIGN_INTERVAL):
            return None
        self._resigned_at[wallet] = now
        # Re-sign even an unchanged figure: the last receipt may have died with a connection.
        return self._sign(wallet, tally)

    def _sign(self, wallet: bytes, tally: SeederTally) -> bytes:
        signed = self.signer.sign(wallet, tally.verified)
        tally.receipted = tally.verified
        tally.signed_at = self.clock()
        self._unsaved = True
        return encode_receipt(signed)
