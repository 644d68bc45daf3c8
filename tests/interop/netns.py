"""Network namespaces for the interop tests: a private LAN of hosts with their own addresses.

Clients nobody here wrote treat loopback specially (Transmission ignores loopback peers, libtorrent's
default `ssrf_mitigation` refuses a loopback tracker whose passkey is in the path), so these tests
give every party a host of its own: a network namespace joined by a veth pair to a bridge that lives
in one more namespace. Nothing touches the machine's own network namespace, so parallel runs only
need namespace names of their own (the run's pid and a counter), and inside a lab addresses and
ports can be fixed ones (`LAN` 10.77.0.0/24): no other process lives in these namespaces.

A home router is a host with a second leg: a "home" namespace behind it on 192.168.77.0/24, NATed
(nftables masquerade) out of the router's LAN address.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAN_PREFIX = "10.77.0."
# miniupnpd maps nothing when its WAN address is private ("Port forwarding is impossible"), so a
# lab with a home router numbers its LAN from a public block. No packet can leave: the lab's
# namespaces have no link to the machine's own, and only processes inside them use the addresses.
PUBLIC_LAN_PREFIX = "11.77.0."
HOME_PREFIX = "192.168.77."
_runs = itertools.count()


def can_run() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the tests as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (make test installs it)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@dataclass
class Host:
    """A namespace with an address on the lab's LAN (or behind a home router)."""

    namespace: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
        """Run a short command inside this host, failing on a non-zero exit."""
        kwargs.setdefault("timeout", 30)
        return subprocess.run(self.command(argv), check=True, capture_output=True, text=True, **kwargs)

    def popen(self, argv: Sequence[str], log: Path, **kwargs) -> subprocess.Popen[bytes]:
        """Start a long-running process inside this host, its output going to `log`."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.command(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )


@dataclass
class Lab:
    """Namespaces made for one test and removed after it; use as a context manager."""

    prefix: str = field(default_factory=lambda: f"sm{os.getpid()}x{next(_runs)}")
    lan_prefix: str = LAN_PREFIX
    namespaces: list[str] = field(default_factory=list)
    _next_address: int = 2
    _links: int = 0

    def __enter__(self) -> Lab:
        self.bridge = self._namespace("br")
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every namespace (their veths and processes' sockets go with them)."""
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self.namespaces.clear()

    def _namespace(self, role: str) -> str:
        name = f"{self.prefix}{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def _veth(self, left_ns: str, left: str, right_ns: str, right: str) -> None:
        # Made in the first namespace and moved: veth names then never meet in the machine's own.
        self._links += 1
        temporary = f"{self.prefix[:9]}t{self._links}"
        _ip("-n", left_ns, "link", "add", left, "type", "veth", "peer", "name", temporary)
        _ip("-n", left_ns, "link", "set", temporary, "netns", right_ns)
        _ip("-n", right_ns, "link", "set", temporary, "name", right)
        _ip("-n", left_ns, "link", "set", left, "up")
        _ip("-n", right_ns, "link", "set", right, "up")

    def host(self, role: str) -> Host:
        """A new host on the LAN with the next free address."""
        namespace = self._namespace(role)
        address = f"{self.lan_prefix}{self._next_address}"
        self._next_address += 1
        port = f"p{len(self.namespaces)}"
        self._veth(namespace, "eth0", self.bridge, port)
        _ip("-n", self.bridge, "link", "set", port, "master", "br0")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        return Host(namespace, address)

    def home(self, role: str = "home") -> tuple[Host, Host]:
        """A home router on the LAN and a host behind it that it NATs: (router, home host)."""
        router = self.host(f"{role}rt")
        home = Host(self._namespace(role), f"{HOME_PREFIX}2")
        self._veth(router.namespace, "lan0", home.namespace, "eth0")
        _ip("-n", router.namespace, "addr", "add", f"{HOME_PREFIX}1/24", "dev", "lan0")
        _ip("-n", home.namespace, "addr", "add", f"{home.address}/24", "dev", "eth0")
        _ip("-n", home.namespace, "route", "add", "default", "via", f"{HOME_PREFIX}1")
        router.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        rules = (
            "table ip nat {\n"
            " chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
            f'  ip saddr {HOME_PREFIX}0/24 oifname "eth0" masquerade\n'
            " }\n"
            "}\n"
        )
        router.run(["nft", "-f", "-"], input=rules)
        return router, home
