"""µTP throughput: our peers against libtorrent's, on loopback, through a delaying relay, and
over a rate-limited veth link between two network namespaces.

Each download runs between two processes (a seed and a leecher, ours or libtorrent's, both over
µTP only), so neither side's CPU is shared with the other or with this script:
  (a) loopback, no relay;
  (b) through tests/utp/relay.py (its own process) adding 20 ms each way;
  (c) between two network namespaces joined by a veth pair whose both ends are shaped with
      `tc ... tbf` (needs root; skipped with a note otherwise).
Also measured: CPU seconds per MiB (seed + leecher) of our µTP against our TCP on loopback.
The last line is JSON: ours / libtorrent on loopback, and the ratios of (b) and (c).

    python bench/utp.py [--size-mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
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
sys.path.insert(0, str(REPO))  # the relay lives with the tests (tests/utp/relay.py)

import libtorrent as lt  # noqa: E402
import uvloop  # noqa: E402

from bench._lib import lt_add_running  # noqa: E402
from tests.utp.relay import Impairment, start_relay  # noqa: E402
from tracker.heap import run_frozen  # noqa: E402
from tracker.metainfo import create_torrent, parse_metainfo  # noqa: E402
from tracker.peer.session import Session  # noqa: E402
from tracker.peer.torrent import TorrentConfig  # noqa: E402

CHUNK = 8 * 1024 * 1024
RELAY_DELAY = 0.020
TBF_RATE = "80mbit"
NS_A, NS_B = f"utpbench-a-{os.getpid()}", f"utpbench-b-{os.getpid()}"
ADDR_A, ADDR_B = "10.201.0.1", "10.201.0.2"


def make_file(path: Path, size: int) -> None:
    """Random-ish content quickly: one random 8 MiB block, varied per block."""
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "big")
            take = min(CHUNK, size - written)
            handle.write(block[:take])
            written += take


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lt_settings(host: str, utp: bool) -> dict:
    return {
        "listen_interfaces": f"{host}:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_tcp": not utp,
        "enable_incoming_tcp": not utp,
        "enable_outgoing_utp": utp,
        "enable_incoming_utp": utp,
        "alert_mask": 0,
    }


# ----- roles, each in a process of its own -----


def role_seed(impl: str, transport: str, host: str, torrent_file: str, content: str, port_file: str) -> None:
    """Seed until SIGTERM; then write the CPU seconds spent after start-up next to the port file."""
    utp = transport == "utp"
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    if impl == "lt":
        ses = lt.session(lt_settings(host, utp))
        handle = lt_add_running(ses, torrent_file, content)
        while not handle.status().is_seeding:
            time.sleep(0.02)
        start = cpu_seconds()
        Path(port_file).write_text(str(ses.listen_port()))
        while not stop["now"]:
            time.sleep(0.05)
        Path(port_file + ".cpu").write_text(str(cpu_seconds() - start))
        return

    async def serve() -> None:
        done = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
        async with Session(host=host, utp=utp) as session:
            meta = parse_metainfo(Path(torrent_file).read_bytes())
            await session.add_torrent(meta, content, TorrentConfig(), writable=False)
            start = cpu_seconds()
            Path(port_file).write_text(str(session.port))
            await done.wait()
            Path(port_file + ".cpu").write_text(str(cpu_seconds() - start))

    run_frozen(serve())


def role_leech(impl: str, transport: str, host: str, torrent_file: str, out: str, peer: str) -> None:
    """Download from `peer` (host:port); print {"seconds", "cpu"} as JSON."""
    utp = transport == "utp"
    peer_host, peer_port = peer.rsplit(":", 1)
    if impl == "lt":
        ses = lt.session(lt_settings(host, utp))
        handle = lt_add_running(ses, torrent_file, out)
        cpu, start = cpu_seconds(), time.perf_counter()
        handle.connect_peer((peer_host, int(peer_port)))
        while not handle.status().is_seeding:
            time.sleep(0.01)
        print(json.dumps({"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu}))
        return

    async def download() -> dict[str, float]:
        async with Session(host=host, utp=utp) as session:
            meta = parse_metainfo(Path(torrent_file).read_bytes())
            torrent = await session.add_torrent(meta, out, TorrentConfig(upload=False))
            cpu, start = cpu_seconds(), time.perf_counter()
            if not await session.connect(torrent, peer_host, int(peer_port)):
                raise SystemExit(f"cannot connect to {peer}")
            await torrent.completed.wait()
            return {"seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu}

    print(json.dumps(run_frozen(download())))


def role_relay(server: str, port_file: str) -> None:
    """Forward datagrams to `server`, RELAY_DELAY late each way."""

    async def relay() -> None:
        host, port = server.rsplit(":", 1)
        relay = await start_relay((host, int(port)), Impairment(delay=RELAY_DELAY))
        Path(port_file).write_text(str(relay.port))
        await asyncio.Event().wait()

    uvloop.run(relay())


# ----- the runs -----


def _wait_file(path: Path, child: subprocess.Popen) -> str:
    while not (path.exists() and path.read_text()):
        if child.poll() is not None:
            raise RuntimeError(f"{child.args} died")
        time.sleep(0.02)
    return path.read_text()


def one_download(work: Path, impl: str, transport: str, where: str) -> dict[str, float]:
    """One download; `where` is loopback, relay or netns. Returns seconds and CPU of both sides."""
    me = [sys.executable, __file__]
    seed_host, leech_host = ("127.0.0.1", "127.0.0.1") if where != "netns" else (ADDR_A, ADDR_B)
    seed_prefix = ["ip", "netns", "exec", NS_A] if where == "netns" else []
    leech_prefix = ["ip", "netns", "exec", NS_B] if where == "netns" else []
    port_file = work / "port"
    for stale in (port_file, work / "port.cpu", work / "relay"):
        stale.unlink(missing_ok=True)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    os.sync()
    seed_cmd = [
        *me,
        "--role",
        "seed",
        impl,
        transport,
        seed_host,
        str(work / "t.torrent"),
        str(work / "content"),
    ]
    seed = subprocess.Popen([*seed_prefix, *seed_cmd, str(port_file)])
    children = [seed]
    try:
        port = _wait_file(port_file, seed)
        target = f"{seed_host}:{port}"
        if where == "relay":
            relay = subprocess.Popen([*me, "--role", "relay", target, str(work / "relay")])
            children.append(relay)
            target = f"127.0.0.1:{_wait_file(work / 'relay', relay)}"
        leech_cmd = [
            *me,
            "--role",
            "leech",
            impl,
            transport,
            leech_host,
            str(work / "t.torrent"),
            str(out),
            target,
        ]
        result = json.loads(
            subprocess.run([*leech_prefix, *leech_cmd], check=True, capture_output=True, text=True).stdout
        )
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    result["cpu"] += float((work / "port.cpu").read_text()) if (work / "port.cpu").exists() else 0.0
    shutil.rmtree(out, ignore_errors=True)
    return result


def netns_up() -> bool:
    """Two namespaces joined by a veth pair, each end shaped to TBF_RATE; False without root."""
    if os.geteuid() != 0:
        return False
    commands = [
        f"ip netns add {NS_A}",
        f"ip netns add {NS_B}",
        f"ip link add utpb-a netns {NS_A} type veth peer name utpb-b netns {NS_B}",
        f"ip -n {NS_A} addr add {ADDR_A}/24 dev utpb-a",
        f"ip -n {NS_B} addr add {ADDR_B}/24 dev utpb-b",
        f"ip -n {NS_A} link set utpb-a up",
        f"ip -n {NS_B} link set utpb-b up",
        f"ip -n {NS_A} link set lo up",
        f"ip -n {NS_B} link set lo up",
        f"tc -n {NS_A} qdisc add dev utpb-a root tbf rate {TBF_RATE} burst 64kb latency 50ms",
        f"tc -n {NS_B} qdisc add dev utpb-b root tbf rate {TBF_RATE} burst 64kb latency 50ms",
    ]
    for command in commands:
        subprocess.run(command.split(), check=True)
    return True


def netns_down() -> None:
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians are reported")
    parser.add_argument("--dir", default="/tmp/seedmarket-bench-utp")
    parser.add_argument("--role", nargs="+")
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        {"seed": role_seed, "leech": role_leech, "relay": role_relay}[role](*rest)
        return
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "content").mkdir(parents=True)
    size = args.size_mib * 1024 * 1024
    make_file(work / "content" / "payload.bin", size)
    (work / "t.torrent").write_bytes(
        create_torrent(work / "content" / "payload.bin", "http://127.0.0.1:9/announce")
    )
    cases = [
        ("loopback", "ours", "utp"),
        ("loopback", "lt", "utp"),
        ("loopback", "ours", "tcp"),
        ("relay", "ours", "utp"),
        ("relay", "lt", "utp"),
    ]
    shaped = netns_up()
    if shaped:
        cases += [("netns", "ours", "utp"), ("netns", "lt", "utp")]
    runs: dict[tuple[str, str, str], list[dict[str, float]]] = {case: [] for case in cases}
    try:
        for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits all alike
            for case in cases:
                runs[case].append(one_download(work, case[1], case[2], case[0]))
    finally:
        if shaped:
            netns_down()
        shutil.rmtree(work, ignore_errors=True)
    mib = size / 2**20
    rate = {case: statistics.median(mib / r["seconds"] for r in results) for case, results in runs.items()}
    cpu = {case: statistics.median(r["cpu"] / mib for r in results) for case, results in runs.items()}
    print(f"µTP download of {args.size_mib} MiB, seed and leecher in separate processes")
    print(f"{'path':<34}{'ours MiB/s':>12}{'libtorrent':>12}{'ratio':>8}")
    names = {
        "loopback": "loopback",
        "relay": f"relay, {RELAY_DELAY * 1000:.0f} ms each way",
        "netns": f"veth, tbf {TBF_RATE}",
    }
    ratios = {}
    for where in ("loopback", "relay", "netns"):
        if (where, "ours", "utp") not in rate:
            print(f"{names[where]:<34}  skipped (needs root for network namespaces)")
            continue
        ours, peer = rate[(where, "ours", "utp")], rate[(where, "lt", "utp")]
        ratios[where] = ours / peer
        print(f"{names[where]:<34}{ours:>12.1f}{peer:>12.1f}{ours / peer:>7.2f}x")
    utp_cpu, tcp_cpu = cpu[("loopback", "ours", "utp")], cpu[("loopback", "ours", "tcp")]
    lt_cpu = cpu[("loopback", "lt", "utp")]
    print(
        f"CPU per MiB on loopback (seed + leecher): ours µTP {utp_cpu * 1000:.1f} ms, "
        f"ours TCP {tcp_cpu * 1000:.1f} ms ({utp_cpu / tcp_cpu:.1f}x), libtorrent µTP {lt_cpu * 1000:.1f} ms"
    )
    print(f"ours over TCP on loopback: {rate[('loopback', 'ours', 'tcp')]:.1f} MiB/s")
    summary = {
        "name": "utp",
        "ours": round(rate[("loopback", "ours", "utp")], 1),
        "peer": round(rate[("loopback", "lt", "utp")], 1),
        "ratio": round(ratios["loopback"], 3),
        "unit": "MiB/s",
        "relay_ratio": round(ratios["relay"], 3),
        "tbf_ratio": round(ratios["netns"], 3) if "netns" in ratios else None,
        "cpu_ms_per_mib_utp": round(utp_cpu * 1000, 2),
        "cpu_ms_per_mib_tcp": round(tcp_cpu * 1000, 2),
        "size_mib": args.size_mib,
        "runs": args.repeat,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
