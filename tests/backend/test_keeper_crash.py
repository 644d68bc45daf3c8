"""The keeper killed with SIGKILL between signing and sending, after sending, after mining: the
next run finishes the stored batch and every leaf is paid exactly once."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from backend.models import PayoutBatch, PayoutLeaf
from backend.oracle import FAULT_ENV
from backend.services import Services
from tests.backend.helpers import Market
from tests.backend.processes import cli, run, store_env
from tests.backend.test_keeper import KEEPER, POOL, SIZE, claimed, earn, fund_keeper, paid_events


@pytest.mark.parametrize("step", ["payout-signed", "payout-sent", "payout-mined"])
def test_killed_at_any_step_the_next_run_pays_each_leaf_once(
    sqlite_store: Services, market: Market, step: str
) -> None:
    fund_keeper(market)
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    earn(sqlite_store, market, product_id, buyer=2, seeder=3, count=SIZE // 2)
    earn(sqlite_store, market, product_id, buyer=4, seeder=5, count=SIZE // 4)
    assert sqlite_store.oracle().step(force=True).status == "posted"

    killed = run(
        cli("keeper", "--once", "--json", "--no-indexer"),
        store_env(sqlite_store.settings, **{FAULT_ENV: step}),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with sqlite_store.db.reader() as session:
        (stored,) = session.scalars(select(PayoutBatch)).all()
        assert (stored.status, stored.payees) == ("sending", 2)  # stored before it was sent
    sent = market.anvil.rpc("eth_getTransactionByHash", [stored.tx_hash])
    assert (sent is None) == (step == "payout-signed")

    keeper = sqlite_store.keeper()
    assert keeper is not None
    assert keeper.step().status == "idle"  # finishes the stored batch; nothing more is due
    seeders = {market.accounts[3]: POOL // 2, market.accounts[5]: POOL // 4}
    assert sorted(paid_events(market)) == sorted((a, amount, KEEPER) for a, amount in seeders.items())
    assert all(claimed(market, a) == amount for a, amount in seeders.items())
    with sqlite_store.db.reader() as session:
        (batch,) = session.scalars(select(PayoutBatch)).all()
        outcomes = set(session.scalars(select(PayoutLeaf.outcome)))
    assert (batch.status, batch.tx_hash, batch.paid_count, outcomes) == ("mined", stored.tx_hash, 2, {"paid"})
