"""µTP in the peer engine: sessions reach each other and libtorrent over it, and fall back to TCP."""

from __future__ import annotations

import asyncio

import pytest

from tests.libtorrent_peer import lt_session
from tests.peer.conftest import DOMAIN, lt_add, lt_wait, make_content, new_wallet, run, signer_for
from tests.utp.relay import Impairment, start_relay
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import ReceiptVerifier
from tracker.utp import UtpConnection

UTP_ONLY = {
    "enable_outgoing_tcp": False,
    "enable_incoming_tcp": False,
    "enable_outgoing_utp": True,
    "enable_incoming_utp": True,
}


def _transports(session: Session) -> set[str]:
    return {"utp" if isinstance(conn.transport, UtpConnection) else "tcp" for conn in session.connections}


def test_two_sessions_connect_over_utp_and_listen_on_one_port_number(tmp_path):
    content = make_content(tmp_path, sizes=(1_000_000,), piece_length=65536)

    async def scenario():
        async with Session(host="127.0.0.1") as seed, Session(host="127.0.0.1") as leech:
            assert seed.utp is not None and seed.utp.sockname[1] == seed.port
            await seed.add_torrent(content.meta, content.folder, writable=False)
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
            assert await leech.connect(torrent, "127.0.0.1", seed.port)
            assert _transports(leech) == {"utp"}
            await torrent.completed.wait()
            assert _transports(seed) == {"utp"}

    run(scenario())
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_a_peer_without_utp_is_reached_over_tcp_and_remembered(tmp_path):
    content = make_content(tmp_path, sizes=(300_000,))

    async def scenario():
        async with Session(host="127.0.0.1", utp=False) as seed, Session(host="127.0.0.1") as leech:
            assert seed.utp is None
            await seed.add_torrent(content.meta, content.folder, writable=False)
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
            assert await leech.connect(torrent, "127.0.0.1", seed.port)
            assert _transports(leech) == {"tcp"}
            assert leech._transport_of[("127.0.0.1", seed.port)] == "tcp"
            await torrent.completed.wait()

    run(scenario())
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_a_download_through_loss_delay_and_reordering_pays_exactly_what_was_served(tmp_path):
    content = make_content(tmp_path, sizes=(600_000,), piece_length=32768)
    seller, buyer = new_wallet(), new_wallet()
    journal = ReceiptJournal(tmp_path / "seed.journal")
    impairment = Impairment(loss=0.01, delay=0.05, jitter=0.01, duplicate=0.01, seed=11)

    async def scenario():
        async with Session(host="127.0.0.1", journal=journal) as seed, Session(host="127.0.0.1") as leech:
            config = TorrentConfig(wallet=seller.address, verifier=ReceiptVerifier(DOMAIN))
            seeding = await seed.add_torrent(content.meta, content.folder, config, writable=False)
            torrent = await leech.add_torrent(
                content.meta, tmp_path / "leech", TorrentConfig(signer=signer_for(buyer, 5))
            )
            relay = await start_relay(("127.0.0.1", seed.port), impairment)
            assert await leech.connect(torrent, "127.0.0.1", relay.port)  # no TCP there: µTP only
            assert _transports(leech) == {"utp"}
            await torrent.completed.wait()
            assert relay.dropped > 0 and relay.duplicated > 0
            length = content.meta.total_length
            for _ in range(400):  # the last receipt is on its way through the relay
                if journal.highest_bytes(5, seller.address) >= length:
                    break
                await asyncio.sleep(0.05)
            assert journal.highest_bytes(5, seller.address) == length
            assert torrent.leecher is not None
            assert torrent.leecher.ledger.tally(seller.address).verified == length
            assert seeding.billing is not None
            assert seeding.billing.accounts[5].served == length

    run(scenario(), timeout=120)
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


@pytest.fixture
def lt_utp_only():
    ses = lt_session()
    ses.apply_settings(UTP_ONLY)
    return ses


def test_a_utp_only_libtorrent_downloads_from_our_seed(tmp_path, lt_utp_only):
    content = make_content(tmp_path, sizes=(2_000_000,), piece_length=65536)

    async def scenario():
        async with Session(host="127.0.0.1") as seed:
            await seed.add_torrent(content.meta, content.folder, writable=False)
            handle = lt_add(lt_utp_only, content, tmp_path / "lt")
            handle.connect_peer(("127.0.0.1", seed.port))
            await lt_wait(handle, lambda s: s.is_seeding)

    run(scenario())
    assert content.digest_in(tmp_path / "lt") == content.digest_in(content.folder)


def test_our_leecher_downloads_from_a_utp_only_libtorrent_seed(tmp_path, lt_utp_only):
    content = make_content(tmp_path, sizes=(2_000_000,), piece_length=65536)
    handle = lt_add(lt_utp_only, content, content.folder)

    async def scenario():
        await lt_wait(handle, lambda s: s.is_seeding)
        async with Session(host="127.0.0.1") as leech:
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech")
            assert await leech.connect(torrent, "127.0.0.1", lt_utp_only.listen_port())
            assert _transports(leech) == {"utp"}
            await torrent.completed.wait()

    run(scenario())
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)
