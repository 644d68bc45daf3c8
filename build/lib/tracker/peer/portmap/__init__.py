"""Port mapping for peers behind a home router: NAT-PMP first, then UPnP IGD.

Most buyers seed from home, behind a router's NAT: without a mapping nobody outside can connect to
them and they earn nothing. `PortMapper` asks the router to forward the session's listen port, TCP
and UDP on one external port where the router allows it (µTP shares the TCP port number, the way
libtorrent does), renews the mapping at half its lifetime, and removes it on close.

NAT-PMP (tracker.peer.portmap.natpmp, RFC 6886; PCP routers answer it too) is asked first: one
unicast datagram to the default gateway, answered or refused within a second. UPnP IGD
(tracker.peer.portmap.upnp, async-upnp-client) is next: an SSDP search of a couple of seconds.
Whichever maps first is kept. `state` says what happened in words a user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from tracker.peer.portmap.errors import MappingRefused, NoGateway, PortMapError
from tracker.peer.portmap.natpmp import NatPmpClient
from tracker.peer.portmap.upnp import UpnpClient

__all__ = ["Mapping", "MappingRefused", "NoGateway", "PortMapError", "PortMapper"]

log = logging.getLogger(__name__)

LIFETIME = 7200  # seconds asked for (RFC 6886 recommends two hours)
PERMANENT_RENEWAL = 1800  # how often a lease without a lifetime is re-asserted (routers reboot)
RETRY_SECONDS = 300.0  # after a failure, the next try
MIN_RENEWAL = 30.0


@dataclass(frozen=True, slots=True)
class Mapping:
    """A port the router forwards to us."""

    method: str  # "NAT-PMP" or "UPnP"
    internal_port: int
    external_port: int
    external_address: str | None
    lifetime: int  # seconds; 0 for a lease without end


class PortMapper:
    """Keeps `port` (TCP and UDP) mapped on the router; `start`, then `close` when done."""

    def __init__(self, port: int, *, gateway: str | None = None) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"cannot map port {port}")
        self.port = port
        self.gateway = gateway  # None: this host's default gateway
        self.mapping: Mapping | None = None
        self.error: PortMapError | None = None
        self._upnp: UpnpClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def external_port(self) -> int | None:
        """The port peers outside reach us on, once mapped."""
        return self.mapping.external_port if self.mapping is not None else None

    @property
    def state(self) -> str:
        """What happened, for the user."""
        if self.mapping is not None:
            where = f"{self.mapping.external_address}:" if self.mapping.external_address else "port "
            return f"{self.mapping.method} maps {where}{self.mapping.external_port} to port {self.port}"
        if self.error is not None:
            return f"no port mapping: {self.error}"
        return "no port mapping yet"

    async def start(self) -> Mapping | None:
        """Map once (returning the mapping, or None and `error` set), then keep it renewed."""
        await self._map()
        self._task = asyncio.get_running_loop().create_task(self._keep())
        return self.mapping

    async def close(self) -> None:
        """Stop renewing and remove the mapping from the router."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        mapping, self.mapping = self.mapping, None
        if mapping is None:
            return
        with contextlib.suppress(PortMapError, OSError, TimeoutError):
            async with asyncio.timeout(3):
                if mapping.method == "NAT-PMP":
                    async with NatPmpClient(self.gateway) as client:
                        await client.unmap("TCP", self.port)
                        await client.unmap("UDP", self.port)
                elif self._upnp is not None:
                    await self._upnp.unmap("TCP", mapping.external_port)
                    await self._upnp.unmap("UDP", mapping.external_port)

    async def _keep(self) -> None:
        while True:
            if self.mapping is None:
                delay = RETRY_SECONDS
            elif self.mapping.lifetime:
                delay = max(MIN_RENEWAL, self.mapping.lifetime / 2)
            else:
                delay = PERMANENT_RENEWAL
            await asyncio.sleep(delay)
            await self._map()

    async def _map(self) -> None:
        errors: list[PortMapError] = []
        for method in (self._natpmp, self._upnp_map):
            try:
                self.mapping = await method()
            except PortMapError as exc:
                errors.append(exc)
                continue
            self.error = None
            log.info("%s", self.state)
            return
        self.mapping = None
        # A refusal says more than a router that does not speak one of the protocols.
        refused = [exc for exc in errors if isinstance(exc, MappingRefused)]
        self.error = refused[0] if refused else errors[-1]
        log.warning("%s", self.state)

    async def _natpmp(self) -> Mapping:
        preferred = self.mapping.external_port if self.mapping is not None else self.port
        async with NatPmpClient(self.gateway) as client:
            tcp = await client.map("TCP", self.port, preferred, LIFETIME)
            udp = await client.map("UDP", self.port, tcp.external_port, LIFETIME)
            if udp.external_port != tcp.external_port:
                log.info("NAT-PMP mapped UDP to %d, TCP to %d", udp.external_port, tcp.external_port)
            try:
                address: str | None = await client.external_address()
            except PortMapError:
                address = None
        return Mapping("NAT-PMP", self.port, tcp.external_port, address, min(tcp.lifetime, udp.lifetime))

    async def _upnp_map(self) -> Mapping:
        if self._upnp is None:
            self._upnp = await UpnpClient.discover()
        preferred = self.mapping.external_port if self.mapping is not None else self.port
        external = await self._upnp.map("TCP", self.port, preferred, LIFETIME)
        await self._upnp.map("UDP", self.port, external, LIFETIME)
        address = await self._upnp.external_address()
        return Mapping("UPnP", self.port, external, address, self._upnp.lease)
