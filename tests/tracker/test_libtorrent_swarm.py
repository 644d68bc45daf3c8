"""Real clients: libtorrent sessions that can find each other only through our tracker (no DHT,
LSD, PEX, UPnP or NAT-PMP) download a private torrent we created; strangers get refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import libtorrent as lt
import pytest

from tests.libtorrent_peer import lt_session
from tests.tracker.conftest import write_random
from tracker.metainfo import create_torrent, parse_metainfo, with_announce
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import TrackerServer, start_tracker
from tracker.server.announce import announce_url

pytestmark = pytest.mark.anyio

SELLER, BUYER, STRANGER, FREELOADER = "5" * 32, "b" * 32, "0" * 32, "f" * 32
SELLER_WALLET, BUYER_WALLET, FREELOADER_WALLET = b"\x55" * 20, b"\xbb" * 20, b"\xff" * 20
CONTENT_BYTES = 3 * 1024 * 1024 + 12_345
DEADLINE = 60.0  # seconds for a transfer on a busy two-core machine


def session() -> lt.session:
    """A libtorrent session that reports its tracker exchanges."""
    return lt_session(
        lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification
        | lt.alert.category_t.tracker_notification
    )


def add(ses: lt.session, torrent: bytes, folder: Path) -> lt.torrent_handle:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = str(folder)
    return ses.add_torrent(params)


@pytest.fixture
async def tracker() -> AsyncIterator[tuple[TrackerServer, MemoryPolicy]]:
    policy = MemoryPolicy()
    policy.add_passkey(SELLER, SELLER_WALLET)
    policy.add_passkey(BUYER, BUYER_WALLET)
    policy.add_passkey(FREELOADER, FREELOADER_WALLET)
    server = await start_tracker(
        "127.0.0.1",
        0,
        policy,
        MemorySink(),
        ReceiptVerifier(Domain(1, b"\x01" * 20)),
        interval=5,
        min_interval=1,
    )
    yield server, policy
    server.close()
    await server.wait_closed()


@pytest.fixture
async def sessions(tracker: tuple[TrackerServer, MemoryPolicy]) -> AsyncIterator[list[lt.session]]:
    """Sessions made by a test. Destroying one blocks until its `stopped` announces are answered,
    so that happens in a thread while this event loop stays free to answer them."""
    made: list[lt.session] = []
    yield made
    await asyncio.to_thread(made.clear)


async def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_two_buyers_find_each_other_through_the_tracker_and_transfer(
    tracker: tuple[TrackerServer, MemoryPolicy], sessions: list[lt.session], tmp_path: Path
) -> None:
    server, policy = tracker
    source = write_random(tmp_path / "seed" / "film.mkv", CONTENT_BYTES, 11)
    base = f"http://127.0.0.1:{server.port}"
    torrent = create_torrent(source, announce_url(base, SELLER))
    metainfo = parse_metainfo(torrent)
    assert metainfo.private
    policy.grant(SELLER_WALLET, metainfo.info_hash)
    policy.grant(BUYER_WALLET, metainfo.info_hash)

    seeder_session, leecher_session = session(), session()
    sessions += [seeder_session, leecher_session]
    seeder = add(seeder_session, torrent, tmp_path / "seed")
    leecher = add(leecher_session, with_announce(torrent, announce_url(base, BUYER)), tmp_path / "download")
    sources: set[int] = set()

    def finished() -> bool:
        # Peers disconnect once both are seeds, so their sources are noted while it runs.
        for handle in (leecher, seeder):
            sources.update(peer.source for peer in handle.get_peer_info())
        return bool(leecher.status().is_seeding)

    await wait_for(finished, "the leecher to finish")

    downloaded = tmp_path / "download" / "film.mkv"
    assert downloaded.read_bytes() == source.read_bytes()
    assert leecher.status().info_hashes.v1.to_bytes() == metainfo.info_hash
    assert sources, "the leecher was connected to the seed"
    # The side that dialled names the tracker as the source, the other side sees an incoming
    # connection; nothing came from anywhere else.
    assert any(source & lt.peer_info.tracker for source in sources)
    assert not any(source & (lt.peer_info.dht | lt.peer_info.pex | lt.peer_info.lsd) for source in sources)
    await wait_for(lambda: server.stats(metainfo.info_hash)[0] == 2, "both to be counted as seeds")
    for ses in (seeder_session, leecher_session):
        ses.remove_torrent(ses.get_torrents()[0])
    await wait_for(lambda: server.stats(metainfo.info_hash)[:2] == (0, 0), "both to announce they stopped")
    assert server.internal_errors == 0


@pytest.mark.parametrize(
    ("passkey", "reason"), [(STRANGER, "unknown passkey"), (FREELOADER, "has not bought")]
)
async def test_a_stranger_or_a_non_buyer_gets_a_failure_and_no_peers(
    tracker: tuple[TrackerServer, MemoryPolicy],
    sessions: list[lt.session],
    tmp_path: Path,
    passkey: str,
    reason: str,
) -> None:
    server, policy = tracker
    source = write_random(tmp_path / "seed" / "book.pdf", 300_000, 12)
    base = f"http://127.0.0.1:{server.port}"
    torrent = create_torrent(source, announce_url(base, SELLER))
    info_hash = parse_metainfo(torrent).info_hash
    policy.grant(SELLER_WALLET, info_hash)

    seeder_session, intruder_session = session(), session()
    sessions += [seeder_session, intruder_session]
    add(seeder_session, torrent, tmp_path / "seed")
    await wait_for(lambda: server.stats(info_hash)[0] == 1, "the seed to announce")
    intruder = add(
        intruder_session, with_announce(torrent, announce_url(base, passkey)), tmp_path / "intruder"
    )

    failures: list[str] = []

    def refused() -> bool:
        for alert in intruder_session.pop_alerts():
            if isinstance(alert, lt.tracker_error_alert):
                failures.append(alert.failure_reason() or alert.error_message())
        return bool(failures)

    await wait_for(refused, "the tracker to refuse the intruder")
    assert reason in failures[0]
    await asyncio.sleep(0.5)
    assert intruder.get_peer_info() == []
    assert intruder.status().num_peers == 0
    assert not (tmp_path / "intruder" / "book.pdf").exists() or intruder.status().progress == 0
    assert server.stats(info_hash)[:2] == (1, 0)
