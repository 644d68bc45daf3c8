"""µTP (BEP 29): BitTorrent's congestion-polite transport over UDP, as a module of its own.

Layers, each in its own file: `packet` (the wire format, defined once), `ledbat` (congestion
window and retransmission timer), `connection` (one connection's state machine, behind an
`asyncio.Transport`), `endpoint` (one UDP socket: demultiplexing, accepting, connecting, timers).
Anything written for `loop.create_connection` and a protocol runs over `UtpEndpoint.connect`
unchanged; `open_connection` gives asyncio streams for code that prefers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tracker.utp.connection import UtpConnection
from tracker.utp.endpoint import UtpEndpoint, open_endpoint
from tracker.utp.errors import PacketError, UtpError


async def open_connection(
    endpoint: UtpEndpoint, host: str, port: int, timeout: float | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A µTP connection as an asyncio stream pair (like `asyncio.open_connection`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16, loop=loop)
    conn, protocol = await endpoint.connect(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), host, port, timeout
    )
    return reader, asyncio.StreamWriter(conn, protocol, reader, loop)


def stream_acceptor(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None],
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory for `open_endpoint(accept=...)` that calls `handler` with streams (like
    `asyncio.start_server`)."""

    def factory() -> asyncio.BaseProtocol:
        loop = asyncio.get_running_loop()
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=2**16, loop=loop), handler, loop=loop)

    return factory


__all__ = [
    "PacketError",
    "UtpConnection",
    "UtpEndpoint",
    "UtpError",
    "open_connection",
    "open_endpoint",
    "stream_acceptor",
]
