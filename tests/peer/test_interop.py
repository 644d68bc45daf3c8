"""Interoperability with libtorrent, a BitTorrent client nobody here wrote."""

from __future__ import annotations

import asyncio

from tests.libtorrent_peer import lt_session
from tests.peer.conftest import DOMAIN, lt_add, lt_wait, make_content, new_wallet, run, signer_for
from tracker.peer.choker import PlainPeers
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import ReceiptVerifier


def test_our_leecher_completes_from_a_libtorrent_seed(tmp_path):
    content = make_content(tmp_path, sizes=(700_001,), piece_length=65536)
    ses = lt_session()
    handle = lt_add(ses, content, content.folder)

    async def scenario():
        await lt_wait(handle, lambda s: s.is_seeding)
        async with Session(host="127.0.0.1") as leech:
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
            assert await leech.connect(torrent, "127.0.0.1", ses.listen_port())
            await torrent.completed.wait()
            assert torrent.error is None

    run(scenario())
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_a_libtorrent_leecher_completes_from_our_seed_under_the_plain_peer_policy(tmp_path):
    content = make_content(tmp_path, name="album", sizes=(300_000, 5, 200_000), piece_length=32768)
    seller = new_wallet()
    ses = lt_session()

    async def scenario():
        journal = ReceiptJournal(tmp_path / "journal")
        async with Session(host="127.0.0.1", journal=journal) as seed:
            config = TorrentConfig(
                wallet=seller.address, verifier=ReceiptVerifier(DOMAIN), plain_peers=PlainPeers.AFTER_PAYING
            )
            await seed.add_torrent(content.meta, content.folder, config, writable=False)
            handle = lt_add(ses, content, tmp_path / "lt")
            handle.connect_peer(("127.0.0.1", seed.port))
            await lt_wait(handle, lambda s: s.is_seeding)

    run(scenario())
    assert content.digest_in(tmp_path / "lt") == content.digest_in(content.folder)


def test_mixed_swarm_of_store_seed_three_of_ours_and_libtorrent_completes_identically(tmp_path):
    content = make_content(tmp_path, sizes=(1_500_000,), piece_length=32768)
    ses = lt_session()
    store = new_wallet()
    buyers = [new_wallet() for _ in range(3)]

    async def scenario():
        store_config = TorrentConfig(
            wallet=store.address,
            verifier=ReceiptVerifier(DOMAIN),
            enforce_credit=False,
            plain_peers=PlainPeers.SERVE,
        )
        seed = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "store.journal"))
        await seed.start()
        await seed.add_torrent(content.meta, content.folder, store_config, writable=False)
        peers = []
        torrents = []
        for number, buyer in enumerate(buyers):
            session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / f"buyer{number}.journal"))
            await session.start()
            config = TorrentConfig(
                signer=signer_for(buyer, 100 + number), wallet=buyer.address, verifier=ReceiptVerifier(DOMAIN)
            )
            torrents.append(await session.add_torrent(content.meta, tmp_path / f"ours{number}", config))
            peers.append(session)
        handle = lt_add(ses, content, tmp_path / "lt")
        handle.connect_peer(("127.0.0.1", seed.port))
        for session, torrent in zip(peers, torrents, strict=True):
            assert await session.connect(torrent, "127.0.0.1", seed.port)
            for other in peers:
                if other is not session:
                    await session.connect(torrent, "127.0.0.1", other.port)
            handle.connect_peer(("127.0.0.1", session.port))
        try:
            await asyncio.gather(*(t.completed.wait() for t in torrents))
            await lt_wait(handle, lambda s: s.is_seeding)
            assert all(t.error is None for t in torrents)
        finally:
            for session in [seed, *peers]:
                await session.close()

    run(scenario())
    expected = content.digest_in(content.folder)
    assert content.digest_in(tmp_path / "lt") == expected
    for number in range(3):
        assert content.digest_in(tmp_path / f"ours{number}") == expected
