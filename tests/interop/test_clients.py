"""Clients nobody here wrote, with their default settings, against our tracker and seeds.

Each downloads a purchased product's personal .torrent through our tracker, from the store's seed
or from a buyer's `seedmarket seed`-style session, and the files are compared byte for byte. And
the other way: our leecher downloading from a Transmission seed and a default libtorrent seed.
Every party is a host of a lab (tests.interop.netns): Transmission ignores loopback peers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.interop.conftest import Buyer, Store
from tests.interop.netns import Host


def aria2(store: Store, host: Host, buyer: Buyer, folder: Path) -> None:
    """aria2c as it comes, bar the DHT and local peer discovery (nothing outside the lab to find);
    it exits once the download is complete and checked."""
    store.start(
        host,
        [
            "aria2c",
            f"--dir={folder}",
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--summary-interval=0",
            "--console-log-level=warn",
            str(buyer.torrent),
        ],
        buyer.name,
    )


def transmission(store: Store, host: Host, buyer: Buyer, folder: Path) -> None:
    """transmission-cli with Debian's defaults (µTP on, encryption preferred), bar the DHT and port
    mapping, which would only look outside the lab. It verifies what `folder` holds and seeds it
    when complete; it never exits on its own."""
    config = store.root / f"{buyer.name}.transmission"
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({"dht-enabled": False, "lpd-enabled": False}))
    store.start(
        host, ["transmission-cli", "-M", "-g", str(config), "-w", str(folder), str(buyer.torrent)], buyer.name
    )


def libtorrent(store: Store, host: Host, buyer: Buyer, folder: Path) -> None:
    """libtorrent with its default settings (µTP in and out, see tests.interop.node)."""
    role = "libtorrent-seed" if store.received_intact(folder) else "libtorrent-leech"
    store.node(host, role, folder, buyer)


CLIENTS = {"aria2": aria2, "transmission": transmission, "libtorrent": libtorrent}
SEEDING_CLIENTS = {"transmission": transmission, "libtorrent": libtorrent}


@pytest.mark.parametrize("client", CLIENTS)
def test_a_client_downloads_a_personal_torrent_intact_from_the_store_seed(store: Store, client: str):
    buyer = store.buyer(client)
    store.open_store()
    folder = store.root / "downloads"
    CLIENTS[client](store, store.lab.host("buyer"), buyer, folder)
    store.wait(lambda: store.received_intact(folder), f"{client} to download")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_client_downloads_a_personal_torrent_intact_from_a_buyer_seeding_at_home(store: Store, client: str):
    seeder = store.buyer("seeder")
    buyer = store.buyer(client)
    store.open_store(seeds=False)  # the buyer's seed is the only source
    seeded = store.root / "seeder"
    shutil.copytree(store.content.folder, seeded)
    store.node(store.lab.host("seeder"), "seed", seeded, seeder)
    folder = store.root / "downloads"
    CLIENTS[client](store, store.lab.host("buyer"), buyer, folder)
    store.wait(lambda: store.received_intact(folder), f"{client} to download")


@pytest.mark.parametrize("client", SEEDING_CLIENTS)
def test_our_leecher_downloads_intact_from_a_client_seeding_with_its_defaults(store: Store, client: str):
    seeder = store.buyer(client)
    buyer = store.buyer("ours")
    store.open_store(seeds=False)  # the other client is the only source
    seeded = store.root / "seeder"
    shutil.copytree(store.content.folder, seeded)
    SEEDING_CLIENTS[client](store, store.lab.host("seeder"), seeder, seeded)
    folder = store.root / "downloads"
    ready = store.node(store.lab.host("buyer"), "leech", folder, buyer)
    store.wait(lambda: ready.read_text() == "complete", "our leecher")
    assert store.received_intact(folder)
