"""Downloading one torrent: requests through the picker, blocks into pieces, verification and
writing on the disk thread, end-game cancels, receipts credit for verified pieces, and bans for
peers whose blocks fail the hash check.

Everything we keep about downloading from one peer is its `DownloadState` (`conn.down`), and only
this module writes it: our interest, the requests in flight, the pipeline depth, strikes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.picker import BLOCK_SIZE, PieceProgress

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

log = logging.getLogger(__name__)

MAX_STRIKES = 3  # pieces failing their hash that a peer may have taken part in
DEFAULT_PEER_QUEUE = 250  # libtorrent's assumption for peers that do not say
MAX_PIPELINE = 256  # blocks we keep requested from one peer (4 MiB at 16 KiB); deeper was slower
MIN_PIPELINE = 16
INITIAL_PIPELINE = 64
PIPELINE_SECONDS = 0.5  # keep this much of a peer's rate requested
REQUEST_TIMEOUT = 30.0  # seconds without a block before we give a peer's requests to others
# New pieces are told to peers in one batch of `have`s at most this long after the first of them
# verified, as Transmission queues its haves. One write per piece cost a leecher of 16 KiB pieces
# a system call per piece and peer, and a hidden store seed (which hears of every piece) a read
# and a parse each: ~10 % of a buyer's download time in bench/swarm.py. The last piece goes at once.
HAVE_BATCH_SECONDS = 0.05


@dataclass(slots=True)
class DownloadState:
    """What we keep about downloading from one peer; written only by `Downloads`."""

    am_interested: bool = False
    wanted: int = 0  # pieces the peer has that we lack
    outstanding: dict[int, int] = field(default_factory=dict)  # (index << 32 | begin) -> length
    own_pieces: list[int] = field(default_factory=list)  # pieces the picker started with this peer
    pipeline: int = INITIAL_PIPELINE  # blocks to keep requested
    last_block_at: float = 0.0
    downloaded: int = 0  # block bytes we requested and got
    wasted: int = 0  # block bytes we did not need
    strikes: int = 0  # failed pieces it took part in
    told: int = 0  # our verified pieces it knew of when it connected (`Downloads.announced`)
    rate_down: float = 0.0
    down_mark: int = 0  # `downloaded` at the last rate update


def blocks_of(size: int) -> list[int]:
    """The block lengths of a piece of `size` bytes."""
    return [min(BLOCK_SIZE, size - begin) for begin in range(0, size, BLOCK_SIZE)]


class Downloads:
    """The download side of a torrent."""

    def __init__(self, torrent: Torrent) -> None:
        self.t = torrent
        meta = torrent.meta
        self.checking: asyncio.Future[None] | None = None  # the disk thread's job, while it runs
        self.queued: deque[PieceProgress] = deque()  # complete pieces waiting for that job
        self.suspects: dict[int, list[tuple[PeerConnection, bytes]]] = {}  # smart-ban evidence
        last = meta.piece_size(meta.piece_count - 1)
        self.block_lengths = [blocks_of(size) for size in {meta.piece_length, last}]
        self.verified = 0  # payload bytes of pieces that passed their hash check
        self.failed_pieces = 0
        self.announced = 0  # pieces verified so far, in order: new peers' bitfields hold them all
        self.unannounced: list[tuple[int, int]] = []  # (sequence, piece) verified, `have` not sent
        self._have_timer: asyncio.TimerHandle | None = None

    # ----- what the peer has, and our interest in it -----

    def peer_bitfield(self, conn: PeerConnection) -> None:
        """The peer's first account of its pieces (a bitfield, or have_all / have_none)."""
        picker = self.t.picker
        if picker is None:
            return
        flags = conn.flags
        picker.add_peer(None if conn.is_seed else flags)
        have = self.t.have
        conn.down.wanted = sum(1 for i, flag in enumerate(flags) if flag and not have[i])

    def peer_has(self, conn: PeerConnection, index: int, became_seed: bool) -> None:
        """The peer got piece `index` (its flags already say so)."""
        picker = self.t.picker
        if picker is None:
            return
        picker.peer_has(index)
        if not self.t.have[index]:
            conn.down.wanted += 1
        if became_seed:
            picker.remove_peer(conn.flags)
            picker.add_peer(None)

    def update_interest(self, conn: PeerConnection) -> None:
        """Tell the peer whether we want something it has, and ask for it if we do."""
        down = conn.down
        want = self.t.picker is not None and down.wanted > 0
        if want != down.am_interested:
            down.am_interested = want
            conn.send(wire.INTERESTED_MSG if want else wire.NOT_INTERESTED_MSG)
        if want:
            self.request_more(conn)

    def on_extension_handshake(self, conn: PeerConnection) -> None:
        """The peer said how many requests it queues: keep our pipeline within that."""
        assert conn.extension is not None
        queue = conn.extension.request_queue or DEFAULT_PEER_QUEUE
        conn.down.pipeline = max(MIN_PIPELINE, min(conn.down.pipeline, queue))

    def forget(self, conn: PeerConnection) -> None:
        """The peer left: give its requests and availability back."""
        if self.t.picker is not None:
            self.release_all(conn)
            self.t.picker.remove_peer(None if conn.is_seed else conn.flags)

    def finished(self) -> None:
        """Every piece is here: blocks still on their way are duplicates, and we want nothing."""
        for conn in list(self.t.connections):
            down = conn.down
            down.outstanding.clear()
            if down.am_interested:
                down.am_interested = False
                conn.send(wire.NOT_INTERESTED_MSG)

    def release_all(self, conn: PeerConnection) -> None:
        """Give every block requested from `conn` back to the picker."""
        outstanding = conn.down.outstanding
        if self.t.picker is not None:
            for key in outstanding:
                self.t.picker.release(key >> 32, key & 0xFFFFFFFF, conn)
        outstanding.clear()

    def tick(self, conn: PeerConnection, now: float, elapsed: float, pipeline_cap: int | None) -> None:
        """Once a second: the peer's rate, its pipeline depth, a stalled peer's requests."""
        down = conn.down
        if elapsed > 0:
            down.rate_down = (down.downloaded - down.down_mark) / elapsed
        down.down_mark = down.downloaded
        queue = (conn.extension.request_queue if conn.extension else None) or DEFAULT_PEER_QUEUE
        target = int(down.rate_down * PIPELINE_SECONDS / BLOCK_SIZE)
        cap = min(MAX_PIPELINE, queue) if pipeline_cap is None else min(MAX_PIPELINE, queue, pipeline_cap)
        down.pipeline = max(MIN_PIPELINE, min(cap, max(target, down.pipeline)))
        if down.outstanding and now - down.last_block_at > REQUEST_TIMEOUT:
            log.info("%r is not delivering; giving its requests to others", conn)
            self.release_all(conn)
            down.last_block_at = 0.0
        self.request_more(conn)

    # ----- requests and blocks -----

    def on_choke(self, conn: PeerConnection) -> None:
        """The peer stopped serving us: its outstanding requests are void (BEP 3)."""
        self.release_all(conn)
        if self.t.leecher is not None and conn.wallet is not None:
            # It may be waiting for a receipt (the credit window): pay all we verified from it,
            # even below RECEIPT_STEP, or neither side would move.
            self.t.send_receipts({conn.wallet}, force=True)
        for other in self.t.connections:
            if other is not conn:
                self.request_more(other)

    def on_unchoke(self, conn: PeerConnection) -> None:
        """The peer serves us again."""
        self.request_more(conn)

    def request_more(self, conn: PeerConnection) -> None:
        """Top up the peer's request pipeline."""
        picker = self.t.picker
        down = conn.down
        if picker is None or conn.peer_choking or not down.am_interested or conn.closed:
            return
        outstanding = down.outstanding
        room = down.pipeline - len(outstanding)
        if room <= 0 or (outstanding and room < down.pipeline // 4):
            return  # refill in batches, not one request per block
        flags = None if conn.is_seed else conn.flags
        blocks = picker.pick(conn, flags, room, down.own_pieces, len(outstanding))
        if not blocks:
            return
        for index, begin, length in blocks:
            outstanding[index << 32 | begin] = length
        if not down.last_block_at:
            down.last_block_at = self.t.session.now()
        conn.send(wire.requests(blocks))

    def on_block(self, conn: PeerConnection, index: int, begin: int, data: memoryview) -> None:
        """A block arrived."""
        down = conn.down
        length = down.outstanding.pop(index << 32 | begin, None)
        if length is None or self.t.picker is None:
            down.wasted += len(data)  # unrequested, or cancelled in end-game: harmless
            return
        if length != len(data):
            raise ProtocolError("a block of another length than requested")
        down.downloaded += length
        down.last_block_at = self.t.session.now()
        picker = self.t.picker
        progress = picker.received(index, begin, data, conn)
        if progress is None:
            down.wasted += length
        else:
            if picker.in_endgame:
                self._cancel_duplicates(conn, progress, index, begin, length)
            if progress.complete:
                self._verify(progress)
        if len(down.outstanding) <= down.pipeline - down.pipeline // 4:
            self.request_more(conn)

    def on_reject(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        """The peer will not send a block we asked for (BEP 6): another peer may."""
        down = conn.down
        key = index << 32 | begin
        if down.outstanding.get(key) != length:
            return  # not asked, or already here: rejects race with pieces, as cancels do
        del down.outstanding[key]
        if self.t.picker is not None:
            self.t.picker.release(index, begin, conn)
        for other in list(self.t.connections):
            if other is not conn:
                self.request_more(other)

    def _cancel_duplicates(
        self, conn: PeerConnection, progress: PieceProgress, index: int, begin: int, length: int
    ) -> None:
        assert self.t.picker is not None
        others = self.t.picker.other_requesters(progress, begin, conn)
        if not others:
            return
        progress.requesters[begin // BLOCK_SIZE] = [conn]
        for other in others:
            if (
                isinstance(other, type(conn))
                and other.down.outstanding.pop(index << 32 | begin, None) is not None
            ):
                other.send(wire.cancel(index, begin, length))
                self.request_more(other)  # it may have run dry: end-game gives it another block

    def _verify(self, progress: PieceProgress) -> None:
        """Queue a complete piece for its hash check and write on the disk thread. One job drains
        the queue: a job per piece cost the loop ~40 µs to hand over (a future, a thread wake-up),
        15 % of a 20-buyer swarm's CPU with 16 KiB pieces."""
        self.queued.append(progress)
        if self.checking is None:
            self._start_checking()

    def _start_checking(self) -> None:
        loop = asyncio.get_running_loop()
        self.checking = loop.run_in_executor(self.t.session.disk, self._check_queued, loop)
        self.checking.add_done_callback(self._checking_done)

    def _check_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the disk thread: check and write queued pieces until none is left; each outcome
        goes back to the loop as it comes."""
        while self.queued:
            progress = self.queued.popleft()
            outcome: bool | PeerError
            try:
                outcome = self.t.storage.verify_and_write(progress.index, progress.buffer)
            except PeerError as exc:
                outcome = exc
            loop.call_soon_threadsafe(self._verified, progress, outcome)

    def _checking_done(self, job: asyncio.Future[None]) -> None:
        """The job ended (on the loop, after every outcome it sent): start another for pieces
        queued after it looked for the last time."""
        self.checking = None
        if not job.cancelled() and job.exception() is not None:
            log.error("checking pieces of %s failed", self.t.meta.name, exc_info=job.exception())
            self.t.fail(PeerError(f"checking pieces failed: {job.exception()}"))
            return
        if self.queued:
            self._start_checking()

    def _verified(self, progress: PieceProgress, outcome: bool | PeerError) -> None:
        picker = self.t.picker
        if picker is None or progress.index not in picker.pending:
            return
        if isinstance(outcome, PeerError):
            self.t.fail(outcome)
            return
        good = outcome
        index = progress.index
        senders: list[PeerConnection | None] = list(progress.senders)  # type: ignore[arg-type]
        if not good:
            self._piece_failed(progress, senders)
            picker.finished(index, good=False)
            for conn in list(self.t.connections):
                self.request_more(conn)
            return
        picker.finished(index, good=True)
        self.verified += progress.size
        self.t.piece_verified(index, progress.buffer)
        self._smart_ban(index, progress)
        if self.t.leecher is not None:
            wallets = self.t.leecher.credit_piece(senders, self._block_lengths_of(progress.size))
            if picker.missing == 0:  # the last piece: settle up with every seeder
                wallets = set(self.t.leecher.ledger.tallies)
            self.t.send_receipts(wallets, force=picker.missing == 0)
        self._announce_piece(index)
        if picker.missing == 0:
            self.t.finish()
        elif len(picker.pending) >= picker.max_pending - 1:
            # Memory for pieces was full, so pipelines may have run dry: a slot is free again.
            for conn in list(self.t.connections):
                self.request_more(conn)

    def attached(self, conn: PeerConnection) -> None:
        """A peer was sent our bitfield: it knows of every piece verified so far."""
        conn.down.told = self.announced

    def _announce_piece(self, index: int) -> None:
        """Lose interest in peers with nothing else for us; tell the others of the new piece soon."""
        for conn in list(self.t.connections):
            if conn.flags[index]:
                conn.down.wanted -= 1
                if conn.down.wanted <= 0:
                    self.update_interest(conn)
        self.unannounced.append((self.announced, index))
        self.announced += 1
        if self.t.picker is not None and self.t.picker.missing == 0:
            self.announce_haves()
        elif self._have_timer is None:
            self._have_timer = asyncio.get_running_loop().call_later(HAVE_BATCH_SECONDS, self.announce_haves)

    def announce_haves(self) -> None:
        """Send each peer, in one write, a `have` for every new piece it lacks and was not told of
        in our bitfield."""
        if self._have_timer is not None:
            self._have_timer.cancel()
            self._have_timer = None
        pieces, self.unannounced = self.unannounced, []
        for conn in list(self.t.connections):
            flags, told = conn.flags, conn.down.told
            news = [wire.have(index) for sequence, index in pieces if sequence >= told and not flags[index]]
            if news:
                conn.send(b"".join(news))

    def _block_lengths_of(self, size: int) -> list[int]:
        for lengths in self.block_lengths:
            if sum(lengths) == size:
                return lengths
        return blocks_of(size)

    def _piece_failed(self, progress: PieceProgress, senders: list[PeerConnection | None]) -> None:
        self.failed_pieces += 1
        log.info("piece %d failed its hash check", progress.index)
        evidence = []
        view = memoryview(progress.buffer)
        for block, sender in enumerate(senders):
            if sender is not None:
                begin = block * BLOCK_SIZE
                digest = block_digest(view[begin : begin + progress.block_length(block)])
                evidence.append((sender, digest))
        self.suspects.setdefault(progress.index, []).extend(evidence)
        for sender in {sender for sender in senders if sender is not None}:
            sender.down.strikes += 1
            if sender.down.strikes >= MAX_STRIKES:
                self.t.ban(sender, "sent pieces that failed their hash check")

    def _smart_ban(self, index: int, progress: PieceProgress) -> None:
        """A piece that failed before now verified: whoever sent a block that differs lied."""
        evidence = self.suspects.pop(index, None)
        if not evidence:
            return
        view = memoryview(progress.buffer)
        digests = {}
        for block in range(len(progress.states)):
            begin = block * BLOCK_SIZE
            digests[block] = block_digest(view[begin : begin + progress.block_length(block)])
        good = set(digests.values())
        for sender, digest in evidence:
            if digest not in good:
                self.t.ban(sender, "sent a corrupt block")


def block_digest(block: memoryview) -> bytes:
    """A fingerprint of a block, to tell later which sender's block differed from the good one."""
    return hashlib.blake2b(block, digest_size=16).digest()
