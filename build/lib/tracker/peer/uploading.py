"""Uploading for one torrent: queued requests served from the piece cache, the credit window of
receipt-paying peers, the session's upload cap, the choking of upload slots and, for a seed that
uploads as little as it can, super-seeding (`tracker.peer.superseed`).

Everything we keep about uploading to one peer is its `UploadState` (`conn.up`), and only this
module writes it: whether we choke it, its queued requests, its credit standing and the purchase
account it pays into (the account itself belongs to billing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracker.peer import wire
from tracker.peer.billing import PurchaseAccount
from tracker.peer.cache import PieceCache
from tracker.peer.choker import Candidate, Choker
from tracker.peer.credit import CREDIT_GRACE, CreditAccount
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.superseed import SuperSeeder

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.torrent import Torrent

SERVE_BATCH_BYTES = 1024 * 1024  # blocks handed to the socket per write
READ_AHEAD_PIECES = 8  # distinct pieces of a peer's queued requests read from disk at once
MAX_QUEUED_REQUESTS = 2000  # a peer queueing more requests than this is flooding us
ADVERTISED_REQUEST_QUEUE = 1000  # what we tell peers (reqq): honest ones stay well below the cap
# Requests we refuse (we are choking the peer, or lack the piece) between two unchokes before we
# drop the peer. An honest peer has at most ADVERTISED_REQUEST_QUEUE in flight when our choke
# reaches it, and a super-seed's peer may ask for a piece it saw elsewhere; twice that is abuse.
MAX_REFUSED_REQUESTS = 2 * ADVERTISED_REQUEST_QUEUE


@dataclass(slots=True)
class UploadState:
    """What we keep about uploading to one peer; written only by `Uploads`."""

    am_choking: bool = True
    queue: deque[tuple[int, int, int]] = field(default_factory=deque)  # requests to serve, in order
    waiting_for_piece: bool = False  # the next block's piece is coming off the disk
    credit_blocked: bool = False  # choked for want of receipts
    credit_stalled_at: float | None = None  # when serving stopped at the credit window
    account: CreditAccount | None = None  # set once the peer announced a purchase we bill
    refused: int = 0  # requests refused since the last unchoke
    uploaded: int = 0
    rate_up: float = 0.0
    up_mark: int = 0  # `uploaded` at the last rate update


class Uploads:
    """The upload side of a torrent."""

    def __init__(self, torrent: Torrent) -> None:
        self.t = torrent
        self.cache = PieceCache()
        self.loading: dict[int, list[PeerConnection]] = {}  # pieces coming off the disk, and who waits
        self.choker = Choker(torrent.config.upload_slots, torrent.config.plain_peers)
        self.last_rechoke = 0.0
        self.superseed = SuperSeeder(torrent) if torrent.config.super_seed else None
        self.sent = 0  # block bytes handed to sockets

    def bill(self, conn: PeerConnection, account: CreditAccount) -> None:
        """The peer announced a purchase we bill: serve it within that account's credit."""
        if conn.up.account is None:
            account.serve(conn.up.uploaded)  # what it got before it said who it is counts too
            conn.up.account = account

    def on_cancel(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        """The peer no longer wants a block it asked for."""
        with contextlib.suppress(ValueError):  # already sent, or never asked: cancels race with pieces
            conn.up.queue.remove((index, begin, length))

    def credit_grew(self, account: CreditAccount) -> None:
        """A receipt (or the tracker's word) gave `account` more credit: serve who waits on it."""
        for conn in list(self.t.connections):
            up = conn.up
            if up.account is not account:
                continue
            if up.credit_blocked:
                up.credit_blocked = False
                if conn.peer_interested:
                    self.maybe_unchoke(conn)
            elif not up.am_choking:
                self.serve(conn)

    def account_frozen(self, account: CreditAccount) -> None:
        """The tracker refused `account`'s receipts: stop serving every peer paying into it."""
        for conn in list(self.t.connections):
            if conn.up.account is account:
                conn.up.credit_blocked = True
                self.choke(conn)

    def tick(self, conn: PeerConnection, now: float, elapsed: float) -> None:
        """Once a second: the peer's rate, and a choke for a peer that stalled at its credit."""
        up = conn.up
        if elapsed > 0:
            up.rate_up = (up.uploaded - up.up_mark) / elapsed
        up.up_mark = up.uploaded
        stalled = up.credit_stalled_at
        if stalled is not None and now - stalled > CREDIT_GRACE and up.account is not None:
            up.credit_stalled_at = None
            self.credit_choke(conn, up.account)

    def on_request(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        """The peer asks for a block."""
        if index >= self.t.meta.piece_count:
            raise ProtocolError(f"request for piece {index}, the torrent has {self.t.meta.piece_count}")
        if length == 0 or length > wire.MAX_REQUEST_LENGTH or begin + length > self.t.meta.piece_size(index):
            raise ProtocolError(f"request out of range: piece {index} [{begin}, +{length})")
        if conn.up.am_choking or not self.t.have[index]:
            # Void: it raced with our choke, or asks for a piece we do not have (yet, or hidden
            # by super-seeding). Say so to a Fast peer; a peer that keeps asking is dropped.
            self._refuse(conn, index, begin, length)
            return
        if len(conn.up.queue) >= MAX_QUEUED_REQUESTS:
            raise ProtocolError("request flood")
        conn.up.queue.append((index, begin, length))
        if len(conn.up.queue) == 1:
            self.serve(conn)

    def _refuse(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        conn.up.refused += 1
        if conn.up.refused > MAX_REFUSED_REQUESTS:
            raise ProtocolError("too many requests we had to refuse")
        if conn.fast:
            conn.send(wire.reject(index, begin, length))

    def serve(self, conn: PeerConnection) -> None:
        """Send queued blocks while the socket takes them and the peer's credit lasts."""
        if conn.up.am_choking or conn.write_paused or conn.closed or conn.up.waiting_for_piece:
            return
        queue = conn.up.queue
        account = conn.up.account if self.t.config.enforce_credit else None
        while queue and not conn.write_paused:
            more = self._serve_batch(conn, account)
            if account is not None and queue and not account.allows(queue[0][2]):
                # Out of credit: hold the requests while a receipt may be on its way (a journal
                # fsync takes a while); tick() chokes the peer if none comes within CREDIT_GRACE.
                if conn.up.credit_stalled_at is None:
                    conn.up.credit_stalled_at = self.t.session.now()
                break
            conn.up.credit_stalled_at = None
            if not more:
                break
        if isinstance(conn.up.account, PurchaseAccount) and self.t.billing is not None:
            need = self.t.billing.need_message(conn, conn.up.account)
            if need is not None:
                conn.send(need)

    def _serve_batch(self, conn: PeerConnection, account: CreditAccount | None) -> bool:
        """Send up to SERVE_BATCH_BYTES of queued blocks in one write; False when a piece must
        first come off the disk or the credit ends."""
        queue = conn.up.queue
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
            conn.up.uploaded += batch
            self.sent += batch
            if conn.up.account is not None:
                conn.up.account.serve(batch)  # counted even when credit is not enforced
        return more

    def _load(self, index: int, conn: PeerConnection) -> None:
        conn.up.waiting_for_piece = True
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
        for index, _, _ in conn.up.queue:
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
            conn.up.waiting_for_piece = False
            self.serve(conn)

    def credit_choke(self, conn: PeerConnection, account: PurchaseAccount | object) -> None:
        """Choke a peer that ran out of credit, ask it for a receipt, and free its slot."""
        conn.up.credit_blocked = True
        self.choke(conn)
        if isinstance(account, PurchaseAccount) and self.t.billing is not None:
            need = self.t.billing.need_message(conn, account, force=True)
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
        """The peer left: its slot is free."""
        if self.superseed is not None:
            self.superseed.forget(conn)
        if not conn.up.am_choking:
            conn.up.am_choking = True
            self.fill_slots()

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
        if not conn.up.am_choking:
            self.choke(conn)
            self.fill_slots()
        if self.superseed is not None:
            self.superseed.not_interested(conn)

    def _unchoked(self) -> int:
        return sum(1 for c in self.t.connections if not c.up.am_choking)

    def maybe_unchoke(self, conn: PeerConnection) -> None:
        """Unchoke an interested peer now if a slot is free for it."""
        if not conn.up.am_choking or conn.up.credit_blocked or not self.t.config.upload:
            return
        waiting_paying = sum(
            1
            for c in self.t.connections
            if c.up.am_choking and c.peer_interested and c.up.account and not c.up.credit_blocked
        )
        if self.choker.has_room(
            self._unchoked(), conn.up.account is not None, waiting_paying - (conn.up.account is not None)
        ):
            self._unchoke(conn)

    def fill_slots(self) -> None:
        """Give free slots to waiting interested peers, receipt-paying ones first."""
        for conn in sorted(self.t.connections, key=lambda c: c.up.account is None):
            if conn.up.am_choking and conn.peer_interested:
                self.maybe_unchoke(conn)

    def choke(self, conn: PeerConnection) -> None:
        """Choke a peer: its queued requests are void."""
        up = conn.up
        if not up.am_choking:
            up.am_choking = True
            up.credit_stalled_at = None
            conn.send(wire.CHOKE_MSG)
            if conn.fast and up.queue:
                # BEP 6: with the Fast extension a choke no longer voids requests by itself
                conn.send(b"".join(wire.reject(*request) for request in up.queue))
            up.queue.clear()

    def _unchoke(self, conn: PeerConnection) -> None:
        conn.up.am_choking = False
        conn.up.refused = 0
        conn.send(wire.UNCHOKE_MSG)

    def rechoke(self) -> None:
        """The regular choking round."""
        if not self.t.config.upload:
            return
        candidates = [
            Candidate(
                conn, conn.up.account is not None, conn.up.rate_up if self.t.complete else conn.down.rate_down
            )
            for conn in self.t.connections
            if conn.peer_interested and not conn.up.credit_blocked
        ]
        chosen = self.choker.choose(candidates)
        for conn in list(self.t.connections):
            if conn in chosen:
                if conn.up.am_choking:
                    self._unchoke(conn)
            elif not conn.up.am_choking:
                self.choke(conn)
