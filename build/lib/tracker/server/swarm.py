"""The peer registry: every swarm's peers in compact form, their expiry, and the counts.

Memory is the constraint (goal: at most 200 bytes per peer at a million peers), so a peer is not
an object. Each swarm keeps up to four lanes — IPv4 seeds, IPv4 leechers, IPv6 seeds, IPv6
leechers — and a lane stores its peers as parallel packed arrays: the compact addresses (6 or 18
bytes each, BEP 23 / BEP 7) back to back in one bytearray, the expiry times in an `array('I')`,
and the peer keys in a list. One dict per swarm maps a peer's key to `slot << 2 | lane`. Removal
swaps the lane's last peer into the hole, so lanes stay dense and a peer list is a few slices of
a bytearray taken from a random starting point.

A peer's key is its peer_id plus a 4-byte tag of the announcing account and the address family,
so one account cannot overwrite or stop another account's peer by copying its peer_id.
"""

from __future__ import annotations

from array import array
from random import random

from tracker.server.announce import COMPLETED, STOPPED

IPV4_WIDTH = 6  # 4-byte address + 2-byte port
IPV6_WIDTH = 18  # 16-byte address + 2-byte port
V4_SEEDS, V4_LEECHERS, V6_SEEDS, V6_LEECHERS = 0, 1, 2, 3
LANE_BITS = 2
_LANE_MASK = (1 << LANE_BITS) - 1
DEFAULT_MAX_PEERS = 5_000_000  # about 1 GB of swarm state; refuse new peers beyond it
# The lanes a requester's list is drawn from, keyed by (IPv6?, seed?): its own address family
# first, the other one to fill up; seeds get only leechers, leechers get both.
_LISTED_LANES = {
    (False, False): ((V4_SEEDS, V4_LEECHERS), (V6_SEEDS, V6_LEECHERS)),
    (False, True): ((V4_LEECHERS,), (V6_LEECHERS,)),
    (True, False): ((V6_SEEDS, V6_LEECHERS), (V4_SEEDS, V4_LEECHERS)),
    (True, True): ((V6_LEECHERS,), (V4_LEECHERS,)),
}


class SwarmFull(Exception):
    """The registry holds `max_peers` peers and will not take a new one."""


class _Lane:
    """Peers of one kind in one swarm, as parallel packed arrays."""

    __slots__ = ("addrs", "expires", "keys", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.addrs = bytearray()
        self.expires = array("I")
        self.keys: list[bytes] = []


class _Swarm:
    __slots__ = ("lanes", "peers", "seeds")

    def __init__(self) -> None:
        self.peers: dict[bytes, int] = {}
        self.lanes: list[_Lane | None] = [None, None, None, None]
        self.seeds = 0

    def add(self, lane_id: int, key: bytes, addr: bytes, expires: int) -> int:
        """List a new peer; returns its slot in the lane."""
        lane = self.lanes[lane_id]
        if lane is None:
            lane = self.lanes[lane_id] = _Lane(IPV4_WIDTH if lane_id < V6_SEEDS else IPV6_WIDTH)
        slot = len(lane.keys)
        self.peers[key] = slot << LANE_BITS | lane_id
        lane.keys.append(key)
        lane.addrs += addr
        lane.expires.append(expires)
        self.seeds += lane_id % 2 == 0
        return slot

    def remove(self, lane_id: int, slot: int) -> None:
        lane = self.lanes[lane_id]
        assert lane is not None
        self.seeds -= lane_id % 2 == 0
        del self.peers[lane.keys[slot]]
        last = len(lane.keys) - 1
        width = lane.width
        if slot != last:
            moved = lane.keys[last]
            lane.keys[slot] = moved
            lane.addrs[slot * width : slot * width + width] = lane.addrs[last * width :]
            lane.expires[slot] = lane.expires[last]
            self.peers[moved] = slot << LANE_BITS | lane_id
        lane.keys.pop()
        del lane.addrs[last * width :]
        lane.expires.pop()
        if not lane.keys:
            self.lanes[lane_id] = None

    def sweep(self, now: int) -> int:
        """Drop peers whose expiry has passed; returns how many."""
        removed = 0
        for lane_id, lane in enumerate(self.lanes):
            if lane is None or min(lane.expires) >= now:
                continue
            expires = lane.expires
            # Walk downwards: the peer swapped into a hole comes from the end, already checked.
            for slot in range(len(expires) - 1, -1, -1):
                if expires[slot] < now:
                    self.remove(lane_id, slot)
                    removed += 1
                    if self.lanes[lane_id] is None:
                        break
        return removed


def _pick(lanes: list[_Lane], skip: tuple[_Lane, int] | None, want: int) -> bytes:
    """Up to `want` compact peers from `lanes`, taken as one circular sequence from a random
    start, leaving out the requester's own record `skip` (lane, slot)."""
    sizes = [len(lane.keys) for lane in lanes]
    total = sum(sizes)
    available = total - (skip is not None)
    if available <= 0 or want <= 0:
        return b""
    if want >= available:
        start, count = 0, total
    else:
        start = int(random() * total)  # randrange() costs several times more on this hot path
        count = want
        if skip is not None:
            # The requester's position in the circular sequence; widen the window by one if inside.
            position = skip[1]
            for lane, size in zip(lanes, sizes, strict=True):
                if lane is skip[0]:
                    break
                position += size
            if (position - start) % total < want:
                count += 1
    parts: list[bytearray] = []
    lane_index, offset = 0, start
    while offset >= sizes[lane_index]:
        offset -= sizes[lane_index]
        lane_index += 1
    while count:
        lane = lanes[lane_index]
        take = min(count, sizes[lane_index] - offset)
        width = lane.width
        if skip is not None and skip[0] is lane and offset <= skip[1] < offset + take:
            parts.append(lane.addrs[offset * width : skip[1] * width])
            parts.append(lane.addrs[(skip[1] + 1) * width : (offset + take) * width])
        else:
            parts.append(lane.addrs[offset * width : (offset + take) * width])
        count -= take
        lane_index, offset = (lane_index + 1) % len(lanes), 0
        while count and not sizes[lane_index]:
            lane_index = (lane_index + 1) % len(lanes)
    return b"".join(parts)


def _peer_lists(
    swarm: _Swarm, lane_id: int, slot: int, v6: bool, seed: bool, want: int
) -> tuple[bytes, bytes]:
    """(peers, peers6) for the requester at `slot` of lane `lane_id`."""
    lanes = swarm.lanes
    own_ids, other_ids = _LISTED_LANES[v6, seed]
    first = [lane for lane_no in own_ids if (lane := lanes[lane_no]) is not None]
    own = lanes[lane_id]
    # A leecher's own lane is among those it is sent; leave its own record out.
    skip = None if seed or own is None else (own, slot)
    own_peers = _pick(first, skip, want) if first else b""
    rest = want - len(own_peers) // (IPV6_WIDTH if v6 else IPV4_WIDTH)
    other_peers = b""
    if rest > 0:
        second = [lane for lane_no in other_ids if (lane := lanes[lane_no]) is not None]
        if second:
            other_peers = _pick(second, None, rest)
    return (other_peers, own_peers) if v6 else (own_peers, other_peers)


class SwarmRegistry:
    """All swarms of the tracker. Times are whole seconds on the caller's monotonic clock."""

    def __init__(self, expiry: int, max_peers: int = DEFAULT_MAX_PEERS) -> None:
        self.expiry = expiry  # seconds a peer stays listed after its last announce
        self.max_peers = max_peers
        self.swarms: dict[bytes, _Swarm] = {}
        self.downloaded: dict[bytes, int] = {}
        self.peer_count = 0
        self._sweep_queue: list[bytes] = []

    def announce(
        self, info_hash: bytes, key: bytes, addr: bytes, seed: bool, event: int, numwant: int, now: int
    ) -> tuple[int, int, bytes, bytes]:
        """Record an announce; returns (complete, incomplete, peers, peers6) for the answer."""
        swarm = self.swarms.get(info_hash)
        if swarm is None:
            if event == STOPPED:
                return 0, 0, b"", b""
            swarm = self.swarms[info_hash] = _Swarm()
        v6 = len(addr) == IPV6_WIDTH
        lane_id = (V6_SEEDS if v6 else V4_SEEDS) + (not seed)
        code = swarm.peers.get(key)
        slot = -1
        if code is not None:
            old_lane, slot = code & _LANE_MASK, code >> LANE_BITS
            if event == STOPPED or old_lane != lane_id:
                swarm.remove(old_lane, slot)
                self.peer_count -= 1
                slot = -1
            else:
                lane = swarm.lanes[lane_id]
                assert lane is not None
                lane.expires[slot] = now + self.expiry
                width = lane.width
                if not lane.addrs.startswith(addr, slot * width):
                    lane.addrs[slot * width : slot * width + width] = addr
        if event == STOPPED:
            return self._counts_and_forget(info_hash, swarm)
        if slot < 0:
            if event == COMPLETED and seed:  # a seed already listed was counted before
                self.downloaded[info_hash] = self.downloaded.get(info_hash, 0) + 1
            if self.peer_count >= self.max_peers:
                raise SwarmFull
            slot = swarm.add(lane_id, key, addr, now + self.expiry)
            self.peer_count += 1
        complete = swarm.seeds
        incomplete = len(swarm.peers) - complete
        if numwant <= 0:
            return complete, incomplete, b"", b""
        return complete, incomplete, *_peer_lists(swarm, lane_id, slot, v6, seed, numwant)

    def _counts_and_forget(self, info_hash: bytes, swarm: _Swarm) -> tuple[int, int, bytes, bytes]:
        if not swarm.peers:
            del self.swarms[info_hash]
            return 0, 0, b"", b""
        return swarm.seeds, len(swarm.peers) - swarm.seeds, b"", b""

    def stats(self, info_hash: bytes) -> tuple[int, int, int]:
        """(complete, incomplete, downloaded) of one swarm, as scrape reports them."""
        swarm = self.swarms.get(info_hash)
        downloaded = self.downloaded.get(info_hash, 0)
        if swarm is None:
            return 0, 0, downloaded
        return swarm.seeds, len(swarm.peers) - swarm.seeds, downloaded

    def seeds(self, info_hash: bytes) -> list[bytes]:
        """The compact addresses (address + port) of a swarm's seeds."""
        swarm = self.swarms.get(info_hash)
        if swarm is None:
            return []
        addrs: list[bytes] = []
        for lane_id in (V4_SEEDS, V6_SEEDS):
            lane = swarm.lanes[lane_id]
            if lane is not None:
                width, blob = lane.width, bytes(lane.addrs)
                addrs += [blob[i : i + width] for i in range(0, len(blob), width)]
        return addrs

    def sweep(self, now: int, budget: int | None = None) -> int:
        """Drop expired peers from up to `budget` swarms (all when None), continuing round-robin
        where the last call stopped; returns how many peers went."""
        if not self._sweep_queue:
            self._sweep_queue = list(self.swarms)
        count = len(self._sweep_queue) if budget is None else min(budget, len(self._sweep_queue))
        batch = self._sweep_queue[-count:] if count else []
        del self._sweep_queue[len(self._sweep_queue) - count :]
        removed = 0
        for info_hash in batch:
            swarm = self.swarms.get(info_hash)
            if swarm is None:
                continue
            removed += swarm.sweep(now)
            if not swarm.peers:
                del self.swarms[info_hash]
        self.peer_count -= removed
        return removed

    def sweep_all(self, now: int) -> int:
        """Drop every expired peer now."""
        self._sweep_queue = []
        return self.sweep(now)
