"""Announce throughput and latency of our tracker beside opentracker and webtorrent's
bittorrent-tracker, in one run, under the same load generator (wrk with a Lua script that varies
info_hash, peer_id and port) on loopback, each tracker pinned to the same single core.

    python bench/tracker_announce.py [--duration 6] [--rounds 3] [--connections 32] [--swarms 10000]
                                     [--peers 100000] [--trackers ours,opentracker,bittorrent-tracker]

Each tracker is first filled with `--peers` peers in `--swarms` swarms (each peer announces
`started` once), then wrk sends regular announces of random known peers for `--duration`
seconds, with keep-alive and then with a new connection per request (opentracker closes every
connection after one answer, so it runs only the latter). A sample of answers from every tracker
is checked to be a real peer list, not a failure.

Needs `apt-get install -y opentracker wrk`, node and npm; bittorrent-tracker is installed on first
use with `npm install --ignore-scripts` into ~/.cache/seedmarket-bench (never into the
repository). Ends with one JSON line: announces/s of each tracker in its faster mode; `ratio` is
ours / opentracker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

import bencodepy
import uvloop
from _lib import WRK_ANNOUNCE_LUA, pinned, process_cpu_seconds, process_rss

from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import start_tracker

INFO_PREFIX = b"SEEDMARKETBENCH!"  # 16 bytes; the last 4 bytes of an infohash number the swarm
PASSKEYS = 1000  # wallets behind our tracker's announces
SERVER_CORE, LOAD_CORE = "1", "0"
CACHE = Path(os.environ.get("SEEDMARKET_BENCH_CACHE", Path.home() / ".cache" / "seedmarket-bench"))
BITTORRENT_TRACKER_DIR = CACHE / "bittorrent-tracker"
READY_TIMEOUT = 60.0


# ----- the synthetic population, mirrored by the Lua script -----


def info_hash(swarm: int) -> bytes:
    """The infohash of swarm number `swarm`."""
    return INFO_PREFIX + swarm.to_bytes(4, "big")


def passkey(peer: int) -> str:
    """The passkey a peer announces with (PASSKEYS wallets)."""
    return f"{peer % PASSKEYS:032x}"


def wallet(number: int) -> bytes:
    return (number + 1).to_bytes(20, "big")


def announce_path(prefix: str, passkeys: bool, swarms: int, peer: int, event: str | None) -> str:
    """What the Lua script sends for peer `peer` (swarm peer % swarms, a port unique in it)."""
    swarm, port = peer % swarms, 1 + peer // swarms
    path = f"/{passkey(peer)}{prefix}" if passkeys else prefix  # the handed-out /<passkey>/announce
    left = 0 if peer % 4 == 0 else 1000
    query = (
        f"info_hash={quote_from_bytes(info_hash(swarm))}&peer_id=-BM0001-{peer:012d}&port={port}"
        f"&uploaded=0&downloaded=0&left={left}&compact=1"
    )
    if event:
        query += f"&event={event}"
    return f"{path}?{query}"


LUA = (
    r"""
-- args: prefix passkeys(0|1) swarms peers close(0|1)
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
"""
    + WRK_ANNOUNCE_LUA
    + r"""
function init(args)
  prefix = args[1]
  passkeys = args[2] == "1"
  swarms = tonumber(args[3])
  peers = tonumber(args[4])
  if args[5] == "1" then wrk.headers["Connection"] = "close" end
  math.randomseed(4242 + id)
end

function request()
  return announce(math.random(0, peers - 1), "")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
)


# ----- the trackers -----


@dataclass(frozen=True)
class Spec:
    """How to start one tracker."""

    name: str
    argv: list[str]
    port: int
    passkeys: bool  # whether the announce path carries /<passkey>
    keep_alive: bool  # opentracker closes every connection after one answer


@dataclass
class Tracker:
    """A tracker process listening on 127.0.0.1:port."""

    spec: Spec
    process: subprocess.Popen[bytes]
    prefix: str = "/announce"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def passkeys(self) -> bool:
        return self.spec.passkeys

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used."""
        return process_cpu_seconds(self.process.pid)

    def rss(self) -> int:
        """Resident memory of the process in bytes."""
        return process_rss(self.process.pid)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start listening on {port}")


@contextmanager
def start(spec: Spec) -> Iterator[Tracker]:
    """Run a tracker pinned to the server core until the block ends."""
    process = subprocess.Popen(
        pinned(spec.argv, SERVER_CORE), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_ready(spec.port, process, spec.name)
        yield Tracker(spec, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ours(swarms: int, peers: int) -> Spec:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), str(swarms), str(peers)]
    return Spec("seedmarket (Python, uvloop)", argv, port, passkeys=True, keep_alive=True)


def opentracker(swarms: int, workdir: Path) -> Spec:
    if not shutil.which("opentracker"):
        raise SystemExit("opentracker missing: apt-get install -y opentracker wrk")
    root = workdir / "opentracker"
    root.mkdir(exist_ok=True)
    # Debian's build is whitelist-only and chroots into -d, so the list's path is relative to it.
    (root / "whitelist.txt").write_text("".join(info_hash(s).hex() + "\n" for s in range(swarms)))
    port = free_port()
    argv = [
        "opentracker",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(root),
        "-u",
        "nobody",
        "-w",
        "whitelist.txt",
    ]
    return Spec("opentracker (C)", argv, port, passkeys=False, keep_alive=False)


def bittorrent_tracker(workdir: Path) -> Spec:
    server_js = BITTORRENT_TRACKER_DIR / "node_modules" / "bittorrent-tracker" / "server.js"
    if not server_js.exists():
        BITTORRENT_TRACKER_DIR.mkdir(parents=True, exist_ok=True)
        (BITTORRENT_TRACKER_DIR / "package.json").write_text('{"name": "bench", "private": true}\n')
        # --ignore-scripts: a WebRTC dependency would download a binary; server.js does not need it.
        npm = [
            "npm",
            "install",
            "--ignore-scripts",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "bittorrent-tracker",
        ]
        subprocess.run(npm, cwd=BITTORRENT_TRACKER_DIR, check=True)
    script = workdir / "bittorrent-tracker.mjs"
    script.write_text(
        "const { default: Server } = await import(process.argv[2]);\n"
        "const server = new Server({ udp: false, ws: false, stats: false, http: true });\n"
        "server.on('warning', () => {}); server.on('error', () => {});\n"
        "server.listen(Number(process.argv[3]), '127.0.0.1');\n"
        "process.on('SIGTERM', () => server.close(() => process.exit(0)));\n"
    )
    port = free_port()
    argv = ["node", str(script), server_js.as_uri(), str(port)]
    return Spec("bittorrent-tracker (node)", argv, port, passkeys=False, keep_alive=True)


# ----- our tracker as a benchmark subprocess -----


def serve(port: int, swarms: int, peers: int) -> None:
    """Run our tracker with an in-memory policy that knows every synthetic wallet and swarm."""

    async def main() -> None:
        policy = MemoryPolicy()
        for number in range(PASSKEYS):
            policy.add_passkey(f"{number:032x}", wallet(number))
        for peer in range(min(peers, swarms * PASSKEYS)):
            policy.grant(wallet(peer % PASSKEYS), info_hash(peer % swarms))
        server = await start_tracker(
            "127.0.0.1",
            port,
            policy,
            MemorySink(),
            ReceiptVerifier(Domain(1, b"\x01" * 20)),
            max_connections=60_000,
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()
        await server.wait_closed()

    uvloop.run(main())


# ----- load -----


async def _populate(tracker: Tracker, swarms: int, peers: int, connections: int) -> int:
    """Announce `started` once for every peer; returns how many answers were failures."""
    failures = 0
    next_peer = 0

    async def exchange(
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[bytes, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """Send and read one answer; opentracker closes after every answer, so reconnect then."""
        for _ in range(2):
            reader, writer = streams
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                streams = await asyncio.open_connection("127.0.0.1", tracker.port)
                continue
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            return await reader.readexactly(length), streams
        raise ConnectionError(f"{tracker.name} closed the connection without answering")

    async def worker() -> None:
        nonlocal failures, next_peer
        streams = await asyncio.open_connection("127.0.0.1", tracker.port)
        while next_peer < peers:
            peer = next_peer
            next_peer += 1
            path = announce_path(tracker.prefix, tracker.passkeys, swarms, peer, "started")
            body, streams = await exchange(streams, f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            failures += b"failure reason" in body
        streams[1].close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return failures


def populate(tracker: Tracker, swarms: int, peers: int, connections: int = 64) -> float:
    """Fill a tracker with `peers` peers; returns the seconds it took."""
    started = time.monotonic()
    failures = uvloop.run(_populate(tracker, swarms, peers, connections))
    if failures:
        raise SystemExit(f"{tracker.name}: {failures} of {peers} started announces failed")
    return time.monotonic() - started


def check_answers(tracker: Tracker, swarms: int, peers: int, samples: int = 50) -> float:
    """Announce as random known peers; every answer must list peers. Returns the mean count."""
    rng = random.Random(5)
    listed = []
    for _ in range(samples):
        peer = rng.randrange(peers)
        with socket.create_connection(("127.0.0.1", tracker.port)) as conn:
            path = announce_path(tracker.prefix, tracker.passkeys, swarms, peer, None)
            conn.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        answer = bencodepy.decode(data.split(b"\r\n\r\n", 1)[1])
        if b"failure reason" in answer:
            raise SystemExit(f"{tracker.name} refused a known peer: {answer[b'failure reason']!r}")
        listed.append(len(answer[b"peers"]) // 6)
    return sum(listed) / len(listed)


def run_wrk(
    tracker: Tracker, script: Path, swarms: int, peers: int, duration: int, connections: int, close: bool
) -> dict:
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script),
        f"http://127.0.0.1:{tracker.port}", "--",
        tracker.prefix, "1" if tracker.passkeys else "0", str(swarms), str(peers), "1" if close else "0",
    ]  # fmt: skip
    cpu_before = tracker.cpu_seconds()
    output = subprocess.run(pinned(argv, LOAD_CORE), capture_output=True, text=True, check=True).stdout
    cpu = tracker.cpu_seconds() - cpu_before
    result = json.loads(output.strip().splitlines()[-1])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    # Announces per CPU-second of the tracker: what one core would do undisturbed; on a shared
    # machine this is steadier than the wall-clock rate.
    result["per_cpu_second"] = result["requests"] / cpu if cpu else float("nan")
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return result


MODES = (("keep-alive", False), ("new connection", True))


def best(rows: dict[str, dict]) -> dict:
    """A tracker's faster mode (opentracker has only new connections)."""
    return max(rows.values(), key=lambda row: row["rate"])


def print_table(results: dict[str, dict[str, dict]], args: argparse.Namespace) -> None:
    names = list(results)
    print()
    print(
        f"announces on loopback, {args.swarms:,} swarms, {args.peers:,} peers, wrk -t1 -c{args.connections}"
        f" -d{args.duration}s, best of {args.rounds};"
        f" trackers pinned to core {SERVER_CORE}, wrk to core {LOAD_CORE}"
    )
    print(
        f"{'tracker':28} {'connections':15} {'announces/s':>12} {'ours/this':>10} {'p50 ms':>8}"
        f" {'p99 ms':>8} {'errors':>7} {'per CPU-s':>10} {'ours/this':>10}"
    )
    for mode, _ in MODES:
        first = results[names[0]][mode]
        for name in names:
            row = results[name].get(mode)
            if row is None:
                print(f"{name:28} {mode:15} {'(closes every connection after one answer)':>45}")
                continue
            print(
                f"{name:28} {mode:15} {row['rate']:12,.0f} {first['rate'] / row['rate']:9.2f}x"
                f" {row['p50_us'] / 1000:8.2f} {row['p99_us'] / 1000:8.2f} {row['errors']:7}"
                f" {row['per_cpu_second']:10,.0f} {first['per_cpu_second'] / row['per_cpu_second']:9.2f}x"
            )
    print("errors: wrk's connect, read, write and timeout errors (opentracker's are its closes, one per")
    print("answer); per CPU-s: announces per second of the tracker's own CPU time, steadier than wall")
    print("time on a shared machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="wrk runs per tracker and mode; the best counts"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--swarms", type=int, default=10_000)
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument(
        "--trackers", default="ours,opentracker,bittorrent-tracker", help="comma-separated, ours first"
    )
    parser.add_argument(
        "--serve", nargs=3, type=int, metavar=("PORT", "SWARMS", "PEERS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk missing: apt-get install -y opentracker wrk")

    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as folder:
        workdir = Path(folder)
        script = workdir / "announce.lua"
        script.write_text(LUA)
        makers = {
            "ours": lambda: ours(args.swarms, args.peers),
            "opentracker": lambda: opentracker(args.swarms, workdir),
            "bittorrent-tracker": lambda: bittorrent_tracker(workdir),
        }
        for name in args.trackers.split(","):
            with start(makers[name]()) as tracker:
                seconds = populate(tracker, args.swarms, args.peers)
                mean_peers = check_answers(tracker, args.swarms, args.peers)
                print(
                    f"{tracker.name}: {args.peers:,} peers in {args.swarms:,} swarms announced in"
                    f" {seconds:.1f} s; a sample of answers lists {mean_peers:.1f} peers on average",
                    flush=True,
                )
                results[tracker.name] = {
                    mode: run_wrk(
                        tracker, script, args.swarms, args.peers, args.duration, args.connections, close
                    )
                    for mode, close in MODES
                    if close or tracker.spec.keep_alive
                }
    print_table(results, args)
    if len(results) < 3:
        return  # the comparison needs all three
    ours_rows, open_rows, node_rows = results.values()
    ours_rate, open_rate, node_rate = (best(rows)["rate"] for rows in (ours_rows, open_rows, node_rows))
    print(
        f"each at its best: ours {ours_rate:,.0f}/s = {ours_rate / node_rate:.2f}x bittorrent-tracker"
        f" (goal >= 2), {ours_rate / open_rate:.2f}x opentracker (goal >= 0.5)"
    )
    print(
        json.dumps(
            {
                "name": "tracker_announce",
                "ours": round(ours_rate),
                "peer": round(open_rate),
                "ratio": round(ours_rate / open_rate, 3),
                "unit": "announces/s, each tracker at its best",
                "peer_name": "opentracker",
                "bittorrent_tracker": round(node_rate),
                "ratio_vs_bittorrent_tracker": round(ours_rate / node_rate, 3),
                "ours_new_connection": round(ours_rows["new connection"]["rate"]),
                "bittorrent_tracker_new_connection": round(node_rows["new connection"]["rate"]),
                "ours_p50_ms": round(best(ours_rows)["p50_us"] / 1000, 2),
                "ours_p99_ms": round(best(ours_rows)["p99_us"] / 1000, 2),
                "ours_per_cpu_second": round(best(ours_rows)["per_cpu_second"]),
                "opentracker_per_cpu_second": round(best(open_rows)["per_cpu_second"]),
                "bittorrent_tracker_per_cpu_second": round(best(node_rows)["per_cpu_second"]),
            }
        )
    )


if __name__ == "__main__":
    main()
