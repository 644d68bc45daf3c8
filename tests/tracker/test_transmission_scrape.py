"""Transmission's own `transmission-show --scrape` against the tracker: it derives the scrape URL
from the announce URL only when the last path segment starts with "announce", so this is what
tells whether an ordinary client sees the swarm's seeders and leechers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.tracker.conftest import write_random
from tests.tracker.http_client import RawClient, announce_target
from tracker.metainfo import create_torrent, parse_metainfo
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import TrackerServer, start_tracker
from tracker.server.announce import announce_url

pytestmark = pytest.mark.anyio

SELLER, BUYER = "5" * 32, "b" * 32
SELLER_WALLET, BUYER_WALLET = b"\x55" * 20, b"\xbb" * 20
TRANSMISSION_SHOW = shutil.which("transmission-show") or "transmission-show"


@pytest.fixture
async def tracker() -> AsyncIterator[tuple[TrackerServer, MemoryPolicy]]:
    policy = MemoryPolicy()
    policy.add_passkey(SELLER, SELLER_WALLET)
    policy.add_passkey(BUYER, BUYER_WALLET)
    server = await start_tracker(
        "127.0.0.1", 0, policy, MemorySink(), ReceiptVerifier(Domain(31337, b"\x42" * 20))
    )
    yield server, policy
    server.close()
    await server.wait_closed()


async def scrape_with_transmission(torrent: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        TRANSMISSION_SHOW,
        "--scrape",
        str(torrent),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output
    return output.decode()


async def test_transmission_reads_seeders_and_leechers_through_a_personal_announce_url(
    tracker: tuple[TrackerServer, MemoryPolicy], tmp_path: Path
) -> None:
    server, policy = tracker
    base = f"http://127.0.0.1:{server.port}"
    source = write_random(tmp_path / "film.mkv", 100_000, 21)
    info_hash = parse_metainfo(create_torrent(source, announce_url(base, SELLER))).info_hash
    policy.grant(SELLER_WALLET, info_hash)
    policy.grant(BUYER_WALLET, info_hash)
    client = await RawClient.connect(server.port)
    await client.get(announce_target(SELLER, info_hash, b"S" * 20, port=1111, left=0))
    await client.get(announce_target(BUYER, info_hash, b"B" * 20, port=2222, left=10))
    await client.close()

    personal = tmp_path / "personal.torrent"
    personal.write_bytes(create_torrent(source, announce_url(base, BUYER)))
    output = await scrape_with_transmission(personal)
    assert f"{base}/{BUYER}/scrape?info_hash=" in output
    assert "1 seeders, 1 leechers" in output


async def test_transmission_finds_no_scrape_url_in_the_old_form(
    tracker: tuple[TrackerServer, MemoryPolicy], tmp_path: Path
) -> None:
    """Why the form changed: the same swarm, announced to `/announce/<passkey>`, shows nothing."""
    server, policy = tracker
    base = f"http://127.0.0.1:{server.port}"
    source = write_random(tmp_path / "film.mkv", 100_000, 22)
    old = create_torrent(source, f"{base}/announce/{BUYER}")
    policy.grant(BUYER_WALLET, parse_metainfo(old).info_hash)
    personal = tmp_path / "old.torrent"
    personal.write_bytes(old)
    output = await scrape_with_transmission(personal)
    assert "seeders" not in output
