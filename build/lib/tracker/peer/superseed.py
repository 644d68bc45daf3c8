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
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracker.peer import wire

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

OFFER_BYTES = 1024 * 1024  # offered to one peer at a time, in whole pieces
MAX_OFFERS = 64  # pieces offered to one peer at a time, however small they are
STALL_SECONDS = 3.0  # a peer with no piece from anyone else for this long is served regardless
RELEASE_SECONDS = 5.0  # a taken piece nobody passed on stops holding up new offers after this
SEED_MEMORY_SECONDS = 1800.0  # a seed that hung up counts as holding everything this long


def offers_per_peer(piece_length: int) -> int:
    """How many pieces a super-seed offers one peer at a time."""
    return max(1, min(MAX_OFFERS, OFFER_BYTES // piece_length))


@dataclass(slots=True)
class _Lead:
    """What a super-seed told one peer about, and what it saw of the peer."""

    progress_at: float  # when the peer last announced a piece we did not offer it
    offered: set[int] = field(default_factory=set)  # advertised to it, not taken yet
    taken: dict[int, float] = field(default_factory=dict)  # taken, not passed on yet: since when


class SuperSeeder:
    """The super-seeding side of a complete torrent: which pieces each peer is told about."""

    def __init__(self, torrent: Torrent, rng: random.Random | None = None) -> None:
        self.t = torrent
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
        self.leads[conn] = _Lead(progress_at=self.t.session.now())
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
        for piece in pieces:
            self._passed_on(piece, conn)
        if lead is not None:
            self._offer(conn, lead)

    def not_interested(self, conn: PeerConnection) -> None:
        """The peer lost interest in us: it holds every piece we offered it."""
        lead = self.leads.get(conn)
        if lead is None or not self.active:
            return
        now = self.t.session.now()
        offered = list(lead.offered)
        conn.infer_pieces(offered)
        for piece in offered:
            self.holders[piece] += 1
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
        """Once a second: free offers nobody passed on, serve stalled peers."""
        if not self.active:
            return
        for peer_id, since in list(self.absent_seeds.items()):
            if now - since > SEED_MEMORY_SECONDS:
                del self.absent_seeds[peer_id]
        for conn, lead in list(self.leads.items()):
            for piece, since in list(lead.taken.items()):
                if now - since > RELEASE_SECONDS:
                    self._release(conn, lead, piece)
            self._offer(conn, lead)

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
        if conn.closed or conn.is_seed or conn.flags is None:
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
