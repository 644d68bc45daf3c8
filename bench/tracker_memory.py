"""Memory per tracked peer at a million peers: our tracker beside opentracker (and, with
`--trackers`, webtorrent's bittorrent-tracker), each filled over HTTP in the same run.

    python bench/tracker_memory.py [--peers 1000000] [--swarms 10000] [--trackers ours,opentracker]

Each tracker starts empty; wrk then announces `started` for every synthetic peer once (a Lua
counter walks the population, in 5-second wrk runs until all are in). The figure is the growth
of the process's resident memory divided by the peers it holds: requests in flight when a wrk
run ends are lost, so sampled swarms are counted and the divisor is the share they really hold
(at least 98% or the run fails). Goal for ours: at most 200 bytes per peer. Same
requirements as bench/tracker_announce.py. Ends with one JSON line (bytes per peer; `ratio` is
ours / opentracker).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import bencodepy
from _lib import WRK_ANNOUNCE_LUA, pinned
from tracker_announce import (
    LOAD_CORE,
    Tracker,
    announce_path,
    bittorrent_tracker,
    opentracker,
    ours,
    start,
)

GOAL = 200  # bytes per peer
WRK_CHUNK_SECONDS = 5
SETTLE_SECONDS = 1.0  # let a garbage-collected runtime settle before reading its memory
MIN_FILL = 0.98

LUA_POPULATE = (
    r"""
-- args: prefix passkeys(0|1) swarms peers first close(0|1)
local threads = {}
function setup(thread)
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
  counter = tonumber(args[5])
  if args[6] == "1" then wrk.headers["Connection"] = "close" end
end

function request()
  local p = counter
  if p < peers then counter = counter + 1 else p = peers - 1 end
  return announce(p, "&numwant=0&event=started")
end

function done(summary, latency, requests)
  io.write(string.format('{"next": %d, "requests": %d}\n', threads[1]:get("counter"), summary.requests))
end
"""
)


def populate(tracker: Tracker, script: Path, swarms: int, peers: int) -> float:
    """Announce every peer once with wrk; returns the seconds it took."""
    started = time.monotonic()
    first = 0
    while first < peers:
        argv = [
            "wrk", "-t1", "-c32", f"-d{WRK_CHUNK_SECONDS}s", "--timeout", "10s", "-s", str(script),
            f"http://127.0.0.1:{tracker.port}", "--",
            tracker.prefix, "1" if tracker.passkeys else "0", str(swarms), str(peers), str(first),
            "0" if tracker.spec.keep_alive else "1",
        ]  # fmt: skip
        output = subprocess.run(pinned(argv, LOAD_CORE), capture_output=True, text=True, check=True).stdout
        reached = json.loads(output.strip().splitlines()[-1])["next"]
        if reached <= first:
            raise SystemExit(f"{tracker.name} stopped taking announces at peer {first}")
        first = reached
    return time.monotonic() - started


def check_swarms(tracker: Tracker, swarms: int, peers: int, samples: int = 20) -> float:
    """The share of announced peers that sampled swarms count (wrk drops the odd request when a
    tracker closes connections under it); refuses less than MIN_FILL."""
    rng = random.Random(9)
    counted_total = expected_total = 0
    for _ in range(samples):
        swarm = rng.randrange(swarms)
        expected = len(range(swarm, peers, swarms))
        path = announce_path(tracker.prefix, tracker.passkeys, swarms, swarm, None) + "&numwant=0"
        with socket.create_connection(("127.0.0.1", tracker.port)) as conn:
            conn.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        answer = bencodepy.decode(data.split(b"\r\n\r\n", 1)[1])
        counted = answer.get(b"complete", 0) + answer.get(b"incomplete", 0)
        if not expected * MIN_FILL <= counted <= expected:
            raise SystemExit(
                f"{tracker.name}: swarm {swarm} counts {counted} peers, expected {expected}: {answer!r}"
            )
        counted_total += counted
        expected_total += expected
    return counted_total / expected_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=1_000_000)
    parser.add_argument("--swarms", type=int, default=10_000)
    parser.add_argument("--trackers", default="ours,opentracker", help="comma-separated, ours first")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="tracker-memory-") as folder:
        workdir = Path(folder)
        script = workdir / "populate.lua"
        script.write_text(LUA_POPULATE)
        makers = {
            "ours": lambda: ours(args.swarms, args.peers),
            "opentracker": lambda: opentracker(args.swarms, workdir),
            "bittorrent-tracker": lambda: bittorrent_tracker(workdir),
        }
        for name in args.trackers.split(","):
            with start(makers[name]()) as tracker:
                time.sleep(SETTLE_SECONDS)
                before = tracker.rss()
                seconds = populate(tracker, script, args.swarms, args.peers)
                time.sleep(SETTLE_SECONDS)
                after = tracker.rss()
                fill = check_swarms(tracker, args.swarms, args.peers)
                rows.append((tracker.name, before, after, fill))
                print(
                    f"{tracker.name}: {args.peers:,} peers announced in {seconds:.0f} s;"
                    f" sampled swarms hold {fill:.1%} of them",
                    flush=True,
                )

    print()
    print(f"resident memory, {args.peers:,} peers in {args.swarms:,} swarms (compact IPv4 peers)")
    print(f"{'tracker':28} {'RSS before':>12} {'RSS after':>12} {'bytes/peer':>11} {'this/ours':>10}")
    # Per peer actually held, as estimated from the sampled swarms.
    per_peer = [(after - before) / (args.peers * fill) for _, before, after, fill in rows]
    for (name, before, after, _), value in zip(rows, per_peer, strict=True):
        mebibytes = f"{before / 2**20:9.1f} MiB {after / 2**20:9.1f} MiB"
        print(f"{name:28} {mebibytes} {value:11.1f} {value / per_peer[0]:9.2f}x")
    print(f"goal for ours: <= {GOAL} bytes per peer: {'met' if per_peer[0] <= GOAL else 'NOT met'}")
    result = {
        "name": "tracker_memory",
        "ours": round(per_peer[0], 1),
        "unit": "bytes/peer",
        "peers": args.peers,
    }
    if len(rows) > 1:
        result.update(
            peer=round(per_peer[1], 1), ratio=round(per_peer[0] / per_peer[1], 3), peer_name=rows[1][0]
        )
    for (name, _, _, _), value in zip(rows[2:], per_peer[2:], strict=True):
        result[name.split(" ")[0]] = round(value, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
