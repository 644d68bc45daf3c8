"""Our side of an interop test, run inside a lab host: `python -m tests.interop.node SPEC.json`.

The test process lives in the machine's own network namespace; what must have a lab address runs
here instead, as a separate process under `ip netns exec`. SPEC is a JSON object:

- `role`: `store` (our HTTP tracker plus the store's seed announcing to it), `seed` (a buyer's
  `seedmarket seed`-style session: seeding config, receipts to the tracker) or `leech` (our
  leecher, exits 0 once the download is complete and verified), `libtorrent-seed`/`libtorrent-leech`
  (libtorrent with its default settings, the way qBittorrent and Deluge users have it).
- `torrent`, `folder`: the personal .torrent and where its content is (or goes).
- `ready`: a file written once the node listens (and, for leechers, once it is done).
- `store`: for the tracker, `{"passkeys": {passkey: wallet_hex}, "purchases": {id: buyer_hex},
  "wallet": the store's wallet_hex, "seeds": whether the store's seed runs beside the tracker}`.
- `key`, `purchase`: the buyer's key (hex) and purchase id for `seed` and `leech`.
- `map_port`, `status`: for `seed`, whether to ask the router for a port mapping, and a file the
  seeder keeps its reachability in (JSON: mapped port, the tracker's verdict, the user's line).

Ports are fixed (`TRACKER_PORT`, `PEER_PORT`): each host is a namespace of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import libtorrent as lt
from coincurve import PrivateKey

from client import reachability
from tests.peer.conftest import DOMAIN
from tracker.metainfo import parse_metainfo
from tracker.peer.choker import PlainPeers
from tracker.peer.credit import ReceiptSigner
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.submitter import receipts_url
from tracker.peer.torrent import TorrentConfig
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import ReceiptVerifier, address_of
from tracker.server import start_tracker

TRACKER_PORT = 6969
PEER_PORT = 6881


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


async def store(spec: dict[str, Any]) -> None:
    """Our tracker and the store's seed (the store's seed configuration: serves everyone)."""
    meta = parse_metainfo(Path(spec["torrent"]).read_bytes())
    policy, sink = MemoryPolicy(), MemorySink()
    for passkey, wallet in spec["store"]["passkeys"].items():
        policy.add_passkey(passkey, bytes.fromhex(wallet))
        policy.grant(bytes.fromhex(wallet), meta.info_hash)
    for purchase, buyer in spec["store"]["purchases"].items():
        sink.add_purchase(int(purchase), bytes.fromhex(buyer), meta.total_length)
    verifier = ReceiptVerifier(DOMAIN)
    options = spec["store"].get("tracker_options", {})
    server = await start_tracker(None, TRACKER_PORT, policy, sink, verifier, interval=60, **options)
    if not spec["store"]["seeds"]:
        Path(spec["ready"]).write_text("listening")
        await _until_stopped()
        server.close()
        await server.wait_closed()
        return
    journal = ReceiptJournal(Path(spec["folder"]).parent / "store.journal")
    async with Session(port=PEER_PORT, journal=journal) as session:
        config = TorrentConfig(
            wallet=bytes.fromhex(spec["store"]["wallet"]),
            verifier=verifier,
            enforce_credit=False,
            plain_peers=PlainPeers.SERVE,
        )
        torrent = await session.add_torrent(meta, spec["folder"], config, writable=False)
        session.announce(torrent, meta.announce)
        session.submit_receipts(receipts_url(meta.announce))
        Path(spec["ready"]).write_text("listening")
        await _until_stopped()
    server.close()
    await server.wait_closed()


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step: the test reads it while we write."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def _buyer_config(spec: dict[str, Any], *, seeding: bool) -> TorrentConfig:
    key = bytes.fromhex(spec["key"])
    signer = ReceiptSigner(DOMAIN, int(spec["purchase"]), key)
    if not seeding:
        return TorrentConfig(signer=signer)
    wallet = address_of(PrivateKey(key).public_key)
    return TorrentConfig(signer=signer, wallet=wallet, verifier=ReceiptVerifier(DOMAIN))


async def seed(spec: dict[str, Any]) -> None:
    """A buyer seeding what they bought, as `seedmarket seed` does (client.library.seeding_config);
    with `map_port`, asking the router to forward its port, and writing what `seedmarket seed`
    would show about reachability to the `status` file (JSON) as it changes."""
    meta = parse_metainfo(Path(spec["torrent"]).read_bytes())
    journal = ReceiptJournal(Path(spec["folder"]).parent / "buyer.journal")
    map_port = bool(spec.get("map_port"))
    async with Session(port=PEER_PORT, journal=journal, map_port=map_port) as session:
        torrent = await session.add_torrent(meta, spec["folder"], _buyer_config(spec, seeding=True))
        announcer = session.announce(torrent, meta.announce)
        session.submit_receipts(receipts_url(meta.announce))
        Path(spec["ready"]).write_text("listening")
        stopped = asyncio.ensure_future(_until_stopped())
        while not stopped.done():
            mapper = session.port_mapper
            status = {
                "mapped_port": mapper.external_port if mapper is not None else None,
                "mapping": mapper.state if mapper and (mapper.mapping or mapper.error) else None,
                "connectable": announcer.connectable,
                "warning": announcer.warning,
                "reachability": reachability.describe(session.port, mapper, [announcer]),
            }
            if "status" in spec:
                _write_atomically(Path(spec["status"]), json.dumps(status))
            await asyncio.wait([stopped], timeout=0.2)


async def leech(spec: dict[str, Any]) -> None:
    """Our leecher: download through the tracker, paying with receipts; `ready` says `complete`."""
    meta = parse_metainfo(Path(spec["torrent"]).read_bytes())
    async with Session(port=PEER_PORT) as session:
        torrent = await session.add_torrent(meta, spec["folder"], _buyer_config(spec, seeding=False))
        session.announce(torrent, meta.announce)
        Path(spec["ready"]).write_text("listening")
        await torrent.completed.wait()
        if torrent.error is not None:
            raise SystemExit(f"download failed: {torrent.error}")
        Path(spec["ready"]).write_text("complete")


def libtorrent_node(spec: dict[str, Any], *, seeding: bool) -> None:
    """libtorrent with its default settings: µTP in and out, encryption enabled, ssrf_mitigation
    on. Only the peer sources and port mapping that would reach outside the lab are off (DHT, LSD,
    UPnP, NAT-PMP): the tracker is the one way to find peers here."""
    session = lt.session(
        {"enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False}
    )
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(Path(spec["torrent"]).read_bytes()))
    params.save_path = spec["folder"]
    handle = session.add_torrent(params)
    Path(spec["ready"]).write_text("listening")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    done = False
    while not stopping:
        status = handle.status()
        if not seeding and status.is_seeding and not done:
            done = True
            Path(spec["ready"]).write_text("complete")
        time.sleep(0.1)


def main(path: str) -> None:
    spec = json.loads(Path(path).read_text())
    role = spec["role"]
    if role.startswith("libtorrent-"):
        libtorrent_node(spec, seeding=role == "libtorrent-seed")
        return
    runner = {"store": store, "seed": seed, "leech": leech}[role]
    asyncio.run(runner(spec))  # the tracker's connection handler wants asyncio's own loop


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv[1])
