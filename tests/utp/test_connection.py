"""µTP connections between two endpoints on loopback, directly and through an impairing relay."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest

from tests.peer.conftest import run
from tests.utp.relay import Impairment, start_relay
from tracker.utp import open_connection, open_endpoint, stream_acceptor
from tracker.utp import packet as pk


async def _sink_server(**options):
    """An endpoint that reads each accepted connection to its end; `done` gets (bytes, sha256)."""
    done: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest = hashlib.sha256()
        total = 0
        while chunk := await reader.read(1 << 16):
            digest.update(chunk)
            total += len(chunk)
        writer.close()
        await done.put((total, digest.hexdigest()))

    server = await open_endpoint("127.0.0.1", 0, stream_acceptor(handler), **options)
    return server, done


async def _send(client, port: int, data: bytes) -> None:
    _, writer = await open_connection(client, "127.0.0.1", port, timeout=10)
    for start in range(0, len(data), 100_000):
        writer.write(data[start : start + 100_000])
        await writer.drain()
    writer.close()


async def _send_through(client, relay, data: bytes, done):
    """Send `data` in one write through `relay`, close, check it arrived; the sending connection."""
    _, writer = await open_connection(client, "127.0.0.1", relay.port, timeout=10)
    writer.write(data)
    writer.close()
    total, digest = await done.get()
    assert (total, digest) == (len(data), hashlib.sha256(data).hexdigest())
    return writer.transport


async def _transfer(impairment: Impairment | None, size: int) -> dict[str, int]:
    server, done = await _sink_server()
    client = await open_endpoint("127.0.0.1", 0)
    port = server.sockname[1]
    relay = None
    if impairment is not None:
        relay = await start_relay(("127.0.0.1", port), impairment)
        port = relay.port
    data = os.urandom(size)
    await _send(client, port, data)
    total, digest = await done.get()
    assert total == size
    assert digest == hashlib.sha256(data).hexdigest()
    client.close()
    server.close()
    return {"dropped": relay.dropped, "duplicated": relay.duplicated} if relay else {}


def test_bytes_arrive_intact_and_in_order_on_a_clean_path():
    run(_transfer(None, 5_000_000))


def test_bytes_arrive_intact_through_loss_delay_duplicates_and_reordering():
    impairment = Impairment(loss=0.01, delay=0.05, jitter=0.01, duplicate=0.01, seed=7)
    seen = run(_transfer(impairment, 1_000_000))
    assert seen["dropped"] > 0 and seen["duplicated"] > 0  # the relay did impair the path


def test_heavy_loss_is_recovered_by_retransmission():
    run(_transfer(Impairment(loss=0.1, delay=0.01, jitter=0.005, seed=3), 300_000))


def test_a_lost_retransmission_is_resent_without_waiting_for_the_timer():
    """A burst loses one packet, and the fast retransmission of it is lost too: the selective ACKs
    of packets sent after the retransmission show it missing, so it is resent at once (libutp and
    TCP's RACK), not after a retransmission timeout that collapses the window to two packets
    (the stall behind libtorrent downloads from our seed at full speed)."""

    async def scenario():
        server, done = await _sink_server()
        client = await open_endpoint("127.0.0.1", 0)
        relay = await start_relay(("127.0.0.1", server.sockname[1]), Impairment(drop_data={300: 2}))
        conn = await _send_through(client, relay, os.urandom(3_000_000), done)
        assert relay.targeted == 2  # the packet and its first retransmission were dropped
        assert conn.timeouts_fired == 0
        client.close()
        server.close()

    run(scenario())


def test_the_lost_tail_of_a_transfer_is_repaired_without_waiting_for_the_timer():
    """The last three data packets are lost: nothing after them can be acknowledged three times,
    so a tail probe resends the oldest after two round trips of silence and each ACK that stops
    short of the end resends the next (NewReno), before the 0.5 s retransmission timer."""

    async def scenario():
        server, done = await _sink_server()
        client = await open_endpoint("127.0.0.1", 0)
        data = os.urandom(1_000_000)  # one write: 715 packets of 1,400 bytes, the last shorter
        last = (len(data) - 1) // 1400
        drops = {last - 2: 1, last - 1: 1, last: 1}
        relay = await start_relay(("127.0.0.1", server.sockname[1]), Impairment(drop_data=drops))
        conn = await _send_through(client, relay, data, done)
        assert relay.targeted == 3
        assert conn.timeouts_fired == 0 and conn.flight.probes == 1
        client.close()
        server.close()

    run(scenario())


def test_a_connection_to_a_peer_that_vanished_ends_with_a_timeout():
    async def scenario():
        server = await open_endpoint("127.0.0.1", 0, stream_acceptor(lambda r, w: None), max_timeouts=2)
        client = await open_endpoint("127.0.0.1", 0, max_timeouts=2)
        relay = await start_relay(("127.0.0.1", server.sockname[1]), Impairment())
        reader, writer = await open_connection(client, "127.0.0.1", relay.port, timeout=5)
        writer.write(b"x" * 1000)
        await writer.drain()
        relay.cut = True
        writer.write(b"y" * 1000)
        with pytest.raises(TimeoutError):
            await reader.read()
        assert not client.connections
        client.close()
        server.close()

    run(scenario(), timeout=30)


def test_connecting_to_a_port_where_nobody_listens_fails_quickly_with_a_reset():
    async def scenario():
        silent = await open_endpoint("127.0.0.1", 0)  # speaks µTP but accepts nothing
        client = await open_endpoint("127.0.0.1", 0)
        with pytest.raises(ConnectionResetError):
            await open_connection(client, "127.0.0.1", silent.sockname[1], timeout=5)
        client.close()
        silent.close()

    run(scenario())


def test_connecting_to_a_silent_address_times_out():
    async def scenario():
        black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        black_hole.bind(("127.0.0.1", 0))
        client = await open_endpoint("127.0.0.1", 0)
        with pytest.raises(TimeoutError):
            await open_connection(client, "127.0.0.1", black_hole.getsockname()[1], timeout=1.5)
        assert not client.connections
        client.close()
        black_hole.close()

    run(scenario())


def test_a_syn_flood_is_bounded_and_genuine_peers_still_connect():
    async def scenario():
        server, done = await _sink_server(max_half_open=8, syn_recv_timeout=1.0)
        port = server.sockname[1]
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.1", 0))
        for conn_id in range(1000):
            flood.sendto(pk.encode(pk.ST_SYN, conn_id * 2, 0, 0, 65536, 1, 0), ("127.0.0.1", port))
        await asyncio.sleep(0.2)
        assert server.half_open == 8 and len(server.connections) == 8
        assert server.ignored >= 992
        await asyncio.sleep(1.5)  # the half-open ones expire
        assert server.half_open == 0 and not server.connections
        client = await open_endpoint("127.0.0.1", 0)
        await _send(client, port, b"genuine")
        assert await done.get() == (7, hashlib.sha256(b"genuine").hexdigest())
        flood.close()
        client.close()
        server.close()

    run(scenario())


def test_truncated_and_garbage_datagrams_are_ignored_mid_transfer():
    async def scenario():
        server, done = await _sink_server()
        port = server.sockname[1]
        client = await open_endpoint("127.0.0.1", 0)
        _, writer = await open_connection(client, "127.0.0.1", port, timeout=5)
        (conn,) = client.connections.values()
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # from the client's own address family but another port: truncated headers, bad versions,
        # an extension running off the end, all naming the live connection id
        live = pk.encode(pk.ST_DATA, conn.send_id, 0, 0, 65536, conn.seq_nr, 0, b"evil")
        for bad in (live[:10], live[:19], b"\x02" + live[1:], live[:1] + b"\x01" + live[2:20]):
            junk.sendto(bad, ("127.0.0.1", port))
        data = os.urandom(200_000)
        writer.write(data)
        writer.close()
        assert await done.get() == (len(data), hashlib.sha256(data).hexdigest())
        assert server.ignored >= 4
        junk.close()
        client.close()
        server.close()

    run(scenario())


def test_closing_delivers_everything_queued_before_the_fin():
    async def scenario():
        server, done = await _sink_server()
        client = await open_endpoint("127.0.0.1", 0)
        _, writer = await open_connection(client, "127.0.0.1", server.sockname[1], timeout=5)
        data = os.urandom(3_000_000)
        writer.write(data)  # all at once, no drain: close must still send it all
        writer.close()
        assert await done.get() == (len(data), hashlib.sha256(data).hexdigest())
        await asyncio.sleep(0.2)
        assert not client.connections and not server.connections
        client.close()
        server.close()

    run(scenario())


def test_a_protocol_that_closed_its_transport_is_handed_nothing_more(caplog: pytest.LogCaptureFixture):
    """A peer connection that drops its peer with a full buffer closes the transport from inside
    `buffer_updated`; the rest of the datagram (and what follows) must not be pushed into a buffer
    that has no room left, which asyncio's own transports never do either."""

    class FillsUpAndCloses(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buffer = bytearray(1000)  # smaller than one µTP packet's payload
            self.end = 0
            self.transport: asyncio.BaseTransport | None = None
            self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def get_buffer(self, sizehint: int) -> memoryview:
            return memoryview(self.buffer)[self.end :]

        def buffer_updated(self, nbytes: int) -> None:
            self.end += nbytes
            if self.end == len(self.buffer):
                assert self.transport is not None
                self.transport.close()

        def eof_received(self) -> bool:
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.lost.done():
                self.lost.set_result(exc)

    async def scenario():
        accepted: list[FillsUpAndCloses] = []

        def factory() -> asyncio.BaseProtocol:
            accepted.append(FillsUpAndCloses())
            return accepted[-1]

        server = await open_endpoint("127.0.0.1", 0, factory)
        client = await open_endpoint("127.0.0.1", 0)
        _, writer = await open_connection(client, "127.0.0.1", server.sockname[1], timeout=5)
        writer.write(os.urandom(200_000))
        await asyncio.sleep(0.5)
        assert len(accepted) == 1
        await asyncio.wait_for(accepted[0].lost, 10)
        assert accepted[0].end == 1000
        client.close()
        server.close()

    with caplog.at_level("ERROR", logger="tracker.utp"):
        run(scenario())
    assert not [r for r in caplog.records if "protocol failed" in r.getMessage()]
