"""Whether peers outside can connect to a seeder, in words a user can act on.

A seeder nobody can reach seeds all day and earns nothing. Two sources say whether it is reachable:
the router (did NAT-PMP or UPnP map our port? tracker.peer.portmap) and, better, the tracker, which
tries to connect back to the address and port we announced (`sm_connectable` in its answer). The
tracker's word wins when it has one; the mapping is what we can tell the user about the router.
"""

from __future__ import annotations

from collections.abc import Iterable

from tracker.peer.announcer import Announcer
from tracker.peer.portmap import MappingRefused, PortMapper


def describe(port: int, mapper: PortMapper | None, announcers: Iterable[Announcer]) -> str:
    """One line: "reachable ..." or "not reachable ..." with what to do, or what is not known yet."""
    verdicts = [a for a in announcers if a.connectable is not None]
    mapping = mapper.mapping if mapper is not None else None
    if any(a.connectable for a in verdicts):
        how = f" through the router's port {mapping.external_port} ({mapping.method})" if mapping else ""
        return f"reachable: the tracker connected to this seeder{how}"
    if verdicts:
        warning = next((a.warning for a in verdicts if a.warning), None)
        said = f" (the tracker says: {warning})" if warning else ""
        return f"not reachable: the tracker could not connect to this seeder{said}. {_advice(port, mapper)}"
    if mapping is not None:
        return (
            f"port {port} mapped by {mapping.method} to {mapping.external_address or 'the router'}:"
            f"{mapping.external_port}; waiting for the tracker's check"
        )
    if mapper is not None and mapper.error is not None:
        return f"perhaps not reachable: {mapper.error}. {_advice(port, mapper)}"
    return "reachability not known yet: waiting for the tracker's check"


def _advice(port: int, mapper: PortMapper | None) -> str:
    if mapper is None:
        return (
            f"Run with --map-port to let the router forward port {port}, or forward TCP and UDP port "
            f"{port} to this computer in the router's settings"
        )
    if mapper.mapping is not None:
        return (
            f"The router forwards port {mapper.mapping.external_port}, yet nobody got through: check "
            f"this computer's firewall for TCP and UDP port {port}, and whether a second router sits "
            f"in front of this one (forward the port on that one too)"
        )
    if isinstance(mapper.error, MappingRefused):
        return (
            f"The router refused to forward the port: allow UPnP or NAT-PMP mappings for this computer "
            f"in the router's settings, or forward TCP and UDP port {port} to it by hand"
        )
    return (
        f"Enable UPnP or NAT-PMP on the router, or forward TCP and UDP port {port} to this computer "
        f"in its settings (and allow the port in this computer's firewall)"
    )
