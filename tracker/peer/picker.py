"""Which blocks to request from which peer: rarest-first pieces, whole pieces per peer, end-game.

Pieces not started wait in buckets by availability (how many non-seed peers have them; seeds
raise every piece alike, so they are only counted). Each bucket holds random ranks instead of
piece numbers, so iterating a bucket visits its pieces in this client's own random order and
peers of a swarm start on different pieces. A peer first finishes the pieces it started, so
its bytes complete pieces (and earn receipts) quickly; once every block is requested, end-game
lets idle peers duplicate outstanding requests.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterator

BLOCK_SIZE = 16 * 1024
ENDGAME_DUPLICATES = 1  # extra peers that may request the same block in end-game
# A peer with at most this many pieces nobody started has its rarest one found among them; with
# more, the bucket walk meets one of them within a few dozen steps
FEW_CANDIDATES = 64

FREE = 0
REQUESTED = 1
RECEIVED = 2


class PieceProgress:
    """A piece being downloaded: its buffer and each block's state and requesters."""

    __slots__ = ("buffer", "free", "index", "owner", "received", "requesters", "senders", "size", "states")

    def __init__(self, index: int, size: int, owner: Hashable) -> None:
        self.index = index
        self.size = size
        self.owner = owner
        count = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
        self.states = bytearray(count)
        self.requesters: list[list[Hashable]] = [[] for _ in range(count)]
        self.senders: list[Hashable] = [None] * count
        self.free = count
        self.received = 0
        self.buffer = bytearray(size)

    def block_length(self, block: int) -> int:
        """Length of block number `block`."""
        return min(BLOCK_SIZE, self.size - block * BLOCK_SIZE)

    @property
    def complete(self) -> bool:
        """Whether every block arrived."""
        return self.received == len(self.states)

    def reset(self) -> None:
        """Forget every block (after the piece failed its hash)."""
        count = len(self.states)
        self.states = bytearray(count)
        self.requesters = [[] for _ in range(count)]
        self.senders = [None] * count
        self.free = count
        self.received = 0


def _ones(flags: bytes) -> Iterator[int]:
    """The indexes of the 1 bytes in `flags` (one byte per piece)."""
    index = flags.find(1)
    while index >= 0:
        yield index
        index = flags.find(1, index + 1)


class PiecePicker:
    """Block selection for one torrent."""

    def __init__(self, piece_sizes: list[int], have: bytearray, *, max_pending: int, seed: int | None = None):
        self.piece_sizes = piece_sizes
        self.have = have
        self.max_pending = max_pending
        count = len(piece_sizes)
        rng = random.Random(seed)
        order = list(range(count))
        rng.shuffle(order)
        self._piece_at = order  # rank -> piece
        self._rank = [0] * count  # piece -> rank
        for rank, piece in enumerate(order):
            self._rank[piece] = rank
        self.availability = [0] * count
        self.seeds = 0
        self._buckets: dict[int, set[int]] = {0: {self._rank[i] for i in range(count) if not have[i]}}
        self._open = bytearray(0 if flag else 1 for flag in have)  # 1: not started (in a bucket)
        self.pending: dict[int, PieceProgress] = {}
        self.missing = count - sum(have)

    # ----- availability -----

    def _move(self, piece: int, old: int, new: int) -> None:
        rank = self._rank[piece]
        bucket = self._buckets.get(old)
        if bucket is not None and rank in bucket:
            bucket.discard(rank)
            if not bucket:
                del self._buckets[old]
            self._buckets.setdefault(new, set()).add(rank)

    def add_peer(self, flags: bytearray | None) -> None:
        """A peer's pieces count towards availability; None means a seed."""
        if flags is None:
            self.seeds += 1
            return
        availability = self.availability
        for piece, flag in enumerate(flags):
            if flag:
                availability[piece] += 1
                self._move(piece, availability[piece] - 1, availability[piece])

    def remove_peer(self, flags: bytearray | None) -> None:
        """A peer left (or became a seed): its pieces no longer count."""
        if flags is None:
            self.seeds -= 1
            return
        availability = self.availability
        for piece, flag in enumerate(flags):
            if flag:
                availability[piece] -= 1
                self._move(piece, availability[piece] + 1, availability[piece])

    def peer_has(self, piece: int) -> None:
        """A non-seed peer announced one more piece."""
        self.availability[piece] += 1
        self._move(piece, self.availability[piece] - 1, self.availability[piece])

    # ----- picking -----

    def _take(
        self, progress: PieceProgress, peer: Hashable, want: int, out: list[tuple[int, int, int]]
    ) -> int:
        states = progress.states
        taken = 0
        block = states.find(FREE) if progress.free else -1
        while block >= 0 and taken < want:
            states[block] = REQUESTED
            progress.requesters[block].append(peer)
            out.append((progress.index, block * BLOCK_SIZE, progress.block_length(block)))
            taken += 1
            progress.free -= 1
            block = states.find(FREE, block + 1) if progress.free else -1
        return taken

    def _start(self, peer: Hashable, flags: bytearray | None) -> PieceProgress | None:
        """Begin the rarest piece `peer` has (None if it has nothing new or memory is full)."""
        if len(self.pending) >= self.max_pending:
            return None
        if flags is None:
            piece = self._rarest(None)
        else:
            # The pieces it has that nobody started, at C speed (one byte per piece, 0 or 1). A
            # peer with none cost a scan of every unstarted piece in Python, and in a swarm of
            # leechers most picks end with one: 0.4 ms each with 4,096 pieces.
            width = len(flags)
            mask = int.from_bytes(flags, "big") & int.from_bytes(self._open, "big")
            if not mask:
                return None
            if mask.bit_count() > FEW_CANDIDATES:
                piece = self._rarest(flags)
            else:
                candidates = mask.to_bytes(width, "big")
                piece = min(
                    _ones(candidates), key=lambda index: (self.availability[index], self._rank[index])
                )
        if piece is None:
            return None
        rank, availability = self._rank[piece], self.availability[piece]
        bucket = self._buckets[availability]
        bucket.discard(rank)
        if not bucket:
            del self._buckets[availability]
        self._open[piece] = 0
        progress = PieceProgress(piece, self.piece_sizes[piece], peer)
        self.pending[piece] = progress
        return progress

    def _rarest(self, flags: bytearray | None) -> int | None:
        """The first piece of the lowest availability that `flags` has (None: a seed)."""
        piece_at = self._piece_at
        for availability in sorted(self._buckets):
            for rank in self._buckets[availability]:
                piece = piece_at[rank]
                if flags is None or flags[piece]:
                    return piece
        return None

    def pick(
        self, peer: Hashable, flags: bytearray | None, want: int, own: list[int], in_flight: int = 0
    ) -> list[tuple[int, int, int]]:
        """Up to `want` blocks to request from `peer` (`flags` None for a seed); `own` lists the
        pieces this peer started and is updated; `in_flight` counts its requests not answered yet."""
        out: list[tuple[int, int, int]] = []
        pending = self.pending
        # 1. finish our own pieces
        for piece in list(own):
            progress = pending.get(piece)
            if progress is None or progress.owner is not peer:
                own.remove(piece)
                continue
            if progress.free:
                want -= self._take(progress, peer, want, out)
                if want <= 0:
                    return out
        # 2. start new pieces, rarest first
        while want > 0:
            progress = self._start(peer, flags)
            if progress is None:
                break
            own.append(progress.index)
            want -= self._take(progress, peer, want, out)
        if want <= 0:
            return out
        # 3. help with pieces others started
        for progress in pending.values():
            if progress.free and (flags is None or flags[progress.index]):
                want -= self._take(progress, peer, want, out)
                if want <= 0:
                    return out
        # 4. end-game: everything is requested; a peer that has run dry duplicates what others
        # are slow to deliver
        if not self._buckets and not in_flight:
            self._endgame(peer, flags, want, out)
        return out

    def _endgame(
        self, peer: Hashable, flags: bytearray | None, want: int, out: list[tuple[int, int, int]]
    ) -> None:
        """Duplicate requests for an idle peer: blocks of the most recently started pieces first,
        each asked of two peers at most. Those blocks sit at the end of another peer's queue, so
        the cancel that follows the first copy mostly arrives before the second is sent. Filling
        every pipeline with duplicates (up to three requesters, oldest pieces first) had a small
        torrent with many fast seeders in end-game almost from its start: in the swarm benchmark
        a buyer got 10-12 MiB of unwanted blocks for 16 MiB (now ~3.5), bytes its seeders sent
        unpaid, and finished later."""
        for progress in reversed(self.pending.values()):
            if flags is not None and not flags[progress.index]:
                continue
            for block, state in enumerate(progress.states):
                if state != REQUESTED:
                    continue
                requesters = progress.requesters[block]
                if peer in requesters or len(requesters) > ENDGAME_DUPLICATES:
                    continue
                requesters.append(peer)
                out.append((progress.index, block * BLOCK_SIZE, progress.block_length(block)))
                want -= 1
                if want <= 0:
                    return

    @property
    def in_endgame(self) -> bool:
        """Whether no piece is left unstarted."""
        return not self._buckets

    # ----- outcomes -----

    def release(self, piece: int, begin: int, peer: Hashable) -> None:
        """`peer` will not deliver this block (choke, reject, disconnect): free it for others."""
        progress = self.pending.get(piece)
        if progress is None:
            return
        block = begin // BLOCK_SIZE
        requesters = progress.requesters[block]
        if peer in requesters:
            requesters.remove(peer)
            if not requesters and progress.states[block] == REQUESTED:
                progress.states[block] = FREE
                progress.free += 1

    def received(self, piece: int, begin: int, data: memoryview, peer: Hashable) -> PieceProgress | None:
        """Store a block `peer` sent if we asked it for it; returns the progress when the block
        was wanted (check `.complete`), None when it was unrequested or already had."""
        progress = self.pending.get(piece)
        if progress is None or begin % BLOCK_SIZE:
            return None
        block = begin // BLOCK_SIZE
        if block >= len(progress.states) or progress.states[block] == RECEIVED:
            return None
        requesters = progress.requesters[block]
        if peer not in requesters or len(data) != progress.block_length(block):
            return None
        progress.buffer[begin : begin + len(data)] = data
        if progress.states[block] == FREE:
            progress.free -= 1
        progress.states[block] = RECEIVED
        progress.senders[block] = peer
        progress.received += 1
        return progress

    def finished(self, piece: int, good: bool) -> None:
        """The piece's hash check finished: keep it, or start it over."""
        progress = self.pending.get(piece)
        if progress is None:
            return
        if good:
            del self.pending[piece]
            self.have[piece] = 1
            self.missing -= 1
            return
        progress.reset()
        del self.pending[piece]
        self._buckets.setdefault(self.availability[piece], set()).add(self._rank[piece])
        self._open[piece] = 1

    def other_requesters(self, progress: PieceProgress, begin: int, peer: Hashable) -> list[Hashable]:
        """Peers besides `peer` that still have this block requested (to cancel in end-game)."""
        return [other for other in progress.requesters[begin // BLOCK_SIZE] if other is not peer]
