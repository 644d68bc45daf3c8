"""When the store's seed uploads at full speed and when it super-seeds: a pure, deterministic rule.

Super-seeding (`tracker.peer.superseed`) keeps the store's share of the upload small, but a buyer
pays for it in time whenever the swarm cannot serve it: while nobody else holds a complete copy
the store's few offers are all there is. So the seed adapts, deciding once a second:

- **Full speed** while the swarm cannot serve a buyer quickly: fewer than `min_copies` complete
  copies among the other peers, a piece that only the store holds, or most of the leechers whose
  rate we can judge (at least MIN_JUDGED) downloading below the target. Every leecher is told
  about every piece (it is served like a plain seed's peer).
- **Super-seeding** once buyers' capacity is there, and only after it has held for
  `settle_seconds` (a swarm that is fine for one tick is not fine yet). A leecher that is starved
  even then — below the target once `grace_seconds` past joining — is served at full speed on
  its own; the others hear about pieces a few at a time.

The target is "as fast as a plain seed": the rate the buyers the seed served at full speed got
(their bytes over their time, measured by the seed), divided by `slack`; `target_rate` (a buyer's
expected rate, a setting) is its floor, and all of it before any buyer finished at full speed.

The policy only decides; `SuperSeeder` feeds it what it observed and applies the decision. Rates
are what the seed sees of a peer's download from everyone: pieces it announced plus what we sent
it. A peer already told about every piece announces nothing more to us (our own peers send no
`have` for a piece the other side holds), so its rate is not judged: it is served anyway.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

MIN_COPIES = 2  # complete copies among the buyers before the store stops serving at full speed
GRACE_SECONDS = 3.0  # a new peer's rate is judged only after this long (connecting, first pieces)
SETTLE_SECONDS = 2.0  # the swarm must look able to serve for this long before the seed holds back
# "Most leechers starved" needs this many judged: one slow peer is served on its own, not by
# opening every newcomer too
MIN_JUDGED = 3
# A leecher the seed holds back with is starved below the rate buyers got at full speed (measured
# on the peers it opened) divided by this: as fast as a plain seed, give or take the noise of a
# one-second rate
FULL_SPEED_SLACK = 1.5


class Mode(enum.Enum):
    """How the seed uploads."""

    FULL = "full"  # every leecher hears of every piece, as from a plain seed
    SUPER = "super"  # BEP 16: pieces offered a few at a time, the rarest first


@dataclass(frozen=True, slots=True)
class PeerView:
    """One connected peer, as the seed observed it."""

    peer: Hashable
    seed: bool  # holds every piece
    rate: float  # bytes a second it downloads from anyone, as far as the seed can tell
    age: float  # seconds since it connected to us
    opened: bool = False  # already told about every piece: its rate is not observable


@dataclass(frozen=True, slots=True)
class SwarmView:
    """What the seed knows of its swarm at one moment."""

    now: float  # seconds on a monotonic clock
    availability: Sequence[int]  # per piece: peers other than us that hold it
    complete_copies: int  # peers other than us that hold every piece (connected or remembered)
    peers: Sequence[PeerView]
    full_speed_rate: float | None = None  # what buyers served at full speed got, if any finished


@dataclass(frozen=True, slots=True)
class Decision:
    """What the seed does until the next decision."""

    mode: Mode
    serve: frozenset[Hashable]  # leechers served at full speed: told every piece, unchoked first
    reason: str


class SeedPolicy:
    """Decides between full speed and super-seeding; its only state is the mode and since when
    the swarm has looked able to serve (the hysteresis)."""

    def __init__(
        self,
        target_rate: float,
        *,
        min_copies: int = MIN_COPIES,
        grace_seconds: float = GRACE_SECONDS,
        settle_seconds: float = SETTLE_SECONDS,
        slack: float = FULL_SPEED_SLACK,
    ) -> None:
        self.target_rate = target_rate
        self.slack = slack
        self.min_copies = min_copies
        self.grace_seconds = grace_seconds
        self.settle_seconds = settle_seconds
        self.mode = Mode.FULL
        self._able_since: float | None = None

    def target(self, view: SwarmView) -> float:
        """The rate below which a leecher is starved: the configured target, or what buyers got at
        full speed (divided by the slack) when that is more."""
        if view.full_speed_rate is None:
            return self.target_rate
        return max(self.target_rate, view.full_speed_rate / self.slack)

    def starved(self, view: SwarmView) -> frozenset[Hashable]:
        """Leechers whose rate we can judge and that download below the target."""
        target = self.target(view)
        return frozenset(
            p.peer
            for p in view.peers
            if not p.seed and not p.opened and p.age >= self.grace_seconds and p.rate < target
        )

    def _cannot_serve(self, view: SwarmView, starved: frozenset[Hashable]) -> str | None:
        """Why the swarm cannot serve a buyer quickly without us, or None when it can."""
        if view.complete_copies < self.min_copies:
            return f"{view.complete_copies} complete copies, fewer than {self.min_copies}"
        holes = sum(1 for count in view.availability if count == 0)
        if holes:
            return f"{holes} pieces only we hold"
        judged = sum(1 for p in view.peers if not p.seed and not p.opened and p.age >= self.grace_seconds)
        if judged >= MIN_JUDGED and 2 * len(starved) > judged:
            return f"{len(starved)} of {judged} leechers below {self.target(view):.0f} B/s"
        return None

    def decide(self, view: SwarmView) -> Decision:
        """The mode and the peers to serve at full speed, from what the seed observed."""
        leechers = frozenset(p.peer for p in view.peers if not p.seed)
        starved = self.starved(view)
        reason = self._cannot_serve(view, starved)
        if reason is not None:
            self.mode = Mode.FULL
            self._able_since = None
            return Decision(Mode.FULL, leechers, reason)
        if self.mode is Mode.FULL:
            if self._able_since is None:
                self._able_since = view.now
            if view.now - self._able_since < self.settle_seconds:
                return Decision(Mode.FULL, leechers, "the swarm can serve; settling")
            self.mode = Mode.SUPER
        return Decision(Mode.SUPER, starved, f"the swarm can serve; {len(starved)} starved leechers")
