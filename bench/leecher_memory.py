"""Peak memory (RSS high-water mark) of a leecher downloading a big torrent, ours vs libtorrent.

One libtorrent seed serves, in turn, our leecher (receipts on) and a libtorrent leecher; each
leecher is its own process and reports its own VmHWM from /proc.

    python bench/leecher_memory.py [--size-mib 4096] [--dir /tmp/seedmarket-bench-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import libtorrent as lt  # noqa: E402

from bench._lib import lt_settings, peak_rss_mib  # noqa: E402
from bench.download import DOMAIN, make_file  # noqa: E402
from tracker.heap import run_frozen  # noqa: E402
from tracker.metainfo import create_torrent, parse_metainfo  # noqa: E402
from tracker.peer.credit import ReceiptSigner  # noqa: E402
from tracker.peer.session import Session  # noqa: E402
from tracker.peer.torrent import TorrentConfig  # noqa: E402

BUYER_KEY = bytes.fromhex("33" * 32)


def add(session: lt.session, raw: bytes, folder: Path) -> lt.torrent_handle:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(raw))
    params.save_path = str(folder)
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(params)


async def ours(torrent_file: str, out: str, port: int) -> None:
    meta = parse_metainfo(Path(torrent_file).read_bytes())
    async with Session(host="127.0.0.1") as session:
        config = TorrentConfig(signer=ReceiptSigner(DOMAIN, 1, BUYER_KEY), upload=False)
        torrent = await session.add_torrent(meta, out, config)
        start = time.perf_counter()
        await session.connect(torrent, "127.0.0.1", port)
        await torrent.completed.wait()
        elapsed = time.perf_counter() - start
    print(json.dumps({"rss": peak_rss_mib(), "seconds": elapsed}))


def theirs(torrent_file: str, out: str, port: int) -> None:
    session = lt.session(lt_settings())
    handle = add(session, Path(torrent_file).read_bytes(), Path(out))
    start = time.perf_counter()
    handle.connect_peer(("127.0.0.1", port))
    while not handle.status().is_seeding:
        time.sleep(0.05)
    print(json.dumps({"rss": peak_rss_mib(), "seconds": time.perf_counter() - start}))


def leech_in_child(role: str, torrent_file: Path, out: Path, port: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    os.sync()  # the previous run's dirty pages must not throttle this one's writes
    cmd = [sys.executable, __file__, "--leech", role, str(torrent_file), str(out), str(port)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=4096)
    parser.add_argument("--dir", default="/tmp/seedmarket-bench-memory")
    parser.add_argument("--leech", nargs=4)
    args = parser.parse_args()
    if args.leech:
        role, torrent_file, out, port = args.leech
        if role == "ours":
            run_frozen(ours(torrent_file, out, int(port)))
        else:
            theirs(torrent_file, out, int(port))
        return
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "content").mkdir(parents=True)
    try:
        make_file(work / "content" / "big.bin", args.size_mib * 1024 * 1024)
        raw = create_torrent(work / "content" / "big.bin", "http://127.0.0.1:9/announce")
        torrent_file = work / "big.torrent"
        torrent_file.write_bytes(raw)
        seed = lt.session(lt_settings())
        handle = add(seed, raw, work / "content")
        while not handle.status().is_seeding:
            time.sleep(0.1)
        results = {
            role: leech_in_child(role, torrent_file, work / "out", seed.listen_port())
            for role in ("ours", "lt")
        }
        piece_length = parse_metainfo(raw).piece_length
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours_rss, lt_rss = results["ours"]["rss"], results["lt"]["rss"]
    pieces = f"{piece_length // 1024} KiB pieces"
    print(f"leecher peak RSS, {args.size_mib} MiB torrent, {pieces}, from a libtorrent seed")
    print(f"{'leecher':<12}{'peak RSS MiB':>14}{'seconds':>10}{'MiB/s':>9}")
    for name, label in (("ours", "ours"), ("lt", "libtorrent")):
        row = results[name]
        rate = args.size_mib / row["seconds"]
        print(f"{label:<12}{row['rss']:>14.1f}{row['seconds']:>10.1f}{rate:>9.1f}")
    print(f"ours / libtorrent: {ours_rss / lt_rss:.2f}x (goal: ours <= 150 MiB)")
    summary = {
        "name": "leecher_memory",
        "ours": round(ours_rss, 1),
        "peer": round(lt_rss, 1),
        "ratio": round(ours_rss / lt_rss, 3),
        "unit": "MiB peak RSS",
        "size_mib": args.size_mib,
        "goal_mib": 150,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
