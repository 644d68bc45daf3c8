"""Downloading one torrent: requests through the picker, blocks into pieces, verification and
writing on the disk thread, end-game cancels, receipts credit for verified pieces, and bans for
peers whose blocks fail the hash check."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.picker import BLOCK_SIZE, PieceProgress

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

log = logging.getLogger(__name__)

MAX_STRIKES = 3  # pieces failing their hash that a peer may have taken part in


def blocks_of(size: int) -> list[int]:
    """The block lengths of a piece of `size` bytes."""
    return [min(BLOCK_SIZE, size - begin) for begin in range(0, size, BLOCK_SIZE)]


class Downloads:
    """The download side of a torrent."""

    def __init__(self, torrent: Torrent) -> None:
        self.t = torrent
        meta = torrent.meta
        self.verifying: set[asyncio.Future[bool]] = set()  # pieces on the disk thread
        self.suspects: dict[int, list[tuple[PeerConnection, bytes]]] = {}  # smart-ban evidence
        last = meta.piece_size(meta.piece_count - 1)
        self.block_lengths = [blocks_of(size) for size in {meta.piece_length, last}]

    def on_choke(self, conn: PeerConnection) -> None:
        """The peer stopped serving us: its outstanding requests are void (BEP 3)."""
        self.t.release_all(conn)
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
        if picker is None or conn.peer_choking or not conn.am_interested or conn.closed:
            return
        room = conn.pipeline - len(conn.outstanding)
        if room <= 0 or (conn.outstanding and room < conn.pipeline // 4):
            return  # refill in batches, not one request per block
        blocks = picker.pick(conn, None if conn.is_seed else conn.flags, room, conn.own_pieces)
        if not blocks:
            return
        outstanding = conn.outstanding
        for index, begin, length in blocks:
            outstanding[index << 32 | begin] = length
        if not conn.last_block_at:
            conn.last_block_at = self.t.session.now()
        conn.send(wire.requests(blocks))

    def on_block(self, conn: PeerConnection, index: int, begin: int, data: memoryview) -> None:
        """A block arrived."""
        key = index << 32 | begin
        length = conn.outstanding.pop(key, None)
        if length is None or self.t.picker is None:
            conn.wasted += len(data)  # unrequested, or cancelled in end-game: harmless
            return
        if length != len(data):
            raise ProtocolError("a block of another length than requested")
        conn.downloaded += length
        conn.last_block_at = self.t.session.now()
        picker = self.t.picker
        progress = picker.received(index, begin, data, conn)
        if progress is None:
            conn.wasted += length
        else:
            if picker.in_endgame:
                self._cancel_duplicates(conn, progress, index, begin, length)
            if progress.complete:
                self._verify(progress)
        if len(conn.outstanding) <= conn.pipeline - conn.pipeline // 4:
            self.request_more(conn)

    def _cancel_duplicates(
        self, conn: PeerConnection, progress: PieceProgress, index: int, begin: int, length: int
    ) -> None:
        assert self.t.picker is not None
        others = self.t.picker.other_requesters(progress, begin, conn)
        if not others:
            return
        progress.requesters[begin // BLOCK_SIZE] = [conn]
        for other in others:
            if isinstance(other, type(conn)) and other.outstanding.pop(index << 32 | begin, None) is not None:
                other.send(wire.cancel(index, begin, length))

    def _verify(self, progress: PieceProgress) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.t.session.disk, self.t.storage.verify_and_write, progress.index, progress.buffer
        )
        future.add_done_callback(lambda done: self._verified(progress, done))
        self.verifying.add(future)
        future.add_done_callback(self.verifying.discard)

    def _verified(self, progress: PieceProgress, done: asyncio.Future[bool]) -> None:
        picker = self.t.picker
        if picker is None or progress.index not in picker.pending:
            return
        try:
            good = done.result()
        except PeerError as exc:
            self.t.fail(exc)
            return
        index = progress.index
        senders: list[PeerConnection | None] = list(progress.senders)  # type: ignore[arg-type]
        if not good:
            self._piece_failed(progress, senders)
            picker.finished(index, good=False)
            for conn in list(self.t.connections):
                self.request_more(conn)
            return
        picker.finished(index, good=True)
        self.t.downloaded += progress.size
        self.t.uploads.cache.put(index, progress.buffer)
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

    def _announce_piece(self, index: int) -> None:
        """Tell peers we have a new piece; lose interest in peers with nothing else for us."""
        have_msg = wire.have(index)
        for conn in list(self.t.connections):
            flags = conn.flags
            if flags is not None and flags[index]:
                conn.wanted -= 1
                if conn.wanted <= 0:
                    self.t.update_interest(conn)
            else:
                conn.send(have_msg)

    def _block_lengths_of(self, size: int) -> list[int]:
        for lengths in self.block_lengths:
            if sum(lengths) == size:
                return lengths
        return blocks_of(size)

    def _piece_failed(self, progress: PieceProgress, senders: list[PeerConnection | None]) -> None:
        self.t.failed_pieces += 1
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
            sender.strikes += 1
            if sender.strikes >= MAX_STRIKES:
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
