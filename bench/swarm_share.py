"""A swarm of one seed and ten leechers on loopback: time for all to finish, and the share of all
uploaded bytes that came from the first seed (it falls when leechers trade pieces).

Ours (every peer its own process; the seed is a store seed, the leechers pay receipts and seed
what they have) against libtorrent (eleven sessions in one process), same content, same run.

    python bench/swarm_share.py [--size-mib 64] [--leechers 10] [--dir /tmp/seedmarket-bench-swarm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import libtorrent as lt  # noqa: E402

from bench._lib import lt_settings  # noqa: E402
from bench.download import DOMAIN, make_file  # noqa: E402
from tracker.heap import run_frozen  # noqa: E402
from tracker.metainfo import create_torrent, parse_metainfo  # noqa: E402
from tracker.peer.choker import PlainPeers  # noqa: E402
from tracker.peer.credit import ReceiptSigner  # noqa: E402
from tracker.peer.journal import ReceiptJournal  # noqa: E402
from tracker.peer.session import Session  # noqa: E402
from tracker.peer.torrent import TorrentConfig  # noqa: E402
from tracker.receipts import ReceiptVerifier  # noqa: E402


def run_libtorrent(raw: bytes, content: Path, work: Path, leechers: int) -> tuple[float, float]:
    info = lt.torrent_info(lt.bdecode(raw))
    sessions = [lt.session(lt_settings(allow_multiple_connections_per_ip=True)) for _ in range(leechers + 1)]
    handles = []
    for number, session in enumerate(sessions):
        params = lt.add_torrent_params()
        params.ti = info
        params.save_path = str(content if number == 0 else work / f"lt{number}")
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        handles.append(session.add_torrent(params))
    while not handles[0].status().is_seeding:
        time.sleep(0.05)
    start = time.perf_counter()
    for number, handle in enumerate(handles[1:], start=1):
        for other in range(number):
            handle.connect_peer(("127.0.0.1", sessions[other].listen_port()))
    while not all(h.status().is_seeding for h in handles[1:]):
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    uploads = [h.status().total_payload_upload for h in handles]
    return elapsed, uploads[0] / sum(uploads)


async def peer(number: int, torrent_file: str, folder: str, work: str, total: int) -> None:
    """One of our peers (a child process): 0 is the seed, the others leech and then seed."""
    meta = parse_metainfo(Path(torrent_file).read_bytes())
    base = Path(work)
    wallet = bytes([number + 1]) * 20
    session = Session(host="127.0.0.1", journal=ReceiptJournal(base / f"peer{number}.journal"))
    await session.start()
    verifier = ReceiptVerifier(DOMAIN)
    if number == 0:
        config = TorrentConfig(
            wallet=wallet, verifier=verifier, enforce_credit=False, plain_peers=PlainPeers.SERVE
        )
    else:
        signer = ReceiptSigner(DOMAIN, 1000 + number, bytes([number + 1]) * 32)
        config = TorrentConfig(signer=signer, wallet=wallet, verifier=verifier)
    torrent = await session.add_torrent(meta, folder, config, writable=number != 0)
    (base / f"port{number}").write_text(str(session.port))
    while not (base / "go").exists():
        await asyncio.sleep(0.01)
    for other in range(number):
        session.spawn(session.connect(torrent, "127.0.0.1", int((base / f"port{other}").read_text())))
    await torrent.completed.wait()
    (base / f"done{number}").touch()
    while not (base / "stop").exists():
        await asyncio.sleep(0.05)
    (base / f"up{number}").write_text(str(torrent.uploaded))
    await session.close()


def wait_for(paths: list[Path], children: list[subprocess.Popen]) -> None:
    while not all(path.exists() for path in paths):
        if any(child.poll() not in (None, 0) for child in children):
            raise RuntimeError("a peer process died")
        time.sleep(0.01)


def run_ours(torrent_file: Path, content: Path, work: Path, leechers: int) -> tuple[float, float]:
    base = work / "ours"
    base.mkdir()
    children = []
    for number in range(leechers + 1):
        folder = content if number == 0 else work / f"ours{number}"
        cmd = [sys.executable, __file__, "--peer", str(number), str(torrent_file), str(folder), str(base)]
        children.append(subprocess.Popen([*cmd, str(leechers + 1)]))
    try:
        wait_for([base / f"port{n}" for n in range(leechers + 1)], children)
        start = time.perf_counter()
        (base / "go").touch()
        wait_for([base / f"done{n}" for n in range(1, leechers + 1)], children)
        elapsed = time.perf_counter() - start
        (base / "stop").touch()
        wait_for([base / f"up{n}" for n in range(leechers + 1)], children)
        uploads = [int((base / f"up{n}").read_text()) for n in range(leechers + 1)]
    finally:
        for child in children:
            child.kill()
            child.wait()
    return elapsed, uploads[0] / sum(uploads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--leechers", type=int, default=10)
    parser.add_argument("--dir", default="/tmp/seedmarket-bench-swarm")
    parser.add_argument("--peer", nargs=5)
    args = parser.parse_args()
    if args.peer:
        number, torrent_file, folder, work, total = args.peer
        run_frozen(peer(int(number), torrent_file, folder, work, int(total)))
        return
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "content").mkdir(parents=True)
    try:
        make_file(work / "content" / "swarm.bin", args.size_mib * 1024 * 1024)
        raw = create_torrent(work / "content" / "swarm.bin", "http://127.0.0.1:9/announce")
        torrent_file = work / "swarm.torrent"
        torrent_file.write_bytes(raw)
        lt_time, lt_share = run_libtorrent(raw, work / "content", work, args.leechers)
        our_time, our_share = run_ours(torrent_file, work / "content", work, args.leechers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"swarm of 1 seed + {args.leechers} leechers, {args.size_mib} MiB, loopback")
    print(f"{'swarm':<12}{'all done s':>12}{'seed share':>12}")
    print(f"{'ours':<12}{our_time:>12.2f}{our_share:>12.1%}")
    print(f"{'libtorrent':<12}{lt_time:>12.2f}{lt_share:>12.1%}")
    print(
        f"a seed serving alone would have a share of 100%; ours / libtorrent time: {our_time / lt_time:.2f}x"
    )
    summary = {
        "name": "swarm_share",
        "ours": round(our_share, 4),
        "peer": round(lt_share, 4),
        "ratio": round(our_share / lt_share, 3),
        "unit": "first seed's share of uploaded bytes",
        "ours_seconds": round(our_time, 2),
        "peer_seconds": round(lt_time, 2),
        "size_mib": args.size_mib,
        "leechers": args.leechers,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
