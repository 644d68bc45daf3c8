"""The peer registry against a plain model: counts, peer lists, expiry, compact storage."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import LONG
from tracker.server.announce import COMPLETED, NONE, PAUSED, STARTED, STOPPED
from tracker.server.swarm import IPV4_WIDTH, IPV6_WIDTH, SwarmFull, SwarmRegistry

EXPIRY = 100
HASHES = (b"\x01" * 20, b"\x02" * 20)


def address(peer: int, v6: bool, port: int = 6881) -> bytes:
    """A distinct compact address for each peer number."""
    ip = (b"\x20\x01" + bytes(13) + bytes([peer])) if v6 else bytes([10, 0, 0, peer])
    return ip + port.to_bytes(2, "big")


def key(peer: int, v6: bool) -> bytes:
    return bytes([peer]) * 20 + b"tag!" + (b"6" if v6 else b"4")


def split(blob: bytes, width: int) -> list[bytes]:
    assert len(blob) % width == 0
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def check_storage(registry: SwarmRegistry) -> None:
    """The packed arrays agree with each other and with the key index."""
    total = 0
    for swarm in registry.swarms.values():
        assert swarm.peers, "empty swarms are dropped"
        for lane_id, lane in enumerate(swarm.lanes):
            if lane is None:
                continue
            assert lane.keys, "empty lanes are dropped"
            assert len(lane.addrs) == lane.width * len(lane.keys) == lane.width * len(lane.expires)
            for slot, peer_key in enumerate(lane.keys):
                assert swarm.peers[peer_key] == slot << 2 | lane_id
        assert swarm.seeds == sum(len(lane.keys) for lane in swarm.lanes[0::2] if lane is not None)
        total += len(swarm.peers)
    assert total == registry.peer_count


@dataclass
class Model:
    """What the registry should hold: per swarm, key -> (seed, address, expires)."""

    swarms: dict[bytes, dict[bytes, tuple[bool, bytes, int]]] = field(default_factory=dict)
    downloaded: dict[bytes, int] = field(default_factory=dict)

    def expire(self, now: int) -> None:
        for peers in self.swarms.values():
            for peer_key in [k for k, (_, _, expires) in peers.items() if expires < now]:
                del peers[peer_key]

    def counts(self, info_hash: bytes) -> tuple[int, int]:
        peers = self.swarms.get(info_hash, {})
        seeds = sum(seed for seed, _, _ in peers.values())
        return seeds, len(peers) - seeds


operations = st.lists(
    st.tuples(
        st.sampled_from(HASHES),
        st.integers(0, 11),  # peer
        st.booleans(),  # IPv6
        st.booleans(),  # seed
        st.sampled_from([NONE, STARTED, COMPLETED, STOPPED, PAUSED]),
        st.integers(0, 12),  # numwant
        st.integers(0, 60),  # seconds that pass before this announce
        st.booleans(),  # sweep everything first
    ),
    max_size=60,
)


class TestAgainstModel:
    @settings(max_examples=600 if LONG else 150, deadline=None)
    @given(operations)
    def test_counts_lists_and_expiry_match_the_model(self, ops: list[tuple]) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        model = Model()
        now = 0
        for info_hash, peer, v6, seed, event, numwant, wait, sweep in ops:
            now += wait
            if sweep:
                registry.sweep_all(now)
                model.expire(now)
                for swarm_hash in HASHES:
                    assert registry.stats(swarm_hash)[:2] == model.counts(swarm_hash)
            peers_key, addr = key(peer, v6), address(peer, v6)
            complete, incomplete, peers, peers6 = registry.announce(
                info_hash, peers_key, addr, seed, event, numwant, now
            )
            swarm = model.swarms.setdefault(info_hash, {})
            before = swarm.get(peers_key)
            if event == STOPPED:
                swarm.pop(peers_key, None)
            else:
                if event == COMPLETED and seed and not (before and before[0]):
                    model.downloaded[info_hash] = model.downloaded.get(info_hash, 0) + 1
                swarm[peers_key] = (seed, addr, now + EXPIRY)
            check_storage(registry)

            listed = split(peers, IPV4_WIDTH) + split(peers6, IPV6_WIDTH)
            assert len(listed) <= numwant
            assert len(set(listed)) == len(listed), "no peer twice"
            assert addr not in listed, "a peer never receives itself"
            # Listed peers are known and not expired (expired ones may linger until a sweep).
            known = {a: (s, exp) for s, a, exp in registry_view(registry, info_hash)}
            for other in listed:
                assert other in known
                if seed:
                    assert not known[other][0], "seeds are not sent to seeds"
            if event == STOPPED:
                assert listed == []
                continue
            eligible = [a for s, a, _ in registry_view(registry, info_hash) if a != addr and not (seed and s)]
            assert len(listed) == min(numwant, len(eligible))
            # Own family first: an IPv4 peer gets IPv6 peers only once IPv4 ones ran out.
            own = [a for a in eligible if (len(a) == IPV6_WIDTH) == v6]
            assert len([a for a in listed if (len(a) == IPV6_WIDTH) == v6]) == min(numwant, len(own))
            assert (complete, incomplete) == model.counts(info_hash)
        registry.sweep_all(now + EXPIRY + 1)
        assert registry.peer_count == 0
        assert registry.swarms == {}
        for info_hash in HASHES:
            assert registry.stats(info_hash) == (0, 0, model.downloaded.get(info_hash, 0))

    @settings(max_examples=300 if LONG else 80, deadline=None)
    @given(operations)
    def test_counts_equal_the_model_when_nothing_expires(self, ops: list[tuple]) -> None:
        registry = SwarmRegistry(expiry=10**6)
        model = Model()
        for info_hash, peer, v6, seed, event, numwant, _, _ in ops:
            registry.announce(info_hash, key(peer, v6), address(peer, v6), seed, event, numwant, 0)
            swarm = model.swarms.setdefault(info_hash, {})
            if event == STOPPED:
                swarm.pop(key(peer, v6), None)
            else:
                swarm[key(peer, v6)] = (seed, address(peer, v6), 0)
            for swarm_hash in HASHES:
                assert registry.stats(swarm_hash)[:2] == model.counts(swarm_hash)


def registry_view(registry: SwarmRegistry, info_hash: bytes) -> list[tuple[bool, bytes, int]]:
    """(seed, address, expires) of every peer listed in a swarm."""
    swarm = registry.swarms.get(info_hash)
    if swarm is None:
        return []
    view = []
    for lane_id, lane in enumerate(swarm.lanes):
        if lane is None:
            continue
        for slot in range(len(lane.keys)):
            view.append(
                (
                    lane_id % 2 == 0,
                    bytes(lane.addrs[slot * lane.width : (slot + 1) * lane.width]),
                    lane.expires[slot],
                )
            )
    return view


class TestSwarmBehaviour:
    def test_a_peer_that_changes_port_is_listed_with_the_new_one(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        registry.announce(HASHES[0], key(1, False), address(1, False, 1000), False, STARTED, 0, 0)
        registry.announce(HASHES[0], key(1, False), address(1, False, 2000), False, NONE, 0, 0)
        _, _, peers, _ = registry.announce(HASHES[0], key(2, False), address(2, False), False, STARTED, 10, 0)
        assert peers == address(1, False, 2000)

    def test_a_leecher_that_completes_becomes_a_seed_and_counts_one_download(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        registry.announce(HASHES[0], key(1, False), address(1, False), False, STARTED, 0, 0)
        assert registry.stats(HASHES[0]) == (0, 1, 0)
        registry.announce(HASHES[0], key(1, False), address(1, False), True, COMPLETED, 0, 5)
        registry.announce(HASHES[0], key(1, False), address(1, False), True, COMPLETED, 0, 6)
        assert registry.stats(HASHES[0]) == (1, 0, 1)

    def test_downloads_are_remembered_after_the_swarm_empties(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        registry.announce(HASHES[0], key(1, False), address(1, False), True, COMPLETED, 0, 0)
        registry.announce(HASHES[0], key(1, False), address(1, False), True, STOPPED, 0, 0)
        assert registry.swarms == {}
        assert registry.stats(HASHES[0]) == (0, 0, 1)

    def test_peers_expire_after_the_expiry_and_not_before(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        registry.announce(HASHES[0], key(1, False), address(1, False), False, STARTED, 0, 0)
        registry.announce(HASHES[0], key(2, False), address(2, False), False, STARTED, 0, 50)
        assert registry.sweep_all(EXPIRY) == 0
        assert registry.sweep_all(EXPIRY + 1) == 1
        assert registry.stats(HASHES[0]) == (0, 1, 0)
        assert registry.sweep_all(EXPIRY + 51) == 1
        assert registry.peer_count == 0

    def test_incremental_sweeps_visit_every_swarm(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        for number in range(50):
            registry.announce(bytes([number]) * 20, key(1, False), address(1, False), False, STARTED, 0, 0)
        removed = sum(registry.sweep(EXPIRY + 1, budget=7) for _ in range(8))
        assert removed == 50
        assert registry.swarms == {}

    def test_a_stop_for_an_unknown_swarm_creates_nothing(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        assert registry.announce(HASHES[0], key(1, False), address(1, False), False, STOPPED, 50, 0) == (
            0,
            0,
            b"",
            b"",
        )
        assert registry.swarms == {}

    def test_a_full_registry_refuses_new_peers_but_serves_known_ones(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY, max_peers=2)
        registry.announce(HASHES[0], key(1, False), address(1, False), False, STARTED, 0, 0)
        registry.announce(HASHES[0], key(2, False), address(2, False), False, STARTED, 0, 0)
        with pytest.raises(SwarmFull):
            registry.announce(HASHES[0], key(3, False), address(3, False), False, STARTED, 0, 0)
        assert registry.announce(HASHES[0], key(1, False), address(1, False), False, NONE, 5, 1)[
            2
        ] == address(2, False)

    def test_big_swarm_lists_are_random_windows_capped_at_numwant(self) -> None:
        registry = SwarmRegistry(expiry=EXPIRY)
        for peer in range(200):
            registry.announce(HASHES[0], key(peer, False), address(peer, False), peer % 3 == 0, STARTED, 0, 0)
        seen: set[bytes] = set()
        for _ in range(60):
            _, _, peers, _ = registry.announce(
                HASHES[0], key(1, False), address(1, False), False, NONE, 30, 0
            )
            listed = split(peers, IPV4_WIDTH)
            assert len(listed) == 30
            assert address(1, False) not in listed
            seen.update(listed)
        assert len(seen) > 150, "lists start at random places"
