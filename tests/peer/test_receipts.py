"""Receipts end to end on loopback: leechers pay seeders for verified bytes, seeders journal them."""

from __future__ import annotations

import asyncio
import struct
import time

import bencodepy

from tests.peer.conftest import DOMAIN, make_content, new_wallet, run, signer_for
from tests.peer.rawpeer import RawPeer
from tracker.peer import wire
from tracker.peer.credit import ReceiptSigner
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import ReceiptKey, ReceiptVerifier, SignedKey, sign_receipt_key


async def _journaled(journal: ReceiptJournal, purchase: int, seeder: bytes, expected: int) -> int:
    """Wait until the journal holds a receipt for `expected` bytes (the last one is in flight)."""
    for _ in range(200):
        if journal.highest_bytes(purchase, seeder) >= expected:
            break
        await asyncio.sleep(0.02)
    return journal.highest_bytes(purchase, seeder)


def test_a_leecher_pays_its_seed_exactly_the_torrent_length(tmp_path):
    content = make_content(tmp_path, sizes=(3_000_000,), piece_length=65536)
    seller, buyer = new_wallet(), new_wallet()
    journal = ReceiptJournal(tmp_path / "seed.journal")

    async def scenario():
        async with Session(host="127.0.0.1", journal=journal) as seed, Session(host="127.0.0.1") as leech:
            config = TorrentConfig(wallet=seller.address, verifier=ReceiptVerifier(DOMAIN))
            seeding = await seed.add_torrent(content.meta, content.folder, config, writable=False)
            torrent = await leech.add_torrent(
                content.meta, tmp_path / "leech", TorrentConfig(signer=signer_for(buyer, 7))
            )
            await leech.connect(torrent, "127.0.0.1", seed.port)
            await torrent.completed.wait()
            paid = await _journaled(journal, 7, seller.address, content.meta.total_length)
            assert torrent.leecher is not None
            tally = torrent.leecher.ledger.tally(seller.address)
            assert tally.verified == content.meta.total_length == paid
            assert seeding.billing is not None
            account = seeding.billing.accounts[7]
            assert account.served == content.meta.total_length
            assert account.buyer == buyer.address

    run(scenario())


def test_a_session_key_signs_receipts_that_count_for_the_buyer(tmp_path):
    content = make_content(tmp_path, sizes=(500_000,))
    seller, buyer, session_key = new_wallet(), new_wallet(), new_wallet()
    authorisation = ReceiptKey(purchase_id=9, key=session_key.address, expires=int(time.time()) + 3600)
    delegation = SignedKey(authorisation, sign_receipt_key(DOMAIN, authorisation, buyer.key))
    journal = ReceiptJournal(tmp_path / "seed.journal")

    async def scenario():
        async with Session(host="127.0.0.1", journal=journal) as seed, Session(host="127.0.0.1") as leech:
            config = TorrentConfig(wallet=seller.address, verifier=ReceiptVerifier(DOMAIN))
            seeding = await seed.add_torrent(content.meta, content.folder, config, writable=False)
            signer = ReceiptSigner(DOMAIN, 9, session_key.key, delegation)
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech", TorrentConfig(signer=signer))
            await leech.connect(torrent, "127.0.0.1", seed.port)
            await torrent.completed.wait()
            assert await _journaled(journal, 9, seller.address, content.meta.total_length) == 500_000
            assert seeding.billing is not None
            assert seeding.billing.accounts[9].buyer == buyer.address
            kept = journal.highest(9, seller.address)
            assert kept is not None and kept.delegation == delegation

    run(scenario())


def test_receipts_of_a_swarm_match_what_each_seeder_sent_and_never_exceed_the_length(tmp_path):
    content = make_content(tmp_path, sizes=(2_000_000,), piece_length=32768)
    store = new_wallet()
    buyers = [new_wallet() for _ in range(3)]

    async def scenario():
        store_journal = ReceiptJournal(tmp_path / "store.journal")
        seed = Session(host="127.0.0.1", journal=store_journal)
        await seed.start()
        store_config = TorrentConfig(wallet=store.address, verifier=ReceiptVerifier(DOMAIN))
        seeding = await seed.add_torrent(content.meta, content.folder, store_config, writable=False)
        sessions, torrents, journals = [], [], []
        for number, buyer in enumerate(buyers):
            journal = ReceiptJournal(tmp_path / f"buyer{number}.journal")
            session = Session(host="127.0.0.1", journal=journal)
            await session.start()
            config = TorrentConfig(
                signer=signer_for(buyer, 100 + number), wallet=buyer.address, verifier=ReceiptVerifier(DOMAIN)
            )
            torrents.append(await session.add_torrent(content.meta, tmp_path / f"leech{number}", config))
            sessions.append(session)
            journals.append(journal)
        for session, torrent in zip(sessions, torrents, strict=True):
            await session.connect(torrent, "127.0.0.1", seed.port)
            for other in sessions:
                if other is not session:
                    await session.connect(torrent, "127.0.0.1", other.port)
        try:
            await asyncio.gather(*(t.completed.wait() for t in torrents))
            seeders = [(store.address, store_journal, seeding)] + [
                (buyer.address, journal, torrent)
                for buyer, journal, torrent in zip(buyers, journals, torrents, strict=True)
            ]
            for number, torrent in enumerate(torrents):
                purchase = 100 + number
                assert torrent.leecher is not None
                total = 0
                for wallet, journal, seeder_torrent in seeders:
                    verified = torrent.leecher.ledger.tally(wallet).verified
                    total += verified
                    assert await _journaled(journal, purchase, wallet, verified) == verified
                    account = (
                        seeder_torrent.billing.accounts.get(purchase) if seeder_torrent.billing else None
                    )
                    sent = account.served if account is not None else 0
                    assert verified <= sent  # duplicates in end-game are sent but paid once
                assert total == content.meta.total_length
        finally:
            for session in [seed, *sessions]:
                await session.close()

    run(scenario())


def test_a_leecher_choked_by_its_billing_seeder_pays_at_once_for_all_it_verified(tmp_path):
    content = make_content(tmp_path, sizes=(300_000,), piece_length=32768)
    meta = content.meta
    data = (content.folder / meta.name).read_bytes()
    seller, buyer = new_wallet(), new_wallet()
    served_pieces = 6  # far below RECEIPT_STEP: only the first piece is paid before the choke
    expected = sum(meta.piece_size(i) for i in range(served_pieces))
    seeders: list[RawPeer] = []
    receipts: list[int] = []

    async def billing_seeder(reader, writer):
        peer = RawPeer(reader, writer)
        seeders.append(peer)
        await peer.accept_as_billing_seed(meta, b"-XX0000-billing00000", seller.address)
        while (message := await peer.read(30)) is not None:
            msg_id, payload = message
            if msg_id == wire.REQUEST:
                index, begin, length = struct.unpack(">III", payload)
                if index < served_pieces:  # the rest stays unanswered, as past a credit window
                    start = index * meta.piece_length + begin
                    peer.send(wire.piece_header(index, begin, length) + data[start : start + length])
            elif msg_id == wire.EXTENDED and payload[:1] == b"\x03":
                receipts.append(bencodepy.decode(payload[1:])[b"bytes"])
        writer.close()

    async def scenario():
        server = await asyncio.start_server(billing_seeder, "127.0.0.1", 0)
        async with Session(host="127.0.0.1") as leech:
            config = TorrentConfig(signer=signer_for(buyer, 8))
            torrent = await leech.add_torrent(meta, tmp_path / "leech", config)
            assert torrent.leecher is not None
            torrent.leecher.clock = lambda: 0.0  # RECEIPT_INTERVAL never passes
            await leech.connect(torrent, "127.0.0.1", server.sockets[0].getsockname()[1])
            tally = torrent.leecher.ledger.tally(seller.address)
            while tally.verified < expected:
                await asyncio.sleep(0.02)
            assert tally.receipted == meta.piece_length  # signed for the first piece only
            seeders[0].send(wire.CHOKE_MSG)
            while not receipts or receipts[-1] != expected:
                await asyncio.sleep(0.02)
        server.close()
        await server.wait_closed()

    run(scenario())
    assert receipts == [meta.piece_length, expected]
