"""The oracle against a real Marketplace: pending roots, funded totals, cancellations, wrong keys."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.epochs import close_epoch, latest_epoch
from backend.errors import ConfigError, OracleError
from backend.models import Epoch, EpochLeaf
from backend.oracle import Oracle
from backend.services import Services
from backend.settings import Settings, load_settings
from dev.devnet import Anvil, Deployed, deploy_marketplace
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt, store_settings

POOL = seeder_pool(10**18)


def _earn(store: Services, market: Market, product_id: int, buyer: int, seeder: int, count: int) -> None:
    purchase = market.buy(market.accounts[buyer], product_id)
    store.indexer().sync()
    receipt = signed_receipt(market.domain, purchase, market.accounts[seeder], count, key(buyer))
    assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"


def _posted_events(market: Market) -> list[tuple[int, str]]:
    logs = market.contract.events.RootPosted().get_logs(from_block=market.deployed.block)
    return [(log["args"]["epoch"], "0x" + log["args"]["root"].hex()) for log in logs]


def test_nothing_is_posted_before_anyone_earned_and_nothing_twice(store: Services, market: Market) -> None:
    oracle = store.oracle()
    store.indexer().sync()
    assert oracle.step(force=True).status == "idle"
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    assert oracle.step(force=True).status == "posted"
    assert oracle.step(force=True).status == "idle"  # same root: nothing new to post
    assert oracle.step().status == "idle"  # and not due anyway
    assert len(_posted_events(market)) == 1


NOTHING_NEW = ("nobody has earned anything yet", "nothing to post")


def _nothing_new_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if any(text in r.getMessage() for text in NOTHING_NEW))


def test_an_epoch_with_nothing_new_is_settled_once_until_a_receipt_wakes_the_oracle(
    store: Services, market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    oracle = store.oracle()
    store.indexer().sync()
    results = [oracle.step() for _ in range(5)]  # due (no epoch yet), but nobody earned anything
    assert [r.status for r in results] == ["idle"] * 5
    assert (oracle.closes, _nothing_new_lines(caplog)) == (1, 1)
    assert results[-1].detail == "nothing new since the last try"

    product_id, _ = market.list_product(market.accounts[1])
    purchase = market.buy(market.accounts[2], product_id)
    store.indexer().sync()  # new chain events wake the oracle: one more try, still nothing earned
    assert [oracle.step().status for _ in range(3)] == ["idle"] * 3
    assert (oracle.closes, _nothing_new_lines(caplog)) == (2, 2)

    receipt = signed_receipt(market.domain, purchase, market.accounts[3], 1000, key(2))
    assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
    posted = oracle.step()
    assert (posted.status, posted.epoch, oracle.closes) == ("posted", 1, 3)
    assert len(_posted_events(market)) == 1


def test_a_rejected_receipt_does_not_wake_the_oracle(store: Services, market: Market) -> None:
    oracle = store.oracle()
    store.indexer().sync()
    assert oracle.step().status == "idle" and oracle.closes == 1
    stranger = signed_receipt(market.domain, 99, market.accounts[3], 1000, key(2))  # no purchase 99
    assert store.sink().store_now([store.verifier().verify(stranger)])[0].status == "rejected"
    assert oracle.step().detail == "nothing new since the last try" and oracle.closes == 1


def test_an_idle_oracle_tries_again_at_the_next_epoch_boundary(
    anvil: Anvil, deployed: Deployed, manifest: Path, sqlite_url: str, tmp_path: Path
) -> None:
    short = load_settings(
        **{**store_settings(anvil, deployed, sqlite_url, manifest, tmp_path).model_dump(), "epoch_length": 1}
    )
    store = Services.open(short)
    oracle = store.oracle()
    store.indexer().sync()
    first = oracle.step()
    assert first.status == "idle" and first.next_at is not None and oracle.closes == 1
    time.sleep(max(first.next_at - time.time(), 0) + 0.05)  # wait the boundary out
    assert oracle.step().status == "idle" and oracle.closes == 2
    store.close()


def test_a_running_idle_oracle_sleeps_until_a_receipt_arrives(
    store: Services, market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store.indexer().sync()
    oracle = store.oracle()  # the epoch length is an hour: only a wake-up can close a second try
    stop = threading.Event()
    worker = threading.Thread(target=oracle.run, args=(stop,), daemon=True)
    worker.start()
    try:
        _wait_for(lambda: oracle.closes == 1)
        stop.wait(3.0)  # three of the old once-a-second retries
        assert (oracle.closes, _nothing_new_lines(caplog)) == (1, 1)
        product_id, _ = market.list_product(market.accounts[1])
        _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
        _wait_for(lambda: len(_posted_events(market)) == 1)
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the oracle did not get there"
        time.sleep(0.05)


def test_a_pending_root_is_waited_out(
    anvil: Anvil, manifest: Path, settings: Settings, sqlite_url: str, tmp_path: Path
) -> None:
    deployed = deploy_marketplace(anvil.w3, manifest, owner=anvil.accounts[0], root_delay=3600)
    delayed = load_settings(
        **{
            **settings.model_dump(),
            "contract_address": deployed.address,
            "deployment_block": deployed.block,
            "database_url": sqlite_url,
        }
    )
    store = Services.open(delayed)
    market = Market(anvil, deployed, manifest)
    oracle = store.oracle()
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    first = oracle.step(force=True)
    assert first.status == "posted"
    _earn(store, market, product_id, buyer=4, seeder=3, count=1000)
    waiting = oracle.step(force=True)
    assert waiting.status == "waiting" and waiting.wait_until is not None
    market.anvil.rpc("evm_increaseTime", [3601])
    market.anvil.rpc("evm_mine")
    second = oracle.step(force=True)
    assert second.status == "posted" and second.epoch == 2
    assert [e for e, _ in _posted_events(market)] == [1, 2]
    store.close()


def test_totals_beyond_what_the_contract_funded_are_never_sent(store: Services, market: Market) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    oracle = store.oracle()
    # Close the epoch, then corrupt its stored totals as a bug or a tampered database would.
    number = 1
    epoch = close_epoch(store.db, number, settle_after=86_400, store_account=market.accounts[9], data_uri="x")
    assert epoch is not None
    with store.db.writer() as session:
        row = session.get(Epoch, number)
        assert row is not None
        row.totals = json.dumps({"0x" + "00" * 20: str(10**30)})
    with pytest.raises(OracleError, match=r"only .* was funded"):
        oracle.post(number)
    assert _posted_events(market) == []
    with store.db.reader() as session:
        assert session.get(Epoch, number).status == "closed"  # type: ignore[union-attr]


def test_a_canceled_root_is_superseded_by_a_later_epoch(
    store: Services, market: Market, anvil: Anvil
) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    market.transact(market.deployed.owner, "setRootDelay", 3600)
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    oracle = store.oracle()
    assert oracle.step(force=True).status == "posted"
    market.transact(market.deployed.guardian, "cancelRoot")
    store.indexer().sync()
    result = oracle.step(force=True)
    assert result.status == "posted" and result.epoch == 2
    with store.db.reader() as session:
        statuses = {e.number: e.status for e in session.scalars(select(Epoch))}
        assert latest_epoch(session) is not None
    assert statuses == {1: "canceled", 2: "posted"}


def test_a_key_that_is_not_the_oracle_is_refused(settings: Settings) -> None:
    stranger = "0x" + key(5).hex()
    store = Services.open(load_settings(**{**settings.model_dump(), "oracle_key": stranger}))
    with pytest.raises(ConfigError, match="not the contract's oracle"):
        store.oracle().check()
    store.close()


def test_a_new_store_account_does_not_take_what_froze_before_it(
    store: Services, market: Market, settings: Settings
) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    market.anvil.rpc("evm_increaseTime", [2 * 86_400])
    market.anvil.rpc("evm_mine")
    store.indexer().sync()
    assert store.oracle().step(force=True).status == "posted"  # purchase 1 froze: its rest to account 9
    _earn(store, market, product_id, buyer=4, seeder=3, count=1000)
    market.anvil.rpc("evm_increaseTime", [2 * 86_400])
    market.anvil.rpc("evm_mine")
    store.indexer().sync()
    moved = Services.open(load_settings(**{**settings.model_dump(), "store_accounts": [market.accounts[8]]}))
    assert moved.oracle().step(force=True).status == "posted"  # purchase 2 froze: its rest to account 8
    with moved.db.reader() as session:
        leaves = {(leaf.account, leaf.epoch): leaf.amount for leaf in session.scalars(select(EpochLeaf))}
    rest = POOL - POOL * 1000 // 1_000_000
    assert leaves[(market.accounts[9].lower(), 2)] == leaves[(market.accounts[9].lower(), 1)] == rest
    assert leaves[(market.accounts[8].lower(), 2)] == rest
    moved.close()


@pytest.fixture
def unmined(store: Services, market: Market) -> Iterator[tuple[Oracle, int]]:
    """An oracle whose root transaction was sent to an anvil that mines only when told to:
    (oracle, epoch number)."""
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    oracle = store.oracle()
    market.anvil.rpc("evm_setAutomine", [False])
    try:
        sent = oracle.step(force=True, wait=False)
        assert sent.status == "sending" and sent.epoch is not None
        yield oracle, sent.epoch
    finally:
        market.anvil.rpc("evm_setAutomine", [True])


def _sending(store: Services, number: int) -> Epoch:
    with store.db.reader() as session:
        epoch = session.get(Epoch, number)
    assert epoch is not None and epoch.status == "sending" and epoch.tx_hash is not None
    return epoch


def test_a_root_left_unmined_by_rising_fees_is_replaced_once_with_higher_fees(
    store: Services, market: Market, unmined: tuple[Oracle, int]
) -> None:
    oracle, number = unmined
    anvil = market.anvil
    first = _sending(store, number)
    stuck = anvil.rpc("eth_getTransactionByHash", [first.tx_hash])
    # The network gets busy: blocks now cost four times what the transaction offers.
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(int(stuck["maxFeePerGas"], 16) * 4)])
    anvil.rpc("evm_mine")
    assert anvil.rpc("eth_getTransactionReceipt", [first.tx_hash]) is None

    assert oracle.step(wait=False).status == "sending"  # not unmined for long enough yet
    assert _sending(store, number).tx_hash == first.tx_hash

    oracle.replace_after = 0
    assert oracle.step(wait=False).status == "sending"
    second = _sending(store, number)
    assert second.tx_hash != first.tx_hash and second.tx_nonce == first.tx_nonce
    replacement = anvil.rpc("eth_getTransactionByHash", [second.tx_hash])
    assert (replacement["nonce"], replacement["input"]) == (stuck["nonce"], stuck["input"])
    assert int(replacement["maxFeePerGas"], 16) > 4 * int(stuck["maxFeePerGas"], 16)
    assert int(replacement["maxPriorityFeePerGas"], 16) > int(stuck["maxPriorityFeePerGas"], 16)
    anvil.rpc("evm_mine")
    assert oracle.step().status == "posted"
    assert anvil.rpc("eth_getTransactionReceipt", [first.tx_hash]) is None
    assert _posted_events(market) == [(number, first.root)]


def test_fees_are_never_raised_above_the_ceiling(
    store: Services, market: Market, unmined: tuple[Oracle, int]
) -> None:
    oracle, number = unmined
    first = _sending(store, number)
    stuck = market.anvil.rpc("eth_getTransactionByHash", [first.tx_hash])
    oracle.max_fee = int(stuck["maxFeePerGas"], 16)  # a replacement must offer more than this
    oracle.replace_after = 0
    assert oracle.step(wait=False).status == "sending"
    assert _sending(store, number).tx_hash == first.tx_hash
    market.anvil.rpc("evm_mine")
    assert oracle.step().status == "posted"
    assert _posted_events(market) == [(number, first.root)]


def test_the_first_offer_is_held_to_the_ceiling_too(store: Services, market: Market) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    _earn(store, market, product_id, buyer=2, seeder=3, count=1000)
    oracle = store.oracle()
    base = int(market.anvil.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    oracle.max_fee = base + 1  # enough for the next block, far below twice the base fee plus a tip
    result = oracle.step(force=True)
    assert result.status == "posted"
    with store.db.reader() as session:
        tx_hash = session.scalar(select(Epoch.tx_hash).where(Epoch.number == result.epoch))
    sent = market.anvil.rpc("eth_getTransactionByHash", [tx_hash])
    assert int(sent["maxFeePerGas"], 16) == base + 1 >= int(sent["maxPriorityFeePerGas"], 16)
