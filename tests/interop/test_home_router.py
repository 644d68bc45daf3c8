"""Seeding from home: a buyer behind a home router's NAT, the router running Debian's miniupnpd.

The router is a lab host that masquerades a "home" namespace (tests.interop.netns) and runs
miniupnpd (UPnP IGD, NAT-PMP and PCP) on its nftables backend. A seeder at home asks it to forward
its port (tracker.peer.portmap); a peer outside finds the seeder through our tracker and connects
through the mapping. With the router's rules denying every mapping, the seeder learns from the
tracker that nobody can reach it, and is told what to do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.interop.conftest import READY_TIMEOUT, Store, wait_for
from tests.interop.netns import HOME_PREFIX, PUBLIC_LAN_PREFIX, Host, Lab, can_run
from tests.interop.node import PEER_PORT

# The chains miniupnpd's nftables backend fills (its defaults: table inet "filter", chains
# "miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"), hooked as Debian's nft_init.sh does.
MINIUPNPD_CHAINS = """table inet filter {
 chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
 chain miniupnpd { }
 chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
 chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
 chain prerouting_miniupnpd { }
 chain postrouting_miniupnpd { }
}
"""
# A refused mapping is tested through UPnP alone: against a deny-all rule miniupnpd's NAT-PMP
# tries every other external port before answering (a minute, during which it answers nothing
# else), where its UPnP refuses at once (error 606).
ALLOW_HOME = f"allow 1024-65535 {HOME_PREFIX}0/24 1024-65535"
DENY_ALL = "deny 0-65535 0.0.0.0/0 0-65535"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A lab whose LAN stands for the Internet: miniupnpd maps nothing on a private WAN address."""
    reason = can_run()
    if reason is not None:
        pytest.skip(reason)
    with Lab(lan_prefix=PUBLIC_LAN_PREFIX) as made:
        yield made


def start_miniupnpd(store: Store, router: Host, *, allow: bool, natpmp: bool = True) -> None:
    """miniupnpd on the router, mapping for the home network only when `allow`; UPnP IGD always,
    NAT-PMP and PCP when `natpmp`."""
    router.run(["nft", "-f", "-"], input=MINIUPNPD_CHAINS)
    config = store.root / "miniupnpd.conf"
    rules = [ALLOW_HOME, DENY_ALL] if allow else [DENY_ALL]
    config.write_text(
        "\n".join(
            [
                "ext_ifname=eth0",
                "listening_ip=lan0",
                "http_port=5000",
                f"enable_natpmp={'yes' if natpmp else 'no'}",
                "enable_upnp=yes",
                "secure_mode=yes",
                "uuid=5e3d1c2a-77a0-4d1e-9a59-3c0ffee00001",
                *rules,
                "",
            ]
        )
    )
    log = store.root / "miniupnpd.log"
    process = store.start(
        router, ["miniupnpd", "-d", "-f", str(config), "-P", str(store.root / "miniupnpd.pid")], "miniupnpd"
    )
    wait_for(
        lambda: "HTTP listening" in log.read_text(errors="replace"),
        READY_TIMEOUT,
        "miniupnpd",
        process,
        log,
    )


def forwarded(router: Host) -> str:
    """The router's port forwards, as nftables lists them."""
    return router.run(["nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"]).stdout


def status(store: Store, name: str) -> dict[str, object]:
    """What the seeder at home last wrote about its reachability."""
    path = store.root / f"{name}.status"
    return json.loads(path.read_text()) if path.exists() and path.read_text() else {}


def seed_at_home(store: Store, *, allow: bool, natpmp: bool = True) -> tuple[Host, Host]:
    """A buyer seeding from behind the router, asking it for a mapping; returns (router, home)."""
    router, home = store.lab.home()
    start_miniupnpd(store, router, allow=allow, natpmp=natpmp)
    seeded = store.root / "home-seed"
    shutil.copytree(store.content.folder, seeded)
    status_file = store.root / "home.status"
    store.node(home, "seed", seeded, store.buyers["home"], map_port=True, status=str(status_file))
    return router, home


@pytest.mark.parametrize("method", ["NAT-PMP", "UPnP"])
def test_a_seeder_at_home_maps_its_port_and_a_peer_outside_downloads_through_the_mapping(
    store: Store, method: str
):
    store.buyer("home")
    outside = store.buyer("outside")
    store.open_store(seeds=False)  # the seeder at home is the only source
    router, _ = seed_at_home(store, allow=True, natpmp=method == "NAT-PMP")
    store.wait(lambda: status(store, "home").get("mapped_port"), "the port mapping", READY_TIMEOUT)
    assert status(store, "home")["mapped_port"] == PEER_PORT
    assert str(status(store, "home")["mapping"]).startswith(f"{method} maps")
    assert f"dnat ip to {HOME_PREFIX}2:{PEER_PORT}" in forwarded(router)

    folder = store.root / "downloads"
    ready = store.node(store.lab.host("outside"), "leech", folder, outside)
    store.wait(lambda: ready.read_text() == "complete", "the peer outside")
    assert store.received_intact(folder)

    store.stop("home")  # the seeder closes its session: the mapping goes with it
    assert f"{HOME_PREFIX}2:{PEER_PORT}" not in forwarded(router)


def test_a_router_refusing_the_mapping_leaves_the_seeder_told_what_to_do(store: Store):
    store.buyer("home")
    store.open_store(seeds=False)
    router, _ = seed_at_home(store, allow=False, natpmp=False)
    store.wait(lambda: status(store, "home").get("mapping"), "the mapping's outcome", READY_TIMEOUT)
    shown = status(store, "home")
    assert shown["mapped_port"] is None
    assert "refused" in str(shown["mapping"])
    line = str(shown["reachability"])
    assert "allow UPnP or NAT-PMP mappings for this computer" in line and f"port {PEER_PORT}" in line
    assert f"{HOME_PREFIX}2" not in forwarded(router)


@pytest.mark.parametrize("allow", [True, False], ids=["mapped", "refused"])
def test_the_tracker_tells_a_seeder_at_home_whether_peers_can_reach_it(store: Store, allow: bool):
    store.buyer("home")
    store.open_store(seeds=False, connect_check=True)  # the store turns the check on
    seed_at_home(store, allow=allow, natpmp=allow)
    store.wait(
        lambda: status(store, "home").get("connectable") is not None, "the tracker's verdict", READY_TIMEOUT
    )
    shown = status(store, "home")
    if allow:
        assert shown["connectable"] is True
        assert str(shown["reachability"]).startswith("reachable")
    else:
        assert shown["connectable"] is False
        assert shown["warning"]
        line = str(shown["reachability"])
        assert line.startswith("not reachable")
        assert "refused" in line and f"port {PEER_PORT}" in line  # what to do, and which port
