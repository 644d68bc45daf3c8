"""Why a port could not be mapped."""

from __future__ import annotations

from tracker.peer.errors import PeerError


class PortMapError(PeerError):
    """No mapping: no gateway answered, or it failed."""


class NoGateway(PortMapError):
    """There is no router to ask (no default gateway, or no UPnP IGD answered the search)."""


class MappingRefused(PortMapError):
    """A router answered and refused to map the port (its policy, or the user's settings)."""
