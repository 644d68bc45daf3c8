"""One torrent's swarm: its peers, what they have, receipts both ways, and housekeeping.

Connections call the `on_*` methods (here, in `downloads` and in `uploads`) with validated values;
the torrent tracks interest, bans, receipts and completion. Downloading (picker, verification,
writing) lives in `tracker.peer.downloading`, serving and choking in `tracker.peer.uploading`.
Nothing in here trusts a peer beyond what the connection already checked.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.metainfo import Metainfo
from tracker.peer import wire
from tracker.peer.billing import LeecherBilling, PurchaseAccount, SeederBilling
from tracker.peer.choker import RECHOKE_INTERVAL, UPLOAD_SLOTS, PlainPeers
from tracker.peer.credit import ReceiptSigner, credit_window
from tracker.peer.downloading import MIN_PIPELINE, Downloads, DownloadState
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.extension import Need, decode_message, encode_handshake
from tracker.peer.picker import BLOCK_SIZE, PiecePicker
from tracker.peer.storage import Storage
from tracker.peer.uploading import ADVERTISED_REQUEST_QUEUE, Uploads, UploadState
from tracker.receipts import ReceiptVerifier, SignedReceipt

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.session import Session

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 60  # per torrent
MAX_BUFFER_BYTES = 48 * 1024 * 1024  # pieces held in memory while downloading, per torrent
MIN_PENDING_PIECES = 4
PAID_PIPELINE_DIVISOR = 2  # keep at most this fraction of a billing seeder's credit window requested
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
    super_seed: bool = False  # once complete, offer pieces few at a time (tracker.peer.superseed)
    # with super_seed: adapt (tracker.peer.seedpolicy), at full speed while leechers get less
    # than this many bytes a second or the swarm lacks copies; None: super-seed throughout
    seed_target_rate: float | None = None
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
        self.error: PeerError | None = None
        self.completed = asyncio.Event()
        sizes = [meta.piece_size(i) for i in range(meta.piece_count)]
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
        self.downloads = Downloads(self)
        self.uploads = Uploads(self)

    @property
    def complete(self) -> bool:
        """Whether we have every piece."""
        return self.picker is None

    @property
    def downloaded(self) -> int:
        """Payload bytes of pieces that passed their hash check."""
        return self.downloads.verified

    @property
    def failed_pieces(self) -> int:
        """Pieces that failed their hash check."""
        return self.downloads.failed_pieces

    @property
    def uploaded(self) -> int:
        """Block bytes sent to peers."""
        return self.uploads.sent

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
        conn.bind(DownloadState(), UploadState())
        assert conn.handshake is not None
        hide = self.uploads.hide_pieces(conn)
        if conn.fast:  # BEP 6: what we have is the first message, and always sent
            if hide or not any(self.have):
                conn.send(wire.HAVE_NONE_MSG)
            elif self.complete:
                conn.send(wire.HAVE_ALL_MSG)
            else:
                conn.send(wire.bitfield(wire.pack_bits(self.have)))
        elif any(self.have) and not hide:
            conn.send(wire.bitfield(wire.pack_bits(self.have)))
        self.downloads.attached(conn)
        if conn.handshake.supports_extensions:
            purchase = self.config.signer.purchase_id if self.config.signer and not self.complete else None
            payload = encode_handshake(
                wallet=self.config.wallet, purchase=purchase, request_queue=ADVERTISED_REQUEST_QUEUE
            )
            conn.send(wire.extended(0, payload))
        return True

    def detach(self, conn: PeerConnection) -> None:
        """A peer left: give its requests and availability back."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.downloads.forget(conn)
        self.uploads.forget(conn)

    def ban(self, conn: PeerConnection, reason: str) -> None:
        """Drop a peer and refuse it for the rest of the session."""
        log.info("banning %r: %s", conn, reason)
        self.banned.add(self.ban_key(conn))
        conn.drop(reason)

    # ----- what the peer has -----

    def on_bitfield(self, conn: PeerConnection) -> None:
        """The peer's first account of its pieces (its flags hold them)."""
        self.downloads.peer_bitfield(conn)
        self.uploads.peer_has(conn, None)
        self._after_peer_news(conn)

    def on_have(self, conn: PeerConnection, index: int, became_seed: bool) -> None:
        """The peer got a piece it did not have (its flags already say so)."""
        self.downloads.peer_has(conn, index, became_seed)
        self.uploads.peer_has(conn, index)
        self._after_peer_news(conn)

    def _after_peer_news(self, conn: PeerConnection) -> None:
        if self.complete and conn.is_seed and not self.uploads.keeps_seeds:
            conn.close("both sides are seeds")
            return
        self.downloads.update_interest(conn)

    def on_writable(self, conn: PeerConnection) -> None:
        """The peer's socket buffer drained: serve it again."""
        self.uploads.serve(conn)

    def piece_verified(self, index: int, data: bytearray) -> None:
        """A downloaded piece passed its hash check: peers may be served it from memory."""
        self.uploads.cache.put(index, data)

    def _save_ledger(self) -> None:
        assert self.leecher is not None
        try:
            self.leecher.save()
        except PeerError as exc:
            log.warning("%s", exc)

    def finish(self) -> None:
        """Every piece is here: save the ledger, leave interest, close fellow seeds."""
        self.picker = None
        if self.leecher is not None:
            self._save_ledger()
        log.info("%s complete", self.meta.name)
        self.session.spawn(self._sync())
        self.downloads.finished()
        for conn in list(self.connections):
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
        while self.downloads.checking is not None:  # an ending job starts one for pieces queued meanwhile
            await asyncio.wait({self.downloads.checking})
        self.downloads.announce_haves()
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

    def send_receipts(self, wallets: set[bytes], *, force: bool) -> None:
        """Sign and send receipts due to these seeder wallets (all that is unsigned if `force`)."""
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
        self.downloads.on_extension_handshake(conn)
        if self.billing is not None and ext.purchase is not None:
            self.uploads.bill(conn, self.billing.account(ext.purchase))
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
        self.uploads.credit_grew(account)

    def receipt_accepted(self, purchase_id: int) -> None:
        """The tracker accepted a receipt we billed: its signer is the buyer, credit may grow."""
        account = self.billing.confirm(purchase_id) if self.billing is not None else None
        if account is not None:
            self.uploads.credit_grew(account)

    def receipt_rejected(self, purchase_id: int, reason: str) -> None:
        """The tracker refused a receipt we billed: stop serving that purchase."""
        if self.billing is None:
            return
        account = self.billing.freeze(purchase_id, reason)
        if account is not None:
            self.uploads.account_frozen(account)

    # ----- housekeeping -----

    def tick(self, now: float, elapsed: float) -> None:
        """Once a second: rates, pipelines, timeouts, keep-alives, rechoking."""
        paid_cap = self._paid_pipeline_cap()
        for conn in list(self.connections):
            self.uploads.tick(conn, now, elapsed)
            billing_seed = self.leecher is not None and conn.wallet is not None
            self.downloads.tick(conn, now, elapsed, paid_cap if billing_seed else None)
            if now - conn.last_received > IDLE_TIMEOUT:
                conn.drop("idle")
            elif now - conn.last_sent > KEEPALIVE_INTERVAL:
                conn.send(wire.KEEPALIVE_MSG)
        if self.leecher is not None:
            self._save_ledger()
        self.uploads.housekeeping(now)
        if now - self.uploads.last_rechoke >= RECHOKE_INTERVAL:
            self.uploads.last_rechoke = now
            self.uploads.rechoke()

    def _paid_pipeline_cap(self) -> int:
        """Blocks to keep requested from a billing seeder: well inside its credit window."""
        return max(MIN_PIPELINE, credit_window(self.meta.piece_length) // PAID_PIPELINE_DIVISOR // BLOCK_SIZE)
