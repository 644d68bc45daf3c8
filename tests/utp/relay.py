"""A userspace UDP relay that loses, delays, duplicates and reorders datagrams (no netem here).

It stands between one client and one server: the client sends to the relay's port, the relay
forwards to the server from the same socket, and the server's answers go back to the client that
spoke last. Every impairment is drawn from a seeded random source, so a failing run repeats.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass
class Impairment:
    """What happens to each datagram, in each direction."""

    loss: float = 0.0  # probability a datagram is dropped
    delay: float = 0.0  # seconds every datagram waits
    jitter: float = 0.0  # extra seconds drawn uniformly per datagram (reorders those close together)
    duplicate: float = 0.0  # probability a datagram is sent twice
    seed: int = 1
    # data packets from the client to drop: {which, counted from the first one it sent: how many
    # of its transmissions, the original first}
    drop_data: dict[int, int] | None = None


class Relay(asyncio.DatagramProtocol):
    """Forward datagrams between a client and `server`, impaired."""

    def __init__(self, server: tuple[str, int], impairment: Impairment) -> None:
        self.server = server
        self.impairment = impairment
        self.random = random.Random(impairment.seed)
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.forwarded = 0
        self.dropped = 0
        self.duplicated = 0
        self.cut = False  # when set, everything is dropped (a peer that vanished)
        self.first_data: int | None = None  # the sequence number of the client's first data packet
        self.targeted = 0  # transmissions dropped by `drop_data`
        self._drops_left = dict(impairment.drop_data or {})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the socket."""
        self.transport = transport  # type: ignore[assignment]

    @property
    def port(self) -> int:
        """The port clients send to."""
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Forward one datagram the other way, perhaps late, twice or not at all."""
        if addr == self.server:
            target = self.client
        else:
            self.client = addr
            target = self.server
        if target is None:
            return
        imp = self.impairment
        if target == self.server and self._drops_left and self._targeted(data):
            self.dropped += 1
            return
        if self.cut or self.random.random() < imp.loss:
            self.dropped += 1
            return
        copies = 2 if self.random.random() < imp.duplicate else 1
        self.duplicated += copies - 1
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            wait = imp.delay + self.random.random() * imp.jitter
            if wait:
                loop.call_later(wait, self._send, data, target)
            else:
                self._send(data, target)

    def _targeted(self, data: bytes) -> bool:
        """Whether this datagram is one of the transmissions `drop_data` drops."""
        if len(data) < 20 or data[0] >> 4 != 0:  # not a µTP ST_DATA packet
            return False
        seq = int.from_bytes(data[16:18], "big")
        if self.first_data is None:
            self.first_data = seq
        index = (seq - self.first_data) & 0xFFFF
        if not self._drops_left.get(index):
            return False
        self._drops_left[index] -= 1
        self.targeted += 1
        return True

    def _send(self, data: bytes, target: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.forwarded += 1
            self.transport.sendto(data, target)


async def start_relay(server: tuple[str, int], impairment: Impairment) -> Relay:
    """A relay on a free loopback port in front of `server`."""
    loop = asyncio.get_running_loop()
    _, relay = await loop.create_datagram_endpoint(
        lambda: Relay(server, impairment), local_addr=("127.0.0.1", 0)
    )
    return relay
