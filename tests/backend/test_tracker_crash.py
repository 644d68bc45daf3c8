"""`seedmarket tracker` killed with SIGKILL mid-batch: every acknowledged receipt is in the database."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from backend.db import Database
from backend.models import Credit
from backend.services import Services
from backend.settings import Settings
from dev.devnet import free_port
from tests.backend.helpers import Market, key, signed_receipt
from tests.backend.processes import cli, store_env, wait_http
from tests.conftest import REPO
from tracker.receipts import to_json

SIZE = 10**12
SEEDERS = [f"0x{0xC0DE0000 + i:040x}" for i in range(250)]
BATCHES = 12


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        return subprocess.Popen(cli("tracker"), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _credits(db: Database) -> dict[tuple[int, str], int]:
    with db.reader() as session:
        return {(c.purchase_id, c.seeder): c.credited for c in session.scalars(select(Credit))}


def test_acknowledged_receipts_survive_a_killed_tracker(
    sqlite_settings: Settings, market: Market, tmp_path: Path
) -> None:
    store = Services.open(sqlite_settings)
    product_id, _ = market.list_product(market.accounts[1], size=SIZE)
    purchases = {market.buy(market.accounts[b], product_id): b for b in (2, 3, 4, 5)}
    store.indexer().sync()
    # Batch k raises every (purchase, seeder) pair to k * 1000 bytes: 1000 receipts per batch.
    batches = [
        {
            "receipts": [
                to_json(signed_receipt(market.domain, pid, seeder, k * 1000, key(buyer)))
                for pid, buyer in purchases.items()
                for seeder in SEEDERS
            ]
        }
        for k in range(1, BATCHES + 1)
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}/receipts"
    env = store_env(sqlite_settings, tracker_port=port)
    log = tmp_path / "tracker.log"
    tracker = _start(env, log)
    wait_http(f"http://127.0.0.1:{port}/")

    acknowledged: list[int] = []  # the batches whose answer came back

    def submit() -> None:
        for k, batch in enumerate(batches, start=1):
            try:
                answer = httpx.post(url, json=batch, timeout=30)
            except httpx.HTTPError:
                return
            assert answer.status_code == 200
            assert {r["status"] for r in answer.json()["results"]} == {"accepted"}
            acknowledged.append(k)

    sender = threading.Thread(target=submit)
    sender.start()
    time.sleep(random.uniform(0.3, 1.2))
    tracker.send_signal(signal.SIGKILL)
    tracker.wait(timeout=10)
    sender.join(timeout=60)

    credits = _credits(store.db)
    if acknowledged:
        top = max(acknowledged) * 1000
        missing = [
            pair for pid in purchases for pair in [(pid, s) for s in SEEDERS] if credits.get(pair, 0) < top
        ]
        assert not missing, f"{len(missing)} acknowledged credits lost"
    assert len(acknowledged) < BATCHES, "the tracker was not killed mid-run; nothing was tested"

    # The seeders resend what was not acknowledged; the restarted tracker takes it.
    tracker = _start(env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        for batch in batches[len(acknowledged) :]:
            answer = httpx.post(url, json=batch, timeout=60)
            assert answer.status_code == 200
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
    assert set(_credits(store.db).values()) == {BATCHES * 1000}
    store.close()
