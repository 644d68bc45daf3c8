"""Our seed and our leechers, on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.peer.conftest import DOMAIN, make_content, new_wallet, run, signer_for
from tracker.peer.journal import ReceiptJournal
from tracker.peer.ratelimit import TokenBucket
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import ReceiptVerifier


async def _download(content, leech_folder: Path) -> None:
    async with Session(host="127.0.0.1") as seed, Session(host="127.0.0.1") as leech:
        await seed.add_torrent(content.meta, content.folder, writable=False)
        torrent = await leech.add_torrent(content.meta, leech_folder)
        assert await leech.connect(torrent, "127.0.0.1", seed.port)
        await torrent.completed.wait()
        assert torrent.error is None


def test_leecher_downloads_a_single_file_from_our_seed(content, tmp_path):
    run(_download(content, tmp_path / "leech"))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_leecher_downloads_a_folder_whose_pieces_span_files(tmp_path):
    content = make_content(
        tmp_path, name="album", sizes=(1, 40_000, 0, 70_001, 5, 100_000), piece_length=16384
    )
    run(_download(content, tmp_path / "leech"))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_one_session_runs_several_torrents_at_once(tmp_path):
    first = make_content(tmp_path / "a", sizes=(200_000,))
    second = make_content(tmp_path / "b", name="album", sizes=(90_000, 120_000), piece_length=16384)

    async def scenario():
        async with Session(host="127.0.0.1") as seed, Session(host="127.0.0.1") as leech:
            torrents = []
            for content in (first, second):
                await seed.add_torrent(content.meta, content.folder, writable=False)
                torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
                await leech.connect(torrent, "127.0.0.1", seed.port)
                torrents.append(torrent)
            await asyncio.gather(*(t.completed.wait() for t in torrents))

    run(scenario())
    for content in (first, second):
        assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_a_restarted_download_resumes_from_disk_and_keeps_paying_where_it_left_off(tmp_path):
    content = make_content(tmp_path, sizes=(3_000_000,), piece_length=65536)
    seller, buyer = new_wallet(), new_wallet()
    journal = ReceiptJournal(tmp_path / "seed.journal")
    ledger = tmp_path / "buyer.ledger"

    async def scenario():
        # capped at 3 MB/s, so the first session is still downloading when it stops at 1.2 MB
        async with Session(host="127.0.0.1", journal=journal, upload_limit=TokenBucket(3_000_000)) as seed:
            config = TorrentConfig(wallet=seller.address, verifier=ReceiptVerifier(DOMAIN))
            await seed.add_torrent(content.meta, content.folder, config, writable=False)
            leech_config = TorrentConfig(signer=signer_for(buyer, 8), receipt_ledger=ledger)
            async with Session(host="127.0.0.1") as leech:
                torrent = await leech.add_torrent(content.meta, tmp_path / "leech", leech_config)
                await leech.connect(torrent, "127.0.0.1", seed.port)
                while torrent.downloaded < 1_200_000:
                    await asyncio.sleep(0.001)
            async with Session(host="127.0.0.1") as leech:
                torrent = await leech.add_torrent(content.meta, tmp_path / "leech", leech_config)
                assert 0 < sum(torrent.have) < content.meta.piece_count
                await leech.connect(torrent, "127.0.0.1", seed.port)
                await torrent.completed.wait()
                assert torrent.leecher is not None
                assert torrent.leecher.ledger.tally(seller.address).verified == content.meta.total_length
            for _ in range(200):
                if journal.highest_bytes(8, seller.address) == content.meta.total_length:
                    break
                await asyncio.sleep(0.02)
            assert journal.highest_bytes(8, seller.address) == content.meta.total_length

    run(scenario())
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)
