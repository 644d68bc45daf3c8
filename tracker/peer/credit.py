"""Receipt accounting on both ends of a connection.

A leecher counts, per seeder wallet, the bytes of pieces whose hash verified and signs cumulative
receipts for them. A seeder keeps, per purchase, the bytes it served and the highest receipt it
journaled, and serves at most a credit window beyond that receipt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tracker.peer.errors import PeerError
from tracker.receipts import Domain, Receipt, SignedKey, SignedReceipt, sign_receipt

# Unpaid bytes a seeder risks on one purchase. It must cover what is in flight between serving a
# block and holding a receipt for it: loopback socket buffers alone hold several MiB, then the
# leecher hashes, signs, and the seeder journals (fsync). At 8 MiB the seeder stalled at the window
# above 500 MiB/s; at 32 MiB a few times per download (see GROWN_WINDOW_FACTOR).
CREDIT_WINDOW = 32 * 1024 * 1024
CREDIT_WINDOW_PIECES = 3  # ... but always room for pieces in flight, or big pieces could deadlock
# A buyer that has paid for a whole window gets twice the window. Between serving a byte and
# holding a durable receipt for it lie the bytes in flight, the leecher's signing step and the
# seeder's journal commit; on a disk busy with the download's own writes that commit took up to
# 150 ms, and at 350 MiB/s one window ran out a few times per download (bench/download.py: the
# seeder stalled ~7 % of the time at 32 MiB, never at 64 MiB). A buyer that never pays still gets
# one window at most; one that stops paying gets two windows past its last receipt.
GROWN_WINDOW_FACTOR = 2
# Every receipt costs a signature on the leecher, and a verification and a journal fsync (a file
# system commit) on the seeder. On two cores a receipt per 1 MiB cost ~23 % of the throughput,
# per 8 MiB ~8 %, per 16 MiB ~4 % (bench/download.py). Half the window leaves the other half for
# bytes in flight: socket buffers and the leecher's unverified pieces, usually under 16 MiB at
# 900 MiB/s on loopback; past that the seeder's `need` fetches what is verified but unsigned.
RECEIPT_STEP = CREDIT_WINDOW // 2  # a leecher signs again after this many newly verified bytes ...
RECEIPT_INTERVAL = 0.25  # ... or when it last signed this many seconds ago (slow peers get paid too)
CREDIT_GRACE = 2.0  # seconds a seeder holds requests at the window for a receipt before choking
# A seeder asks for a receipt once this share of its window is used, to hear from a leecher that
# has bytes verified but not yet signed before it must stop serving. Asking earlier (at half the
# window, as before) made the leecher sign smaller sums more often.
NEED_SHARE = 7 / 8


def credit_window(piece_length: int) -> int:
    """The credit window for a torrent: CREDIT_WINDOW, or a few pieces when pieces are large."""
    return max(CREDIT_WINDOW, CREDIT_WINDOW_PIECES * piece_length)


class ReceiptSigner:
    """Signs a buyer's receipts, with the buyer's key or a session key plus its delegation."""

    def __init__(
        self, domain: Domain, purchase_id: int, private_key: bytes, delegation: SignedKey | None = None
    ):
        self.domain = domain
        self.purchase_id = purchase_id
        self._private_key = private_key
        self.delegation = delegation

    def sign(self, seeder: bytes, byte_count: int) -> SignedReceipt:
        """A receipt for `byte_count` cumulative bytes received from `seeder`."""
        receipt = Receipt(purchase_id=self.purchase_id, seeder=seeder, byte_count=byte_count)
        signature = sign_receipt(self.domain, receipt, self._private_key)
        return SignedReceipt(receipt=receipt, signature=signature, delegation=self.delegation)


@dataclass(slots=True)
class SeederTally:
    """A leecher's account of one seeder: verified bytes received and the last receipt signed."""

    verified: int = 0
    receipted: int = 0
    signed_at: float = float("-inf")  # when we last signed for this seeder (a monotonic clock)

    def due(self, now: float) -> bool:
        """Whether to sign again: RECEIPT_STEP new verified bytes, or any after RECEIPT_INTERVAL."""
        unsigned = self.verified - self.receipted
        return unsigned >= RECEIPT_STEP or (unsigned > 0 and now - self.signed_at >= RECEIPT_INTERVAL)


@dataclass(slots=True)
class LeecherLedger:
    """Verified bytes per seeder wallet, for one torrent."""

    tallies: dict[bytes, SeederTally] = field(default_factory=dict)

    def save(self, path: Path, info_hash: bytes, purchase_id: int) -> None:
        """Remember what we verified and signed for per seeder, so a restarted download continues
        each count instead of signing lower figures that a seeder's journal already beats."""
        document = {
            "info_hash": info_hash.hex(),
            "purchase": purchase_id,
            "tallies": {
                wallet.hex(): [t.verified, t.receipted] for wallet, t in self.tallies.items() if t.verified
            },
        }
        temporary = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document))
            os.replace(temporary, path)
        except OSError as exc:
            raise PeerError(f"cannot save the receipt ledger {path}: {exc}") from exc

    @classmethod
    def load(cls, path: Path, info_hash: bytes, purchase_id: int) -> LeecherLedger:
        """The ledger saved for this torrent and purchase; empty when there is none."""
        ledger = cls()
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return ledger
        except (OSError, ValueError) as exc:
            raise PeerError(f"cannot read the receipt ledger {path}: {exc}") from exc
        if document.get("info_hash") != info_hash.hex() or document.get("purchase") != purchase_id:
            raise PeerError(f"{path} belongs to another torrent or purchase")
        try:
            for wallet, (verified, receipted) in document.get("tallies", {}).items():
                address = bytes.fromhex(wallet)
                if len(address) == 20 and 0 <= int(receipted) <= int(verified):
                    ledger.tallies[address] = SeederTally(verified=int(verified), receipted=int(receipted))
        except (TypeError, ValueError) as exc:
            raise PeerError(f"the receipt ledger {path} is malformed: {exc}") from exc
        return ledger

    def credit(self, wallet: bytes, byte_count: int) -> SeederTally:
        """Count `byte_count` verified bytes from `wallet`."""
        tally = self.tallies.get(wallet)
        if tally is None:
            tally = self.tallies[wallet] = SeederTally()
        tally.verified += byte_count
        return tally

    def tally(self, wallet: bytes) -> SeederTally:
        """The tally of `wallet` (zero when nothing came from it)."""
        tally = self.tallies.get(wallet)
        if tally is None:
            tally = self.tallies[wallet] = SeederTally()
        return tally


@dataclass(slots=True)
class CreditAccount:
    """A seeder's account of one purchase: bytes served and the highest journaled receipt."""

    window: int
    served: int = 0
    receipted: int = 0
    need_asked: int = -1  # the `receipted` figure when we last asked for a receipt

    def current_window(self) -> int:
        """The window now: doubled once receipts cover a whole window (see GROWN_WINDOW_FACTOR)."""
        return self.window * GROWN_WINDOW_FACTOR if self.receipted >= self.window else self.window

    def room(self) -> int:
        """Bytes that may still be served within receipts + window (a serving batch checks its
        blocks against this once, not each block against the account)."""
        return self.receipted + self.current_window() - self.served

    def serve(self, byte_count: int) -> None:
        """Count bytes served to the purchase."""
        self.served += byte_count

    def allows(self, length: int) -> bool:
        """Whether `length` more bytes stay within receipts + window."""
        return length <= self.room()

    def wants_receipt(self) -> bool:
        """Whether to ask the leecher for a receipt now: once per receipt it sent, not once per
        block served (a `need` each serving batch past the share cost both sides a bencoded
        message per MiB, and the leecher answers at most once a second anyway)."""
        unpaid = self.served - self.receipted
        return unpaid >= self.current_window() * NEED_SHARE and self.need_asked != self.receipted

    def asked(self) -> None:
        """Note that we asked for a receipt (until the next one arrives)."""
        self.need_asked = self.receipted

    def record_receipt(self, byte_count: int) -> bool:
        """Raise the receipted figure; returns whether it grew."""
        if byte_count <= self.receipted:
            return False
        self.receipted = byte_count
        return True
