"""One torrent's swarm: its peers, what we request from them, what we serve them, and receipts.

Connections call the `on_*` methods with validated values; this class decides everything else:
interest, block requests (through the picker), verification and writing (on the disk thread),
serving (with the piece cache and, for receipt-paying peers, the credit window), choking, and
bans. Nothing in here trusts a peer beyond what the connection already checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.metainfo import Metainfo
from tracker.peer import wire
from tracker.peer.billing import LeecherBilling, PurchaseAccount, SeederBilling
from tracker.peer.cache import PieceCache
from tracker.peer.choker import RECHOKE_INTERVAL, UPLOAD_SLOTS, Candidate, Choker, PlainPeers
from tracker.peer.connection import (
    ADVERTISED_REQUEST_QUEUE,
    DEFAULT_PEER_QUEUE,
    MAX_PIPELINE,
    MAX_QUEUED_REQUESTS,
    MIN_PIPELINE,
)
from tracker.peer.credit import CREDIT_GRACE, CreditAccount, ReceiptSigner, credit_window
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.extension import Need, decode_message, encode_handshake
from tracker.peer.picker import BLOCK_SIZE, PiecePicker, PieceProgress
from tracker.peer.storage import Storage
from tracker.receipts import ReceiptVerifier, SignedReceipt

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.session import Session

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 60  # per torrent
MAX_BUFFER_BYTES = 48 * 1024 * 1024  # pieces held in memory while downloading, per torrent
MIN_PENDING_PIECES = 4
SERVE_BATCH_BYTES = 1024 * 1024  # blocks handed to the socket per write
PIPELINE_SECONDS = 0.5  # keep this much of a peer's rate requested
MAX_STRIKES = 3  # pieces failing their hash that a peer may have taken part in
REQUEST_TIMEOUT = 30.0  # seconds without a block before we give a peer's requests to others
KEEPALIVE_INTERVAL = 90.0
IDLE_TIMEOUT = 240.0  # BEP 3 peers send keep-alives every two minutes


@dataclass
class TorrentConfig:
    """How we take part in one torrent."""

    signer: ReceiptSigner | None = None  # we download and pay with receipts
    receipt_ledger: Path | None = None  # where the signed figures persist across restarts
    wallet: bytes | None = None  # we seed and bill receipts to this payout address
    verifier: ReceiptVerifier | None = None  # checks receipts billed to `wallet`
    enforce_credit: bool = True  # serve receipt-paying peers only within their credit window
    confirm_buyers: bool = False  # past the first window, credit only once the tracker accepted a receipt
    plain_peers: PlainPeers = PlainPeers.AFTER_PAYING
    upload: bool = True  # serve pieces at all
    upload_slots: int = UPLOAD_SLOTS
    max_connections: int = MAX_CONNECTIONS
    max_buffer_bytes: int = MAX_BUFFER_BYTES


class Torrent:
    """The swarm logic of one torrent in a session."""

    def __init__(
        self, session: Session, meta: Metainfo, storage: Storage, config: TorrentConfig, have: bytearray
    ):
        self.session = session
        self.meta = meta
        self.storage = storage
        self.config = config
        self.have = have
        self.connections: set[PeerConnection] = set()
        self.banned: set[object] = set()
        self.cache = PieceCache()
        self._loading: dict[int, list[PeerConnection]] = {}
        self._verifying: set[asyncio.Future[bool]] = set()
        self.choker = Choker(config.upload_slots, config.plain_peers)
        self._last_rechoke = 0.0
        self.error: PeerError | None = None
        self.completed = asyncio.Event()
        self.downloaded = 0  # verified payload bytes
        self.uploaded = 0
        self.failed_pieces = 0
        self._suspects: dict[int, list[tuple[PeerConnection, bytes]]] = {}  # smart ban evidence
        sizes = [meta.piece_size(i) for i in range(meta.piece_count)]
        self._block_lengths = [self._blocks_of(size) for size in {meta.piece_length, sizes[-1]}]
        self.picker: PiecePicker | None = None
        if not all(have):
            max_pending = max(MIN_PENDING_PIECES, config.max_buffer_bytes // meta.piece_length)
            self.picker = PiecePicker(sizes, have, max_pending=max_pending)
        else:
            self.completed.set()
        self.billing: SeederBilling | None = None
        if config.wallet is not None:
            if config.verifier is None or session.journal is None:
                raise PeerError("billing receipts needs a receipt verifier and a journal")
            self.billing = SeederBilling(
                config.wallet,
                config.verifier,
                session.journal,
                meta.piece_length,
                confirm_buyers=config.confirm_buyers,
            )
        self.leecher: LeecherBilling | None = None
        if config.signer is not None:
            self.leecher = LeecherBilling(config.signer, meta.info_hash, config.receipt_ledger)

    @staticmethod
    def _blocks_of(size: int) -> list[int]:
        return [min(BLOCK_SIZE, size - begin) for begin in range(0, size, BLOCK_SIZE)]

    @property
    def complete(self) -> bool:
        """Whether we have every piece."""
        return self.picker is None

    @property
    def left(self) -> int:
        """Bytes still to download."""
        missing = [i for i, flag in enumerate(self.have) if not flag]
        return sum(self.meta.piece_size(i) for i in missing)

    # ----- peers come and go -----

    def ban_key(self, conn: PeerConnection) -> object:
        """What a ban applies to: the address, or on loopback (many peers, one address) the peer id."""
        host = conn.address[0]
        return (host, conn.peer_id) if host.startswith("127.") or host == "::1" else host

    def attach(self, conn: PeerConnection) -> bool:
        """A peer finished its handshake: accept it (or not) and greet it."""
        if self.error is not None or len(self.connections) >= self.config.max_connections:
            return False
        if self.ban_key(conn) in self.banned or any(c.peer_id == conn.peer_id for c in self.connections):
            return False
        self.connections.add(conn)
        conn.flags = bytearray(self.meta.piece_count)
        assert conn.handshake is not None
        if conn.handshake.supports_extensions:
            purchase = self.config.signer.purchase_id if self.config.signer and not self.complete else None
            payload = encode_handshake(
                wallet=self.config.wallet, purchase=purchase, request_queue=ADVERTISED_REQUEST_QUEUE
            )
            conn.send(wire.extended(0, payload))
        if any(self.have):
            conn.send(wire.bitfield(wire.pack_bits(self.have)))
        return True

    def detach(self, conn: PeerConnection) -> None:
        """A peer left: give its requests and availability back."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if self.picker is not None:
            self._release_all(conn)
            self.picker.remove_peer(None if conn.is_seed else conn.flags)
        if not conn.am_choking:
            conn.am_choking = True
            self._fill_slots()

    def _release_all(self, conn: PeerConnection) -> None:
        if self.picker is not None:
            for key in conn.outstanding:
                self.picker.release(key >> 32, key & 0xFFFFFFFF, conn)
        conn.outstanding.clear()

    def _ban(self, conn: PeerConnection, reason: str) -> None:
        log.info("banning %r: %s", conn, reason)
        self.banned.add(self.ban_key(conn))
        conn.drop(reason)

    # ----- what the peer has -----

    def on_bitfield(self, conn: PeerConnection, flags: bytearray) -> None:
        """The peer's first bitfield."""
        conn.flags = flags
        count = sum(flags)
        if count == self.meta.piece_count:
            conn.is_seed = True
        if self.picker is not None:
            self.picker.add_peer(None if conn.is_seed else flags)
            have = self.have
            conn.wanted = sum(1 for i, flag in enumerate(flags) if flag and not have[i])
        self._after_peer_news(conn)

    def on_have(self, conn: PeerConnection, index: int) -> None:
        """The peer got a piece."""
        flags = conn.flags
        assert flags is not None
        if index >= self.meta.piece_count:
            raise ProtocolError(f"have for piece {index}, the torrent has {self.meta.piece_count}")
        if flags[index] or conn.is_seed:
            return
        flags[index] = 1
        if self.picker is not None:
            self.picker.peer_has(index)
            if not self.have[index]:
                conn.wanted += 1
        if flags.count(1) == self.meta.piece_count:
            conn.is_seed = True
            if self.picker is not None:
                self.picker.remove_peer(flags)
                self.picker.add_peer(None)
        self._after_peer_news(conn)

    def _after_peer_news(self, conn: PeerConnection) -> None:
        if self.complete and conn.is_seed:
            conn.close("both sides are seeds")
            return
        self._update_interest(conn)

    def _update_interest(self, conn: PeerConnection) -> None:
        want = self.picker is not None and conn.wanted > 0
        if want != conn.am_interested:
            conn.am_interested = want
            conn.send(wire.INTERESTED_MSG if want else wire.NOT_INTERESTED_MSG)
        if want:
            self.request_more(conn)

    # ----- downloading -----

    def on_choke(self, conn: PeerConnection) -> None:
        """The peer stopped serving us: its outstanding requests are void (BEP 3)."""
        self._release_all(conn)
        for other in self.connections:
            if other is not conn:
                self.request_more(other)

    def on_unchoke(self, conn: PeerConnection) -> None:
        """The peer serves us again."""
        self.request_more(conn)

    def request_more(self, conn: PeerConnection) -> None:
        """Top up the peer's request pipeline."""
        picker = self.picker
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
            conn.last_block_at = self.session.now()
        conn.send(wire.requests(blocks))

    def on_block(self, conn: PeerConnection, index: int, begin: int, data: memoryview) -> None:
        """A block arrived."""
        key = index << 32 | begin
        length = conn.outstanding.pop(key, None)
        if length is None or self.picker is None:
            conn.wasted += len(data)  # unrequested, or cancelled in end-game: harmless
            return
        if length != len(data):
            raise ProtocolError("a block of another length than requested")
        conn.downloaded += length
        conn.last_block_at = self.session.now()
        picker = self.picker
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
        assert self.picker is not None
        others = self.picker.other_requesters(progress, begin, conn)
        if not others:
            return
        progress.requesters[begin // BLOCK_SIZE] = [conn]
        for other in others:
            if isinstance(other, type(conn)) and other.outstanding.pop(index << 32 | begin, None) is not None:
                other.send(wire.cancel(index, begin, length))

    def _verify(self, progress: PieceProgress) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.session.disk, self.storage.verify_and_write, progress.index, progress.buffer
        )
        future.add_done_callback(lambda done: self._verified(progress, done))
        self._verifying.add(future)
        future.add_done_callback(self._verifying.discard)

    def _verified(self, progress: PieceProgress, done: asyncio.Future[bool]) -> None:
        picker = self.picker
        if picker is None or progress.index not in picker.pending:
            return
        try:
            good = done.result()
        except PeerError as exc:
            self.fail(exc)
            return
        index = progress.index
        senders: list[PeerConnection | None] = list(progress.senders)  # type: ignore[arg-type]
        if not good:
            self._piece_failed(progress, senders)
            picker.finished(index, good=False)
            for conn in list(self.connections):
                self.request_more(conn)
            return
        picker.finished(index, good=True)
        self.downloaded += progress.size
        self.cache.put(index, progress.buffer)
        self._smart_ban(index, progress)
        if self.leecher is not None:
            wallets = self.leecher.credit_piece(senders, self._block_lengths_of(progress.size))
            if picker.missing == 0:  # the last piece: settle up with every seeder
                wallets = set(self.leecher.ledger.tallies)
            self._send_receipts(wallets, force=picker.missing == 0)
        self._announce_piece(index)
        if picker.missing == 0:
            self._finish()
        elif len(picker.pending) >= picker.max_pending - 1:
            # Memory for pieces was full, so pipelines may have run dry: a slot is free again.
            for conn in list(self.connections):
                self.request_more(conn)

    def _announce_piece(self, index: int) -> None:
        """Tell peers we have a new piece; lose interest in peers with nothing else for us."""
        have_msg = wire.have(index)
        for conn in list(self.connections):
            flags = conn.flags
            if flags is not None and flags[index]:
                conn.wanted -= 1
                if conn.wanted <= 0:
                    self._update_interest(conn)
            else:
                conn.send(have_msg)

    def _block_lengths_of(self, size: int) -> list[int]:
        for lengths in self._block_lengths:
            if sum(lengths) == size:
                return lengths
        return self._blocks_of(size)

    def _piece_failed(self, progress: PieceProgress, senders: list[PeerConnection | None]) -> None:
        self.failed_pieces += 1
        log.info("piece %d failed its hash check", progress.index)
        evidence = []
        view = memoryview(progress.buffer)
        for block, sender in enumerate(senders):
            if sender is not None:
                begin = block * BLOCK_SIZE
                digest = _block_digest(view[begin : begin + progress.block_length(block)])
                evidence.append((sender, digest))
        self._suspects.setdefault(progress.index, []).extend(evidence)
        for sender in {sender for sender in senders if sender is not None}:
            sender.strikes += 1
            if sender.strikes >= MAX_STRIKES:
                self._ban(sender, "sent pieces that failed their hash check")

    def _smart_ban(self, index: int, progress: PieceProgress) -> None:
        """A piece that failed before now verified: whoever sent a block that differs lied."""
        evidence = self._suspects.pop(index, None)
        if not evidence:
            return
        view = memoryview(progress.buffer)
        digests = {}
        for block in range(len(progress.states)):
            begin = block * BLOCK_SIZE
            digests[block] = _block_digest(view[begin : begin + progress.block_length(block)])
        good = set(digests.values())
        for sender, digest in evidence:
            if digest not in good:
                self._ban(sender, "sent a corrupt block")

    def _save_ledger(self) -> None:
        assert self.leecher is not None
        try:
            self.leecher.save()
        except PeerError as exc:
            log.warning("%s", exc)

    def _finish(self) -> None:
        self.picker = None
        if self.leecher is not None:
            self._save_ledger()
        log.info("%s complete", self.meta.name)
        self.session.spawn(self._sync())
        for conn in list(self.connections):
            conn.outstanding.clear()  # blocks still on their way are duplicates now
            if conn.am_interested:
                conn.am_interested = False
                conn.send(wire.NOT_INTERESTED_MSG)
            if conn.is_seed:
                conn.close("both sides are seeds")
        self.completed.set()
        self.session.torrent_completed(self)

    async def _sync(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self.session.disk, self.storage.sync)
        except OSError as exc:
            log.warning("could not flush %s to disk: %s", self.meta.name, exc)

    async def stop(self) -> None:
        """The session is closing: finish pieces being written and keep what must survive a restart."""
        if self._verifying:
            await asyncio.gather(*self._verifying, return_exceptions=True)
        if self.leecher is not None:
            self._save_ledger()

    def fail(self, error: PeerError) -> None:
        """Stop the torrent after an error that is not a peer's fault (a full disk)."""
        log.error("%s stopped: %s", self.meta.name, error)
        self.error = error
        for conn in list(self.connections):
            conn.drop("torrent stopped")
        self.completed.set()

    # ----- receipts: leecher side -----

    def _send_receipts(self, wallets: set[bytes], *, force: bool) -> None:
        assert self.leecher is not None
        for wallet in wallets:
            payload = self.leecher.receipt_for(wallet, force=force)
            if payload is not None:
                self._send_to_wallet(wallet, payload)

    def _send_to_wallet(self, wallet: bytes, payload: bytes) -> None:
        for conn in self.connections:
            if conn.wallet == wallet and conn.extension is not None:
                conn.send(wire.extended(conn.extension.receipt_id, payload))

    def on_extension_handshake(self, conn: PeerConnection) -> None:
        """The peer told us its extensions: start billing it, or pay it what is due."""
        ext = conn.extension
        assert ext is not None
        queue = ext.request_queue or DEFAULT_PEER_QUEUE
        conn.pipeline = max(MIN_PIPELINE, min(conn.pipeline, queue))
        if self.billing is not None and ext.purchase is not None and conn.account is None:
            account = self.billing.account(ext.purchase)
            account.served += conn.uploaded  # what it got before it said who it is counts too
            conn.account = account
        if self.leecher is not None and ext.wallet is not None:
            payload = self.leecher.receipt_for(ext.wallet, force=True)
            if payload is not None:
                conn.send(wire.extended(ext.receipt_id, payload))

    def on_receipt_message(self, conn: PeerConnection, payload: bytes) -> None:
        """An sm_receipt message: a receipt for us, or a seeder asking for one."""
        message = decode_message(payload)
        if isinstance(message, Need):
            if self.leecher is not None and conn.wallet is not None and conn.extension is not None:
                answer = self.leecher.answer_need(conn.wallet, message, self.session.now())
                if answer is not None:
                    conn.send(wire.extended(conn.extension.receipt_id, answer))
        elif isinstance(message, SignedReceipt):
            if self.billing is None:
                raise ProtocolError("a receipt sent to a peer that bills nobody")
            account = self.billing.check(conn, message)
            if account is not None:
                self.session.spawn(self._journal(conn, account, message))

    async def _journal(self, conn: PeerConnection, account: PurchaseAccount, signed: SignedReceipt) -> None:
        assert self.billing is not None
        try:
            grew = await self.billing.journal_receipt(account, signed)
        except PeerError as exc:
            self.fail(exc)  # without a journal we must not extend credit
            return
        if not grew:
            return
        if not account.confirmed:
            self.session.submit_soon()  # the tracker's verdict on the buyer unlocks more credit
        self._credit_grew(account)

    def _credit_grew(self, account: PurchaseAccount) -> None:
        for other in list(self.connections):
            if other.account is not account:
                continue
            if other.credit_blocked:
                other.credit_blocked = False
                if other.peer_interested:
                    self._maybe_unchoke(other)
            elif not other.am_choking:
                self.serve(other)

    def receipt_accepted(self, purchase_id: int) -> None:
        """The tracker accepted a receipt we billed: its signer is the buyer, credit may grow."""
        account = self.billing.accounts.get(purchase_id) if self.billing is not None else None
        if account is not None and not account.confirmed:
            account.confirmed = True
            self._credit_grew(account)

    def receipt_rejected(self, purchase_id: int, reason: str) -> None:
        """The tracker refused a receipt we billed: stop serving that purchase."""
        if self.billing is None:
            return
        account = self.billing.freeze(purchase_id, reason)
        for conn in list(self.connections):
            if account is not None and conn.account is account:
                conn.credit_blocked = True
                self._choke(conn)

    # ----- uploading -----

    def on_request(self, conn: PeerConnection, index: int, begin: int, length: int) -> None:
        """The peer asks for a block."""
        if index >= self.meta.piece_count or not self.have[index]:
            raise ProtocolError(f"request for piece {index}, which we do not have")
        if length == 0 or length > wire.MAX_REQUEST_LENGTH or begin + length > self.meta.piece_size(index):
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
        account = conn.account if self.config.enforce_credit else None
        while queue and not conn.write_paused:
            more = self._serve_batch(conn, account)
            if account is not None and queue and not account.allows(queue[0][2]):
                # Out of credit: hold the requests while a receipt may be on its way (a journal
                # fsync takes a while); tick() chokes the peer if none comes within CREDIT_GRACE.
                if conn.credit_stalled_at is None:
                    conn.credit_stalled_at = self.session.now()
                break
            conn.credit_stalled_at = None
            if not more:
                break
        if isinstance(conn.account, PurchaseAccount) and self.billing is not None:
            need = self.billing.need_message(conn, conn.account)
            if need is not None:
                conn.send(need)

    def _serve_batch(self, conn: PeerConnection, account: CreditAccount | None) -> bool:
        """Send up to SERVE_BATCH_BYTES of queued blocks in one write; False when a piece must
        first come off the disk or the credit ends."""
        queue = conn.upload_queue
        parts: list[bytes | memoryview] = []
        batch = 0
        more = True
        while queue and batch < SERVE_BATCH_BYTES:
            index, begin, length = queue[0]
            data = self.cache.get(index)
            if data is None:
                self._load(index, conn)
                more = False
                break
            if account is not None and not account.allows(batch + length):
                more = False
                break
            queue.popleft()
            parts.append(wire.piece_header(index, begin, length))
            parts.append(memoryview(data)[begin : begin + length])
            batch += length
        if batch:
            conn.send_many(parts)
            conn.uploaded += batch
            self.uploaded += batch
            if conn.account is not None:
                conn.account.served += batch  # counted even when credit is not enforced
        return more

    def _load(self, index: int, conn: PeerConnection) -> None:
        conn.waiting_for_piece = True
        waiters = self._loading.get(index)
        if waiters is not None:
            waiters.append(conn)
            return
        self._loading[index] = [conn]
        future = asyncio.get_running_loop().run_in_executor(self.session.disk, self.storage.read_piece, index)
        future.add_done_callback(lambda done: self._loaded(index, done))

    def _loaded(self, index: int, done: asyncio.Future[bytearray]) -> None:
        waiters = self._loading.pop(index, [])
        try:
            self.cache.put(index, done.result())
        except PeerError as exc:
            self.fail(exc)
            return
        for conn in waiters:
            conn.waiting_for_piece = False
            self.serve(conn)

    def _credit_choke(self, conn: PeerConnection, account: PurchaseAccount | object) -> None:
        conn.credit_blocked = True
        self._choke(conn)
        if isinstance(account, PurchaseAccount) and self.billing is not None:
            need = self.billing.need_message(conn, account)
            if need is not None:
                conn.send(need)
        self._fill_slots()

    # ----- choking -----

    def on_interest(self, conn: PeerConnection) -> None:
        """The peer became interested in us, or stopped being."""
        if conn.peer_interested:
            self._maybe_unchoke(conn)
        elif not conn.am_choking:
            self._choke(conn)
            self._fill_slots()

    def _unchoked(self) -> int:
        return sum(1 for c in self.connections if not c.am_choking)

    def _maybe_unchoke(self, conn: PeerConnection) -> None:
        if not conn.am_choking or conn.credit_blocked or not self.config.upload:
            return
        waiting_paying = sum(
            1
            for c in self.connections
            if c.am_choking and c.peer_interested and c.account and not c.credit_blocked
        )
        if self.choker.has_room(
            self._unchoked(), conn.account is not None, waiting_paying - (conn.account is not None)
        ):
            self._unchoke(conn)

    def _fill_slots(self) -> None:
        for conn in sorted(self.connections, key=lambda c: c.account is None):
            if conn.am_choking and conn.peer_interested:
                self._maybe_unchoke(conn)

    def _choke(self, conn: PeerConnection) -> None:
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
        if not self.config.upload:
            return
        candidates = [
            Candidate(conn, conn.account is not None, conn.rate_up if self.complete else conn.rate_down)
            for conn in self.connections
            if conn.peer_interested and not conn.credit_blocked
        ]
        chosen = self.choker.choose(candidates)
        for conn in list(self.connections):
            if conn in chosen:
                if conn.am_choking:
                    self._unchoke(conn)
            elif not conn.am_choking:
                self._choke(conn)

    # ----- housekeeping -----

    def tick(self, now: float, elapsed: float) -> None:
        """Once a second: rates, pipelines, timeouts, keep-alives, rechoking."""
        for conn in list(self.connections):
            conn.update_rates(elapsed)
            queue = (conn.extension.request_queue if conn.extension else None) or DEFAULT_PEER_QUEUE
            target = int(conn.rate_down * PIPELINE_SECONDS / BLOCK_SIZE)
            cap = min(MAX_PIPELINE, queue)
            if self.leecher is not None and conn.wallet is not None:
                cap = min(cap, self._paid_pipeline_cap())
            conn.pipeline = max(MIN_PIPELINE, min(cap, max(target, conn.pipeline)))
            if conn.outstanding and now - conn.last_block_at > REQUEST_TIMEOUT:
                log.info("%r is not delivering; giving its requests to others", conn)
                self._release_all(conn)
                conn.last_block_at = 0.0
            stalled = conn.credit_stalled_at
            if stalled is not None and now - stalled > CREDIT_GRACE and conn.account is not None:
                conn.credit_stalled_at = None
                self._credit_choke(conn, conn.account)
            if now - conn.last_received > IDLE_TIMEOUT:
                conn.drop("idle")
            elif now - conn.last_sent > KEEPALIVE_INTERVAL:
                conn.send(wire.KEEPALIVE_MSG)
            self.request_more(conn)
        if self.leecher is not None:
            self._save_ledger()
        if now - self._last_rechoke >= RECHOKE_INTERVAL:
            self._last_rechoke = now
            self.rechoke()

    def _paid_pipeline_cap(self) -> int:
        """Blocks to keep requested from a billing seeder: well inside its credit window."""
        return max(MIN_PIPELINE, credit_window(self.meta.piece_length) // 2 // BLOCK_SIZE)


def _block_digest(block: memoryview) -> bytes:
    """A fingerprint of a block, to tell later which sender's block differed from the good one."""
    return hashlib.blake2b(block, digest_size=16).digest()
