"""Uploading for one torrent: queued requests served from the piece cache, the credit window of
receipt-paying peers, the session's upload cap, the choking of upload slots and, for a seed that
uploads as little as it can, super-seeding (`tracker.peer.superseed`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.billing import PurchaseAccount
from tracker.peer.cache import PieceCache
from tracker.peer.choker import Candidate, Choker
from tracker.peer.connection import MAX_QUEUED_REQUESTS
from tracker.peer.credit import CreditAccount
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.superseed import SuperSeeder

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

SERVE_BATCH_BYTES = 1024 * 1024  # blocks handed to the socket per write
READ_AHEAD_PIECES = 8  # distinct pieces of a peer's queued requests read from disk at once


class Uploads:
    """The upload side of a torrent."""

    def __init__(self, torrent: Torrent) -> None:
        self.t = torrent
        self.cache = PieceCache()
        self.loading: dict[int, list[PeerConnection]] = {}  # pieces coming off the disk, and who waits
        self.choker = Choker(torrent.config.upload_slots, torrent.config.plain_peers)
        self.last_rechoke = 0.0
        self.superseed = SuperSeeder(torrent) if torrent.config.super_seed else None

    def on_request(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        """The peer asks for a block."""
        if index >= self.t.meta.piece_count or not self.t.have[index]:
            raise ProtocolError(f"request for piece {index}, which we do not have")
        if length == 0 or length > wire.MAX_REQUEST_LENGTH or begin + length > self.t.meta.piece_size(index):
            raise ProtocolError(f"request out of range: piece {index} [{begin}, +{length})")
        if conn.am_choking:
            return  # requests to a choked peer are void; they race with our choke
        if len(conn.upload_queue) >= MAX_QUEUED_REQUESTS:
            raise ProtocolError("request flood")
        conn.upload_queue.append((index, begin, length))
        if len(conn.upload_queue) == 1:
            self.serve(conn)

    def serve(self, conn: PeerConnection) -> None:
        """Send queued blocks while the socket takes them and the peer's credit lasts."""
        if conn.am_choking or conn.write_paused or conn.closed or conn.waiting_for_piece:
            return
        queue = conn.upload_queue
        account = conn.account if self.t.config.enforce_credit else None
        while queue and not conn.write_paused:
            more = self._serve_batch(conn, account)
            if account is not None and queue and not account.allows(queue[0][2]):
                # Out of credit: hold the requests while a receipt may be on its way (a journal
                # fsync takes a while); tick() chokes the peer if none comes within CREDIT_GRACE.
                if conn.credit_stalled_at is None:
                    conn.credit_stalled_at = self.t.session.now()
                break
            conn.credit_stalled_at = None
            if not more:
                break
        if isinstance(conn.account, PurchaseAccount) and self.t.billing is not None:
            need = self.t.billing.need_message(conn, conn.account)
            if need is not None:
                conn.send(need)

    def _serve_batch(self, conn: PeerConnection, account: CreditAccount | None) -> bool:
        """Send up to SERVE_BATCH_BYTES of queued blocks in one write; False when a piece must
        first come off the disk or the credit ends."""
        queue = conn.upload_queue
        parts: list[bytes | memoryview] = []
        batch = 0
        more = True
        limit = self.t.session.upload_limit
        budget = SERVE_BATCH_BYTES if limit is None else min(SERVE_BATCH_BYTES, limit.available())
        credit = account.room() if account is not None else 0  # asked once, not for every block
        while queue and batch < SERVE_BATCH_BYTES:
            index, begin, length = queue[0]
            data = self.cache.get(index)
            if data is None:
                self._load(index, conn)
                more = False
                break
            if account is not None and batch + length > credit:
                more = False
                break
            if limit is not None and batch + length > budget:
                limit.wait(conn, length, lambda: self.serve(conn))
                more = False
                break
            queue.popleft()
            parts.append(wire.piece_header(index, begin, length))
            parts.append(memoryview(data)[begin : begin + length])
            batch += length
        if batch:
            if limit is not None:
                limit.spend(batch)
            conn.send_many(parts)
            conn.uploaded += batch
            self.t.uploaded += batch
            if conn.account is not None:
                conn.account.served += batch  # counted even when credit is not enforced
        return more

    def _load(self, index: int, conn: PeerConnection) -> None:
        conn.waiting_for_piece = True
        self._start_load(index, conn)
        self._read_ahead(conn)

    def _start_load(self, index: int, conn: PeerConnection | None) -> None:
        waiters = self.loading.get(index)
        if waiters is not None:
            if conn is not None:
                waiters.append(conn)
            return
        self.loading[index] = [conn] if conn is not None else []
        future = asyncio.get_running_loop().run_in_executor(
            self.t.session.disk, self.t.storage.read_piece, index
        )
        future.add_done_callback(lambda done: self._loaded(index, done))

    def _read_ahead(self, conn: PeerConnection) -> None:
        """Read the next pieces the peer asked for while the first comes off the disk: one read
        at a time costs a thread hand-off per piece, which with small pieces is the whole rate."""
        budget = self.cache.limit // 4
        seen: set[int] = set()
        for index, _, _ in conn.upload_queue:
            if len(seen) >= READ_AHEAD_PIECES or budget <= 0:
                break
            if index in seen:
                continue
            seen.add(index)
            budget -= self.t.meta.piece_length
            if index not in self.loading and self.cache.get(index) is None:
                self._start_load(index, None)

    def _loaded(self, index: int, done: asyncio.Future[bytearray]) -> None:
        waiters = self.loading.pop(index, [])
        try:
            self.cache.put(index, done.result())
        except PeerError as exc:
            self.t.fail(exc)
            return
        for conn in waiters:
            conn.waiting_for_piece = False
            self.serve(conn)

    def credit_choke(self, conn: PeerConnection, account: PurchaseAccount | object) -> None:
        """Choke a peer that ran out of credit, ask it for a receipt, and free its slot."""
        conn.credit_blocked = True
        self.choke(conn)
        if isinstance(account, PurchaseAccount) and self.t.billing is not None:
            need = self.t.billing.need_message(conn, account)
            if need is not None:
                conn.send(need)
        self.fill_slots()

    # ----- super-seeding: which of our pieces a peer hears about -----

    def hide_pieces(self, conn: PeerConnection) -> bool:
        """Whether to keep our bitfield from a newly attached peer (we super-seed)."""
        return self.superseed is not None and self.superseed.greet(conn)

    def peer_has(self, conn: PeerConnection, index: int | None) -> None:
        """The peer announced a new piece (None: its bitfield)."""
        if self.superseed is not None:
            self.superseed.peer_has(conn, index)

    def forget(self, conn: PeerConnection) -> None:
        """The peer left."""
        if self.superseed is not None:
            self.superseed.forget(conn)

    @property
    def keeps_seeds(self) -> bool:
        """Whether to stay connected to seeds although we are one (a super-seed counts on them)."""
        return self.superseed is not None and self.superseed.active

    def housekeeping(self, now: float) -> None:
        """Once a second."""
        if self.superseed is not None:
            self.superseed.tick(now)

    # ----- choking -----

    def on_interest(self, conn: PeerConnection) -> None:
        """The peer became interested in us, or stopped being."""
        if conn.peer_interested:
            self.maybe_unchoke(conn)
            return
        if not conn.am_choking:
            self.choke(conn)
            self.fill_slots()
        if self.superseed is not None:
            self.superseed.not_interested(conn)

    def _unchoked(self) -> int:
        return sum(1 for c in self.t.connections if not c.am_choking)

    def maybe_unchoke(self, conn: PeerConnection) -> None:
        """Unchoke an interested peer now if a slot is free for it."""
        if not conn.am_choking or conn.credit_blocked or not self.t.config.upload:
            return
        waiting_paying = sum(
            1
            for c in self.t.connections
            if c.am_choking and c.peer_interested and c.account and not c.credit_blocked
        )
        if self.choker.has_room(
            self._unchoked(), conn.account is not None, waiting_paying - (conn.account is not None)
        ):
            self._unchoke(conn)

    def fill_slots(self) -> None:
        """Give free slots to waiting interested peers, receipt-paying ones first."""
        for conn in sorted(self.t.connections, key=lambda c: c.account is None):
            if conn.am_choking and conn.peer_interested:
                self.maybe_unchoke(conn)

    def choke(self, conn: PeerConnection) -> None:
        """Choke a peer: its queued requests are void."""
        if not conn.am_choking:
            conn.am_choking = True
            conn.upload_queue.clear()
            conn.credit_stalled_at = None
            conn.send(wire.CHOKE_MSG)

    def _unchoke(self, conn: PeerConnection) -> None:
        conn.am_choking = False
        conn.send(wire.UNCHOKE_MSG)

    def rechoke(self) -> None:
        """The regular choking round."""
        if not self.t.config.upload:
            return
        candidates = [
            Candidate(conn, conn.account is not None, conn.rate_up if self.t.complete else conn.rate_down)
            for conn in self.t.connections
            if conn.peer_interested and not conn.credit_blocked
        ]
        chosen = self.choker.choose(candidates)
        for conn in list(self.t.connections):
            if conn in chosen:
                if conn.am_choking:
                    self._unchoke(conn)
            elif not conn.am_choking:
                self.choke(conn)
