"""Our seed and our leechers, on loopback."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.peer.conftest import DOMAIN, make_content, new_wallet, run, signer_for
from tests.peer.rawpeer import RawPeer
from tracker.peer import wire
from tracker.peer.errors import StorageError
from tracker.peer.journal import ReceiptJournal
from tracker.peer.ratelimit import TokenBucket
from tracker.peer.session import Session
from tracker.peer.torrent import Torrent, TorrentConfig
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


def test_a_leecher_tells_other_peers_of_its_new_pieces_in_batches_each_piece_once(tmp_path):
    # 96 pieces of 16 KiB at 2 MiB/s: ~0.75 s of download, a new piece every ~8 ms. One observer
    # is there from the start, the other joins halfway: its bitfield and the haves after it
    # must name each piece once.
    content = make_content(tmp_path, sizes=(96 * 16384,), piece_length=16384)
    count = content.meta.piece_count

    async def observe(peer: RawPeer, heard: list[int], done: asyncio.Event) -> None:
        while not done.is_set():
            message = await peer.read(timeout=5)
            if message is None:
                return
            msg_id, payload = message
            if msg_id == wire.BITFIELD:
                flags = wire.unpack_bits(payload, count)
                heard.extend(index for index, flag in enumerate(flags) if flag)
            elif msg_id == wire.HAVE:
                heard.append(int.from_bytes(payload, "big"))
            if len(heard) == count:
                return

    async def scenario() -> tuple[list[int], list[int], int]:
        limit = TokenBucket(rate=2 * 2**20, burst=64 * 1024)
        async with (
            Session(host="127.0.0.1", upload_limit=limit) as seed,
            Session(host="127.0.0.1") as leech,
        ):
            await seed.add_torrent(content.meta, content.folder, writable=False)
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
            writes = [0]
            first, second = await RawPeer.connect(leech.port), None
            await first.handshake(content.meta.info_hash, b"-XX0000-observer0001")
            while not torrent.connections:
                await asyncio.sleep(0.01)
            (watched,) = torrent.connections
            send = watched.send

            def counted(data: bytes) -> None:
                writes[0] += data[4] == wire.HAVE  # a write that starts with a have
                send(data)

            watched.send = counted  # type: ignore[method-assign]
            done = asyncio.Event()
            heard_first: list[int] = []
            heard_second: list[int] = []
            reading = [asyncio.create_task(observe(first, heard_first, done))]
            assert await leech.connect(torrent, "127.0.0.1", seed.port)
            while torrent.downloaded < content.meta.total_length // 2:
                await asyncio.sleep(0.01)
            second = await RawPeer.connect(leech.port)
            await second.handshake(content.meta.info_hash, b"-XX0000-observer0002")
            reading.append(asyncio.create_task(observe(second, heard_second, done)))
            await torrent.completed.wait()
            await asyncio.wait_for(asyncio.gather(*reading), 10)
            done.set()
            first.close()
            second.close()
            return heard_first, heard_second, writes[0]

    heard_first, heard_second, writes = run(scenario())
    assert sorted(heard_first) == list(range(count))  # every piece, none twice
    assert sorted(heard_second) == list(range(count))  # bitfield and haves overlap nowhere
    assert writes < count // 2  # batched (~16 at this rate): a write per piece was 96


def test_a_full_disk_stops_the_download_with_its_error_and_the_seed_serves_on(tmp_path):
    # A real full disk: a 256 KiB tmpfs under a 1.5 MiB download. The pieces that do not fit fail
    # on the disk thread, between others that were written; the first failure stops the torrent.
    content = make_content(tmp_path, sizes=(96 * 16384,), piece_length=16384)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:

        async def scenario() -> Torrent:
            async with Session(host="127.0.0.1") as seed, Session(host="127.0.0.1") as leech:
                await seed.add_torrent(content.meta, content.folder, writable=False)
                torrent = await leech.add_torrent(content.meta, small / "leech")
                assert await leech.connect(torrent, "127.0.0.1", seed.port)
                await asyncio.wait_for(torrent.completed.wait(), 30)
                assert not torrent.connections  # every peer dropped: the torrent stopped
                await _download_from(seed, content, tmp_path / "other")  # the seed serves on
                return torrent

        torrent = run(scenario())
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert isinstance(torrent.error, StorageError)
    assert "No space left on device" in str(torrent.error)
    assert not torrent.complete


async def _download_from(seed: Session, content, folder: Path) -> None:
    async with Session(host="127.0.0.1") as leech:
        torrent = await leech.add_torrent(content.meta, folder)
        assert await leech.connect(torrent, "127.0.0.1", seed.port)
        await asyncio.wait_for(torrent.completed.wait(), 30)
        assert torrent.error is None
