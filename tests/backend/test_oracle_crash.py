"""The oracle killed with SIGKILL before, during and after sending: the root is posted once."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import select

from backend.models import Epoch, EpochLeaf
from backend.oracle import FAULT_ENV
from backend.services import Services
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt
from tests.backend.processes import cli, run, store_env

SIZE = 1_000_000
POOL = seeder_pool(10**18)


def _acknowledged_receipts(store: Services, market: Market) -> str:
    """Two purchases and receipts the sink acknowledged; the seeder who earned from them."""
    seeder = market.accounts[3]
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    purchases = [market.buy(market.accounts[b], product_id) for b in (2, 4)]
    store.indexer().sync()
    receipts = [
        signed_receipt(market.domain, p, seeder, SIZE // 4, key(b))
        for p, b in zip(purchases, (2, 4), strict=True)
    ]
    outcomes = store.sink().store_now([store.verifier().verify(r) for r in receipts])
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    return seeder.lower()


def _oracle(store: Services, **extra: str) -> tuple[int, dict[str, object] | None]:
    result = run(cli("oracle", "--once", "--force", "--json"), store_env(store.settings, **extra))
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, json.loads(lines[-1]) if lines else None


def _posted(market: Market) -> list[tuple[int, str]]:
    logs = market.contract.events.RootPosted().get_logs(from_block=market.deployed.block)
    return [(log["args"]["epoch"], "0x" + log["args"]["root"].hex()) for log in logs]


def _check_posted_once(store: Services, market: Market, seeder: str) -> None:
    with store.db.reader() as session:
        epoch = session.get(Epoch, 1)
        leaf = session.get(EpochLeaf, (1, seeder, "0x" + "00" * 20))
    assert epoch is not None and epoch.status == "posted"
    assert _posted(market) == [(1, epoch.root)]
    assert leaf is not None and leaf.amount == 2 * (POOL // 4)  # every acknowledged receipt counts
    root, number = market.contract.functions.activeRoot().call()
    assert ("0x" + root.hex(), number) == (epoch.root, 1)


@pytest.mark.parametrize("step", ["closed", "signed", "sent"])
def test_killed_at_any_step_the_next_run_posts_the_root_once(
    sqlite_store: Services, market: Market, step: str
) -> None:
    seeder = _acknowledged_receipts(sqlite_store, market)
    code, _ = _oracle(sqlite_store, **{FAULT_ENV: step})
    assert code == -signal.SIGKILL
    with sqlite_store.db.reader() as session:
        stored = session.get(Epoch, 1)
    assert stored is not None and stored.status == ("closed" if step == "closed" else "sending")
    assert len(_posted(market)) == (1 if step == "sent" else 0)
    code, answer = _oracle(sqlite_store)
    assert code == 0 and answer is not None and answer["status"] == "posted" and answer["epoch"] == 1
    _check_posted_once(sqlite_store, market, seeder)
    if step == "sent":  # once more, for good measure: nothing new, nothing posted
        code, answer = _oracle(sqlite_store)
        assert answer is not None and answer["status"] == "idle"
        assert len(_posted(market)) == 1


def test_a_sent_transaction_that_vanished_is_broadcast_again(sqlite_store: Services, market: Market) -> None:
    seeder = _acknowledged_receipts(sqlite_store, market)
    market.anvil.rpc("evm_setAutomine", [False])
    try:
        code, _ = _oracle(sqlite_store, **{FAULT_ENV: "sent"})
        assert code == -signal.SIGKILL
        with sqlite_store.db.reader() as session:
            tx_hash = session.scalar(select(Epoch.tx_hash).where(Epoch.number == 1))
        assert market.anvil.rpc("eth_getTransactionByHash", [tx_hash]) is not None
        market.anvil.rpc("anvil_dropTransaction", [tx_hash])
        assert market.anvil.rpc("eth_getTransactionByHash", [tx_hash]) is None
    finally:
        market.anvil.rpc("evm_setAutomine", [True])
    code, answer = _oracle(sqlite_store)
    assert code == 0 and answer is not None and answer["status"] == "posted"
    _check_posted_once(sqlite_store, market, seeder)


def test_a_transaction_mined_after_the_crash_is_recognised(sqlite_store: Services, market: Market) -> None:
    seeder = _acknowledged_receipts(sqlite_store, market)
    market.anvil.rpc("evm_setAutomine", [False])
    try:
        code, _ = _oracle(sqlite_store, **{FAULT_ENV: "sent"})
        assert code == -signal.SIGKILL
        assert _posted(market) == []
        market.anvil.rpc("evm_mine")
    finally:
        market.anvil.rpc("evm_setAutomine", [True])
    code, answer = _oracle(sqlite_store)
    assert code == 0 and answer is not None and answer["status"] == "posted"
    _check_posted_once(sqlite_store, market, seeder)
