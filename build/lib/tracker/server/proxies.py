"""Which address an announce comes from when the tracker sits behind a reverse proxy.

A store served with TLS through nginx or Caddy on the same host sees every connection come from
the proxy; without this every peer would be 127.0.0.1. The proxy's `X-Forwarded-For` and
`X-Real-IP` say who the client is, but anyone can send those headers, so they are believed only
on connections from a configured list of trusted proxies (`SEEDMARKET_TRUSTED_PROXIES` in the
store), never from anyone else. `X-Forwarded-For` is read the way nginx's realip module does
with `real_ip_recursive on`: from the right, skipping trusted addresses, the first untrusted one
is the client; whatever a client wrote further left is its own claim and is ignored. The
announce's `ip=` parameter stays ignored whatever the proxy.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from tracker.server.http import HttpError

MAX_FORWARDED_HOPS = 32  # entries of X-Forwarded-For looked at; a longer chain is refused


def packed_ip(text: str) -> bytes:
    """The packed form of an IPv4 or IPv6 address; IPv4-mapped IPv6 addresses become IPv4.
    Raises OSError or ValueError for anything else (a zone id after % is dropped)."""
    if ":" not in text:
        return socket.inet_pton(socket.AF_INET, text)
    packed = socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0])
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return packed[12:]
    return packed


class TrustedProxies:
    """A set of networks (CIDRs) whose connections' forwarding headers are believed."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        networks: list[tuple[int, int, int]] = []  # (length in bytes, network as int, mask as int)
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {cidr!r} is not an IP address or CIDR network") from None
            width = network.max_prefixlen
            mask = ((1 << network.prefixlen) - 1) << (width - network.prefixlen)
            networks.append((width // 8, int(network.network_address), mask))
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, ip: bytes) -> bool:
        """Whether a packed address (see `packed_ip`) lies in one of the networks."""
        value = int.from_bytes(ip, "big")
        return any(len(ip) == length and value & mask == network for length, network, mask in self._networks)

    def client(self, ip: bytes, forwarded_for: bytes, real_ip: bytes) -> bytes:
        """The announcing client's packed address on a request from `ip` with these header values
        (empty when absent). Headers from an untrusted `ip` are ignored; a trusted proxy that
        sends a malformed address is refused (HttpError 400), since guessing would hand out
        wrong peers."""
        if not self.trusts(ip):
            return ip
        if forwarded_for:
            hops = forwarded_for.split(b",")
            if len(hops) > MAX_FORWARDED_HOPS:
                raise HttpError(400, f"X-Forwarded-For longer than {MAX_FORWARDED_HOPS} addresses")
            for hop in reversed(hops):
                ip = _parse(hop, "X-Forwarded-For")
                if not self.trusts(ip):
                    return ip
            return ip  # every hop trusted: the leftmost one, as nginx does
        if real_ip:
            return _parse(real_ip, "X-Real-IP")
        return ip


def _parse(value: bytes, header: str) -> bytes:
    text = value.strip()
    if text.startswith(b"[") and text.endswith(b"]"):
        text = text[1:-1]  # an IPv6 address in brackets, as some proxies write it
    try:
        return packed_ip(text.decode("ascii"))
    except (UnicodeDecodeError, OSError, ValueError):
        raise HttpError(400, f"a trusted proxy sent a malformed {header}") from None
