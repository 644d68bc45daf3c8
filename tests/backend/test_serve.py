"""`seedmarket serve` as a real process: API, tracker, indexer and oracle together, over HTTP."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote_from_bytes

import bencodepy
import httpx

from backend.settings import Settings
from dev.devnet import free_port
from tests.backend.api_helpers import listing_body, make_torrent, sign_in
from tests.backend.helpers import Market, key, signed_receipt
from tests.backend.processes import cli, run, store_env, wait_http
from tests.conftest import REPO
from tracker.metainfo import parse_metainfo
from tracker.receipts import to_json

SIZE = 40_000


def _until(check: object, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def _announce(url: str, info_hash: bytes) -> dict[bytes, object]:
    query = f"info_hash={quote_from_bytes(info_hash)}&peer_id={'-SM0001-' + 'x' * 12}&port=6881"
    answer = httpx.get(f"{url}?{query}&uploaded=0&downloaded=0&left=0&compact=1", timeout=5)
    decoded: dict[bytes, object] = bencodepy.decode(answer.content)
    return decoded


def test_the_whole_store_in_one_process(sqlite_settings: Settings, market: Market, tmp_path: Path) -> None:
    api_port, tracker_port = free_port(), free_port()
    public, tracker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{tracker_port}"
    env = store_env(
        sqlite_settings,
        api_port=api_port,
        tracker_port=tracker_port,
        public_url=public,
        tracker_url=tracker_url,
        epoch_length=1,
        poll_interval=0.2,
        # The seeder's claim below is the subject here; the keeper (tests/backend/test_keeper*.py,
        # the e2e loop) would pay it first whenever its account happens to hold gas money on the
        # shared chain.
        SEEDMARKET_KEEPER="false",
    )
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(cli("serve"), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_http(f"{public}/health")
        # A client's idle connection is the client's to close (backend/runner.py API_KEEP_ALIVE):
        # it is still open after longer than httpx keeps one idle (5 s).
        idle = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
        idle.request("GET", "/health")
        assert idle.getresponse().read() and idle.sock is not None
        opened, idle_since = idle.sock, time.monotonic()
        client = httpx.Client(base_url=public, timeout=10)
        torrent, infohash = make_torrent(tmp_path / "content", SIZE)
        product_id, _ = market.list_product(market.accounts[1], size=SIZE, infohash=infohash)
        _until(lambda: client.get("/products").json()["total"] == 1)
        seller = sign_in(client, 1)
        assert client.put(
            f"/products/{product_id}/listing", json=listing_body(torrent), headers=seller
        ).is_success

        purchase = market.buy(market.accounts[2], product_id)
        buyer = sign_in(client, 2)
        _until(lambda: client.get("/me/purchases", headers=buyer).json())
        personal_torrent = client.get(f"/products/{product_id}/torrent", headers=buyer).content
        personal = parse_metainfo(personal_torrent)
        assert personal.announce is not None and personal.announce.startswith(f"{tracker_url}/")
        assert personal.announce.endswith("/announce")
        assert b"failure reason" not in _announce(personal.announce, infohash)
        assert b"failure reason" in _announce(f"{tracker_url}/{'0' * 32}/announce", infohash)
        _until(lambda: client.get(f"/products/{product_id}").json()["health"]["seeders"] == 1)
        # The store's tracker connected back to 127.0.0.1:6881, where no peer has this torrent.
        assert client.get(f"/products/{product_id}").json()["health"]["reachable"] == 0
        # An ordinary client derives the scrape URL from the personal announce URL and reads it.
        (tmp_path / "personal.torrent").write_bytes(personal_torrent)
        # The store's seed may be in the swarm as a leecher by now (it has no one to fetch from).
        shown = run(["transmission-show", "--scrape", str(tmp_path / "personal.torrent")], env)
        assert re.search(r" 1 seeders, [01] leechers\n", shown.stdout), shown.stdout + shown.stderr

        seeder = market.accounts[3]
        receipt = signed_receipt(market.domain, purchase, seeder, SIZE // 2, key(2))
        forged = signed_receipt(market.domain, purchase, seeder, SIZE, key(4))
        answer = httpx.post(f"{tracker_url}/receipts", json={"receipts": [to_json(receipt), to_json(forged)]})
        assert answer.json()["results"] == [
            {"status": "accepted", "bytes": SIZE // 2},
            {"status": "rejected", "reason": "wrong-signer"},
        ]

        posted = _until(lambda: [e for e in client.get("/epochs").json()["items"] if e["status"] == "posted"])
        number = posted[0]["epoch"]  # type: ignore[index]
        rewards = client.get(f"/accounts/{seeder}/rewards").json()
        assert rewards["activeEpoch"] == number and rewards["tokens"][0]["claimable"] != "0"

        audit = run(cli("verify-epoch", str(number), "--store", public, "--json"), env)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert '"ok": true' in audit.stdout

        time.sleep(max(0.0, idle_since + 6 - time.monotonic()))
        # On the same socket: closed by the store, this raises RemoteDisconnected.
        assert idle.sock is opened
        idle.request("GET", "/health")
        assert idle.getresponse().status == 200
        idle.close()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
