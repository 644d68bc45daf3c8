"""Settlement properties, checked with hypothesis on the pure rules and through the real intake."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from backend.db import Database
from backend.epochs import Cut, close_epoch, full_earnings, latest_epoch, leaf_amounts
from backend.models import Base, Epoch, EpochLeaf, FrozenPurchase, IndexerCursor, Purchase, StoredReceipt
from backend.receipt_sink import DatabaseReceiptSink, decide
from backend.settlement import PurchaseTerms, build_tree, settle
from tests.backend.helpers import address_of_key, key, seed_purchase, set_chain_time, signed_receipt
from tests.conftest import LONG
from tracker.addresses import checksum
from tracker.receipts import Domain, ReceiptError, ReceiptVerifier, SignedReceipt

DOMAIN = Domain(31337, b"\x22" * 20)
STORE = "0x" + "5707e" * 8
SEEDERS = ["0x" + f"{i:02x}" * 20 for i in (0xA1, 0xA2, 0xA3, 0xA4)]
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EXAMPLES = 200 if LONG else 40
DB_EXAMPLES = 60 if LONG else 12
DB_SETTINGS = settings(
    max_examples=DB_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

pools = st.integers(0, 10**22)
sizes = st.integers(1, 10**12)


# ----- pure rules -----


@st.composite
def purchase_sets(draw: st.DrawFn) -> tuple[dict[int, PurchaseTerms], list[tuple[int, str, int]]]:
    count = draw(st.integers(1, 6))
    terms = {}
    for pid in range(1, count + 1):
        size = draw(sizes)
        token = f"0x{pid:040x}"  # a token of its own, so each purchase's payout can be read apart
        terms[pid] = PurchaseTerms(pid, f"0x{0xB0 + pid:040x}", token, draw(pools), size, draw(st.booleans()))
    credits = draw(
        st.lists(
            st.tuples(
                st.integers(1, count + 1),  # count + 1: an unknown purchase
                st.sampled_from([*SEEDERS, "0x" + f"{0xB1:040x}"]),  # includes purchase 1's buyer
                st.integers(0, 2 * 10**12),  # may even pass the length
            ),
            max_size=20,
        )
    )
    return terms, credits


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(purchase_sets())
def test_a_purchase_never_pays_out_more_than_its_seeder_pool(
    case: tuple[dict[int, PurchaseTerms], list[tuple[int, str, int]]],
) -> None:
    terms, credits = case
    earnings = settle(terms, credits, STORE)
    paid: dict[str, int] = defaultdict(int)
    for (account, token), amount in earnings.items():
        assert amount > 0
        paid[token] += amount
        assert account != terms[int(token, 16)].buyer  # nobody earns on their own purchase
    for _pid, purchase in terms.items():
        assert paid[purchase.token] <= purchase.seeder_pool
        if purchase.frozen:
            assert paid[purchase.token] == purchase.seeder_pool


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, tuple[int, int]], list[tuple[str, int, int, int]]]:
    """Purchases (pool, size) and a sequence of receipts, freezes and epoch closes."""
    count = draw(st.integers(1, 4))
    purchases = {pid: (draw(pools), draw(st.integers(1, 10_000))) for pid in range(1, count + 1)}
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just("receipt"), st.integers(1, count), st.integers(0, 3), st.integers(0, 12_000)
                ),
                st.tuples(st.just("freeze"), st.integers(1, count), st.just(0), st.just(0)),
                st.tuples(st.just("close"), st.just(0), st.just(0), st.just(0)),
            ),
            max_size=40,
        )
    )
    return purchases, steps


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(histories())
def test_earnings_never_decrease_from_one_epoch_to_the_next(
    history: tuple[dict[int, tuple[int, int]], list[tuple[str, int, int, int]]],
) -> None:
    purchases, steps = history
    credited: dict[tuple[int, str], tuple[int, int]] = {}  # (credit, highest signed)
    spent: dict[int, int] = defaultdict(int)
    frozen: set[int] = set()
    previous: dict[tuple[str, str], int] = {}
    for action, pid, seeder_index, count in [*steps, ("close", 0, 0, 0)]:
        if action == "receipt" and pid not in frozen:
            pair = (pid, SEEDERS[seeder_index])
            credit, highest = credited.get(pair, (0, 0))
            decision = decide(credit, highest, spent[pid], purchases[pid][1], count)
            if decision.raises:
                spent[pid] += decision.credited - credit
                credited[pair] = (decision.credited, count)
            assert spent[pid] <= purchases[pid][1]
        elif action == "freeze":
            frozen.add(pid)
        elif action == "close":
            terms = {
                p: PurchaseTerms(p, "0x" + "bb" * 20, "0x" + "00" * 20, pool, size, p in frozen)
                for p, (pool, size) in purchases.items()
            }
            earnings = settle(terms, [(p, s, c) for (p, s), (c, _) in credited.items()], STORE)
            for account_token, amount in previous.items():
                assert earnings.get(account_token, 0) >= amount
            previous = earnings


# ----- through the real intake: verifier, database sink, epoch close -----


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'props.db'}")
    database.migrate()
    yield database
    database.dispose()


def _reset(db: Database) -> None:
    with db.writer() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))


def _malleated(signed: SignedReceipt) -> SignedReceipt:
    """The same signature with s -> n - s and v flipped: valid for eth-account, refused by us."""
    sig = signed.signature
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    return SignedReceipt(signed.receipt, twin, signed.delegation)


def _root_after(
    db: Database,
    purchases: list[tuple[int, int, int, int]],
    receipts: list[SignedReceipt],
    *,
    frozen_at: int | None = None,
) -> str | None:
    """Reset, seed the purchases, feed the receipts (as the tracker would), close an epoch."""
    _reset(db)
    for pid, buyer_index, pool, size in purchases:
        seed_purchase(db, pid, address_of_key(key(buyer_index)), pool=pool, size=size)
    verifier = ReceiptVerifier(DOMAIN)
    verified = []
    for receipt in receipts:
        try:
            verified.append(verifier.verify(receipt))
        except ReceiptError:
            continue  # the tracker answers these itself; they never reach the sink
    DatabaseReceiptSink(db).store_now(verified)
    if frozen_at is not None:
        set_chain_time(db, frozen_at)
    epoch = close_epoch(db, 1, settle_after=100, store_account=STORE, data_uri="x")
    return None if epoch is None else epoch.root


@st.composite
def honest_traffic(
    draw: st.DrawFn,
) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """Purchases and cumulative receipts that never need clipping (so order cannot matter)."""
    count = draw(st.integers(1, 3))
    purchases = [
        (pid, 2 + pid, draw(st.integers(1, 10**20)), draw(st.integers(4, 10**9)))
        for pid in range(1, count + 1)
    ]
    receipts = []
    for pid, buyer_index, _pool, size in purchases:
        for seeder in draw(st.lists(st.integers(0, 3), unique=True, max_size=4)):
            top = draw(st.integers(1, size // 4))
            for value in sorted([*draw(st.lists(st.integers(1, top), max_size=3)), top]):
                receipts.append((pid, seeder, value, buyer_index))
    return purchases, receipts


@DB_SETTINGS
@given(honest_traffic(), st.randoms(use_true_random=False))
def test_receipts_fed_twice_out_of_order_or_as_malleated_twins_give_the_same_root(
    scratch: Database,
    traffic: tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]],
    rng: random.Random,
) -> None:
    purchases, plan = traffic
    receipts = [signed_receipt(DOMAIN, pid, SEEDERS[s], n, key(b)) for pid, s, n, b in plan]
    expected = _root_after(scratch, purchases, receipts)
    twice = receipts + receipts
    rng.shuffle(twice)
    assert _root_after(scratch, purchases, twice) == expected
    twins = [r for receipt in receipts for r in (_malleated(receipt), receipt)]
    assert _root_after(scratch, purchases, twins) == expected


@DB_SETTINGS
@given(
    st.integers(1, 10**20),
    st.integers(1, 10**9),
    st.lists(st.tuples(st.integers(1, 3), st.integers(0, 2**64 - 1)), max_size=12),
    st.booleans(),
)
def test_a_colluding_buyer_and_seeder_never_get_more_than_that_buyers_own_pool(
    scratch: Database, pool: int, size: int, attempts: list[tuple[int, int]], settled: bool
) -> None:
    # Buyer key 2 bought purchase 1 and colludes with seeder SEEDERS[0]; keys 3 and 4 bought 2 and 3
    # and honestly pay SEEDERS[1]. The colluders sign whatever they like, for any purchase.
    colluder, accomplice = key(2), SEEDERS[0]
    purchases = [(1, 2, pool, size), (2, 3, 10**21, 1000), (3, 4, 10**21, 1000)]
    receipts = [signed_receipt(DOMAIN, pid, accomplice, count, colluder) for pid, count in attempts]
    receipts += [signed_receipt(DOMAIN, pid, SEEDERS[1], 1000, key(1 + pid)) for pid in (2, 3)]
    root = _root_after(scratch, purchases, receipts, frozen_at=10_000 if settled else None)
    assert root is not None
    with scratch.reader() as session:
        amounts = leaf_amounts(session, 1)
    taken = sum(v for (account, _), v in amounts.items() if account in (accomplice, address_of_key(colluder)))
    assert taken <= pool
    assert amounts[(SEEDERS[1], "0x" + "00" * 20)] == 2 * 10**21  # the honest seeder is paid in full


@settings(max_examples=EXAMPLES * 25, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.booleans())
def test_the_fast_checksum_is_eip55(raw: bytes, upper: bool) -> None:
    address = "0x" + (raw.hex().upper() if upper else raw.hex())
    assert checksum(address) == to_checksum_address(address)


# ----- incremental settlement equals the full recomputation -----

TOKENS = ["0x" + "00" * 20, "0x" + "70" * 20, "0x" + "71" * 20]
BUYERS = ["0x" + f"{0xC0 + i:040x}" for i in range(3)]
STORES = [STORE, "0x" + "5e" * 20]
WINDOW = 100

Step = tuple[str, int, int, int]


@st.composite
def epoch_histories(draw: st.DrawFn) -> list[Step]:
    """Purchases bought over time, receipts (late, clipped, foreign), clock moves, closes, failures."""
    step = st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 2), st.integers(0, 2), st.integers(1, 5_000)),
        st.tuples(st.just("receipt"), st.integers(1, 8), st.integers(0, 3), st.integers(0, 6_000)),
        st.tuples(st.just("foreign"), st.integers(1, 8), st.integers(0, 3), st.integers(1, 6_000)),
        st.tuples(st.just("clock"), st.integers(1, 2 * WINDOW), st.just(0), st.just(0)),
        st.tuples(st.just("close"), st.integers(0, 1), st.just(0), st.just(0)),
        st.tuples(st.just("fail"), st.just(0), st.just(0), st.just(0)),
    )
    return draw(st.lists(step, min_size=4, max_size=30))


def _replay(db: Database, steps: list[Step]) -> None:
    """Play a history against the database, closing epochs incrementally; every closed epoch's
    root must be the one the full recomputation gives for the same cut."""
    _reset(db)
    now, bought, number = 1_000, 0, 1
    credited: dict[tuple[int, str, str], int] = {}
    for action, a, b, c in [*steps, ("close", 0, 0, 0)]:
        if action == "buy":
            bought += 1
            pool = (c * 7_919) ** 4 % 10**21  # any amount: pools are not proportional to lengths
            # Some bought "earlier" than the one before: freezing is then not in id order.
            when = now - (c % 4) * WINDOW
            seed_purchase(db, bought, BUYERS[a], pool=pool, size=c, token=TOKENS[b], timestamp=when)
        elif action in ("receipt", "foreign") and a <= bought:
            with db.reader() as session:
                if session.get(FrozenPurchase, a) is not None:
                    continue  # the sink refuses receipts for a frozen purchase
                buyer = session.get(Purchase, a).buyer  # type: ignore[union-attr]
            signer = buyer if action == "receipt" else BUYERS[(BUYERS.index(buyer) + 1) % len(BUYERS)]
            pair = (a, SEEDERS[b], signer)
            credit = max(credited.get(pair, 0), c)  # may pass the length: settlement clips it
            credited[pair] = credit
            with db.writer() as session:
                session.add(
                    StoredReceipt(
                        purchase_id=a,
                        seeder=SEEDERS[b],
                        signer=signer,
                        signed_bytes=credit,
                        credited=credit,
                        signature=b"\0",
                        accepted_at=now,
                    )
                )
        elif action == "clock":
            now += a
            if bought:  # the first purchase sets up the indexer cursor
                set_chain_time(db, now)
        elif action == "close" and bought:
            epoch = close_epoch(db, number, settle_after=WINDOW, store_account=STORES[a], data_uri="x")
            with db.reader() as session:
                last = latest_epoch(session)
                cursor = session.get(IndexerCursor, 1)
                receipt_cut = (
                    epoch.receipt_cut if epoch else (session.scalar(select(func.max(StoredReceipt.id))) or 0)
                )
            assert cursor is not None
            cut = Cut(number, cursor.block_timestamp, cursor.block_number, receipt_cut, WINDOW)
            full = build_tree(full_earnings(db, cut, STORES[a]))
            if epoch is None:  # nothing new: nobody earned anything, or the same root as the last
                assert full is None or (last is not None and last.root == "0x" + full.root.hex())
            else:
                assert full is not None and epoch.root == "0x" + full.root.hex()
                number += 1
        elif action == "fail" and number > 1:
            # As the oracle does with an epoch the contract refused: its rows make way, same number.
            number -= 1
            with db.writer() as session:
                session.execute(delete(EpochLeaf).where(EpochLeaf.epoch == number))
                session.execute(delete(FrozenPurchase).where(FrozenPurchase.epoch == number))
                session.execute(delete(Epoch).where(Epoch.number == number))


@settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(epoch_histories())
@example(  # purchase 2 bought "before" purchase 1 freezes first; 1 stays open into epoch 2
    [("buy", 0, 0, 1000), ("buy", 1, 1, 1001), ("close", 0, 0, 0), ("receipt", 1, 0, 500), ("close", 1, 0, 0)]
)
def test_incremental_settlement_gives_the_full_recomputations_root_epoch_after_epoch(
    db: Database, steps: list[Step]
) -> None:
    _replay(db, steps)
