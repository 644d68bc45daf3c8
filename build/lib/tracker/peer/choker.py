"""Upload slots: which interested peers we unchoke.

Every RECHOKE_INTERVAL the fastest peers keep their slots (tit-for-tat: the rate they send to us
while we leech, the rate we send to them once we seed) and one slot rotates optimistically so
newcomers get a chance. Receipt-paying peers can be put before ordinary clients, which then only
get the slots paying peers leave free.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

UPLOAD_SLOTS = 8
RECHOKE_INTERVAL = 10.0  # seconds between regular rechokes
OPTIMISTIC_ROUNDS = 3  # the optimistic slot moves every this many rechokes


class PlainPeers(enum.Enum):
    """How a seeder treats peers that do not speak `sm_receipt` (or announce no purchase)."""

    SERVE = "serve"  # like everyone else: the store's own seed serves every peer the tracker let in
    AFTER_PAYING = "after-paying"  # only with slots that receipt-paying peers leave free


@dataclass(slots=True)
class Candidate:
    """An interested peer we could unchoke."""

    peer: Hashable
    paying: bool
    rate: float  # bytes per second, the tit-for-tat figure


class Choker:
    """Chooses the unchoked set each round."""

    def __init__(
        self,
        slots: int = UPLOAD_SLOTS,
        policy: PlainPeers = PlainPeers.SERVE,
        rng: random.Random | None = None,
    ):
        self.slots = max(1, slots)
        self.policy = policy
        self._rng = rng or random.Random()
        self._round = 0
        self._optimistic: Hashable | None = None

    def _order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        if self.policy is PlainPeers.AFTER_PAYING:
            return sorted(candidates, key=lambda c: (not c.paying, -c.rate))
        return sorted(candidates, key=lambda c: -c.rate)

    def choose(self, candidates: Sequence[Candidate]) -> set[Hashable]:
        """The peers to have unchoked after this round."""
        self._round += 1
        ordered = self._order(candidates)
        if len(ordered) <= self.slots:
            return {c.peer for c in ordered}
        regular = ordered[: self.slots - 1]
        rest = ordered[self.slots - 1 :]
        chosen = {c.peer for c in regular}
        keep = next((c for c in rest if c.peer is self._optimistic), None)
        if keep is None or self._round % OPTIMISTIC_ROUNDS == 0:
            pool = rest
            if self.policy is PlainPeers.AFTER_PAYING and any(c.paying for c in rest):
                pool = [c for c in rest if c.paying]
            keep = self._rng.choice(pool)
        self._optimistic = keep.peer
        chosen.add(keep.peer)
        return chosen

    def has_room(self, unchoked: int, candidate_paying: bool, waiting_paying: int) -> bool:
        """Whether a newly interested peer may be unchoked now, between rounds."""
        if unchoked >= self.slots:
            return False
        if self.policy is PlainPeers.AFTER_PAYING and not candidate_paying:
            return waiting_paying == 0
        return True
