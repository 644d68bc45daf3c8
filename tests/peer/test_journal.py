"""The seeder's receipt journal: durable, highest-only, torn tails cut, one process at a time."""

from __future__ import annotations

import pytest

from tests.peer.conftest import new_wallet, signer_for
from tracker.peer.journal import JournalError, ReceiptJournal, Settlement

SELLER = new_wallet()
BUYER = new_wallet()


def _receipt(purchase: int, count: int):
    return signer_for(BUYER, purchase).sign(SELLER.address, count)


def test_only_higher_receipts_are_kept_and_they_survive_a_reopen(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    assert journal.append([_receipt(1, 100), _receipt(1, 50), _receipt(2, 10)]) == [True, False, True]
    assert journal.append([_receipt(1, 100)]) == [False]
    assert journal.records == 2  # the lower and the repeated receipt were not written
    journal.close()
    reopened = ReceiptJournal(tmp_path / "j")
    assert reopened.records == 2
    assert reopened.highest_bytes(1, SELLER.address) == 100
    assert reopened.highest_bytes(2, SELLER.address) == 10
    assert {s.receipt.purchase_id for s in reopened.pending(10)} == {1, 2}


def test_settled_receipts_are_not_pending_until_a_higher_one_arrives(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    journal.append([_receipt(1, 100)])
    journal.settle([Settlement(1, SELLER.address, 100, "accepted")])
    assert journal.pending(10) == []
    journal.append([_receipt(1, 150)])
    assert [s.receipt.byte_count for s in journal.pending(10)] == [150]
    journal.close()
    assert [s.receipt.byte_count for s in ReceiptJournal(tmp_path / "j").pending(10)] == [150]


def test_a_record_torn_by_a_crash_is_cut_and_the_rest_kept(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    journal.append([_receipt(1, 100)])
    journal.close()
    size = (tmp_path / "j").stat().st_size
    with open(tmp_path / "j", "ab") as handle:
        handle.write(b"\x00\x00\x01\x00\x12\x34")  # a header and nothing after it
    reopened = ReceiptJournal(tmp_path / "j")
    assert reopened.highest_bytes(1, SELLER.address) == 100
    assert (tmp_path / "j").stat().st_size == size


def test_corruption_in_the_middle_refuses_to_open_rather_than_lose_receipts(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    journal.append([_receipt(1, 100)])
    journal.append([_receipt(2, 100)])
    journal.close()
    data = bytearray((tmp_path / "j").read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "j").write_bytes(bytes(data))
    with pytest.raises(JournalError, match="corrupt"):
        ReceiptJournal(tmp_path / "j")


def test_a_second_process_cannot_open_the_same_journal(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    with pytest.raises(JournalError, match="in use"):
        ReceiptJournal(tmp_path / "j")
    journal.close()


def test_compaction_keeps_the_highest_receipt_and_the_settled_figure(tmp_path):
    journal = ReceiptJournal(tmp_path / "j")
    for count in range(1, 40):
        journal.append([_receipt(1, count * 10)])
    journal.settle([Settlement(1, SELLER.address, 200, "accepted")])
    before = (tmp_path / "j").stat().st_size
    journal.compact()
    assert (tmp_path / "j").stat().st_size < before
    journal.append([_receipt(2, 5)])
    journal.close()
    reopened = ReceiptJournal(tmp_path / "j")
    assert reopened.highest_bytes(1, SELLER.address) == 390
    assert reopened.settled_bytes(1, SELLER.address) == 200
    assert reopened.highest_bytes(2, SELLER.address) == 5
