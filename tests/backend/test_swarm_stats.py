"""Seeding health from a tracker in another process's place: a real tracker scraped over HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import quote_from_bytes

import httpx

from backend.db import Database
from backend.passkeys import passkey_for
from backend.receipt_sink import DatabaseReceiptSink
from backend.swarm_stats import InProcessStats, ScrapeStats
from backend.tracker_policy import DatabaseSwarmPolicy
from tests.backend.helpers import seed_purchase
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import start_tracker

BUYER, STORE = "0x" + "b1" * 20, "0x" + "5e" * 20
INFO_HASH = bytes.fromhex(f"{7:040x}")  # seed_purchase's product 7


def test_scraping_and_asking_in_process_agree(db: Database) -> None:
    seed_purchase(db, 7, BUYER, pool=100, size=1000)

    async def scenario() -> tuple[object, ...]:
        policy = DatabaseSwarmPolicy(db, [STORE])
        verifier = ReceiptVerifier(Domain(31337, b"\x01" * 20))
        server = await start_tracker("127.0.0.1", 0, policy, DatabaseReceiptSink(db), verifier)
        try:
            url = f"http://127.0.0.1:{server.port}"
            scrape = ScrapeStats(url, lambda: passkey_for(db, STORE))
            before = await scrape.stats(INFO_HASH)
            buyer = await asyncio.to_thread(passkey_for, db, BUYER)
            query = f"info_hash={quote_from_bytes(INFO_HASH)}&peer_id={'B' * 20}&port=6881&uploaded=0"
            async with httpx.AsyncClient() as client:
                await client.get(f"{url}/{buyer}/announce?{query}&downloaded=0&left=0&compact=1")
            after = await scrape.stats(INFO_HASH)
            direct = await InProcessStats(server).stats(INFO_HASH)
            unreachable = await ScrapeStats("http://127.0.0.1:9", lambda: "0" * 32, timeout=0.5).stats(
                INFO_HASH
            )
            return before, after, direct, unreachable
        finally:
            server.close()
            await server.wait_closed()

    before, after, direct, unreachable = asyncio.run(scenario())
    assert before == (0, 0, 0)
    assert after == direct == (1, 0, 0)
    assert unreachable is None
