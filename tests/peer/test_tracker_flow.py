"""The engine with our HTTP tracker: peers found by announcing, receipts handed in and counted.

These run on asyncio's own event loop: the tracker's connection handler does not accept uvloop's
transports yet."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from tests.peer.conftest import DOMAIN, REPO_ROOT, make_content, new_wallet, run, signer_for
from tracker.peer.credit import credit_window
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.submitter import Submitter
from tracker.peer.torrent import TorrentConfig
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import ReceiptVerifier
from tracker.server import start_tracker


async def _tracker(content, wallets, purchases):
    policy = MemoryPolicy()
    sink = MemorySink()
    passkeys = []
    for wallet in wallets:
        passkeys.append(os.urandom(16).hex())
        policy.add_passkey(passkeys[-1], wallet.address)
        policy.grant(wallet.address, content.meta.info_hash)
    for purchase_id, buyer in purchases.items():
        sink.add_purchase(purchase_id, buyer.address, content.meta.total_length)
    server = await start_tracker("127.0.0.1", 0, policy, sink, ReceiptVerifier(DOMAIN), interval=60)
    return server, sink, passkeys


def test_a_swarm_found_through_the_tracker_hands_in_receipts_that_add_up(tmp_path):
    content = make_content(tmp_path, sizes=(1_200_000,), piece_length=32768)
    store = new_wallet()
    buyers = [new_wallet() for _ in range(3)]
    purchases = {200 + number: buyer for number, buyer in enumerate(buyers)}

    async def scenario():
        server, sink, passkeys = await _tracker(content, [store, *buyers], purchases)
        base = f"http://127.0.0.1:{server.port}"
        sessions = []
        try:
            seed = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "store.journal"))
            await seed.start()
            sessions.append(seed)
            config = TorrentConfig(wallet=store.address, verifier=ReceiptVerifier(DOMAIN))
            await seed.add_torrent(content.meta, content.folder, config, writable=False)
            seed.announce(seed.torrents[content.meta.info_hash], f"{base}/announce/{passkeys[0]}")
            seed.submit_receipts(base)
            torrents = []
            for number, buyer in enumerate(buyers):
                session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / f"b{number}.journal"))
                await session.start()
                sessions.append(session)
                config = TorrentConfig(
                    signer=signer_for(buyer, 200 + number),
                    wallet=buyer.address,
                    verifier=ReceiptVerifier(DOMAIN),
                )
                torrent = await session.add_torrent(content.meta, tmp_path / f"leech{number}", config)
                session.announce(torrent, f"{base}/announce/{passkeys[number + 1]}")
                session.submit_receipts(base)
                torrents.append(torrent)
            await asyncio.gather(*(t.completed.wait() for t in torrents))
            # Every seeder submits soon after its last receipt; wait for the tracker to hold them all.
            for _ in range(300):
                paid = {
                    purchase: sum(count for (p, _), count in sink.credited.items() if p == purchase)
                    for purchase in purchases
                }
                if all(total == content.meta.total_length for total in paid.values()):
                    break
                await asyncio.sleep(0.05)
            seeders = {store.address: sessions[0]} | {
                b.address: s for b, s in zip(buyers, sessions[1:], strict=True)
            }
            for number, torrent in enumerate(torrents):
                purchase = 200 + number
                assert paid[purchase] == content.meta.total_length
                assert torrent.leecher is not None
                for wallet, session in seeders.items():
                    verified = torrent.leecher.ledger.tally(wallet).verified
                    assert sink.credited.get((purchase, wallet), 0) == verified
                    billing = session.torrents[content.meta.info_hash].billing
                    account = billing.accounts.get(purchase) if billing is not None else None
                    assert verified <= (account.served if account is not None else 0)
        finally:
            for session in sessions:
                await session.close()
            server.close()
            await server.wait_closed()

    run(scenario(), timeout=120, uv=False)  # the tracker runs on asyncio's loop


def test_a_session_talks_to_its_tracker_over_one_kept_alive_connection(tmp_path):
    """Announces (and receipt submissions) go through the session's one HTTP client: a client per
    request built a TLS context each time (~25 ms of CPU, stalling every transfer of the session)
    and opened a new TCP connection to the tracker."""
    content = make_content(tmp_path)
    store = new_wallet()

    async def scenario():
        server, _sink, passkeys = await _tracker(content, [store], {})
        accepted = 0

        async def relay(reader, writer):
            nonlocal accepted
            accepted += 1
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)

            async def pipe(source, sink):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
                sink.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

        front = await asyncio.start_server(relay, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{front.sockets[0].getsockname()[1]}"
        session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "store.journal"))
        try:
            await session.start()
            config = TorrentConfig(wallet=store.address, verifier=ReceiptVerifier(DOMAIN))
            torrent = await session.add_torrent(content.meta, content.folder, config, writable=False)
            announcer = session.announce(torrent, f"{base}/announce/{passkeys[0]}")
            await announcer.announce()  # alongside its loop's `started`: the pool may open a second
            opened = accepted
            for _ in range(5):
                await announcer.announce()
            assert accepted == opened <= 2
        finally:
            await session.close()
            front.close()
            server.close()
            await server.wait_closed()

    run(scenario(), timeout=60, uv=False)


def test_a_seeder_killed_after_serving_submits_every_journaled_receipt_after_restart(tmp_path):
    content = make_content(tmp_path, sizes=(2_000_000,), piece_length=65536)
    seller, buyer = new_wallet(), new_wallet()
    torrent_file = tmp_path / "content.torrent"
    torrent_file.write_bytes(content.raw)
    journal_path = tmp_path / "seller.journal"
    port_file = tmp_path / "port"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.peer.seeder_process",
            str(torrent_file),
            str(content.folder),
            str(journal_path),
            seller.address.hex(),
            str(port_file),
        ],
        cwd=REPO_ROOT,
    )

    async def download() -> int:
        for _ in range(500):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.02)
        async with Session(host="127.0.0.1") as leech:
            config = TorrentConfig(signer=signer_for(buyer, 31))
            torrent = await leech.add_torrent(content.meta, tmp_path / "leech", config)
            await leech.connect(torrent, "127.0.0.1", int(port_file.read_text()))
            await torrent.completed.wait()
            await asyncio.sleep(0.3)  # the last receipt reaches the seeder's journal
            assert torrent.leecher is not None
            return torrent.leecher.ledger.tally(seller.address).verified

    try:
        verified = run(download())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert verified == content.meta.total_length

    async def restart_and_submit():
        server, sink, _ = await _tracker(content, [seller, buyer], {31: buyer})
        try:
            journal = ReceiptJournal(journal_path)
            async with Session(host="127.0.0.1", journal=journal) as session:
                assert session.journal is not None
                submitter = Submitter(session.journal, f"http://127.0.0.1:{server.port}", session.http)
                assert await submitter.submit_pending() == 1
                assert journal.pending(10) == []
            return sink.credited
        finally:
            server.close()
            await server.wait_closed()

    credited = run(restart_and_submit(), uv=False)
    assert credited == {(31, seller.address): verified}


def test_a_seeder_confirming_buyers_gives_an_impostor_one_window_and_the_buyer_everything(tmp_path):
    # Bigger than one credit window, or the impostor could finish on the window alone.
    content = make_content(tmp_path, sizes=(credit_window(65536) + 12_000_000,), piece_length=65536)
    seller, buyer, impostor, victim = new_wallet(), new_wallet(), new_wallet(), new_wallet()
    purchases = {51: buyer, 52: victim}  # the impostor signs for a purchase it did not make

    async def scenario():
        server, sink, _ = await _tracker(content, [seller], purchases)
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with (
                Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "seller.journal")) as seed,
                Session(host="127.0.0.1") as honest,
                Session(host="127.0.0.1") as cheat,
            ):
                config = TorrentConfig(
                    wallet=seller.address, verifier=ReceiptVerifier(DOMAIN), confirm_buyers=True
                )
                seeding = await seed.add_torrent(content.meta, content.folder, config, writable=False)
                seed.submit_receipts(base)
                good = await honest.add_torrent(
                    content.meta, tmp_path / "honest", TorrentConfig(signer=signer_for(buyer, 51))
                )
                bad = await cheat.add_torrent(
                    content.meta, tmp_path / "cheat", TorrentConfig(signer=signer_for(impostor, 52))
                )
                await honest.connect(good, "127.0.0.1", seed.port)
                await cheat.connect(bad, "127.0.0.1", seed.port)
                await good.completed.wait()
                assert seeding.billing is not None
                for _ in range(300):
                    account = seeding.billing.accounts.get(52)
                    if account is not None and account.frozen:
                        break
                    await asyncio.sleep(0.02)
                account = seeding.billing.accounts[52]
                assert account.frozen == "wrong-signer"
                assert account.served <= seeding.billing.window
                assert not bad.completed.is_set()
                assert sink.credited.get((52, seller.address)) is None
                assert seeding.billing.accounts[51].confirmed
        finally:
            server.close()
            await server.wait_closed()

    run(scenario(), uv=False)
