"""Leader hand-over between real `seedmarket serve` processes on one PostgreSQL database.

The leader is killed mid-epoch: it stored its signed root transaction and died (SIGKILL) before
broadcasting it. The other instance takes the advisory lock, finds the epoch `sending`, and
finishes it: the root is posted once, with every acknowledged receipt in it. Then the new leader
is killed from outside (`kill -9`, nothing half-done) and a third process finishes the next epoch.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from backend.models import Epoch, EpochLeaf, Purchase
from backend.oracle import FAULT_ENV
from backend.services import Services
from backend.settings import Settings
from dev.devnet import free_port
from tests.backend.helpers import Market, key, seeder_pool, signed_receipt
from tests.backend.processes import STARTUP_SECONDS, cli, store_env, wait_http
from tests.conftest import REPO

SIZE = 1_000_000
POOL = seeder_pool(10**18)
LEADS = "this instance leads"

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class Instance:
    """One `seedmarket serve` process (API and workers; no tracker, no seed) and its log."""

    def __init__(self, settings: Settings, tmp_path: Path, name: str, **extra: object) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = tmp_path / f"{name}.log"
        env = store_env(
            settings, api_port=port, public_url=self.url, epoch_length=1, poll_interval=0.2, **extra
        )
        self._log: IO[str] = self.log_path.open("w")
        self.process = subprocess.Popen(
            cli("serve", "--no-tracker", "--no-seed"),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def leads(self) -> bool:
        return LEADS in self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def instances(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    started: list[Instance] = []

    def start(name: str, **extra: object) -> Instance:
        instance = Instance(settings, tmp_path, name, **extra)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


def _until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not in {timeout:.0f} s"
        time.sleep(0.1)


def _posted(market: Market) -> list[tuple[int, str]]:
    logs = market.contract.events.RootPosted().get_logs(from_block=market.deployed.block)
    return [(log["args"]["epoch"], "0x" + log["args"]["root"].hex()) for log in logs]


def _earn(store: Services, market: Market, product_id: int, buyer: int, seeder: str) -> None:
    """A purchase, indexed by whoever leads, and a receipt the store acknowledged for it."""
    purchase = market.buy(market.accounts[buyer], product_id)
    _until(lambda: _indexed(store, purchase), "the leader indexes the purchase")
    receipt = signed_receipt(market.domain, purchase, seeder, SIZE // 4, key(buyer))
    assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"


def _indexed(store: Services, purchase: int) -> bool:
    with store.db.reader() as session:
        return session.get(Purchase, purchase) is not None


def _leaf(store: Services, epoch: int, account: str) -> int | None:
    with store.db.reader() as session:
        leaf = session.get(EpochLeaf, (epoch, account.lower(), "0x" + "00" * 20))
        return None if leaf is None else leaf.amount


def _epoch(store: Services, number: int) -> Epoch | None:
    with store.db.reader() as session:
        return session.get(Epoch, number)


def test_the_leader_killed_mid_epoch_is_replaced_and_nothing_is_posted_twice(
    settings: Settings, store: Services, market: Market, instances: Callable[..., Instance]
) -> None:
    seeder = market.accounts[3]
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)

    # The first instance leads before the second starts; it will die after signing epoch 1.
    first = instances("first", **{FAULT_ENV: "signed"})
    wait_http(f"{first.url}/health")
    _until(first.leads, "the first instance leads", STARTUP_SECONDS)
    second = instances("second")
    wait_http(f"{second.url}/health")
    assert not second.leads()

    _earn(store, market, product_id, 2, seeder)
    _until(lambda: first.process.poll() is not None, "the leader signs epoch 1 and dies")
    assert first.process.returncode == -signal.SIGKILL
    stored = _epoch(store, 1)
    assert stored is not None and stored.status == "sending"  # signed, stored, never broadcast
    assert _posted(market) == []

    _until(second.leads, "the second instance takes over")
    _until(lambda: _posted(market) != [], "the new leader posts epoch 1")
    _until(lambda: (e := _epoch(store, 1)) is not None and e.status == "posted", "epoch 1 recorded")
    epoch = _epoch(store, 1)
    assert epoch is not None and _posted(market) == [(1, epoch.root)]
    assert _leaf(store, 1, seeder) == POOL // 4

    # Killed from outside while idle, the second leader hands over to a third process.
    third = instances("third")
    wait_http(f"{third.url}/health")
    assert not third.leads()
    second.process.send_signal(signal.SIGKILL)
    second.process.wait(30)
    _until(third.leads, "the third instance takes over")
    _earn(store, market, product_id, 4, seeder)
    _until(lambda: len(_posted(market)) == 2, "the third instance posts epoch 2")
    epoch2 = _epoch(store, 2)
    assert epoch2 is not None and [n for n, _ in _posted(market)] == [1, 2]
    assert _posted(market)[1] == (2, epoch2.root)
    assert _leaf(store, 2, seeder) == 2 * (POOL // 4)
