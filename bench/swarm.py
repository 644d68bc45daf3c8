"""The store's economics in a real swarm: how much of the upload the store's own seed carries, and
who earns what, as buyers arrive over time and keep seeding.

One store seed and N buyers (N = 5, 10, 20, 50), every one a peer of our engine on loopback in this
process, with our tracker (memory policy and sink). Buyer k starts (k - 1) * gap s in, announces
with its passkey, downloads while paying receipts to whoever served it, then keeps seeding and
hands the receipts it earns to the tracker. The receipts the tracker credited go through the
settlement rule of `backend/settlement.py` (floor(P * b / L), the unearned rest to the store).
Each N runs three ways on the same content and schedule, `--repeat` times each: the store seed
as the store runs it (`backend.store_seed.seed_config`: the adaptive seed of
`tracker.peer.seedpolicy`, "ours"), super-seeding throughout (BEP 16 alone) and serving everyone
at full speed ("peer", the baseline). Per way: the store's share of all upload and the time until
every buyer is done (medians of the runs), and the median buyer's download time (its arrival to
its last piece) over every buyer of every run. All peers share this one process, so a buyer's
fifth of a second moves with the machine's scheduling: use --repeat 5 or more to compare times.
The plot goes to bench/results/swarm.png.

    python bench/swarm.py [--size-mib 16] [--buyers 5,10,20,50] [--gap 0.5] [--price 0.01]
                          [--discount 20] [--fee 20] [--repeat 1] [--utp]
                          [--plot bench/results/swarm.png]

Peers talk TCP unless --utp: on a loaded machine our µTP's retransmission timers, not the seed,
set the buyers' pace (late buyers took ~30 s with any seed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import uvloop  # noqa: E402
from coincurve import PrivateKey  # noqa: E402

from backend.settings import Settings, load_settings  # noqa: E402
from backend.settlement import PurchaseTerms, settle  # noqa: E402
from backend.store_seed import seed_config, upload_limit  # noqa: E402
from bench.download import DOMAIN, make_file  # noqa: E402
from tracker.heap import freeze_imported  # noqa: E402
from tracker.metainfo import Metainfo, create_torrent, parse_metainfo  # noqa: E402
from tracker.peer.announcer import Announcer  # noqa: E402
from tracker.peer.credit import ReceiptSigner  # noqa: E402
from tracker.peer.journal import ReceiptJournal  # noqa: E402
from tracker.peer.session import Session  # noqa: E402
from tracker.peer.submitter import receipts_url  # noqa: E402
from tracker.peer.torrent import Torrent, TorrentConfig  # noqa: E402
from tracker.policy import MemoryPolicy, MemorySink  # noqa: E402
from tracker.receipts import ReceiptVerifier, address_of  # noqa: E402
from tracker.server import start_tracker  # noqa: E402
from tracker.server.announce import announce_url  # noqa: E402

ETH = "0x" + "00" * 20  # the payment token address(0)
WEI = 10**18
BPS = 10_000
SWARM_TIMEOUT = 300.0  # seconds for every buyer to finish; a stuck swarm is a failure
RECEIPT_TIMEOUT = 30.0  # seconds for the last receipts to reach the tracker
GOAL_SHARE = 0.10  # with 20 seeding buyers the store uploads at most this share
GOAL_SLOWDOWN = 1.1  # ... and the median buyer waits at most this much longer than with a full-speed seed
MODES = ("adaptive", "super", "full")  # the store seed: as the store runs it, BEP 16 alone, plain
LABELS = {
    "adaptive": "adaptive store seed",
    "super": "super-seeding store seed",
    "full": "full-speed store seed",
}
STYLES = {"adaptive": "o-", "super": "^:", "full": "s--"}


@dataclass
class Terms:
    """A product's price split, as the Marketplace contract computes it."""

    price: int
    discount_bps: int
    fee_bps: int

    @property
    def pool(self) -> int:
        return self.price * self.discount_bps // BPS

    @property
    def fee(self) -> int:
        return self.pool * self.fee_bps // BPS

    @property
    def seeder_pool(self) -> int:
        return self.pool - self.fee


@dataclass
class Peer:
    """One participant: its wallet, session and torrent."""

    name: str
    key: bytes
    session: Session
    torrent: Torrent
    announcer: Announcer
    arrived: float = 0.0  # loop time it joined
    done: float | None = None  # loop time its last piece verified

    @property
    def wallet(self) -> bytes:
        return address_of(PrivateKey(self.key).public_key)


@dataclass
class Outcome:
    """One swarm's figures."""

    uploaded: dict[str, int]  # per seeder name
    earned: dict[str, int]  # per seeder name, wei, from credited receipts
    credited: int  # bytes credited by the tracker, all seeders
    unreceipted: int  # verified bytes the buyers counted that never got credited
    store_earned: int
    remainder: int  # the unearned part of the pools, which goes to the store
    fees: int
    seconds: float  # first arrival to last completion
    download_times: list[float]  # per buyer: its arrival to its completion
    names: list[str] = field(default_factory=list)
    mode_changes: int = 0  # the adaptive seed's switches between full speed and super-seeding

    @property
    def median_download(self) -> float:
        return statistics.median(self.download_times)

    @property
    def store_share(self) -> float:
        return self.uploaded["store"] / max(1, sum(self.uploaded.values()))

    @property
    def store_income(self) -> int:
        return self.fees + self.store_earned + self.remainder


@dataclass
class Runs:
    """One size and mode over every repeat. The median buyer is taken over all buyers of all runs
    (with a 0.2 s download and ten buyers, one run's median moves by a tenth with the machine's
    scheduling); the share, income and all-done time are the runs' medians."""

    outcomes: list[Outcome]

    @property
    def median_download(self) -> float:
        return statistics.median(t for o in self.outcomes for t in o.download_times)

    @property
    def store_share(self) -> float:
        return statistics.median(o.store_share for o in self.outcomes)

    @property
    def store_income(self) -> float:
        return statistics.median(o.store_income for o in self.outcomes)

    @property
    def seconds(self) -> float:
        return statistics.median(o.seconds for o in self.outcomes)

    @property
    def fees(self) -> int:
        return self.outcomes[0].fees

    @property
    def typical(self) -> Outcome:
        """The run whose store share is the median one: its per-seeder figures are printed."""
        return sorted(self.outcomes, key=lambda o: o.store_share)[len(self.outcomes) // 2]


def key_for(number: int) -> bytes:
    """Participant `number`'s private key (0 is the store)."""
    return (number + 1).to_bytes(32, "big")


def passkey_for(number: int) -> str:
    """Participant `number`'s passkey: 32 hex characters, as the tracker wants them."""
    return f"{number + 1:032x}"


def store_settings(mode: str) -> Settings:
    """The store's settings for one way of seeding; "adaptive" is the default one."""
    if mode == "super":
        return load_settings(store_seed_target_rate=0)
    if mode == "full":
        return load_settings(store_seed_super_seed=False)
    return load_settings()


async def run_swarm(
    meta: Metainfo,
    content: Path,
    work: Path,
    buyers: int,
    gap: float,
    mode: str,
    terms: Terms,
    utp: bool = False,
) -> Outcome:
    """One store seed and `buyers` buyers arriving `gap` seconds apart; everyone keeps seeding."""
    policy, sink = MemoryPolicy(), MemorySink()
    verifier = ReceiptVerifier(DOMAIN)
    tracker = await start_tracker("127.0.0.1", 0, policy, sink, verifier)
    base = f"http://127.0.0.1:{tracker.port}"
    settings = store_settings(mode)
    peers: list[Peer] = []
    watchers: list[asyncio.Task[None]] = []
    try:
        store_key = key_for(0)
        store_wallet = address_of(PrivateKey(store_key).public_key)
        session = Session(
            host="127.0.0.1",
            utp=utp,
            journal=ReceiptJournal(work / "store.journal"),
            upload_limit=upload_limit(settings),
        )
        await session.start()
        config = seed_config(settings, store_wallet, verifier)
        torrent = await session.add_torrent(meta, content, config, writable=False)
        policy.add_passkey(passkey_for(0), store_wallet)
        policy.grant(store_wallet, meta.info_hash)
        announcer = session.announce(torrent, announce_url(base, passkey_for(0)))
        peers.append(Peer("store", store_key, session, torrent, announcer))
        session.submit_receipts(receipts_url(base))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for number in range(1, buyers + 1):
            await asyncio.sleep(max(0.0, start + (number - 1) * gap - loop.time()))
            peers.append(await join(meta, work, number, policy, sink, verifier, base, utp))
            watchers.append(asyncio.create_task(note_done(peers[-1])))
        await all_complete(peers, start + SWARM_TIMEOUT)
        seconds = loop.time() - start
        for peer in peers[1:]:
            if peer.torrent.error is not None:
                raise RuntimeError(f"{peer.name} failed: {peer.torrent.error}")
        expected = await settle_receipts(peers, sink)
        outcome = account(peers, sink, expected, terms, seconds)
        superseed = torrent.uploads.superseed
        outcome.mode_changes = len(superseed.mode_changes) if superseed is not None else 0
        return outcome
    finally:
        for watcher in watchers:
            watcher.cancel()
        for peer in peers:
            await peer.session.close()
        tracker.close()
        await tracker.wait_closed()


async def join(
    meta: Metainfo,
    work: Path,
    number: int,
    policy: MemoryPolicy,
    sink: MemorySink,
    verifier: ReceiptVerifier,
    base: str,
    utp: bool,
) -> Peer:
    """A buyer arrives: its purchase is known to the tracker, it announces and downloads."""
    key = key_for(number)
    wallet = address_of(PrivateKey(key).public_key)
    passkey = passkey_for(number)
    policy.add_passkey(passkey, wallet)
    policy.grant(wallet, meta.info_hash)
    sink.add_purchase(number, wallet, meta.total_length)
    session = Session(host="127.0.0.1", journal=ReceiptJournal(work / f"buyer{number}.journal"), utp=utp)
    await session.start()
    config = TorrentConfig(signer=ReceiptSigner(DOMAIN, number, key), wallet=wallet, verifier=verifier)
    torrent = await session.add_torrent(meta, work / f"buyer{number}", config)
    announcer = session.announce(torrent, announce_url(base, passkey))
    session.submit_receipts(receipts_url(base))
    return Peer(
        f"buyer {number}", key, session, torrent, announcer, arrived=asyncio.get_running_loop().time()
    )


async def note_done(peer: Peer) -> None:
    """Note when the buyer's last piece verified."""
    await peer.torrent.completed.wait()
    peer.done = asyncio.get_running_loop().time()


async def all_complete(peers: list[Peer], deadline: float) -> None:
    """Wait for every buyer to finish; a refused announce or the deadline is a failure."""
    loop = asyncio.get_running_loop()
    while not all(peer.torrent.completed.is_set() for peer in peers[1:]):
        for peer in peers:
            if peer.announcer.last_error is not None:
                raise RuntimeError(f"{peer.name} could not announce: {peer.announcer.last_error}")
        if loop.time() > deadline:
            left = [peer.name for peer in peers[1:] if not peer.torrent.completed.is_set()]
            raise RuntimeError(
                f"the swarm did not finish in {SWARM_TIMEOUT:.0f} s: {', '.join(left)} incomplete"
            )
        await asyncio.sleep(0.05)
    await asyncio.sleep(0)  # the last completions' watchers note their time


async def settle_receipts(peers: list[Peer], sink: MemorySink) -> dict[tuple[int, bytes], int]:
    """Wait until the tracker credited what every buyer verified per seeder (or gave up waiting);
    what the buyers counted, per (purchase, seeder)."""
    expected: dict[tuple[int, bytes], int] = {}
    for number, peer in enumerate(peers[1:], start=1):
        assert peer.torrent.leecher is not None
        for wallet, tally in peer.torrent.leecher.ledger.tallies.items():
            if tally.verified:
                expected[(number, wallet)] = tally.verified
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECEIPT_TIMEOUT
    while loop.time() < deadline and any(sink.credited.get(key, 0) < n for key, n in expected.items()):
        for peer in peers:
            peer.session.submit_soon()
        await asyncio.sleep(0.2)
    return expected


def account(
    peers: list[Peer], sink: MemorySink, expected: dict[tuple[int, bytes], int], terms: Terms, seconds: float
) -> Outcome:
    """Uploads per seeder, and the settlement of the credited receipts."""
    length = peers[0].torrent.meta.total_length
    store = "0x" + peers[0].wallet.hex()
    purchases = {
        number: PurchaseTerms(number, "0x" + peer.wallet.hex(), ETH, terms.seeder_pool, length, frozen=True)
        for number, peer in enumerate(peers[1:], start=1)
    }
    credits = [(pid, "0x" + seeder.hex(), count) for (pid, seeder), count in sink.credited.items()]
    settled = settle(purchases, credits, store)
    open_purchases = {pid: replace(t, frozen=False) for pid, t in purchases.items()}
    earned_only = settle(open_purchases, credits, store)
    names = [peer.name for peer in peers]
    earned = {peer.name: earned_only.get(("0x" + peer.wallet.hex(), ETH), 0) for peer in peers}
    store_total = settled.get((store, ETH), 0)
    return Outcome(
        uploaded={peer.name: peer.torrent.uploaded for peer in peers},
        earned=earned,
        credited=sum(sink.credited.values()),
        unreceipted=sum(max(0, n - sink.credited.get(key, 0)) for key, n in expected.items()),
        store_earned=earned["store"],
        remainder=store_total - earned["store"],
        fees=terms.fee * (len(peers) - 1),
        seconds=seconds,
        download_times=[(peer.done or peer.arrived) - peer.arrived for peer in peers[1:]],
        names=names,
    )


def mib(count: int) -> str:
    return f"{count / 2**20:.1f}"


def eth(wei: int) -> str:
    return f"{wei / WEI:.5f}"


def print_swarm(buyers: int, runs: dict[str, Runs]) -> None:
    outcomes = {mode: runs[mode].typical for mode in MODES}
    print(f"\n{buyers} buyers: uploaded MiB and earned ETH per seeder (the run with the median share)")
    print(f"{'seeder':<10}" + "".join(f"{mode + ' MiB':>14}{mode + ' ETH':>14}" for mode in MODES))
    for name in outcomes[MODES[0]].names:
        print(
            f"{name:<10}"
            + "".join(
                f"{mib(outcomes[mode].uploaded[name]):>14}{eth(outcomes[mode].earned[name]):>14}"
                for mode in MODES
            )
        )
    for mode in MODES:
        outcome = outcomes[mode]
        print(
            f"{mode}: store share {outcome.store_share:.1%}, store income {eth(outcome.store_income)} ETH"
            f" = fees {eth(outcome.fees)} + own seeding {eth(outcome.store_earned)}"
            f" + unearned {eth(outcome.remainder)}; all done in {outcome.seconds:.1f} s,"
            f" median buyer {outcome.median_download:.2f} s"
            f" (all runs: median buyer {runs[mode].median_download:.2f} s)"
            + (f"; {outcome.mode_changes} mode switches" if mode == "adaptive" else "")
            + (f"; {mib(outcome.unreceipted)} MiB never receipted" if outcome.unreceipted else "")
        )


def plot(path: Path, sizes: list[int], results: dict[int, dict[str, Runs]], title: str, gap: float) -> None:
    """Against the number of seeding buyers: the store's share of upload and its income (top), the
    median buyer's download time and the time until every buyer is done (bottom)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (share_ax, income_ax), (median_ax, done_ax) = axes
    for mode in MODES:
        style, label = STYLES[mode], LABELS[mode]
        share_ax.plot(sizes, [100 * results[n][mode].store_share for n in sizes], style, label=label)
        income_ax.plot(sizes, [results[n][mode].store_income / WEI for n in sizes], style, label=label)
        median_ax.plot(sizes, [results[n][mode].median_download for n in sizes], style, label=label)
        done_ax.plot(sizes, [results[n][mode].seconds for n in sizes], style, label=label)
    fees = [results[n]["full"].fees / WEI for n in sizes]
    income_ax.plot(sizes, fees, ":", color="grey", label="operator fees alone")
    share_ax.axhline(100 * GOAL_SHARE, color="grey", linewidth=0.8, linestyle=":", label="goal at 20 buyers")
    median_ax.plot(
        sizes,
        [GOAL_SLOWDOWN * results[n]["full"].median_download for n in sizes],
        ":",
        color="grey",
        linewidth=0.8,
        label=f"goal: {GOAL_SLOWDOWN:g}× the full-speed seed's",
    )
    last_arrival = [(n - 1) * gap for n in sizes]
    done_ax.plot(sizes, last_arrival, ":", color="grey", linewidth=0.8, label="last buyer arrives")
    share_ax.set(ylabel="store's share of all upload (%)", title="What the store uploads")
    income_ax.set(ylabel="store's income (ETH)", title="Fees + own seeding + unearned pool")
    median_ax.set(ylabel="seconds", title="Median buyer: arrival to last piece")
    done_ax.set(ylabel="seconds", title="First arrival until every buyer is done")
    for ax in axes.flat:
        ax.set(xlabel="seeding buyers", ylim=(0, None))
        ax.set_xticks(sizes)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_order(repeat: int) -> tuple[str, ...]:
    """The modes in the order repeat number `repeat` runs them: rotated, so that each goes first as
    often as the others (with a fixed order the first of each round was slower, whatever it was)."""
    shift = repeat % len(MODES)
    return MODES[shift:] + MODES[:shift]


async def run_all(
    args: argparse.Namespace, work: Path, meta: Metainfo, terms: Terms
) -> dict[int, dict[str, Runs]]:
    """Every size and mode, `args.repeat` times, after one run of that size whose figures are
    dropped: the first swarm after a warm-up of another size was the slowest of its round whatever
    its mode (six 20-buyer experiments), and with rotating orders one mode went first more often.
    The modes are interleaved, so that a change in the machine's load falls on all three."""
    results: dict[int, dict[str, Runs]] = {}
    for buyers in args.sizes:
        warm_up = work / f"n{buyers}-warm-up"
        warm_up.mkdir()
        await run_swarm(meta, work / "content", warm_up, buyers, args.gap, "full", terms, args.utp)
        shutil.rmtree(warm_up, ignore_errors=True)
        if buyers == args.sizes[0]:
            freeze_imported()  # as the store's and the buyers' processes do once started
        runs: dict[str, list[Outcome]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeat):
            for mode in run_order(repeat):
                folder = work / f"n{buyers}-{mode}-{repeat}"
                folder.mkdir()
                gc.collect()  # not in the middle of the next swarm
                outcome = await run_swarm(
                    meta, work / "content", folder, buyers, args.gap, mode, terms, args.utp
                )
                runs[mode].append(outcome)
                shutil.rmtree(folder, ignore_errors=True)
                print(
                    f"  {buyers} buyers, {mode}: store share {outcome.store_share:.1%},"
                    f" median buyer {outcome.median_download:.2f} s, all done {outcome.seconds:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        results[buyers] = {mode: Runs(outcomes) for mode, outcomes in runs.items()}
    return results


def slowdown(outcomes: dict[str, Runs], mode: str) -> float:
    """The median buyer's time with `mode` against the full-speed seed's."""
    return outcomes[mode].median_download / outcomes["full"].median_download


def print_table(sizes: list[int], results: dict[int, dict[str, Runs]]) -> None:
    heads = ("store share %", "all done s", "median buyer s")
    print("\n" + f"{'':>6}" + "".join(f"{head:>22}" for head in heads) + f"{'median vs full':>16}")
    print(
        f"{'buyers':>6}"
        + "".join(f"{mode:>9}" if i % 3 == 0 else f"{mode:>7}" for i, mode in enumerate(MODES * 3))
        + f"{'adaptive':>9}{'super':>7}"
    )
    for n in sizes:
        row = results[n]
        print(
            f"{n:>6}"
            + "".join(
                f"{100 * row[mode].store_share:>{9 if i == 0 else 7}.1f}" for i, mode in enumerate(MODES)
            )
            + "".join(f"{row[mode].seconds:>{9 if i == 0 else 7}.1f}" for i, mode in enumerate(MODES))
            + "".join(f"{row[mode].median_download:>{9 if i == 0 else 7}.2f}" for i, mode in enumerate(MODES))
            + f"{slowdown(row, 'adaptive'):>8.2f}×{slowdown(row, 'super'):>6.2f}×"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--buyers", default="5,10,20,50", help="swarm sizes, comma-separated")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between arrivals")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per size and mode; the median buyer over all of them counts",
    )
    parser.add_argument("--price", type=float, default=0.01, help="ETH")
    parser.add_argument("--discount", type=float, default=20.0, help="percent of the price for the pool")
    parser.add_argument("--fee", type=float, default=20.0, help="operator's percent of the pool")
    parser.add_argument(
        "--utp",
        action="store_true",
        help="peers try µTP first (default TCP: under load µTP's timers, not the seed, set the pace)",
    )
    parser.add_argument("--dir", default="/tmp/seedmarket-bench-economics")
    parser.add_argument("--plot", default=str(REPO / "bench" / "results" / "swarm.png"))
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.buyers.split(",")]
    terms = Terms(int(args.price * WEI), int(args.discount * 100), int(args.fee * 100))
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "content").mkdir(parents=True)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        make_file(work / "content" / "product.bin", args.size_mib * 2**20)
        raw = create_torrent(work / "content" / "product.bin", "http://127.0.0.1:9/announce")
        meta = parse_metainfo(raw)
        results = uvloop.run(run_all(args, work, meta, terms))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    print(
        f"economics of a swarm: {args.size_mib} MiB"
        f" ({meta.piece_count} pieces of {meta.piece_length // 1024} KiB),"
        f" buyers arriving every {args.gap} s and seeding on; {args.repeat} run(s) each,"
        " the median buyer over all;"
        f" price {args.price} ETH, discount"
        f" {args.discount:g} %, operator fee {args.fee:g} % of it; adaptive = the store seed as it runs"
        " (ours), super = BEP 16 throughout, full = full speed (baseline)"
    )
    for buyers in args.sizes:
        print_swarm(buyers, results[buyers])
    print_table(args.sizes, results)
    title = f"{args.size_mib} MiB product, a buyer arriving every {args.gap:g} s and seeding on (loopback)"
    plot(Path(args.plot), args.sizes, results, title, args.gap)
    largest = max(args.sizes)
    ours, base = results[largest]["adaptive"], results[largest]["full"]
    share_met = ours.store_share <= GOAL_SHARE if largest >= 20 else None
    time_met = all(slowdown(results[n], "adaptive") <= GOAL_SLOWDOWN for n in args.sizes)
    print(
        f"plot: {args.plot}; whole run {time.perf_counter() - started:.0f} s;"
        f" load average {load_before:.2f} before, {load_after:.2f} after"
    )
    summary = {
        "name": "swarm",
        "ours": round(ours.store_share, 4),
        "peer": round(base.store_share, 4),
        "ratio": round(ours.store_share / base.store_share, 3),
        "unit": f"store seed's share of uploaded bytes, {largest} seeding buyers (adaptive vs full speed)",
        "goal_met": (share_met is not False) and time_met,
        "share_goal_met": share_met,
        "time_goal_met": time_met,
        "store_share": {
            mode: {n: round(results[n][mode].store_share, 4) for n in args.sizes} for mode in MODES
        },
        "median_download_s": {
            mode: {n: round(results[n][mode].median_download, 3) for n in args.sizes} for mode in MODES
        },
        "all_done_s": {mode: {n: round(results[n][mode].seconds, 2) for n in args.sizes} for mode in MODES},
        "median_vs_full": {n: round(slowdown(results[n], "adaptive"), 3) for n in args.sizes},
        "store_income_eth": {
            mode: {n: round(results[n][mode].store_income / WEI, 6) for n in args.sizes} for mode in MODES
        },
        "size_mib": args.size_mib,
        "gap_s": args.gap,
        "repeat": args.repeat,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
