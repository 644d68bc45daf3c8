"""The database receipt sink: who may earn on which purchase, clipping, idempotence, durability."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from backend.db import Database
from backend.models import Credit, FrozenPurchase, StoredReceipt
from backend.receipt_sink import DatabaseReceiptSink, decide
from tests.backend.helpers import address_of_key, key, seed_purchase, signed_receipt
from tracker.receipts import (
    Domain,
    ReceiptKey,
    ReceiptVerifier,
    SignedKey,
    SignedReceipt,
    VerifiedReceipt,
    sign_receipt,
    sign_receipt_key,
)

DOMAIN = Domain(31337, b"\x11" * 20)
BUYER, OTHER = key(2), key(3)
SEEDER, SEEDER2 = "0x" + "a1" * 20, "0x" + "a2" * 20
SIZE = 1_000_000


@pytest.fixture
def sink(db: Database) -> DatabaseReceiptSink:
    seed_purchase(db, 1, address_of_key(BUYER), pool=10**18, size=SIZE)
    return DatabaseReceiptSink(db)


def _store(sink: DatabaseReceiptSink, *receipts: SignedReceipt) -> list[tuple[str, int, str | None]]:
    verifier = ReceiptVerifier(DOMAIN)
    outcomes = sink.store_now([verifier.verify(r) for r in receipts])
    return [(o.status, o.byte_count, o.reason) for o in outcomes]


def _rows(db: Database) -> int:
    with db.reader() as session:
        return session.scalar(select(func.count()).select_from(StoredReceipt)) or 0


def test_a_buyers_receipt_is_credited_and_kept_with_its_signature(
    sink: DatabaseReceiptSink, db: Database
) -> None:
    receipt = signed_receipt(DOMAIN, 1, SEEDER, 300_000, BUYER)
    assert _store(sink, receipt) == [("accepted", 300_000, None)]
    with db.reader() as session:
        row = session.scalars(select(StoredReceipt)).one()
    assert (row.purchase_id, row.seeder, row.signer, row.signed_bytes, row.credited) == (
        1,
        SEEDER,
        address_of_key(BUYER),
        300_000,
        300_000,
    )
    assert row.signature == receipt.signature


def test_only_the_highest_receipt_counts_and_repeats_change_nothing(
    sink: DatabaseReceiptSink, db: Database
) -> None:
    high = signed_receipt(DOMAIN, 1, SEEDER, 500_000, BUYER)
    low = signed_receipt(DOMAIN, 1, SEEDER, 200_000, BUYER)
    assert _store(sink, high, low, high) == [("accepted", 500_000, None)] * 3
    assert _rows(db) == 1


def test_a_receipt_signed_by_someone_else_than_the_buyer_earns_nothing(
    sink: DatabaseReceiptSink, db: Database
) -> None:
    forged = signed_receipt(DOMAIN, 1, SEEDER, 400_000, OTHER)
    assert _store(sink, forged) == [("rejected", 0, "wrong-signer")]
    assert _rows(db) == 0


def test_a_seeder_cannot_earn_on_its_own_purchase(sink: DatabaseReceiptSink, db: Database) -> None:
    buyer = address_of_key(BUYER)
    receipt = signed_receipt(DOMAIN, 1, buyer, 400_000, BUYER).receipt
    # The verifier refuses a self-signed receipt already; the sink refuses it on its own too.
    forged = VerifiedReceipt(SignedReceipt(receipt, b"\x01" * 65), bytes.fromhex(buyer[2:]))
    assert [(o.status, o.reason) for o in sink.store_now([forged])] == [("rejected", "seeder-is-buyer")]
    assert _rows(db) == 0


def test_unknown_and_absurd_purchase_ids_are_rejected(sink: DatabaseReceiptSink) -> None:
    assert _store(sink, signed_receipt(DOMAIN, 2, SEEDER, 1, BUYER)) == [("rejected", 0, "unknown-purchase")]
    assert _store(sink, signed_receipt(DOMAIN, 2**200, SEEDER, 1, BUYER)) == [
        ("rejected", 0, "unknown-purchase")
    ]


def test_credits_of_a_purchase_never_pass_its_length(sink: DatabaseReceiptSink, db: Database) -> None:
    first = signed_receipt(DOMAIN, 1, SEEDER, 700_000, BUYER)
    second = signed_receipt(DOMAIN, 1, SEEDER2, 500_000, BUYER)
    more = signed_receipt(DOMAIN, 1, SEEDER2, 900_000, BUYER)
    assert _store(sink, first, second, second, more) == [
        ("accepted", 700_000, None),
        ("clipped", 300_000, None),
        ("clipped", 300_000, None),
        ("clipped", 300_000, None),
    ]
    with db.reader() as session:
        assert session.scalar(select(func.sum(Credit.credited))) == SIZE


def test_a_settled_purchase_takes_no_more_receipts(sink: DatabaseReceiptSink, db: Database) -> None:
    with db.writer() as session:
        session.add(FrozenPurchase(purchase_id=1, epoch=1))
    assert _store(sink, signed_receipt(DOMAIN, 1, SEEDER, 10, BUYER)) == [("rejected", 0, "settled")]


def test_a_session_key_receipt_is_kept_with_its_delegation(sink: DatabaseReceiptSink, db: Database) -> None:
    session_key = key(7)
    authorisation = ReceiptKey(1, bytes.fromhex(address_of_key(session_key)[2:]), int(time.time()) + 3600)
    delegation = SignedKey(authorisation, sign_receipt_key(DOMAIN, authorisation, BUYER))
    receipt = signed_receipt(DOMAIN, 1, SEEDER, 1234, session_key).receipt
    signed = SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, session_key), delegation)
    assert _store(sink, signed) == [("accepted", 1234, None)]
    with db.reader() as session:
        row = session.scalars(select(StoredReceipt)).one()
    assert row.key_address == address_of_key(session_key)
    assert row.key_expires == authorisation.expires
    assert row.key_signature == delegation.signature


def test_what_was_acknowledged_is_in_the_database_for_every_other_connection(
    db_url: str, db: Database
) -> None:
    seed_purchase(db, 1, address_of_key(BUYER), pool=10**18, size=SIZE)
    _store(DatabaseReceiptSink(db), signed_receipt(DOMAIN, 1, SEEDER, 42, BUYER))
    other = Database(db_url)
    with other.reader() as session:
        assert session.scalar(select(StoredReceipt.credited)) == 42
    other.dispose()


def test_concurrent_batches_never_credit_more_than_the_length(db_url: str, db: Database) -> None:
    seed_purchase(db, 1, address_of_key(BUYER), pool=10**18, size=SIZE)
    verifier = ReceiptVerifier(DOMAIN)
    seeders = [f"0x{i:040x}" for i in range(1, 9)]
    batches = [[verifier.verify(signed_receipt(DOMAIN, 1, s, 300_000, BUYER))] for s in seeders]
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(batch: list[VerifiedReceipt]) -> None:
        # Each thread has its own engine: as separate tracker processes would.
        database = Database(db_url)
        try:
            results.extend(o.byte_count for o in DatabaseReceiptSink(database).store_now(batch))
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=worker, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(results) == SIZE
    with db.reader() as session:
        assert session.scalar(select(func.sum(Credit.credited))) == SIZE


@pytest.mark.parametrize(
    ("credited", "highest", "spent", "signed", "expected"),
    [
        (0, 0, 0, 10, ("accepted", 10, True)),
        (10, 10, 10, 10, ("accepted", 10, False)),
        (10, 10, 95, 20, ("clipped", 15, True)),
        (15, 20, 100, 20, ("clipped", 15, False)),
        (15, 20, 100, 30, ("clipped", 15, True)),
        (5, 5, 100, 3, ("accepted", 5, False)),
    ],
)
def test_the_credit_rule(
    credited: int, highest: int, spent: int, signed: int, expected: tuple[str, int, bool]
) -> None:
    decision = decide(credited, highest, spent, 100, signed)
    assert (decision.status, decision.credited, decision.raises) == expected
