"""The store seed's policy (tracker/peer/seedpolicy.py): full speed while the swarm cannot serve a
buyer, super-seeding once it can, and a starved leecher served whatever the mode.

The decisions are checked on simulated swarms (plain values, a clock we move by hand: nothing
here depends on timing); the last tests run the engine with real peers on loopback.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from tests.libtorrent_peer import lt_session
from tests.peer.conftest import lt_add, lt_wait, make_content, run
from tests.peer.test_superseed import start_buyer, store_config, uploaded_to
from tracker.peer.choker import UPLOAD_SLOTS, Candidate, Choker, PlainPeers
from tracker.peer.credit import CreditAccount, credit_window
from tracker.peer.journal import ReceiptJournal
from tracker.peer.seedpolicy import (
    GRACE_SECONDS,
    MIN_COPIES,
    SETTLE_SECONDS,
    Mode,
    PeerView,
    SeedPolicy,
    SwarmView,
)
from tracker.peer.session import Session

MIB = 1024 * 1024
TARGET = 1 * MIB  # bytes a second a buyer should get
PIECES = 16


def leecher(name: str, rate: float, *, age: float = 10.0, opened: bool = False) -> PeerView:
    return PeerView(name, seed=False, rate=rate, age=age, opened=opened)


def seed(name: str) -> PeerView:
    return PeerView(name, seed=True, rate=0.0, age=10.0)


def swarm(now: float, *peers: PeerView, copies: int | None = None, holes: int = 0) -> SwarmView:
    """A swarm whose seeds hold every piece; `holes` pieces nobody but us holds."""
    seeds = sum(1 for p in peers if p.seed)
    count = seeds if copies is None else copies
    availability = [0] * holes + [max(1, count)] * (PIECES - holes)
    return SwarmView(now, availability, count, peers)


def settled(policy: SeedPolicy, *peers: PeerView, copies: int | None = None) -> None:
    """Bring the policy to super-seeding with a swarm that can serve."""
    for now in (0.0, SETTLE_SECONDS):
        policy.decide(swarm(now, *peers, copies=copies))
    assert policy.mode is Mode.SUPER


class TestDecisions:
    def test_a_swarm_without_complete_copies_is_served_at_full_speed(self):
        decision = SeedPolicy(TARGET).decide(swarm(0.0, leecher("a", 5 * MIB), leecher("b", 5 * MIB)))
        assert decision.mode is Mode.FULL
        assert decision.serve == {"a", "b"}
        assert "complete copies" in decision.reason

    def test_one_complete_copy_is_not_enough(self):
        decision = SeedPolicy(TARGET).decide(swarm(10.0, seed("s"), leecher("a", 5 * MIB)))
        assert MIN_COPIES == 2
        assert decision.mode is Mode.FULL

    def test_enough_copies_and_fast_leechers_bring_super_seeding_once_it_has_held(self):
        policy = SeedPolicy(TARGET)
        peers = (seed("s1"), seed("s2"), leecher("a", 3 * MIB), leecher("b", 2 * MIB))
        first = policy.decide(swarm(0.0, *peers))
        assert first.mode is Mode.FULL and "settling" in first.reason
        assert policy.decide(swarm(SETTLE_SECONDS / 2, *peers)).mode is Mode.FULL
        decision = policy.decide(swarm(SETTLE_SECONDS, *peers))
        assert decision.mode is Mode.SUPER
        assert decision.serve == frozenset()

    def test_a_starved_swarm_goes_back_to_full_speed_at_once(self):
        policy = SeedPolicy(TARGET)
        fast = (seed("s1"), seed("s2"), leecher("a", 3 * MIB), leecher("b", 3 * MIB), leecher("c", 3 * MIB))
        settled(policy, *fast)
        slow = (seed("s1"), seed("s2"), leecher("a", MIB / 4), leecher("b", MIB / 8), leecher("c", 3 * MIB))
        decision = policy.decide(swarm(SETTLE_SECONDS + 1, *slow))
        assert decision.mode is Mode.FULL
        assert decision.serve == {"a", "b", "c"}
        assert "2 of 3 leechers below" in decision.reason

    def test_pieces_only_we_hold_bring_full_speed(self):
        policy = SeedPolicy(TARGET)
        peers = (seed("s1"), seed("s2"), leecher("a", 3 * MIB))
        settled(policy, *peers)
        view = SwarmView(SETTLE_SECONDS + 1, [0, 0] + [2] * (PIECES - 2), 2, peers)  # seeds that left
        decision = policy.decide(view)
        assert decision.mode is Mode.FULL
        assert decision.serve == {"a"}
        assert "2 pieces only we hold" in decision.reason

    def test_a_starved_leecher_is_served_on_its_own_while_the_others_are_left_to_the_swarm(self):
        policy = SeedPolicy(TARGET)
        settled(policy, seed("s1"), seed("s2"), leecher("a", 3 * MIB), leecher("b", 3 * MIB))
        peers = (
            seed("s1"),
            seed("s2"),
            leecher("a", 3 * MIB),
            leecher("b", 3 * MIB),
            leecher("slow", MIB / 2),
        )
        decision = policy.decide(swarm(SETTLE_SECONDS + 1, *peers))
        assert decision.mode is Mode.SUPER
        assert decision.serve == {"slow"}

    def test_a_newcomer_and_an_opened_peer_are_not_judged_by_their_rate(self):
        policy = SeedPolicy(TARGET)
        peers = (
            seed("s1"),
            seed("s2"),
            leecher("new", 0.0, age=GRACE_SECONDS / 2),  # still connecting
            leecher("open", 0.0, opened=True),  # announces nothing to us any more
            leecher("b", 3 * MIB),
        )
        settled(policy, *peers)
        assert policy.decide(swarm(SETTLE_SECONDS + 1, *peers)).serve == frozenset()

    def test_one_slow_leecher_does_not_turn_the_whole_seed_to_full_speed(self):
        policy = SeedPolicy(TARGET)
        settled(policy, seed("s1"), seed("s2"))
        decision = policy.decide(swarm(SETTLE_SECONDS + 1, seed("s1"), seed("s2"), leecher("slow", 0.0)))
        assert decision.mode is Mode.SUPER
        assert decision.serve == {"slow"}

    def test_the_same_observations_give_the_same_decisions(self):
        script = [
            swarm(0.0, leecher("a", 0.0, age=0.0)),
            swarm(1.0, seed("a"), leecher("b", 2 * MIB)),
            swarm(2.0, seed("a"), seed("b"), leecher("c", 2 * MIB)),
            swarm(5.0, seed("a"), seed("b"), leecher("c", 2 * MIB), leecher("d", 0.0)),
        ]
        runs = [[SeedPolicy(TARGET).decide(view) for view in script] for _ in range(2)]
        assert runs[0] == runs[1]


# ----- a simulated swarm: buyers arrive, download and seed on --------------------------------


@dataclass
class Buyer:
    name: str
    arrived: float
    got: float = 0.0  # bytes
    opened: bool = False
    finished: float | None = None  # when its last byte came

    @property
    def done(self) -> bool:
        return self.finished is not None


SIZE = 32 * MIB
STORE_RATE = 16 * MIB  # what the store uploads in a second, split between the peers it serves
BUYER_RATE = 8 * MIB  # what a complete buyer uploads in a second


@dataclass
class SimulatedSwarm:
    """A buyer arriving each second; the store serves the leechers the policy opens, complete
    buyers serve every leecher; one step a second. (The super-seed's trickle to the others is
    left out: it only helps them.)"""

    policy: SeedPolicy
    buyers: list[Buyer] = field(default_factory=list)
    modes: list[Mode] = field(default_factory=list)
    store_sent: float = 0.0
    buyers_sent: float = 0.0

    def run(self, arrivals: int, seconds: int) -> SimulatedSwarm:
        for second in range(seconds):
            self.step(float(second), min(arrivals, second + 1))
        return self

    def step(self, now: float, arrivals: int) -> None:
        while len(self.buyers) < arrivals:
            self.buyers.append(Buyer(f"b{len(self.buyers)}", now))
        seeds = [b for b in self.buyers if b.done]
        leeching = [b for b in self.buyers if not b.done]
        for b in leeching:  # served at full speed from the start while the policy says so
            b.opened = b.opened or self.policy.mode is Mode.FULL
        rates = self._rates(leeching, len(seeds))
        view = SwarmView(
            now,
            [len(seeds)] * PIECES,
            len(seeds),
            [
                PeerView(b.name, b.done, rates.get(b.name, 0.0), now - b.arrived, b.opened)
                for b in self.buyers
            ],
        )
        decision = self.policy.decide(view)
        self.modes.append(decision.mode)
        for b in leeching:
            b.opened = b.opened or b.name in decision.serve
            b.got += rates[b.name]
            if b.got >= SIZE:
                b.finished = now + 1

    def _rates(self, leeching: list[Buyer], seeds: int) -> dict[str, float]:
        opened = [b for b in leeching if b.opened]
        rates = {}
        for b in leeching:
            from_store = STORE_RATE / len(opened) if b.opened else 0.0
            from_buyers = seeds * BUYER_RATE / len(leeching)
            self.store_sent += from_store
            self.buyers_sent += from_buyers
            rates[b.name] = from_store + from_buyers
        return rates

    @property
    def store_share(self) -> float:
        return self.store_sent / (self.store_sent + self.buyers_sent)

    @property
    def median_time(self) -> float:
        times = sorted(b.finished - b.arrived for b in self.buyers if b.finished is not None)
        return times[len(times) // 2]


def always_full() -> SeedPolicy:
    return SeedPolicy(TARGET, min_copies=10**9)


class TestSimulatedSwarm:
    def test_the_store_serves_the_first_buyers_then_leaves_the_rest_to_them(self):
        sim = SimulatedSwarm(SeedPolicy(TARGET)).run(arrivals=20, seconds=60)
        assert all(b.done for b in sim.buyers)
        assert sim.modes[0] is Mode.FULL
        first_super = sim.modes.index(Mode.SUPER)
        assert Mode.FULL not in sim.modes[first_super:]
        opened = [b for b in sim.buyers if b.opened]
        assert 2 <= len(opened) <= len(sim.buyers) // 2
        assert all(b.arrived <= first_super for b in opened)  # nobody opened once buyers could serve

    def test_it_uploads_less_than_a_full_speed_seed_and_keeps_buyers_about_as_fast(self):
        adaptive = SimulatedSwarm(SeedPolicy(TARGET)).run(arrivals=20, seconds=60)
        full = SimulatedSwarm(always_full()).run(arrivals=20, seconds=60)
        assert all(b.done for b in adaptive.buyers + full.buyers)
        assert adaptive.store_share < 0.8 * full.store_share
        assert adaptive.median_time <= 1.1 * full.median_time

    def test_a_super_seed_with_nobody_complete_would_starve_the_swarm_and_the_policy_does_not(self):
        sim = SimulatedSwarm(SeedPolicy(TARGET)).run(arrivals=3, seconds=1)
        assert sim.modes == [Mode.FULL]
        assert all(b.opened for b in sim.buyers)


class TestAFastPayingLeecherIsNeverStarved:
    """The store's choker puts the leechers the policy serves first; a buyer-seed's choker puts
    paying peers first and serves them within their credit window. A paying leecher whose rate
    from the swarm drops below the target is unchoked by the store in the next round."""

    @pytest.mark.parametrize("seed_rng", range(5))
    def test_its_rate_dips_and_the_store_takes_it_up_the_next_round(self, seed_rng: int):
        rng = random.Random(seed_rng)
        policy = SeedPolicy(TARGET)
        store = Choker(UPLOAD_SLOTS, PlainPeers.SERVE, rng=random.Random(seed_rng))
        others = [f"p{i}" for i in range(3 * UPLOAD_SLOTS)]  # more leechers than slots
        seeds = (seed("s1"), seed("s2"), seed("s3"))
        settled(policy, *seeds)
        for round_ in range(60):
            now = SETTLE_SECONDS + 1 + round_
            ours = rng.choice([4 * MIB, 2 * MIB, MIB / 2, MIB / 10])  # what the swarm gives it
            peers = [leecher("paying", ours)] + [leecher(name, rng.uniform(2, 6) * MIB) for name in others]
            decision = policy.decide(swarm(now, *seeds, *peers))
            candidates = [
                Candidate(p.peer, p.peer == "paying", rng.uniform(0, MIB), p.peer in decision.serve)
                for p in peers
            ]
            unchoked = store.choose(candidates)
            assert ours >= TARGET or "paying" in unchoked, f"round {round_}: starved at {ours:.0f} B/s"

    def test_a_buyer_seed_serves_the_paying_leecher_before_plain_peers_within_its_credit(self):
        seeder = Choker(UPLOAD_SLOTS, PlainPeers.AFTER_PAYING, rng=random.Random(7))
        account = CreditAccount(window=credit_window(256 * 1024))
        for round_ in range(30):
            plain = [Candidate(f"plain{i}", False, 50 * MIB) for i in range(2 * UPLOAD_SLOTS)]
            unchoked = seeder.choose([*plain, Candidate("paying", True, 1 * MIB)])
            assert "paying" in unchoked, f"round {round_}"
            served = 8 * MIB  # what it got this round; it signs a receipt for it, as our leechers do
            assert account.allows(served)
            account.serve(served)
            account.record_receipt(account.served)


# ----- the engine, with real peers on loopback ------------------------------------------------


def adaptive_config():
    config = store_config()
    config.seed_target_rate = 64 * 1024  # loopback buyers are far above it
    return config


async def start_adaptive_store(tmp_path, content) -> tuple[Session, object]:
    session = Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "store.journal"), utp=False)
    await session.start()
    torrent = await session.add_torrent(content.meta, content.folder, adaptive_config(), writable=False)
    return session, torrent


def test_the_engine_serves_the_first_buyers_at_full_speed_then_super_seeds_for_a_newcomer(tmp_path):
    content = make_content(tmp_path, sizes=(1_500_000,), piece_length=32768)

    async def scenario():
        store, seed_torrent = await start_adaptive_store(tmp_path, content)
        buyers = [await start_buyer(tmp_path, content, number) for number in (1, 2, 3)]
        superseed = seed_torrent.uploads.superseed
        try:
            (first, one), (second, two), (third, three) = buyers
            # no complete copy yet: the store tells the first buyer every piece at once
            assert await first.connect(one, "127.0.0.1", store.port)
            await one.completed.wait()
            assert await second.connect(two, "127.0.0.1", store.port)
            await two.completed.wait()
            opened_early = superseed.opened_count
            # two complete copies: once that has held a moment, the store holds back
            while superseed.decision.mode is not Mode.SUPER:
                await asyncio.sleep(0.1)
            assert await third.connect(three, "127.0.0.1", first.port)
            assert await third.connect(three, "127.0.0.1", second.port)
            assert await third.connect(three, "127.0.0.1", store.port)
            await three.completed.wait()
            return opened_early, superseed, uploaded_to(seed_torrent, third.peer_id)
        finally:
            for session, _ in buyers:
                await session.close()
            await store.close()

    opened_early, superseed, to_newcomer = run(scenario())
    assert opened_early == 2
    assert len(superseed.full_rates) == 2  # what the two got at full speed: the newcomer's yardstick
    assert superseed.opened_count == 2  # the newcomer was left to the buyers
    assert [mode for _, mode in superseed.mode_changes] == [Mode.FULL, Mode.SUPER]
    assert to_newcomer == 0
    for number in (1, 2, 3):
        assert content.digest_in(tmp_path / f"buyer{number}") == content.digest_in(content.folder)


def test_a_libtorrent_leecher_completes_from_an_adaptive_seed_at_full_speed(tmp_path):
    content = make_content(tmp_path, name="album", sizes=(700_000, 3, 300_001), piece_length=32768)
    ses = lt_session()

    async def scenario():
        store, seed_torrent = await start_adaptive_store(tmp_path, content)
        try:
            handle = lt_add(ses, content, tmp_path / "lt")
            handle.connect_peer(("127.0.0.1", store.port))
            await lt_wait(handle, lambda s: s.is_seeding)
            return seed_torrent.uploads.superseed
        finally:
            await store.close()

    superseed = run(scenario())
    assert superseed.opened_count == 1
    assert superseed.offers_made == 0  # told everything at once, nothing offered piecemeal
    assert content.digest_in(tmp_path / "lt") == content.digest_in(content.folder)


class TestTheTargetIsWhatFullSpeedGave:
    def test_a_leecher_well_below_what_buyers_got_at_full_speed_is_starved(self):
        policy = SeedPolicy(TARGET, slack=1.5)
        peers = (seed("s1"), seed("s2"), leecher("a", 3 * MIB), leecher("b", 7 * MIB))
        settled(policy, *peers)
        view = SwarmView(SETTLE_SECONDS + 1, [2] * PIECES, 2, peers, full_speed_rate=9 * MIB)
        assert policy.target(view) == 6 * MIB
        decision = policy.decide(view)
        assert decision.mode is Mode.SUPER
        assert decision.serve == {"a"}

    def test_the_configured_target_is_the_floor(self):
        policy = SeedPolicy(TARGET)
        view = SwarmView(0.0, [2] * PIECES, 2, (), full_speed_rate=TARGET / 10)
        assert policy.target(view) == TARGET
        assert policy.target(SwarmView(0.0, [2] * PIECES, 2, ())) == TARGET
