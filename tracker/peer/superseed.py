"""Super-seeding (BEP 16): a seed that uploads as little as it can and still keeps every piece
available. The store's own seed runs this way, so buyers get the content from each other.

A super-seed hides what it has: no bitfield, only a HAVE for each piece it offers a peer, a few
at a time (about OFFER_BYTES). It offers pieces nobody it is connected to holds or was offered,
so each of its bytes is one the swarm lacks; a peer whose missing pieces all sit with other peers
gets them from those. A peer gets a new offer once a piece it took from us shows up at another
peer (the swarm passes it on), or at once when no other peer lacks that piece.

Availability comes before thrift: a peer that announced no piece from anyone else for
STALL_SECONDS is offered the rarest piece it lacks, whoever else holds it, until it makes
progress again; a taken piece nobody passed on frees its offer after RELEASE_SECONDS.

How we learn that a peer took an offered piece: its HAVE, or — for clients that send no HAVE for
a piece we advertised, ours among them — its losing interest in us: a peer interested in nothing
we advertised holds all of it. To know who holds what, a super-seed stays connected to seeds, and
counts a seed that hung up on it (as a peer does once it has every piece, the super-seed looking
like a seed by then) as holding everything for SEED_MEMORY_SECONDS: it seeds on for other peers
and re-announces, connecting to us again, well within that time.

With a policy (`tracker.peer.seedpolicy`, the store's adaptive seed) it also decides, once a
second, whom to serve at full speed: such a peer is "opened", told about every piece it lacks at
once (the rarest first) and served like a plain seed's peer. In full-speed mode every leecher is
opened; in super-seeding mode only those the swarm starves. Opening is for good (a peer cannot be
made to forget a `have`), so a peer opened while the swarm was thin is served to the end; the
seed holds back with the peers that arrive once buyers can serve each other.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.seedpolicy import Decision, Mode, PeerView, SeedPolicy, SwarmView

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

log = logging.getLogger(__name__)
OFFER_BYTES = 1024 * 1024  # offered to one peer at a time, in whole pieces
MAX_OFFERS = 64  # pieces offered to one peer at a time, however small they are
STALL_SECONDS = 3.0  # a peer with no piece from anyone else for this long is served regardless
RELEASE_SECONDS = 5.0  # a taken piece nobody passed on stops holding up new offers after this
SEED_MEMORY_SECONDS = 1800.0  # a seed that hung up counts as holding everything this long
FULL_SPEED_SAMPLES = 16  # opened peers whose download rate makes "what full speed gives"


def offers_per_peer(piece_length: int) -> int:
    """How many pieces a super-seed offers one peer at a time."""
    return max(1, min(MAX_OFFERS, OFFER_BYTES // piece_length))


@dataclass(slots=True)
class _Lead:
    """What a super-seed told one peer about, and what it saw of the peer."""

    progress_at: float  # when the peer last announced a piece we did not offer it
    joined: float  # when it connected
    offered: set[int] = field(default_factory=set)  # advertised to it, not taken yet
    taken: dict[int, float] = field(default_factory=dict)  # taken, not passed on yet: since when
    opened: bool = False  # told about every piece: served at full speed
    open_since: float = 0.0
    lacked: int = 0  # bytes it lacked when opened
    got: int = 0  # bytes of pieces it announced that we had not offered it (from other peers)
    mark: int = 0  # got + what we sent it, at the last rate update
    rate: float = 0.0  # bytes a second it downloads from anyone, smoothed


class SuperSeeder:
    """The super-seeding side of a complete torrent: which pieces each peer is told about."""

    def __init__(
        self, torrent: Torrent, rng: random.Random | None = None, policy: SeedPolicy | None = None
    ) -> None:
        self.t = torrent
        self.policy = policy
        self.decision: Decision | None = None  # the policy's latest; None: plain BEP 16, nobody opened
        self.mode_changes: list[tuple[float, Mode]] = []  # when the policy switched, and to what
        self.opened_count = 0  # peers opened so far
        self.full_rates: deque[float] = deque(maxlen=FULL_SPEED_SAMPLES)  # what opened peers got, B/s
        self._ticked_at: float | None = None
        self.offers = offers_per_peer(torrent.meta.piece_length)
        self.leads: dict[PeerConnection, _Lead] = {}
        self.holders: list[int] = []  # per piece: connected peers that hold it
        self.pending: list[int] = []  # per piece: peers it is offered to and not taken yet
        self.waiting: dict[int, set[PeerConnection]] = {}  # piece -> peers whose taken offer waits on it
        self.absent_seeds: dict[bytes, float] = {}  # peer id -> when that seed hung up
        self.active = False
        self.offers_made = 0
        self._rng = rng or random.Random()

    # ----- events from the torrent -----

    def greet(self, conn: PeerConnection) -> bool:
        """A peer attached: hide our pieces from it (True) when we super-seed, i.e. are complete."""
        if not self.t.complete:
            return False
        if not self.active:
            self._activate()
        now = self.t.session.now()
        self.leads[conn] = _Lead(progress_at=now, joined=now)
        self.absent_seeds.pop(conn.peer_id, None)  # counted as connected from now on
        return True

    def peer_has(self, conn: PeerConnection, index: int | None) -> None:
        """The peer announced piece `index` (None: its whole bitfield)."""
        if not self.active:
            return
        flags = conn.flags
        assert flags is not None
        pieces = [index] if index is not None else [i for i, flag in enumerate(flags) if flag]
        for piece in pieces:
            self.holders[piece] += 1
        lead = self.leads.get(conn)
        if lead is not None:
            now = self.t.session.now()
            for piece in pieces:
                if piece in lead.offered:
                    self._took(conn, lead, piece, now)
                else:
                    lead.progress_at = now
                    lead.got += self.t.meta.piece_size(piece)
        for piece in pieces:
            self._passed_on(piece, conn)
        if lead is not None:
            self._offer(conn, lead)

    def not_interested(self, conn: PeerConnection) -> None:
        """The peer lost interest in us: it holds every piece we offered it (every piece, once
        opened)."""
        lead = self.leads.get(conn)
        if lead is None or not self.active:
            return
        now = self.t.session.now()
        offered = list(lead.offered)
        flags = conn.flags
        held = [i for i, flag in enumerate(flags) if not flag] if lead.opened else offered
        new = [piece for piece in held if not flags[piece]]
        if lead.opened and new and now > lead.open_since and lead.lacked:
            self.full_rates.append(lead.lacked / (now - lead.open_since))  # it finished: how fast
            lead.lacked = 0
        conn.infer_pieces(held)
        for piece in new:
            self.holders[piece] += 1
        for piece in offered:
            self._took(conn, lead, piece, now)
        self._offer(conn, lead)

    def forget(self, conn: PeerConnection) -> None:
        """The peer left: what only it held (or was offered) may be offered to others now."""
        if not self.active:
            return
        if conn.flags is not None:
            for piece, flag in enumerate(conn.flags):
                if flag:
                    self.holders[piece] -= 1
        if conn.is_seed:
            self.absent_seeds[conn.peer_id] = self.t.session.now()
        lead = self.leads.pop(conn, None)
        if lead is not None:
            for piece in lead.offered:
                self.pending[piece] -= 1
            for piece in lead.taken:
                self.waiting.get(piece, set()).discard(conn)
        for other, other_lead in list(self.leads.items()):
            self._offer(other, other_lead)

    def tick(self, now: float) -> None:
        """Once a second: free offers nobody passed on, serve stalled peers, ask the policy."""
        if not self.active:
            return
        for peer_id, since in list(self.absent_seeds.items()):
            if now - since > SEED_MEMORY_SECONDS:
                del self.absent_seeds[peer_id]
        if self.policy is not None:
            self._measure(now)
            self._decide(self.policy, now)
        for conn, lead in list(self.leads.items()):
            for piece, since in list(lead.taken.items()):
                if now - since > RELEASE_SECONDS:
                    self._release(conn, lead, piece)
            self._offer(conn, lead)

    # ----- the policy: whom to serve at full speed -----

    def serves(self, conn: PeerConnection) -> bool:
        """Whether the policy has `conn` served at full speed (unchoked before other peers): it
        was opened, or is about to be."""
        decision = self.decision
        if decision is None or conn.is_seed:
            return False
        lead = self.leads.get(conn)
        return (lead is not None and lead.opened) or decision.mode is Mode.FULL or conn in decision.serve

    @property
    def holding_back(self) -> bool:
        """Whether the policy has us super-seed (serving at full speed only the starved)."""
        return self.decision is not None and self.decision.mode is Mode.SUPER

    def view(self, now: float) -> SwarmView:
        """What we observed of the swarm, for the policy."""
        absent = len(self.absent_seeds)
        return SwarmView(
            now=now,
            availability=[count + absent for count in self.holders],
            complete_copies=sum(1 for conn in self.t.connections if conn.is_seed) + absent,
            full_speed_rate=statistics.median(self.full_rates) if self.full_rates else None,
            peers=[
                PeerView(conn, conn.is_seed, lead.rate, now - lead.joined, lead.opened)
                for conn, lead in self.leads.items()
                if not conn.closed
            ],
        )

    def _measure(self, now: float) -> None:
        """Each peer's download rate: pieces it announced from elsewhere plus what we sent it."""
        elapsed = now - self._ticked_at if self._ticked_at is not None else 0.0
        self._ticked_at = now
        for conn, lead in self.leads.items():
            progress = lead.got + conn.up.uploaded
            if elapsed > 0:
                instant = (progress - lead.mark) / elapsed
                lead.rate = instant if now - lead.joined <= elapsed else (lead.rate + instant) / 2
            lead.mark = progress

    def _decide(self, policy: SeedPolicy, now: float) -> None:
        decision = policy.decide(self.view(now))
        if self.decision is None or decision.mode is not self.decision.mode:
            self.mode_changes.append((now, decision.mode))
            log.info("%s: seeding at %s: %s", self.t.meta.name, decision.mode.value, decision.reason)
        self.decision = decision

    def _open(self, conn: PeerConnection, lead: _Lead) -> None:
        """Tell `conn` about every piece it lacks, the rarest first: it is served like a plain
        seed's peer from now on."""
        flags = conn.flags
        lacking = [
            (self.holders[piece] + self.pending[piece], piece)
            for piece, flag in enumerate(flags)
            if not flag and piece not in lead.offered
        ]
        self._rng.shuffle(lacking)
        lacking.sort(key=lambda candidate: candidate[0])
        lead.opened = True
        lead.open_since = self.t.session.now()
        lead.lacked = sum(self.t.meta.piece_size(piece) for piece, flag in enumerate(flags) if not flag)
        self.opened_count += 1
        if lacking:
            conn.send(b"".join(wire.have(piece) for _, piece in lacking))

    # ----- offers -----

    def _activate(self) -> None:
        """Start counting who holds what, from every connected peer (some attached earlier)."""
        count = self.t.meta.piece_count
        self.holders = [0] * count
        self.pending = [0] * count
        for conn in self.t.connections:
            if conn.flags is not None:
                for piece, flag in enumerate(conn.flags):
                    self.holders[piece] += flag
        self.active = True
        if self.policy is not None:
            self._decide(self.policy, self.t.session.now())

    def _took(self, conn: PeerConnection, lead: _Lead, piece: int, now: float) -> None:
        """`conn` holds a piece we offered it: wait for the swarm to pass it on, unless nobody needs to."""
        lead.offered.discard(piece)
        self.pending[piece] -= 1
        if self.holders[piece] > 1 or self.absent_seeds or not self._lacked_by_others(conn, piece):
            return
        lead.taken[piece] = now
        self.waiting.setdefault(piece, set()).add(conn)

    def _lacked_by_others(self, conn: PeerConnection, piece: int) -> bool:
        """Whether another connected peer lacks `piece` (and could get it from `conn`)."""
        return any(
            other is not conn and not other.is_seed and other.flags is not None and not other.flags[piece]
            for other in self.t.connections
        )

    def _passed_on(self, piece: int, holder: PeerConnection) -> None:
        """`piece` showed up at `holder`: peers that took it from us may have new offers."""
        takers = self.waiting.get(piece)
        if not takers:
            return
        for conn in [taker for taker in takers if taker is not holder]:
            lead = self.leads.get(conn)
            if lead is not None:
                self._release(conn, lead, piece)
                self._offer(conn, lead)

    def _release(self, conn: PeerConnection, lead: _Lead, piece: int) -> None:
        lead.taken.pop(piece, None)
        takers = self.waiting.get(piece)
        if takers is not None:
            takers.discard(conn)
            if not takers:
                del self.waiting[piece]

    def _offer(self, conn: PeerConnection, lead: _Lead) -> None:
        """Advertise pieces to `conn` up to its share of offers."""
        if conn.closed or conn.is_seed or conn.flags is None or lead.opened:
            return
        if self.serves(conn):
            self._open(conn, lead)
            return
        room = self.offers - len(lead.offered) - len(lead.taken)
        if room <= 0:
            return
        for piece in self._pick(conn, lead, room):
            lead.offered.add(piece)
            self.pending[piece] += 1
            self.offers_made += 1
            conn.send(wire.have(piece))

    def _pick(self, conn: PeerConnection, lead: _Lead, count: int) -> list[int]:
        """Up to `count` of the rarest pieces `conn` lacks, in random order among equally rare
        ones; only pieces nobody else holds or was offered, unless the peer stalled."""
        flags = conn.flags
        assert flags is not None
        stalled = self.t.session.now() - lead.progress_at > STALL_SECONDS
        if not stalled and (self.absent_seeds or any(other.is_seed for other in self.t.connections)):
            return []  # a complete copy: every piece is held, so none qualifies (and no scan per `have`)
        holders, pending, absent = self.holders, self.pending, len(self.absent_seeds)
        candidates = []
        for piece, flag in enumerate(flags):
            if flag or piece in lead.offered or piece in lead.taken:
                continue
            score = holders[piece] + pending[piece] + absent
            if score == 0 or stalled:
                candidates.append((score, piece))
        self._rng.shuffle(candidates)
        candidates.sort(key=lambda candidate: candidate[0])  # stable: ties stay shuffled
        return [piece for _, piece in candidates[:count]]
