"""The keeper against a real Marketplace: it pays each due leaf once, tells seeders, survives rising
fees, an RPC node that goes away, and a root that changes under a batch in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from backend.chain import ZERO_ADDRESS, Chain
from backend.epochs import latest_epoch, proof_for
from backend.errors import ChainUnavailable, ConfigError
from backend.keeper import Keeper
from backend.keeper.plan import AutoPay
from backend.keeper.status import auto_payouts
from backend.metrics import ReceiptCounts, StoreCollector
from backend.models import EpochStatus, PayoutBatch, PayoutLeaf
from backend.rewards import rewards_of
from backend.services import Services
from backend.settings import DEV_KEEPER_INDEX, Settings, load_settings, public_test_account
from dev.devnet import Anvil, Deployed, deploy_marketplace
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt, store_settings

SIZE = 1_000_000
POOL = seeder_pool(10**18)
KEEPER = public_test_account(DEV_KEEPER_INDEX).address


def earn(store: Services, market: Market, product_id: int, buyer: int, seeder: int, count: int) -> int:
    """A purchase by `buyer` and a receipt for `count` bytes seeded by `seeder`; the purchase id."""
    purchase = market.buy(market.accounts[buyer], product_id)
    store.indexer().sync()
    receipt = signed_receipt(market.domain, purchase, market.accounts[seeder], count, key(buyer))
    assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
    return purchase


def fund_keeper(market: Market) -> None:
    """Gas money for the keeper's account (anvil funds only the first ten)."""
    market.anvil.rpc("anvil_setBalance", [KEEPER, hex(10**20)])


def paid_events(market: Market) -> list[tuple[str, int, str]]:
    """Every `Claimed` event: (account, amount, sender of its transaction)."""
    logs = market.contract.events.Claimed().get_logs(from_block=market.deployed.block)
    senders = {h: market.w3.eth.get_transaction(h)["from"] for h in {log["transactionHash"] for log in logs}}
    return [(log["args"]["account"], log["args"]["amount"], senders[log["transactionHash"]]) for log in logs]


def claimed(market: Market, account: str, token: str = ZERO_ADDRESS) -> int:
    return int(market.contract.functions.claimed(account, token).call())


def batches(store: Services) -> list[PayoutBatch]:
    with store.db.reader() as session:
        return list(session.scalars(select(PayoutBatch).order_by(PayoutBatch.id)))


def earn_and_post(store: Services, market: Market) -> None:
    """Seeder 3 earns the whole of buyer 2's purchase, and the oracle posts the root."""
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    earn(store, market, product_id, buyer=2, seeder=3, count=SIZE)
    assert store.oracle().step(force=True).status == "posted"


@pytest.fixture
def sqlite_keeper(sqlite_store: Services, market: Market) -> Keeper:
    """The SQLite store's keeper, its account funded."""
    fund_keeper(market)
    found = sqlite_store.keeper()
    assert found is not None
    return found


@pytest.fixture
def keeper(store: Services, market: Market) -> Keeper:
    """The store's keeper, its account funded."""
    fund_keeper(market)
    found = store.keeper()
    assert found is not None and found.account.address == KEEPER
    found.check()
    return found


def test_due_leaves_are_paid_once_and_seeders_are_told_what_waits(
    store: Services, market: Market, keeper: Keeper
) -> None:
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    earn(store, market, product_id, buyer=2, seeder=3, count=SIZE // 2)  # 0.08 ETH: due
    earn(store, market, product_id, buyer=4, seeder=5, count=SIZE // 1000)  # 0.00016 ETH: below
    assert keeper.step().status == "idle"  # no root yet
    assert store.oracle().step(force=True).status == "posted"

    sent = keeper.step()
    assert (sent.status, sent.epoch, sent.batches, sent.payees) == ("sent", 1, 1, 1)
    seeder, small = market.accounts[3], market.accounts[5]
    assert paid_events(market) == [(seeder, POOL // 2, KEEPER)]  # the seeder sent nothing
    assert claimed(market, seeder) == POOL // 2 and claimed(market, small) == 0
    again = keeper.step()
    assert again.status == "idle" and "1 below the threshold" in again.detail
    assert len(paid_events(market)) == 1

    with store.db.reader() as session:
        (batch,) = batches(store)
        assert (batch.status, batch.paid_count, batch.fee_paid is not None) == ("mined", 1, True)
        for account, state in ((seeder, AutoPay.NOTHING), (small, AutoPay.BELOW_THRESHOLD)):
            _, tokens = rewards_of(session, store.chain, account)
            auto = auto_payouts(session, store.chain, store.settings, account, tokens, keeper=True)[
                ZERO_ADDRESS
            ]
            assert auto.state == state
        _, tokens = rewards_of(session, store.chain, seeder)
        auto = auto_payouts(session, store.chain, store.settings, seeder, tokens, keeper=True)[ZERO_ADDRESS]
    assert (auto.paid_tx, auto.paid_amount, auto.paid_at is not None) == (batch.tx_hash, POOL // 2, True)

    collector = StoreCollector(store.db, store.chain.head, 0, ReceiptCounts(), None)
    samples = {(s.name, tuple(s.labels.items())): s.value for m in collector.collect() for s in m.samples}
    assert samples[("seedmarket_keeper_batches", (("status", "mined"),))] == 1
    assert samples[("seedmarket_keeper_payees_paid_total", ())] == 1


def test_a_seeder_who_claims_while_the_batch_is_in_flight_is_paid_once(
    sqlite_store: Services, market: Market, sqlite_keeper: Keeper
) -> None:
    keeper = sqlite_keeper
    earn_and_post(sqlite_store, market)
    seeder = market.accounts[3]
    market.anvil.rpc("evm_setAutomine", [False])
    try:
        assert keeper.step(wait=False).status == "sent"
        with sqlite_store.db.reader() as session:
            epoch = latest_epoch(session, (EpochStatus.POSTED,))
            assert epoch is not None
            proof = proof_for(session, epoch, seeder, ZERO_ADDRESS)
        assert proof is not None
        # The seeder's own claim, offering more per gas, goes first in the same block.
        tx = market.contract.functions.claim(
            seeder, ZERO_ADDRESS, proof.cumulative_amount, proof.proof
        ).transact({"from": seeder, "maxPriorityFeePerGas": 10**11, "maxFeePerGas": 10**12})
        market.anvil.rpc("evm_mine")
    finally:
        market.anvil.rpc("evm_setAutomine", [True])
    assert market.w3.eth.get_transaction_receipt(tx)["status"] == 1
    assert keeper.step().status == "idle"
    assert paid_events(market) == [(seeder, POOL, seeder)]
    with sqlite_store.db.reader() as session:
        outcomes = list(session.scalars(select(PayoutLeaf.outcome)))
    assert [b.status for b in batches(sqlite_store)] == ["mined"] and outcomes == ["skipped"]


def test_a_batch_left_unmined_by_rising_fees_is_replaced_and_paid_once(
    sqlite_store: Services, market: Market, sqlite_keeper: Keeper
) -> None:
    keeper = sqlite_keeper
    earn_and_post(sqlite_store, market)
    anvil = market.anvil
    anvil.rpc("evm_setAutomine", [False])
    try:
        assert keeper.step(wait=False).status == "sent"
        (first,) = batches(sqlite_store)
        stuck = anvil.rpc("eth_getTransactionByHash", [first.tx_hash])
        # The network gets busy: blocks now cost four times what the batch offers.
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(int(stuck["maxFeePerGas"], 16) * 4)])
        anvil.rpc("evm_mine")
        assert anvil.rpc("eth_getTransactionReceipt", [first.tx_hash]) is None
        assert keeper.step(wait=False).status == "sending"  # not unmined for long enough yet
        keeper.replace_after = 0
        assert keeper.step(wait=False).status == "sending"
        (second,) = batches(sqlite_store)
        assert second.tx_hash != first.tx_hash and second.tx_nonce == first.tx_nonce
        assert second.prior_hashes == f'["{first.tx_hash}"]'
        replacement = anvil.rpc("eth_getTransactionByHash", [second.tx_hash])
        assert int(replacement["maxFeePerGas"], 16) > 4 * int(stuck["maxFeePerGas"], 16)
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", [True])
    assert keeper.step().status == "idle"
    (mined,) = batches(sqlite_store)
    assert (mined.status, mined.tx_hash) == ("mined", second.tx_hash)
    assert paid_events(market) == [(market.accounts[3], POOL, KEEPER)]


class Relay:
    """The RPC node behind an HTTP hop that can go down: then it drops every request unanswered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.down = False
        self.cut_at: Callable[[bytes], bool] = lambda _body: False
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if relay.cut_at(body):
                    relay.down = True
                if relay.down:
                    self.close_connection = True
                    return
                answer = httpx.post(
                    relay.upstream, content=body, headers={"Content-Type": "application/json"}
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def relay(anvil: Anvil) -> Iterator[Relay]:
    hop = Relay(anvil.url)
    yield hop
    hop.server.shutdown()


def test_a_node_that_goes_away_mid_batch_only_delays_the_payout(
    sqlite_store: Services, market: Market, relay: Relay
) -> None:
    fund_keeper(market)
    account = sqlite_store.keeper_account
    assert account is not None
    chain = Chain(relay.url, 31337, market.deployed.address, sqlite_store.settings.manifest_path, timeout=2)
    keeper = Keeper(sqlite_store.db, chain, sqlite_store.settings, account)
    earn_and_post(sqlite_store, market)
    relay.cut_at = lambda body: b"eth_sendRawTransaction" in body  # down as the batch goes out
    with pytest.raises(ChainUnavailable):
        keeper.step()
    (stored,) = batches(sqlite_store)
    assert stored.status == "sending" and paid_events(market) == []
    with pytest.raises(ChainUnavailable):
        keeper.step()  # still down
    relay.cut_at, relay.down = (lambda _body: False), False
    assert keeper.step().status == "idle"  # the stored batch was broadcast again and mined
    assert [b.status for b in batches(sqlite_store)] == ["mined"]
    assert paid_events(market) == [(market.accounts[3], POOL, KEEPER)]


def test_a_batch_whose_root_changed_before_it_was_mined_reverts_and_the_new_root_is_paid(
    anvil: Anvil, manifest: Path, sqlite_url: str, tmp_path: Path
) -> None:
    deployed: Deployed = deploy_marketplace(anvil.w3, manifest, owner=anvil.accounts[0], root_delay=3600)
    store = Services.open(store_settings(anvil, deployed, sqlite_url, manifest, tmp_path))
    market = Market(anvil, deployed, manifest)
    fund_keeper(market)
    keeper = store.keeper()
    assert keeper is not None
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    seeder = market.accounts[3]
    earn(store, market, product_id, buyer=2, seeder=3, count=SIZE // 2)
    oracle = store.oracle()
    assert oracle.step(force=True).status == "posted"
    anvil.rpc("evm_increaseTime", [3601])
    anvil.rpc("evm_mine")
    # Epoch 2 is posted and then canceled while pending: the keeper never pays from it.
    earn(store, market, product_id, buyer=4, seeder=3, count=SIZE)
    assert oracle.step(force=True).status == "posted"
    market.transact(deployed.guardian, "cancelRoot")
    # The keeper signs a batch against epoch 1's root, and the node loses it; epoch 3 activates
    # before the keeper (after a crash, say) broadcasts it again.
    anvil.rpc("evm_setAutomine", [False])
    try:
        assert keeper.step(wait=False).status == "sent"
        anvil.rpc("anvil_dropTransaction", [batches(store)[0].tx_hash])
    finally:
        anvil.rpc("evm_setAutomine", [True])
    store.indexer().sync()
    assert oracle.step(force=True).status == "posted"
    anvil.rpc("evm_increaseTime", [3601])
    anvil.rpc("evm_mine")
    assert keeper.step().status == "sent"  # batch 1 re-broadcast, reverted; epoch 3 planned and paid
    assert [(b.epoch, b.status) for b in batches(store)] == [(1, "reverted"), (3, "mined")]
    assert keeper.step().status == "idle"
    total = POOL // 2 + POOL
    assert paid_events(market) == [(seeder, total, KEEPER)] and claimed(market, seeder) == total
    store.close()


def test_the_oracles_key_is_refused_as_the_keepers(sqlite_settings: Settings) -> None:
    same = "0x" + key(0).hex()
    store = Services.open(load_settings(**{**sqlite_settings.model_dump(), "keeper_key": same}))
    with pytest.raises(ConfigError, match="oracle's key"):
        store.keeper()
    store.close()


def test_a_leaf_held_back_by_fees_is_weighed_again_without_waiting_for_a_new_root(
    sqlite_store: Services, market: Market, sqlite_keeper: Keeper
) -> None:
    keeper = sqlite_keeper
    earn_and_post(sqlite_store, market)
    patient = keeper.rules
    keeper.rules = replace(patient, gas_fraction=1e-9)  # gas far too dear for 0.16 ETH
    held = keeper.step()
    assert held.status == "idle" and "1 too dear" in held.detail and held.next_at is not None
    assert keeper.step().detail == "paid what is due" and paid_events(market) == []  # quiet until then
    keeper.rules, keeper.recheck_at = patient, time.time()  # fees fell; the recheck is due
    assert keeper.step().status == "sent"
    assert paid_events(market) == [(market.accounts[3], POOL, KEEPER)]


def test_the_keeper_pays_the_erc20_it_is_told_to_and_leaves_another_to_be_claimed(
    sqlite_settings: Settings, market: Market
) -> None:
    paid, manual = market.add_token("AUTO"), market.add_token("MANUAL")
    price = 10**20
    settings = {**sqlite_settings.model_dump(), "keeper_token_thresholds": {paid: price // 100}}
    store = Services.open(load_settings(**settings))
    try:
        fund_keeper(market)
        keeper = store.keeper()
        assert keeper is not None
        seller, seeder = market.accounts[1], market.accounts[3]
        for token, buyer in ((paid, 2), (manual, 4)):
            product_id, _ = market.list_product(seller, size=SIZE, price=price, token=token)
            purchase = market.buy_in_token(market.accounts[buyer], product_id)
            store.indexer().sync()
            receipt = signed_receipt(market.domain, purchase, seeder, SIZE, key(buyer))
            assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
        assert store.oracle().step(force=True).status == "posted"

        sent = keeper.step()
        assert (sent.status, sent.batches, sent.payees) == ("sent", 1, 1)
        pool = seeder_pool(price)
        assert market.token(paid).functions.balanceOf(seeder).call() == pool
        assert market.token(manual).functions.balanceOf(seeder).call() == 0
        assert claimed(market, seeder, paid) == pool
        assert keeper.step().status == "idle" and paid_events(market) != []

        with store.db.reader() as session:
            _, tokens = rewards_of(session, store.chain, seeder)
            states = auto_payouts(session, store.chain, store.settings, seeder, tokens, keeper=True)
        states = {token.lower(): state for token, state in states.items()}
        assert states[manual.lower()].state == AutoPay.MANUAL  # the seeder is told to claim it
        assert (states[paid.lower()].state, states[paid.lower()].paid_amount) == (AutoPay.NOTHING, pool)
    finally:
        store.close()
