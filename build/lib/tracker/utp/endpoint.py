"""One UDP socket carrying many µTP connections: demultiplexing, accepting, connecting, timers.

Connections are found by the sender's address and the connection id in the packet. A SYN from an
unknown address and id opens a half-open connection that costs a table entry and nothing else:
its protocol is only created when the first data packet completes the handshake (in BitTorrent
the side that connects speaks first), at most `max_half_open` wait at once, and each expires after
`syn_recv_timeout`, so a flood of (possibly spoofed) SYNs cannot create peers or exhaust memory.
A packet for no connection gets a RESET, as libutp and libtorrent answer.

ACKs and new data are sent once per batch of datagrams: a connection that received or queued
something asks to be serviced, and the endpoint services every such connection in a callback
scheduled after the current batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from tracker.utp import packet as pk
from tracker.utp.connection import CLOSED, SYN_RECV, SYN_SENT, UtpConnection
from tracker.utp.errors import PacketError, UtpError

log = logging.getLogger(__name__)

PACKET_SIZE = 1400  # payload bytes per packet: 1400 + 20 + 8 + 40 (IPv6) stays under 1500
MAX_HALF_OPEN = 64  # SYNs awaiting their first data packet at once; more are ignored
SYN_RECV_TIMEOUT = 10.0  # seconds a half-open connection may wait for its first data packet
MAX_TIMEOUTS = 8  # timers in a row without an answer (about 18 s) before a peer counts as gone
SYN_RETRIES = 2  # SYN resends before a connect fails (as libutp)
TICK = 0.05  # seconds between timer checks
SOCKET_BUFFER = 4 * 1024 * 1024
MAX_CONNECTIONS = 2000

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class UtpEndpoint(asyncio.DatagramProtocol):
    """A UDP socket speaking µTP; create with `open_endpoint`."""

    def __init__(
        self,
        accept: ProtocolFactory | None = None,
        *,
        packet_size: int = PACKET_SIZE,
        max_half_open: int = MAX_HALF_OPEN,
        syn_recv_timeout: float = SYN_RECV_TIMEOUT,
        max_timeouts: int = MAX_TIMEOUTS,
        syn_retries: int = SYN_RETRIES,
    ) -> None:
        self.accept = accept
        self.packet_size = packet_size
        self.max_half_open = max_half_open
        self.syn_recv_timeout = syn_recv_timeout
        self.max_timeouts = max_timeouts
        self.syn_retries = syn_retries
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.sockname: tuple[str, int] = ("", 0)
        self.connections: dict[tuple[tuple[str, int], int], UtpConnection] = {}
        self.half_open = 0
        self._due: dict[UtpConnection, None] = {}
        self._service_scheduled = False
        self._ticker: asyncio.TimerHandle | None = None
        self.closed = False
        self.ignored = 0  # datagrams that were not µTP or were refused (SYN flood)

    # ----- asyncio.DatagramProtocol -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the socket and enlarge its buffers (µTP sends bursts of datagrams)."""
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        name = transport.get_extra_info("sockname")
        self.sockname = (str(name[0]), int(name[1]))
        self._ticker = self.loop.call_later(TICK, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket closed: every connection on it ends."""
        self.closed = True
        for conn in list(self.connections.values()):
            conn.abort()

    def error_received(self, exc: Exception) -> None:
        """ICMP errors on an unconnected socket name no connection; the timers deal with them."""
        log.debug("µTP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Route a packet to its connection, accept a SYN, or answer with a RESET."""
        try:
            p = pk.decode(data)
        except PacketError:
            self.ignored += 1
            return
        address = (addr[0], addr[1])
        conn = self.connections.get((address, p.connection_id))
        now = self.loop.time()
        if conn is not None:
            conn.incoming(p, now)
            return
        if p.type == pk.ST_SYN:
            self._syn(p, address, now)
        elif p.type != pk.ST_RESET:
            self.ignored += 1
            self.send(pk.encode(pk.ST_RESET, p.connection_id, 0, 0, 0, 0, p.seq_nr), address)

    # ----- connections -----

    def _syn(self, p: pk.Packet, address: tuple[str, int], now: float) -> None:
        recv_id = (p.connection_id + 1) & pk.SEQ_MASK
        existing = self.connections.get((address, recv_id))
        if existing is not None:
            existing.incoming(p, now)
            return
        if self.accept is None or self.closed or len(self.connections) >= MAX_CONNECTIONS:
            self.ignored += 1
            self.send(pk.encode(pk.ST_RESET, p.connection_id, 0, 0, 0, 0, p.seq_nr), address)
            return
        if self.half_open >= self.max_half_open:
            self.ignored += 1  # a flood of SYNs: the genuine ones retry
            return
        seq = int.from_bytes(os.urandom(2), "big")
        conn = UtpConnection(self, address, recv_id, p.connection_id, seq, SYN_RECV)
        conn.ack_nr = p.seq_nr
        conn.last_received = now
        self.connections[(address, recv_id)] = conn
        self.half_open += 1
        conn.half_open = True
        conn.send_control(pk.ST_STATE)

    def connection_established(self, conn: UtpConnection) -> None:
        """A handshake completed; an accepted connection gets its protocol now."""
        if conn.connected.done():
            return
        if conn.half_open:
            conn.half_open = False
            self.half_open -= 1
            assert self.accept is not None
            conn.start_protocol(self.accept())
        elif conn.protocol is not None:
            conn.start_protocol(conn.protocol)

    async def connect(
        self, protocol_factory: ProtocolFactory, host: str, port: int, timeout: float | None = None
    ) -> tuple[UtpConnection, asyncio.BaseProtocol]:
        """Open a µTP connection to `host:port` (like `loop.create_connection`)."""
        if self.closed or self.transport is None:
            raise UtpError("the µTP socket is closed")
        address = (host, port)
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        if infos:
            resolved = infos[0][4]
            address = (str(resolved[0]), int(resolved[1]))
        while True:
            recv_id = int.from_bytes(os.urandom(2), "big")
            if (address, recv_id) not in self.connections:
                break
        seq = int.from_bytes(os.urandom(2), "big")
        conn = UtpConnection(self, address, recv_id, (recv_id + 1) & pk.SEQ_MASK, seq, SYN_SENT)
        protocol = protocol_factory()
        conn.protocol = protocol  # introduced by start_protocol once connected
        self.connections[(address, recv_id)] = conn
        conn.send_syn()
        try:
            await asyncio.wait_for(asyncio.shield(conn.connected), timeout)
        except BaseException:
            if conn.state != CLOSED:
                conn.protocol = None
                conn.abort()
            raise
        return conn, protocol

    def forget(self, conn: UtpConnection) -> None:
        """A connection ended: free its id."""
        if self.connections.get((conn.address, conn.recv_id)) is conn:
            del self.connections[(conn.address, conn.recv_id)]
        if conn.half_open:
            conn.half_open = False
            self.half_open -= 1  # an accepted connection that never completed
        self._due.pop(conn, None)

    # ----- sending and timers -----

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """One datagram out."""
        if self.transport is not None and not self.closed:
            self.transport.sendto(data, address)

    def schedule(self, conn: UtpConnection) -> None:
        """Service `conn` (send data, an ACK) after the current batch of datagrams."""
        self._due[conn] = None
        if not self._service_scheduled:
            self._service_scheduled = True
            self.loop.call_soon(self._service)

    def _service(self) -> None:
        self._service_scheduled = False
        due = self._due
        self._due = {}
        now = self.loop.time()
        for conn in due:
            if conn.state != CLOSED:
                conn.flush(now)

    def _tick(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections.values()):
            if conn.state != CLOSED:
                conn.tick(now)
        if not self.closed:
            self._ticker = self.loop.call_later(TICK, self._tick)

    def close(self) -> None:
        """Reset every connection and close the socket."""
        if self._ticker is not None:
            self._ticker.cancel()
        for conn in list(self.connections.values()):
            conn.abort()
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def open_endpoint(
    host: str, port: int, accept: ProtocolFactory | None = None, **options: Any
) -> UtpEndpoint:
    """A µTP endpoint on a UDP socket bound to `host:port` (port 0: any free one)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: UtpEndpoint(accept, **options), local_addr=(host, port), family=family
    )
    return endpoint


__all__ = ["SYN_RECV", "UtpEndpoint", "open_endpoint"]
