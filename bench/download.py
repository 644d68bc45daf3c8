"""Loopback download of one torrent, one seed and one leecher, data written to disk.

Runs, on the same file in the same run: libtorrent -> libtorrent over TCP (uTP off), then our
seed -> our leecher with receipts on (the seed bills a wallet and journals every receipt), then
ours with receipts off. Each of our peers is its own process (like two libtorrent threads pools).
Also reports how many receipts the seed journaled per GiB: each is a signature on the leecher and a
verification and an fsync on the seed, the main cost of receipts.

Then the row for ordinary clients: our seed as the store runs it (TCP and µTP on one port) and a
libtorrent leecher with its default settings (µTP on, what qBittorrent and Deluge users have),
against the same leecher with µTP off: the time from `connect_peer` to the first payload byte,
median of `--first-byte-runs`. A client that had to wait for µTP to fail before trying TCP shows
here as a ratio far above 1.

CPU per MiB counts both of our processes (the seed's from /proc, the leecher's from getrusage) and
both libtorrent sessions (one process): it moves less with the load of a shared machine than the
throughput does. `--profile DIR` writes a cProfile of each of our seeds and leechers there
(`python -m pstats DIR/seed-on-1.prof`).

    python bench/download.py [--size-mib 1024] [--repeat 3] [--dir /tmp/seedmarket-bench-download]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import libtorrent as lt  # noqa: E402
from coincurve import PrivateKey  # noqa: E402

from bench._lib import lt_add_running, lt_settings  # noqa: E402
from tracker.heap import run_frozen  # noqa: E402
from tracker.metainfo import create_torrent, parse_metainfo  # noqa: E402
from tracker.peer.credit import ReceiptSigner  # noqa: E402
from tracker.peer.journal import ReceiptJournal  # noqa: E402
from tracker.peer.session import Session  # noqa: E402
from tracker.peer.torrent import TorrentConfig  # noqa: E402
from tracker.receipts import Domain, ReceiptVerifier, address_of  # noqa: E402

DOMAIN = Domain(chain_id=31337, verifying_contract=bytes(range(20)))
SELLER_KEY = bytes.fromhex("11" * 32)
BUYER_KEY = bytes.fromhex("22" * 32)
CHUNK = 8 * 1024 * 1024


def make_file(path: Path, size: int) -> None:
    """Random-ish content without spending minutes in os.urandom: a random 8 MiB block, varied."""
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "big")  # every piece differs
            take = min(CHUNK, size - written)
            handle.write(block[:take])
            written += take


def _own_cpu() -> float:
    """CPU seconds this process used so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_cpu(pid: int) -> float:
    """CPU seconds a running child used so far (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_libtorrent(raw: bytes, content_dir: Path, out_dir: Path) -> tuple[float, float]:
    """Seconds to download, and the CPU seconds both sessions used meanwhile."""
    seed = lt.session(lt_settings())
    leech = lt.session(lt_settings())
    info = lt.torrent_info(lt.bdecode(raw))
    handles = []
    for session, folder in ((seed, content_dir), (leech, out_dir)):
        handles.append(lt_add_running(session, info, folder))
    while not handles[0].status().is_seeding:
        time.sleep(0.05)
    start = time.perf_counter()
    cpu = _own_cpu()
    handles[1].connect_peer(("127.0.0.1", seed.listen_port()))
    while not handles[1].status().is_seeding:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    cpu = _own_cpu() - cpu
    for session, handle in zip((seed, leech), handles, strict=True):
        session.remove_torrent(handle)
    return elapsed, cpu


async def serve(torrent_file: str, content_dir: str, port_file: str, receipts: str) -> None:
    """Seed role (a child process): serve until terminated."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    meta = parse_metainfo(Path(torrent_file).read_bytes())
    journal = ReceiptJournal(Path(port_file).with_suffix(".journal")) if receipts == "on" else None
    # Receipts on/off compare TCP with TCP (µTP: bench/utp.py); "default" is the store's own seed.
    session = Session(host="127.0.0.1", journal=journal, utp=receipts == "default")
    await session.start()
    config = TorrentConfig()
    if receipts == "on":
        wallet = address_of(PrivateKey(SELLER_KEY).public_key)
        config = TorrentConfig(wallet=wallet, verifier=ReceiptVerifier(DOMAIN))
    await session.add_torrent(meta, content_dir, config, writable=False)
    Path(port_file).write_text(str(session.port))
    await stop.wait()


async def leech(meta, out_dir: Path, port: int, receipts: bool) -> float:
    async with Session(host="127.0.0.1", utp=False) as session:
        config = TorrentConfig(signer=ReceiptSigner(DOMAIN, 1, BUYER_KEY) if receipts else None, upload=False)
        torrent = await session.add_torrent(meta, out_dir, config)
        start = time.perf_counter()
        await session.connect(torrent, "127.0.0.1", port)
        await torrent.completed.wait()
        elapsed = time.perf_counter() - start
        assert torrent.error is None, torrent.error
        return elapsed


def run_ours(
    torrent_file: Path,
    meta,
    content_dir: Path,
    out_dir: Path,
    work: Path,
    receipts: bool,
    profile: Path | None = None,
) -> tuple[float, int, float]:
    """Seconds to download, how many receipts the seed journaled on the way, and the CPU seconds
    both processes used (the seed's from its start: it idles until the leecher connects)."""
    port_file = work / f"port-{int(receipts)}"
    journal_file = port_file.with_suffix(".journal")
    port_file.unlink(missing_ok=True)
    journal_file.unlink(missing_ok=True)
    mode = "on" if receipts else "off"
    cmd = [sys.executable, __file__, "--serve", str(torrent_file), str(content_dir), str(port_file), mode]
    env = dict(os.environ)
    number = len(list(profile.glob(f"seed-{mode}-*.prof"))) + 1 if profile else 0
    if profile:
        env["SEEDMARKET_BENCH_PROFILE"] = str(profile / f"seed-{mode}-{number}.prof")
    child = subprocess.Popen(cmd, env=env)
    try:
        while not (port_file.exists() and port_file.read_text()):
            if child.poll() is not None:
                raise RuntimeError("the seed process died")
            time.sleep(0.05)
        seed_cpu = _child_cpu(child.pid)
        cpu = _own_cpu()
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        elapsed = run_frozen(leech(meta, out_dir, int(port_file.read_text()), receipts))
        if profiler and profile:
            profiler.disable()
            profiler.dump_stats(profile / f"leech-{mode}-{number}.prof")
        cpu = _own_cpu() - cpu + _child_cpu(child.pid) - seed_cpu
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if not receipts:
        return elapsed, 0, cpu
    journal = ReceiptJournal(journal_file)  # each receipt cost a signature, a check and an fsync
    try:
        return elapsed, journal.records, cpu
    finally:
        journal.close()


def first_byte(raw: bytes, port: int, out_dir: Path, utp: bool) -> float:
    """Seconds from asking a fresh libtorrent leecher (defaults, or µTP off) to connect to our seed
    until its first payload byte."""
    overrides = {"enable_outgoing_utp": True, "enable_incoming_utp": True} if utp else {}
    session = lt.session(lt_settings(**overrides))
    handle = lt_add_running(session, lt.torrent_info(lt.bdecode(raw)), out_dir)
    start = time.perf_counter()
    handle.connect_peer(("127.0.0.1", port))
    while handle.status().total_payload_download == 0:
        if time.perf_counter() - start > 60:
            raise RuntimeError("no byte from our seed in 60 s")
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    session.remove_torrent(handle, lt.session.delete_files)
    return elapsed


def first_byte_rows(
    raw: bytes, torrent_file: Path, content_dir: Path, work: Path, runs: int
) -> dict[str, float]:
    """Median time to first byte, libtorrent defaults against µTP off, from one seed process."""
    port_file = work / "port-default"
    port_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        str(torrent_file),
        str(content_dir),
        str(port_file),
        "default",
    ]
    child = subprocess.Popen(cmd)
    times: dict[str, list[float]] = {"default": [], "tcp": []}
    try:
        while not (port_file.exists() and port_file.read_text()):
            if child.poll() is not None:
                raise RuntimeError("the seed process died")
            time.sleep(0.05)
        port = int(port_file.read_text())
        for _ in range(runs):
            for name, taken in times.items():
                out = work / "first-byte"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                taken.append(first_byte(raw, port, out, utp=name == "default"))
    finally:
        child.kill()
        child.wait()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default="/tmp/seedmarket-bench-download")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each client; medians are reported")
    parser.add_argument("--first-byte-runs", type=int, default=7, help="libtorrent connects timed")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of our peers here")
    parser.add_argument("--serve", nargs=4)
    args = parser.parse_args()
    if args.serve:
        target = os.environ.get("SEEDMARKET_BENCH_PROFILE")
        profiler = cProfile.Profile() if target else None
        if profiler:
            profiler.enable()
        run_frozen(serve(*args.serve))
        if profiler and target:
            profiler.disable()
            profiler.dump_stats(target)
        return
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "content").mkdir(parents=True)
    size = args.size_mib * 1024 * 1024
    try:
        make_file(work / "content" / "payload.bin", size)
        raw = create_torrent(work / "content" / "payload.bin", "http://127.0.0.1:9/announce")
        torrent_file = work / "payload.torrent"
        torrent_file.write_bytes(raw)
        meta = parse_metainfo(raw)
        names = ("libtorrent", "ours, receipts on", "ours, receipts off")
        rates: dict[str, list[float]] = {name: [] for name in names}
        cpu_per_mib: dict[str, list[float]] = {name: [] for name in names}
        receipts: list[int] = []
        for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits all alike
            for name in names:
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                os.sync()  # the previous run's dirty pages must not throttle this one's writes
                if name == "libtorrent":
                    elapsed, cpu = run_libtorrent(raw, work / "content", out)
                else:
                    on = name.endswith("on")
                    elapsed, journaled, cpu = run_ours(
                        torrent_file, meta, work / "content", out, work, on, args.profile
                    )
                    if on:
                        receipts.append(journaled)
                rates[name].append(size / elapsed / 2**20)
                cpu_per_mib[name].append(1000 * cpu / args.size_mib)
                shutil.rmtree(out, ignore_errors=True)
        results = {name: statistics.median(values) for name, values in rates.items()}
        cpu_ms = {name: statistics.median(values) for name, values in cpu_per_mib.items()}
        first = first_byte_rows(raw, torrent_file, work / "content", work, args.first_byte_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peer = results["libtorrent"]
    ours = results["ours, receipts on"]
    off = results["ours, receipts off"]
    pieces = f"piece length {meta.piece_length // 1024} KiB"
    print(f"loopback download of {args.size_mib} MiB, {pieces}, data on disk")
    print(f"{'client':<22}{'median MiB/s':>14}{'vs libtorrent':>16}{'CPU ms/MiB':>12}   all runs")
    for name, rate in results.items():
        runs = " ".join(f"{value:.0f}" for value in rates[name])
        print(f"{name:<22}{rate:>14.1f}{rate / peer:>15.2f}x{cpu_ms[name]:>12.2f}   {runs}")
    per_gib = statistics.median(receipts) * 1024 / args.size_mib
    print(f"receipts cost {100 * (1 - ours / off):.1f} % of throughput (receipts on vs off)")
    print(f"receipts signed, verified and journaled per GiB: {per_gib:.0f}")
    first_ratio = first["default"] / first["tcp"]
    print(
        f"libtorrent leecher from our seed, time to first byte (median of {args.first_byte_runs}): "
        f"default settings (µTP on) {1000 * first['default']:.1f} ms, µTP off {1000 * first['tcp']:.1f} ms, "
        f"{first_ratio:.2f}x (goal <= 1.2x)"
    )
    summary = {
        "name": "download",
        "ours": round(ours, 1),
        "peer": round(peer, 1),
        "ratio": round(ours / peer, 3),
        "unit": "MiB/s",
        "ours_receipts_off": round(off, 1),
        "receipts_cost_pct": round(100 * (1 - ours / off), 2),
        "runs_ours": [round(value) for value in rates["ours, receipts on"]],
        "runs_ours_receipts_off": [round(value) for value in rates["ours, receipts off"]],
        "runs_peer": [round(value) for value in rates["libtorrent"]],
        "cpu_ms_per_mib_ours": round(cpu_ms["ours, receipts on"], 2),
        "cpu_ms_per_mib_ours_receipts_off": round(cpu_ms["ours, receipts off"], 2),
        "cpu_ms_per_mib_peer": round(cpu_ms["libtorrent"], 2),
        "receipts_per_gib": round(per_gib),
        "first_byte_default_ms": round(1000 * first["default"], 1),
        "first_byte_tcp_ms": round(1000 * first["tcp"], 1),
        "first_byte_ratio": round(first_ratio, 2),
        "size_mib": args.size_mib,
        "runs": args.repeat,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
