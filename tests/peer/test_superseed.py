"""Super-seeding and the upload cap: a seed that uploads as little as it can, yet every buyer completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.libtorrent_peer import lt_session
from tests.peer.conftest import (
    DOMAIN,
    Content,
    lt_add,
    lt_wait,
    make_content,
    new_wallet,
    run,
    signer_for,
)
from tests.peer.rawpeer import RawPeer
from tracker.peer import superseed, wire
from tracker.peer.choker import PlainPeers
from tracker.peer.journal import ReceiptJournal
from tracker.peer.ratelimit import TokenBucket
from tracker.peer.session import Session
from tracker.peer.torrent import Torrent, TorrentConfig
from tracker.receipts import ReceiptVerifier


def store_config(super_seed: bool = True) -> TorrentConfig:
    """The store seed's way of seeding: bills receipts, serves everyone, super-seeds."""
    return TorrentConfig(
        wallet=new_wallet().address,
        verifier=ReceiptVerifier(DOMAIN),
        enforce_credit=False,
        plain_peers=PlainPeers.SERVE,
        super_seed=super_seed,
    )


def buyer_config(purchase_id: int) -> TorrentConfig:
    """A buyer: pays receipts while it downloads, then seeds and bills its own."""
    buyer = new_wallet()
    return TorrentConfig(
        signer=signer_for(buyer, purchase_id), wallet=buyer.address, verifier=ReceiptVerifier(DOMAIN)
    )


async def start_buyer(tmp_path: Path, content: Content, number: int) -> tuple[Session, Torrent]:
    session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / f"buyer{number}.journal"))
    await session.start()
    torrent = await session.add_torrent(content.meta, tmp_path / f"buyer{number}", buyer_config(100 + number))
    return session, torrent


async def start_store(tmp_path: Path, content: Content, **session_options) -> tuple[Session, Torrent]:
    session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "store.journal"), **session_options)
    await session.start()
    torrent = await session.add_torrent(content.meta, content.folder, store_config(), writable=False)
    return session, torrent


def uploaded_to(torrent: Torrent, peer_id: bytes) -> int:
    return sum(conn.up.uploaded for conn in torrent.connections if conn.peer_id == peer_id)


@pytest.fixture
def patient(monkeypatch):
    """Stalls and releases never come into play: only the thrift rules decide."""
    monkeypatch.setattr(superseed, "STALL_SECONDS", 3600.0)
    monkeypatch.setattr(superseed, "RELEASE_SECONDS", 3600.0)


def test_offers_cover_about_a_mebibyte_in_whole_pieces():
    assert superseed.offers_per_peer(256 * 1024) == 4
    assert superseed.offers_per_peer(4 * 1024 * 1024) == 1
    assert superseed.offers_per_peer(16 * 1024) == superseed.MAX_OFFERS


def test_a_super_seed_hides_its_bitfield_and_offers_a_few_pieces(tmp_path, patient):
    content = make_content(tmp_path, sizes=(1_000_000,), piece_length=262144)  # 4 pieces, all offered

    async def scenario():
        store, _ = await start_store(tmp_path, content)
        try:
            peer = await RawPeer.connect(store.port)
            await peer.handshake(content.meta.info_hash)
            offered = set()
            while len(offered) < 4:
                message = await peer.read()
                assert message is not None
                assert message[0] != wire.BITFIELD
                if message[0] == wire.HAVE:
                    offered.add(int.from_bytes(message[1], "big"))
            assert offered == {0, 1, 2, 3}
            peer.close()
        finally:
            await store.close()

    run(scenario())


def test_a_buyer_alone_with_a_super_seed_completes_and_gets_each_piece_once(tmp_path):
    content = make_content(tmp_path, sizes=(3_000_000,), piece_length=65536)

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        buyer, torrent = await start_buyer(tmp_path, content, 1)
        try:
            assert await buyer.connect(torrent, "127.0.0.1", store.port)
            await torrent.completed.wait()
            assert torrent.error is None
            assert seed.uploads.superseed is not None and seed.uploads.superseed.active
            return seed.uploaded
        finally:
            await buyer.close()
            await store.close()

    uploaded = run(scenario())
    assert content.digest_in(tmp_path / "buyer1") == content.digest_in(content.folder)
    assert uploaded == content.meta.total_length


def test_a_libtorrent_leecher_completes_from_a_super_seed(tmp_path):
    content = make_content(tmp_path, name="album", sizes=(700_000, 3, 900_001), piece_length=32768)
    ses = lt_session()

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        try:
            handle = lt_add(ses, content, tmp_path / "lt")
            handle.connect_peer(("127.0.0.1", store.port))
            await lt_wait(handle, lambda s: s.is_seeding)
            assert seed.uploads.superseed is not None and seed.uploads.superseed.offers_made > 0
        finally:
            await store.close()

    run(scenario())
    assert content.digest_in(tmp_path / "lt") == content.digest_in(content.folder)


def test_a_mixed_swarm_of_ours_and_libtorrent_completes_from_a_super_seed_sending_each_piece_once(
    tmp_path, patient
):
    content = make_content(tmp_path, sizes=(1_500_000,), piece_length=32768)
    ses = lt_session()

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        buyers = [await start_buyer(tmp_path, content, number) for number in (1, 2)]
        handle = lt_add(ses, content, tmp_path / "lt")
        try:
            handle.connect_peer(("127.0.0.1", store.port))
            for session, torrent in buyers:
                assert await session.connect(torrent, "127.0.0.1", store.port)
                handle.connect_peer(("127.0.0.1", session.port))
            assert await buyers[1][0].connect(buyers[1][1], "127.0.0.1", buyers[0][0].port)
            await asyncio.gather(*(torrent.completed.wait() for _, torrent in buyers))
            await lt_wait(handle, lambda s: s.is_seeding)
            return seed.uploaded
        finally:
            for session, _ in buyers:
                await session.close()
            await store.close()

    store_uploaded = run(scenario())
    expected = content.digest_in(content.folder)
    assert content.digest_in(tmp_path / "lt") == expected
    for number in (1, 2):
        assert content.digest_in(tmp_path / f"buyer{number}") == expected
    assert store_uploaded == content.meta.total_length  # they traded everything else


def test_two_buyers_at_once_cost_the_super_seed_one_copy(tmp_path, patient):
    content = make_content(tmp_path, sizes=(2_000_000,), piece_length=32768)

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        first, one = await start_buyer(tmp_path, content, 1)
        second, two = await start_buyer(tmp_path, content, 2)
        try:
            assert await first.connect(one, "127.0.0.1", second.port)
            await asyncio.gather(
                first.connect(one, "127.0.0.1", store.port), second.connect(two, "127.0.0.1", store.port)
            )
            await asyncio.gather(one.completed.wait(), two.completed.wait())
            return seed.uploaded, one.uploaded + two.uploaded
        finally:
            for session in (first, second, store):
                await session.close()

    store_uploaded, buyers_uploaded = run(scenario())
    assert store_uploaded == content.meta.total_length  # every piece once: the buyers traded the rest
    assert buyers_uploaded >= content.meta.total_length
    for number in (1, 2):
        assert content.digest_in(tmp_path / f"buyer{number}") == content.digest_in(content.folder)


def test_a_super_seed_leaves_a_newcomer_to_a_seeding_buyer(tmp_path, patient):
    content = make_content(tmp_path, sizes=(1_500_000,), piece_length=32768)

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        first, one = await start_buyer(tmp_path, content, 1)
        second, two = await start_buyer(tmp_path, content, 2)
        try:
            assert await first.connect(one, "127.0.0.1", store.port)
            await one.completed.wait()
            assert await second.connect(two, "127.0.0.1", first.port)
            assert await second.connect(two, "127.0.0.1", store.port)
            await two.completed.wait()
            assert seed.uploads.superseed is not None
            assert first.peer_id in seed.uploads.superseed.absent_seeds  # it hung up once complete
            return uploaded_to(seed, second.peer_id), uploaded_to(one, second.peer_id)
        finally:
            for session in (first, second, store):
                await session.close()

    from_store, from_first = run(scenario())
    assert from_store == 0
    assert from_first == content.meta.total_length
    assert content.digest_in(tmp_path / "buyer2") == content.digest_in(content.folder)


def test_a_stalled_buyer_gets_pieces_from_the_super_seed_that_a_silent_seed_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(superseed, "STALL_SECONDS", 0.5)
    content = make_content(tmp_path, sizes=(600_000,), piece_length=32768)

    async def scenario():
        store, seed = await start_store(tmp_path, content)
        silent = Session(host="127.0.0.1")  # holds everything, uploads nothing
        await silent.start()
        buyer, torrent = await start_buyer(tmp_path, content, 1)
        try:
            await silent.add_torrent(
                content.meta, content.folder, TorrentConfig(upload=False), writable=False
            )
            assert await buyer.connect(torrent, "127.0.0.1", silent.port)
            assert await silent.connect(next(iter(silent.torrents.values())), "127.0.0.1", store.port)
            while not seed.connections:
                await asyncio.sleep(0.01)
            assert await buyer.connect(torrent, "127.0.0.1", store.port)
            await torrent.completed.wait()
            return uploaded_to(seed, buyer.peer_id)
        finally:
            for session in (buyer, silent, store):
                await session.close()

    assert run(scenario()) == content.meta.total_length
    assert content.digest_in(tmp_path / "buyer1") == content.digest_in(content.folder)


def test_a_capped_seed_still_serves_a_buyer_and_the_cap_makes_it_wait(tmp_path):
    content = make_content(tmp_path, sizes=(1_000_000,), piece_length=32768)
    limit = TokenBucket(rate=4_000_000, burst=200_000)

    async def scenario():
        store, _ = await start_store(tmp_path, content, upload_limit=limit)
        buyer, torrent = await start_buyer(tmp_path, content, 1)
        try:
            assert await buyer.connect(torrent, "127.0.0.1", store.port)
            await torrent.completed.wait()
        finally:
            await buyer.close()
            await store.close()

    run(scenario())
    assert content.digest_in(tmp_path / "buyer1") == content.digest_in(content.folder)
    assert limit.waits > 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_grants_its_burst_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=1_000_000, burst=500_000, clock=clock)
    assert bucket.available() == 500_000
    bucket.spend(500_000)
    assert bucket.available() == 0
    clock.now = 0.1
    assert bucket.available() == 100_000
    clock.now = 10.0
    assert bucket.available() == 500_000  # never more than the burst


def test_the_token_bucket_burst_always_fits_the_largest_block():
    assert TokenBucket(rate=1000).burst == wire.MAX_REQUEST_LENGTH
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0)


def test_waiters_on_the_token_bucket_are_woken_in_turn():
    woken: list[str] = []

    async def scenario():
        bucket = TokenBucket(rate=10_000_000, burst=200_000)
        bucket.spend(200_000)
        done = asyncio.Event()

        def resume(name: str) -> None:
            woken.append(name)
            bucket.spend(150_000)
            if len(woken) == 3:
                done.set()

        for name in ("a", "b", "c"):
            bucket.wait(name, 150_000, lambda name=name: resume(name))
        await done.wait()

    run(scenario())
    assert woken == ["a", "b", "c"]
