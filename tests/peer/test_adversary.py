"""Peers that lie, flood, babble or cheat: each costs only its own connection."""

from __future__ import annotations

import asyncio
import collections
import os
import struct

import bencodepy

from tests.peer.conftest import DOMAIN, make_content, new_wallet, run, signer_for
from tests.peer.rawpeer import RawPeer
from tracker.peer import wire
from tracker.peer.credit import credit_window
from tracker.peer.extension import LOCAL_RECEIPT_ID
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import Domain, Receipt, ReceiptVerifier, SignedReceipt, sign_receipt, to_message

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
BAD_DOMAIN = Domain(chain_id=1, verifying_contract=bytes(20))


async def _seed(content, journal=None, wallet=None):
    session = Session(host="127.0.0.1", journal=journal)
    await session.start()
    config = TorrentConfig()
    if wallet is not None:
        config = TorrentConfig(wallet=wallet, verifier=ReceiptVerifier(DOMAIN))
    torrent = await session.add_torrent(content.meta, content.folder, config, writable=False)
    return session, torrent


async def _still_serves(content, seed: Session, folder) -> None:
    async with Session(host="127.0.0.1") as leech:
        torrent = await leech.add_torrent(content.meta, folder)
        await leech.connect(torrent, "127.0.0.1", seed.port)
        await torrent.completed.wait()


def test_garbage_instead_of_a_handshake_drops_only_that_peer(content, tmp_path):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            # Not a handshake, and too long for an encrypted one (MSE): its public key and pad
            # (96 + 512 bytes) would be followed by a hash of the shared secret
            peer.send(os.urandom(1000))
            assert await peer.closed_by_peer()
            await _still_serves(content, seed, tmp_path / "leech")
        finally:
            await seed.close()

    run(scenario())


def test_oversized_length_prefix_and_malformed_extension_messages_drop_the_peer(content, tmp_path):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(struct.pack(">IB", 50_000_000, wire.PIECE))
            assert await peer.closed_by_peer()

            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(wire.extended(0, b"d1:md10:sm_receipti1eee-trailing"))
            assert await peer.closed_by_peer()

            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(wire.HEADER.pack(3, wire.HAVE) + b"xx")  # a have message of the wrong size
            assert await peer.closed_by_peer()

            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(wire.HEADER.pack(5, 99) + b"abcd")  # unknown ids are skipped
            peer.send(wire.INTERESTED_MSG)
            assert await peer.read_until(wire.UNCHOKE) is not None
            peer.close()
            await _still_serves(content, seed, tmp_path / "leech")
        finally:
            await seed.close()

    run(scenario())


def test_out_of_range_requests_and_request_floods_drop_the_peer(content, tmp_path):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(wire.INTERESTED_MSG)
            assert await peer.read_until(wire.UNCHOKE) is not None
            peer.send(wire.request(0, content.meta.piece_length - 100, 16384))
            assert await peer.closed_by_peer()

            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            peer.send(wire.INTERESTED_MSG)
            assert await peer.read_until(wire.UNCHOKE) is not None
            # never reading: the socket fills, the requests queue up past any honest depth
            peer.send(wire.requests([(i % content.meta.piece_count, 0, 16384) for i in range(20_000)]))
            await peer.writer.drain()
            await asyncio.sleep(0.5)
            assert await peer.closed_by_peer()
            await _still_serves(content, seed, tmp_path / "leech")
        finally:
            await seed.close()

    run(scenario())


def test_a_seeder_sending_corrupt_pieces_gets_no_receipt_and_is_banned(content, tmp_path):
    wallet = new_wallet()
    buyer = new_wallet()
    got_receipt = False

    async def corrupt_seeder(reader, writer):
        nonlocal got_receipt
        peer = RawPeer(reader, writer)
        await peer.accept_as_billing_seed(content.meta, b"-XX0000-corrupt00000", wallet.address)
        while (message := await peer.read(30)) is not None:
            msg_id, payload = message
            if msg_id == wire.REQUEST:
                index, begin, length = struct.unpack(">III", payload)
                peer.send(wire.piece_header(index, begin, length) + os.urandom(length))
            elif msg_id == wire.EXTENDED and payload[:1] == b"\x03":
                got_receipt = True
        writer.close()

    async def scenario():
        server = await asyncio.start_server(corrupt_seeder, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Session(host="127.0.0.1") as leech:
            config = TorrentConfig(signer=signer_for(buyer, 5))
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech", config)
            assert await leech.connect(torrent, "127.0.0.1", port)
            for _ in range(200):
                if torrent.banned:
                    break
                await asyncio.sleep(0.02)
            assert ("127.0.0.1", b"-XX0000-corrupt00000") in torrent.banned
            assert not torrent.connections
            assert torrent.leecher is not None
            assert torrent.leecher.ledger.tally(wallet.address).verified == 0
            assert torrent.downloaded == 0
            # a banned peer cannot come back
            assert await leech.connect(torrent, "127.0.0.1", port)
            await asyncio.sleep(0.2)
            assert not torrent.connections
        server.close()
        await server.wait_closed()

    run(scenario())
    assert not got_receipt


async def _billing_seed(content, tmp_path):
    seller = new_wallet()
    journal = ReceiptJournal(tmp_path / "seed.journal")
    seed, torrent = await _seed(content, journal=journal, wallet=seller.address)
    return seller, journal, seed, torrent


async def _leech_raw(seed: Session, content, purchase: int) -> RawPeer:
    peer = await RawPeer.connect(seed.port)
    await peer.handshake(content.meta.info_hash)
    peer.send_extended(0, {"m": {"sm_receipt": 2}, "sm_purchase": purchase})
    peer.send(wire.INTERESTED_MSG)
    assert await peer.read_until(wire.UNCHOKE) is not None
    # Ask for every block, keeping at most REQUESTS_IN_FLIGHT queued (more would be a flood).
    peer.todo = collections.deque(  # type: ignore[attr-defined]
        (index, begin, min(16384, content.meta.piece_size(index) - begin))
        for index in range(content.meta.piece_count)
        for begin in range(0, content.meta.piece_size(index), 16384)
    )
    _request_more(peer, REQUESTS_IN_FLIGHT)
    return peer


REQUESTS_IN_FLIGHT = 1000


def _request_more(peer: RawPeer, count: int) -> None:
    todo = peer.todo  # type: ignore[attr-defined]
    batch = [todo.popleft() for _ in range(min(count, len(todo)))]
    if batch:
        peer.send(wire.requests(batch))


async def _received_until_choked(peer: RawPeer) -> tuple[int, bytes | None]:
    """Piece bytes received until the seeder chokes us; also the last `need` message seen."""
    received = 0
    need = None
    while (message := await peer.read()) is not None:
        msg_id, payload = message
        if msg_id == wire.PIECE:
            received += len(payload) - 8
            _request_more(peer, 1)
        elif msg_id == wire.EXTENDED and payload[:1] == b"\x02":
            need = payload[1:]
        elif msg_id == wire.CHOKE:
            return received, need
    raise AssertionError("the seeder closed instead of choking")


def test_a_leecher_that_stops_signing_is_choked_after_the_credit_window(tmp_path):
    window = credit_window(65536)
    content = make_content(tmp_path, sizes=(window + 12_000_000,), piece_length=65536)
    buyer = new_wallet()

    async def scenario():
        seller, journal, seed, seeding = await _billing_seed(content, tmp_path)
        try:
            peer = await _leech_raw(seed, content, purchase=3)
            received, need = await _received_until_choked(peer)
            assert 0 < received <= window
            assert need is not None and bencodepy.decode(need)[b"t"] == b"need"
            account = seeding.billing.accounts[3]
            assert account.served == received <= account.receipted + window

            # paying for 3 MiB restores exactly 3 MiB of credit
            paid = 3 * 1024 * 1024
            signed = signer_for(buyer, 3).sign(seller.address, paid)
            peer.send_extended(LOCAL_RECEIPT_ID, to_message(signed))
            assert await peer.read_until(wire.UNCHOKE) is not None
            unsent = received // 65536 + 1
            peer.send(
                wire.requests(
                    [
                        (i, begin, 16384)
                        for i in range(unsent, unsent + 83)
                        for begin in range(0, 65536, 16384)
                    ]
                )
            )
            more, _ = await _received_until_choked(peer)
            assert received + more <= paid + window
            assert account.served == received + more
            assert journal.highest_bytes(3, seller.address) == paid
            peer.close()
        finally:
            await seed.close()

    run(scenario())


def test_forged_receipts_are_rejected_and_never_journaled(tmp_path):
    content = make_content(tmp_path, sizes=(400_000,))
    buyer = new_wallet()

    async def scenario():
        seller, journal, seed, _ = await _billing_seed(content, tmp_path)
        try:
            # The buyer's first genuine receipt pins who signs for purchase 4.
            genuine = signer_for(buyer, 4).sign(seller.address, 100_000)
            peer = await _leech_raw(seed, content, purchase=4)
            peer.send_extended(LOCAL_RECEIPT_ID, to_message(genuine))
            for _ in range(100):
                if journal.highest_bytes(4, seller.address):
                    break
                await asyncio.sleep(0.02)
            assert journal.highest(4, seller.address) == genuine
            peer.close()
            size = (tmp_path / "seed.journal").stat().st_size

            receipt = Receipt(purchase_id=4, seeder=seller.address, byte_count=300_000)
            tampered = Receipt(purchase_id=4, seeder=seller.address, byte_count=400_000)
            other = Receipt(purchase_id=4, seeder=new_wallet().address, byte_count=300_000)
            wrong_purchase = Receipt(purchase_id=5, seeder=seller.address, byte_count=300_000)
            good = sign_receipt(DOMAIN, receipt, buyer.key)
            high_s = (
                good[:32] + (SECP256K1_N - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + good[64:]
            )
            forgeries = [
                SignedReceipt(
                    receipt, sign_receipt(BAD_DOMAIN, receipt, buyer.key)
                ),  # another contract's domain
                SignedReceipt(tampered, good),  # bytes raised after signing
                SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, new_wallet().key)),  # not the buyer
                SignedReceipt(receipt, high_s),  # the malleable twin of a good signature
                SignedReceipt(other, sign_receipt(DOMAIN, other, buyer.key)),  # names another seeder
                SignedReceipt(
                    wrong_purchase, sign_receipt(DOMAIN, wrong_purchase, buyer.key)
                ),  # not its purchase
            ]
            for forged in forgeries:
                peer = await _leech_raw(seed, content, purchase=4)
                peer.send_extended(LOCAL_RECEIPT_ID, to_message(forged))
                assert await peer.closed_by_peer()
            await asyncio.sleep(0.1)
            assert journal.highest(4, seller.address) == genuine
            assert journal.highest(5, seller.address) is None
            assert (tmp_path / "seed.journal").stat().st_size == size
        finally:
            await seed.close()

    run(scenario())
