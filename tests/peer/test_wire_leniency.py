"""What mainstream clients send is accepted; what a liar sends still drops it.

Each case is driven by a hand-written peer (tests/peer/rawpeer.py) speaking the wire the way a
client does: aria2 sending a bitfield in the middle of a connection, libtorrent and Transmission
negotiating the Fast extension (BEP 6), keep-alives, messages and extension messages we do not
speak. A real aria2c download from our seed closes the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import bencodepy
import pytest

from tests.peer.conftest import Content, make_content, run
from tests.peer.rawpeer import RawPeer
from tracker.peer import wire
from tracker.peer.session import Session
from tracker.peer.torrent import Torrent
from tracker.peer.uploading import MAX_REFUSED_REQUESTS

SEED_ID = b"-XX0000-handseed0000"


async def _seed(content: Content) -> tuple[Session, Torrent]:
    session = Session(host="127.0.0.1")
    await session.start()
    torrent = await session.add_torrent(content.meta, content.folder, writable=False)
    return session, torrent


async def _hand_seed(
    peer: RawPeer, content: Content, opening: list[bytes], *, fast: bool, reject_first: int = 0
) -> list[tuple[int, int, int]]:
    """Answer a leecher as a seed: handshake, the `opening` messages, then serve every request
    (refusing the first `reject_first` with reject_request). The requests it got, in order."""
    meta = content.meta
    data = (content.folder / meta.name).read_bytes()
    await peer.reader.readexactly(wire.HANDSHAKE_LENGTH)
    peer.send(wire.Handshake(meta.info_hash, SEED_ID, wire.our_reserved(fast=fast)).encode())
    for message in opening:
        peer.send(message)
    requests = []
    while (message := await peer.read(30)) is not None:
        msg_id, payload = message
        if msg_id != wire.REQUEST:
            continue
        index, begin, length = struct.unpack(">III", payload)
        requests.append((index, begin, length))
        if len(requests) <= reject_first:
            peer.send(wire.reject(index, begin, length))
            continue
        offset = index * meta.piece_length + begin
        peer.send(wire.piece_header(index, begin, length) + data[offset : offset + length])
    return requests


async def _download_from_hand_seed(content: Content, folder: Path, opening, *, fast, reject_first=0):
    """Our leecher downloads the torrent from a hand-driven seed; the requests the seed saw."""
    seen: list[list[tuple[int, int, int]]] = []

    async def handler(reader, writer):
        seen.append(
            await _hand_seed(RawPeer(reader, writer), content, opening, fast=fast, reject_first=reject_first)
        )
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Session(host="127.0.0.1") as leech:
            torrent = await leech.add_torrent(content.meta, folder)
            assert await leech.connect(torrent, "127.0.0.1", port)
            await asyncio.wait_for(torrent.completed.wait(), 30)
            assert torrent.error is None
            assert torrent.failed_pieces == 0
        # our side hung up: the hand seed's loop ends and reports what it was asked
        while not seen:
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
    return seen[0]


def test_a_bitfield_in_the_middle_of_a_connection_adds_the_pieces_it_names(content, tmp_path):
    """aria2 1.36: a have, an unchoke, then a bitfield once that is shorter than more haves."""
    count = content.meta.piece_count
    everything = wire.bitfield(wire.pack_bits(bytearray([1]) * count))
    opening = [wire.have(0), wire.UNCHOKE_MSG, wire.KEEPALIVE_MSG, everything]
    requests = run(_download_from_hand_seed(content, tmp_path / "leech", opening, fast=False))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)
    assert {index for index, _, _ in requests} == set(range(count))


def test_a_later_bitfield_that_leaves_pieces_out_takes_none_away(content, tmp_path):
    count = content.meta.piece_count
    first = bytearray([1]) * count
    later = bytearray(count)  # says nothing about any piece
    later[1] = 1
    opening = [
        wire.bitfield(wire.pack_bits(first)),
        wire.UNCHOKE_MSG,
        wire.bitfield(wire.pack_bits(later)),
    ]
    run(_download_from_hand_seed(content, tmp_path / "leech", opening, fast=False))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_a_fast_seed_saying_have_none_then_have_all_and_rejecting_requests_still_delivers(content, tmp_path):
    """libtorrent and Transmission negotiate BEP 6: have_none/have_all, reject_request, and
    suggest/allowed_fast, which we ignore."""
    opening = [
        wire.HAVE_NONE_MSG,
        wire.HEADER.pack(5, wire.ALLOWED_FAST) + struct.pack(">I", 0),
        wire.HEADER.pack(5, wire.SUGGEST) + struct.pack(">I", 1),
        wire.UNCHOKE_MSG,
        wire.HAVE_ALL_MSG,
    ]
    requests = run(_download_from_hand_seed(content, tmp_path / "leech", opening, fast=True, reject_first=3))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)
    rejected = requests[:3]
    assert all(requests.count(block) >= 2 for block in rejected)  # asked again after the reject


def test_our_seed_offers_the_fast_extension_and_opens_with_have_all(content):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            fast_peer = await RawPeer.connect(seed.port)
            handshake = await fast_peer.handshake(content.meta.info_hash, fast=True)
            assert handshake.supports_fast
            first = await fast_peer.read()
            assert first == (wire.HAVE_ALL, b"")

            plain = await RawPeer.connect(seed.port)
            await plain.handshake(content.meta.info_hash, b"-XX0000-plainpeer000", fast=False)
            first = await plain.read()
            assert first is not None and first[0] == wire.BITFIELD
            fast_peer.close()
            plain.close()
        finally:
            await seed.close()

    run(scenario())


def test_requests_we_refuse_are_rejected_for_a_fast_peer_and_dropped_silently_otherwise(content):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash, fast=True)
            assert (await peer.read())[0] == wire.HAVE_ALL
            peer.send(wire.request(2, 0, 16384))  # we have not unchoked it
            payload = await peer.read_until(wire.REJECT)
            assert payload is not None and struct.unpack(">III", payload) == (2, 0, 16384)

            plain = await RawPeer.connect(seed.port)
            await plain.handshake(content.meta.info_hash, b"-XX0000-plainpeer000", fast=False)
            plain.send(wire.request(2, 0, 16384))
            plain.send(wire.INTERESTED_MSG)
            message = await plain.read()
            while message is not None and message[0] != wire.UNCHOKE:
                assert message[0] != wire.REJECT
                message = await plain.read()
            assert message is not None  # unchoked, not dropped
            peer.close()
            plain.close()
        finally:
            await seed.close()

    run(scenario())


def test_a_choke_rejects_what_a_fast_peer_had_queued(content):
    async def scenario():
        seed, torrent = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash, fast=True)
            peer.send(wire.INTERESTED_MSG)
            assert await peer.read_until(wire.UNCHOKE) is not None
            conn = next(iter(torrent.connections))
            # more requests than socket buffers hold blocks (24 MiB; we do not read yet): some
            # wait in the seed's queue
            whole = content.meta.piece_count - 1  # the last piece is shorter than a block
            peer.send(wire.requests([(i % whole, 0, 16384) for i in range(1500)]))
            await peer.writer.drain()
            while not conn.up.queue:
                await asyncio.sleep(0.01)
            queued = list(conn.up.queue)
            torrent.uploads.choke(conn)
            rejected = []
            while len(rejected) < len(queued):
                message = await peer.read()
                assert message is not None
                if message[0] == wire.REJECT:
                    rejected.append(struct.unpack(">III", message[1]))
            assert rejected == queued
            peer.close()
        finally:
            await seed.close()

    run(scenario())


def test_a_peer_that_keeps_asking_for_what_we_refuse_is_dropped(content):
    async def scenario():
        seed, torrent = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash, fast=True)
            peer.send(wire.requests([(0, 0, 16384)] * MAX_REFUSED_REQUESTS))
            await peer.writer.drain()
            rejects = 0
            while rejects < MAX_REFUSED_REQUESTS:
                message = await peer.read()
                assert message is not None, "dropped within the bound"
                rejects += message[0] == wire.REJECT
            assert torrent.connections
            peer.send(wire.request(0, 0, 16384))
            assert await peer.closed_by_peer()
        finally:
            await seed.close()

    run(scenario())


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("have_all without the Fast extension", wire.HAVE_ALL_MSG),
        ("reject without the Fast extension", wire.reject(0, 0, 16384)),
        ("a bitfield with spare bits set", "spare"),
        ("a request beyond the end of a piece", "beyond"),
        ("a have for a piece past the last", wire.have(10_000)),
    ],
)
def test_liars_are_still_dropped(content, what, message):
    async def scenario():
        seed, torrent = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash, fast=False)
            await peer.read()  # our bitfield
            peer.send(wire.have(0))  # not the first message any more: a bitfield is now an update
            if message == "spare":
                bits = bytearray(wire.pack_bits(bytearray(content.meta.piece_count)))
                bits[-1] |= 1  # 300 kB in 32 KiB pieces: 10 pieces, 6 spare bits
                peer.send(wire.bitfield(bytes(bits)))
            elif message == "beyond":
                peer.send(wire.request(content.meta.piece_count - 1, 0, content.meta.piece_length))
            else:
                peer.send(message)
            assert await peer.closed_by_peer(), what
            assert not torrent.connections
        finally:
            await seed.close()

    run(scenario())


def test_keep_alives_unknown_messages_and_unknown_extension_messages_are_ignored(content):
    async def scenario():
        seed, _ = await _seed(content)
        try:
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash, fast=True)
            peer.send(wire.KEEPALIVE_MSG * 3)
            peer.send(wire.extended(77, b"d1:xi1ee"))  # an extension we never offered
            peer.send(wire.HEADER.pack(3, 0x42) + b"??")  # a message id nobody assigned
            peer.send(wire.HEADER.pack(3, wire.PORT) + b"\x1a\xe1")  # DHT port
            peer.send(wire.INTERESTED_MSG)
            assert await peer.read_until(wire.UNCHOKE) is not None
            peer.send(wire.request(0, 0, 16384))
            payload = await peer.read_until(wire.PIECE)
            data = (content.folder / content.meta.name).read_bytes()
            assert payload is not None and payload[8:] == data[:16384]
            peer.close()
        finally:
            await seed.close()

    run(scenario())


def _free_port() -> int:
    """A TCP port the OS has free right now (aria2c will not take 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _one_peer_tracker(host: str, port: int) -> asyncio.Server:
    """The smallest HTTP tracker: every announce is answered with one peer, `host:port`."""
    peers = socket.inet_aton(host) + struct.pack(">H", port)
    body = bencodepy.encode({b"interval": 60, b"peers": peers})

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.skipif(shutil.which("aria2c") is None, reason="aria2c is not installed")
def test_aria2c_downloads_from_our_seed_byte_for_byte(tmp_path):
    """aria2 1.36 sends a bitfield mid-connection: before the fix it got 6 pieces and stalled."""
    content = make_content(tmp_path, sizes=(3_000_000,), piece_length=32768)
    torrent_file = tmp_path / "data.torrent"
    torrent_file.write_bytes(content.raw)
    out = tmp_path / "aria2"
    out.mkdir()

    async def scenario():
        seed, torrent = await _seed(content)
        tracker = await _one_peer_tracker("127.0.0.1", seed.port)
        announce = f"http://127.0.0.1:{tracker.sockets[0].getsockname()[1]}/announce"
        try:
            process = await asyncio.create_subprocess_exec(
                "aria2c",
                f"--dir={out}",
                "--seed-time=0",
                "--bt-exclude-tracker=*",
                f"--bt-tracker={announce}",
                "--bt-enable-lpd=false",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--enable-peer-exchange=false",
                "--bt-stop-timeout=60",
                "--summary-interval=0",
                "--console-log-level=warn",
                "--file-allocation=none",
                f"--listen-port={_free_port()}",
                str(torrent_file),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), 120)
            return process.returncode, output.decode(errors="replace"), torrent.uploaded
        finally:
            tracker.close()
            await seed.close()

    code, output, uploaded = run(scenario(), 150)
    assert code == 0, output
    assert uploaded >= content.meta.total_length
    assert content.digest_in(out) == content.digest_in(content.folder)
