"""UPnP IGD port mapping through async-upnp-client (SSDP search, then WANIPConnection's
AddPortMapping / DeletePortMapping / GetExternalIPAddress on the first gateway found).

The library does the SSDP and SOAP; what is ours is which gateway to trust (the one that answered
the search on this network, its control URL on the same host as its description) and the two
quirks of real routers handled here: some only take permanent leases (UPnP error 725), and a port
another host holds is answered with error 718, after which another external port is tried.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from urllib.parse import urlsplit

from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client import UpnpAction, UpnpDevice
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.exceptions import UpnpActionResponseError, UpnpError
from async_upnp_client.profiles.igd import IgdDevice

from tracker.peer.portmap.errors import MappingRefused, NoGateway, PortMapError

CONNECTION_SERVICES = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
SEARCH_SECONDS = 2
REQUEST_TIMEOUT = 5
DESCRIPTION = "seedmarket"
ONLY_PERMANENT_LEASES = 725
CONFLICT = 718
OTHER_PORTS = 3  # after a conflict, random external ports tried


def _local_address_towards(host: str) -> str:
    """Our address on the interface that reaches `host` (the internal client to map to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # a UDP connect sends nothing; it picks the route
        return str(probe.getsockname()[0])


class UpnpClient:
    """One Internet Gateway Device found by SSDP on this network."""

    def __init__(self, device: UpnpDevice, internal_address: str) -> None:
        self.device = device
        self.internal_address = internal_address
        self.lease = 0

    def _action(self, name: str) -> UpnpAction:
        # Called directly rather than through IgdDevice: its port mapping calls send the wildcard
        # remote host as "0.0.0.0", which IGDs that take no remote host refuse (error 726).
        services = {service.service_type: service for service in self.device.all_services}
        for service_type in CONNECTION_SERVICES:
            service = services.get(service_type)
            if service is not None and service.has_action(name):
                return service.action(name)
        raise PortMapError(f"the UPnP gateway has no {name}")

    @classmethod
    async def discover(cls) -> UpnpClient:
        """Search for an IGD; raises NoGateway when none answers."""
        try:
            found = await IgdDevice.async_search(timeout=SEARCH_SECONDS)
        except (OSError, UpnpError) as exc:
            raise NoGateway(f"UPnP search failed: {exc}") from exc
        locations = sorted({str(answer["location"]) for answer in found if answer.get("location")})
        if not locations:
            raise NoGateway("no UPnP Internet Gateway Device answered")
        location = locations[0]
        host = urlsplit(location).hostname
        if host is None or not ipaddress.ip_address(host).is_private:
            raise PortMapError(f"ignoring a UPnP gateway that is not on this network: {location}")
        try:
            factory = UpnpFactory(AiohttpRequester(timeout=REQUEST_TIMEOUT))
            device = await factory.async_create_device(location)
        except (OSError, UpnpError) as exc:
            raise PortMapError(f"cannot read the UPnP gateway's description at {location}: {exc}") from exc
        if not IgdDevice.is_profile_device(device):
            raise NoGateway(f"the UPnP device at {location} is not an Internet Gateway Device")
        return cls(device, _local_address_towards(host))

    async def external_address(self) -> str | None:
        """The gateway's public address, if it says."""
        try:
            answer = await self._action("GetExternalIPAddress").async_call()
        except (OSError, UpnpError, PortMapError):
            return None
        address = answer.get("NewExternalIPAddress")
        return str(address) if address else None

    async def _add(self, protocol: str, internal_port: int, external_port: int, lease: int) -> None:
        await self._action("AddPortMapping").async_call(
            NewRemoteHost="",
            NewExternalPort=external_port,
            NewProtocol=protocol,
            NewInternalPort=internal_port,
            NewInternalClient=self.internal_address,
            NewEnabled=True,
            NewPortMappingDescription=DESCRIPTION,
            NewLeaseDuration=lease,
        )

    async def map(self, protocol: str, internal_port: int, external_port: int, lease_seconds: int) -> int:
        """Map `protocol` `internal_port`, preferably to `external_port`; returns the external port."""
        if protocol not in ("TCP", "UDP") or not 0 < internal_port < 65536 or not 0 < external_port < 65536:
            raise ValueError(f"cannot map {protocol} port {internal_port} to {external_port}")
        lease = lease_seconds
        candidates = [external_port, *(random.randint(10_000, 60_000) for _ in range(OTHER_PORTS))]
        refusal: UpnpActionResponseError | None = None
        for candidate in candidates:
            try:
                try:
                    await self._add(protocol, internal_port, candidate, lease)
                except UpnpActionResponseError as exc:
                    if exc.error_code != ONLY_PERMANENT_LEASES:
                        raise
                    lease = 0
                    await self._add(protocol, internal_port, candidate, lease)
            except UpnpActionResponseError as exc:
                refusal = exc
                if exc.error_code == CONFLICT:
                    continue
                break
            except (OSError, UpnpError) as exc:
                raise PortMapError(f"UPnP AddPortMapping failed: {exc}") from exc
            self.lease = lease
            return candidate
        assert refusal is not None
        raise MappingRefused(
            f"the UPnP gateway refused to map {protocol} port {internal_port}: "
            f"error {refusal.error_code} ({refusal.error_desc})"
        )

    async def unmap(self, protocol: str, external_port: int) -> None:
        """Remove a mapping; errors are ignored (it may have lapsed)."""
        try:
            await self._action("DeletePortMapping").async_call(
                NewRemoteHost="", NewExternalPort=external_port, NewProtocol=protocol
            )
        except (OSError, UpnpError, PortMapError):
            return
