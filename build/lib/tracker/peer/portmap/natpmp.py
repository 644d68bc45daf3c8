"""NAT-PMP (RFC 6886): ask the default gateway for a port mapping over UDP port 5351.

A dozen bytes each way, so written here rather than taken from a library (the PyPI packages for it
are unmaintained). The rules that matter for safety: only the gateway is asked, only answers from
the gateway's port 5351 on a connected socket are read, every answer is checked for its version,
opcode, length and the internal port it speaks about, and retries back off from 250 ms as section
3.1 asks (we give up after `ATTEMPTS` rather than the RFC's 64 s: a seeder should not wait a minute
to learn that a router does not speak NAT-PMP).

PCP (RFC 6887) servers answer a NAT-PMP request too (section 9 of RFC 6887: version 0 packets
are NAT-PMP), which is how miniupnpd and most routers that speak PCP serve this client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracker.peer.portmap.errors import MappingRefused, NoGateway, PortMapError

PORT = 5351
VERSION = 0
OP_EXTERNAL_ADDRESS = 0
OPCODES = {"UDP": 1, "TCP": 2}
FIRST_WAIT = 0.25  # RFC 6886 3.1: 250 ms, doubling
ATTEMPTS = 4  # 0.25 + 0.5 + 1 + 2 s
RESULTS = {
    1: "unsupported version",
    2: "not authorized or refused",
    3: "network failure",
    4: "out of resources",
    5: "unsupported opcode",
}
_ADDRESS_ANSWER = struct.Struct(">BBHI4s")
_MAP_REQUEST = struct.Struct(">BBHHHI")
_MAP_ANSWER = struct.Struct(">BBHIHHI")


@dataclass(frozen=True, slots=True)
class NatPmpMapping:
    """What the gateway granted."""

    protocol: str
    internal_port: int
    external_port: int
    lifetime: int  # seconds


def default_gateway(route_table: Path = Path("/proc/net/route")) -> str | None:
    """The IPv4 default gateway of this network namespace (Linux), or None."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:  # RTF_GATEWAY
            return str(ipaddress.IPv4Address(struct.pack("<I", int(fields[2], 16))))
    return None


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)  # e.g. ICMP port unreachable: nobody serves NAT-PMP there


class NatPmpClient:
    """Talks NAT-PMP to one gateway; use `async with` (it holds a connected UDP socket)."""

    def __init__(self, gateway: str | None = None, *, port: int = PORT) -> None:
        gateway = gateway or default_gateway()
        if gateway is None:
            raise NoGateway("no IPv4 default gateway to ask for a port mapping")
        self.gateway = gateway
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._answers = _Answers()
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> NatPmpClient:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self._answers, remote_addr=(self.gateway, self.port), family=socket.AF_INET
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    async def _exchange(self, request: bytes, check: Callable[[bytes], bool]) -> bytes:
        """Send `request` until an answer `check` accepts arrives; raises PortMapError."""
        assert self._transport is not None, "use `async with NatPmpClient(...)`"
        async with self._lock:
            while not self._answers.queue.empty():
                self._answers.queue.get_nowait()
            wait = FIRST_WAIT
            for _ in range(ATTEMPTS):
                self._transport.sendto(request)
                deadline = asyncio.get_running_loop().time() + wait
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    try:
                        answer = await asyncio.wait_for(self._answers.queue.get(), left)
                    except TimeoutError:
                        break
                    if isinstance(answer, Exception):
                        raise PortMapError(f"the gateway {self.gateway} does not answer NAT-PMP: {answer}")
                    if check(answer):
                        return answer
                wait *= 2
        raise PortMapError(f"the gateway {self.gateway} did not answer NAT-PMP")

    @staticmethod
    def _result(answer: bytes) -> None:
        result = struct.unpack_from(">H", answer, 2)[0]
        if result == 2:
            raise MappingRefused("the gateway refused the NAT-PMP mapping (not authorized)")
        if result:
            raise PortMapError(f"NAT-PMP: {RESULTS.get(result, f'result code {result}')}")

    async def external_address(self) -> str:
        """The gateway's public address."""

        def check(answer: bytes) -> bool:
            return len(answer) >= _ADDRESS_ANSWER.size and answer[:2] == bytes(
                (VERSION, 128 + OP_EXTERNAL_ADDRESS)
            )

        answer = await self._exchange(bytes((VERSION, OP_EXTERNAL_ADDRESS)), check)
        self._result(answer)
        return str(ipaddress.IPv4Address(answer[8:12]))

    async def map(
        self, protocol: str, internal_port: int, external_port: int, lifetime: int
    ) -> NatPmpMapping:
        """Map (or, with `lifetime` 0, remove) `protocol` `internal_port`; the gateway may grant
        another external port than the one suggested, and a shorter lifetime."""
        if protocol not in OPCODES or not 0 < internal_port < 65536 or not 0 <= external_port < 65536:
            raise ValueError(f"cannot map {protocol} port {internal_port} to {external_port}")
        if not 0 <= lifetime < 2**32:
            raise ValueError(f"a NAT-PMP lifetime is 0 to 2**32 - 1 seconds, not {lifetime}")
        opcode = OPCODES[protocol]

        def check(answer: bytes) -> bool:
            if len(answer) < _MAP_ANSWER.size or answer[:2] != bytes((VERSION, 128 + opcode)):
                return False
            return _MAP_ANSWER.unpack_from(answer)[4] == internal_port

        request = _MAP_REQUEST.pack(VERSION, opcode, 0, internal_port, external_port, lifetime)
        answer = await self._exchange(request, check)
        self._result(answer)
        _, _, _, _, _, granted_port, granted_lifetime = _MAP_ANSWER.unpack_from(answer)
        if lifetime and not 0 < granted_port < 65536:
            raise PortMapError(f"NAT-PMP granted an impossible external port {granted_port}")
        return NatPmpMapping(protocol, internal_port, granted_port, granted_lifetime)

    async def unmap(self, protocol: str, internal_port: int) -> None:
        """Remove our mapping of `protocol` `internal_port` (RFC 6886 3.4); errors are ignored."""
        with contextlib.suppress(PortMapError):
            await self.map(protocol, internal_port, 0, 0)
