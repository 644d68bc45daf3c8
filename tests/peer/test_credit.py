"""Receipt accounting on its own: how often a leecher signs, when a seeder asks, how much it serves."""

from __future__ import annotations

from dataclasses import dataclass

from tests.peer.conftest import DOMAIN, new_wallet, signer_for
from tracker.peer.billing import LeecherBilling, PurchaseAccount
from tracker.peer.credit import CREDIT_WINDOW, NEED_SHARE, RECEIPT_INTERVAL, RECEIPT_STEP, CreditAccount
from tracker.peer.extension import Need, decode_message
from tracker.receipts import ReceiptVerifier, SignedReceipt

PIECE = 512 * 1024
BLOCKS = [16 * 1024] * 32


@dataclass
class Sender:
    """What the billing needs of a connection: the seeder's wallet."""

    wallet: bytes | None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _billing(clock: Clock) -> LeecherBilling:
    return LeecherBilling(signer_for(new_wallet(), 5), b"i" * 20, clock=clock)


def _signed(payload: bytes | None) -> SignedReceipt:
    message = decode_message(payload or b"")
    assert isinstance(message, SignedReceipt)
    ReceiptVerifier(DOMAIN).verify(message)
    return message


def test_a_fast_leecher_signs_once_per_receipt_step_and_only_for_verified_bytes():
    clock = Clock()
    billing = _billing(clock)
    seeder = Sender(new_wallet().address)
    pieces = 4 * RECEIPT_STEP // PIECE
    figures = []
    for _ in range(pieces):
        billing.credit_piece([seeder] * len(BLOCKS), BLOCKS)  # the clock stands still: a fast link
        payload = billing.receipt_for(seeder.wallet)
        if payload is not None:
            receipt = _signed(payload).receipt
            assert receipt.byte_count <= billing.ledger.tally(seeder.wallet).verified
            figures.append(receipt.byte_count)
    # The first piece is signed at once (nothing was signed for a while), then every step.
    assert figures == [PIECE] + [PIECE + RECEIPT_STEP * k for k in range(1, 4)]


def test_a_slow_leecher_signs_what_it_verified_once_the_receipt_interval_passed():
    clock = Clock()
    billing = _billing(clock)
    seeder = Sender(new_wallet().address)
    billing.credit_piece([seeder] * len(BLOCKS), BLOCKS)
    assert _signed(billing.receipt_for(seeder.wallet)).receipt.byte_count == PIECE
    billing.credit_piece([seeder] * len(BLOCKS), BLOCKS)
    clock.now += RECEIPT_INTERVAL / 2
    assert billing.receipt_for(seeder.wallet) is None  # neither a step nor the interval yet
    clock.now += RECEIPT_INTERVAL / 2
    assert _signed(billing.receipt_for(seeder.wallet)).receipt.byte_count == 2 * PIECE
    clock.now += 10 * RECEIPT_INTERVAL
    assert billing.receipt_for(seeder.wallet) is None  # nothing new verified: nothing to sign


def test_a_need_is_answered_with_everything_verified_before_the_step_is_reached():
    clock = Clock()
    billing = _billing(clock)
    seeder = Sender(new_wallet().address)
    billing.credit_piece([seeder] * len(BLOCKS), BLOCKS)
    billing.receipt_for(seeder.wallet)
    billing.credit_piece([seeder] * len(BLOCKS), BLOCKS)
    assert billing.receipt_for(seeder.wallet) is None
    answer = billing.answer_need(seeder.wallet, Need(3 * PIECE), now=clock.now)
    assert _signed(answer).receipt.byte_count == 2 * PIECE  # what it verified, not what was asked


def test_blocks_count_for_the_wallet_that_sent_them_and_plain_peers_count_for_nobody():
    billing = _billing(Clock())
    seeder, other, plain = Sender(new_wallet().address), Sender(new_wallet().address), Sender(None)
    assert seeder.wallet is not None and other.wallet is not None
    assert billing.credit_piece([seeder] * 16 + [None] * 8 + [other] * 8, BLOCKS) == {
        seeder.wallet,
        other.wallet,
    }
    assert billing.credit_piece([seeder] * len(BLOCKS), BLOCKS) == {seeder.wallet}
    assert billing.credit_piece([plain] * len(BLOCKS), BLOCKS) == set()
    assert billing.ledger.tally(seeder.wallet).verified == PIECE // 2 + PIECE
    assert billing.ledger.tally(other.wallet).verified == PIECE // 4


def test_a_seeder_asks_for_a_receipt_at_its_need_share_once_per_receipt():
    account = CreditAccount(window=CREDIT_WINDOW)
    account.served = int(CREDIT_WINDOW * NEED_SHARE) - 1
    assert not account.wants_receipt()
    account.served += 1
    assert account.wants_receipt()
    account.asked()
    assert not account.wants_receipt()  # asked already
    account.served += 1 << 20
    assert not account.wants_receipt()  # serving more does not ask again: a receipt must come first
    account.record_receipt(1 << 20)
    assert account.wants_receipt()  # a receipt came, still past the share: ask once more
    account.asked()
    account.record_receipt(account.served - RECEIPT_STEP)
    assert not account.wants_receipt()  # a receipt brought it back below the share


def test_the_window_doubles_once_receipts_cover_a_whole_window_and_only_for_a_confirmed_buyer():
    account = PurchaseAccount(window=CREDIT_WINDOW, served=CREDIT_WINDOW)
    account.record_receipt(CREDIT_WINDOW - 1)
    assert account.room() == CREDIT_WINDOW - 1  # not yet a whole window paid: the window as it was
    account.record_receipt(CREDIT_WINDOW)
    assert account.room() == 2 * CREDIT_WINDOW  # paid for one window: two past the receipt
    assert not account.wants_receipt()
    account.served = CREDIT_WINDOW + int(2 * CREDIT_WINDOW * NEED_SHARE)
    assert account.wants_receipt()  # the need share follows the larger window
    account.confirmed = False
    assert not account.allows(1)  # unconfirmed: the first window only, whatever it signed


def test_room_is_what_receipts_plus_window_leave_and_nothing_once_frozen():
    account = PurchaseAccount(window=CREDIT_WINDOW, served=CREDIT_WINDOW - 100)
    assert account.room() == 100 and account.allows(100) and not account.allows(101)
    account.record_receipt(RECEIPT_STEP)
    assert account.room() == RECEIPT_STEP + 100
    unconfirmed = PurchaseAccount(window=CREDIT_WINDOW, served=CREDIT_WINDOW, receipted=RECEIPT_STEP)
    unconfirmed.confirmed = False
    assert unconfirmed.room() == 0  # only the first window until the tracker vouches for the buyer
    account.frozen = "rejected"
    assert account.room() == 0 and not account.allows(1)
