"""Seeding health from a tracker in another process's place: a real tracker scraped over HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import quote_from_bytes

import httpx
import pytest

from backend.db import Database
from backend.passkeys import passkey_for
from backend.receipt_sink import DatabaseReceiptSink
from backend.swarm_stats import Health, InProcessStats, ScrapeStats
from backend.tracker_policy import DatabaseSwarmPolicy
from tests.backend.helpers import seed_purchase
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import start_tracker

BUYER, STORE = "0x" + "b1" * 20, "0x" + "5e" * 20
INFO_HASH = bytes.fromhex(f"{7:040x}")  # seed_purchase's product 7


async def _answer_handshakes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A seeder of any torrent: answers a BitTorrent handshake with its first 48 bytes."""
    writer.write(await reader.readexactly(48) + b"P" * 20)
    await reader.read()
    writer.close()


@pytest.mark.parametrize("connect_check", [False, True], ids=["bare", "connect-check"])
def test_scraping_and_asking_in_process_agree(db: Database, connect_check: bool) -> None:
    seed_purchase(db, 7, BUYER, pool=100, size=1000)

    async def scenario() -> tuple[object, ...]:
        policy = DatabaseSwarmPolicy(db, [STORE])
        verifier = ReceiptVerifier(Domain(31337, b"\x01" * 20))
        server = await start_tracker(
            "127.0.0.1", 0, policy, DatabaseReceiptSink(db), verifier, connect_check=connect_check
        )
        seeder = await asyncio.start_server(_answer_handshakes, "127.0.0.1", 0)
        port = seeder.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{server.port}"
        scrape = ScrapeStats(url, lambda: passkey_for(db, STORE))
        try:
            before = await scrape.stats(INFO_HASH)
            buyer = await asyncio.to_thread(passkey_for, db, BUYER)
            query = f"info_hash={quote_from_bytes(INFO_HASH)}&peer_id={'B' * 20}&port={port}&uploaded=0"
            async with httpx.AsyncClient() as client:
                await client.get(f"{url}/{buyer}/announce?{query}&downloaded=0&left=0&compact=1")
            after = await scrape.stats(INFO_HASH)
            direct = await InProcessStats(server).stats(INFO_HASH)
            nowhere = ScrapeStats("http://127.0.0.1:9", lambda: "0" * 32, timeout=0.5)
            unreachable = await nowhere.stats(INFO_HASH)
            await nowhere.aclose()
            return before, after, direct, unreachable
        finally:
            await scrape.aclose()
            seeder.close()
            server.close()
            await server.wait_closed()

    before, after, direct, unreachable = asyncio.run(scenario())
    reachable = 1 if connect_check else None  # the seeder answered the tracker's connect-back
    assert before == Health(0, 0, 0, 0 if connect_check else None)
    assert after == direct == Health(1, 0, 0, reachable)
    assert unreachable is None
