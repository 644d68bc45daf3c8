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
from tracker.peer.connection import (
    ADVERTISED_REQUEST_QUEUE,
    DEFAULT_PEER_QUEUE,
    MAX_PIPELINE,
    MIN_PIPELINE,
)
from tracker.peer.credit import CREDIT_GRACE, ReceiptSigner, credit_window
from tracker.peer.downloading import Downloads
from tracker.peer.errors import PeerError, ProtocolError
from tracker.peer.extension import Need, decode_message, encode_handshake
from tracker.peer.picker import BLOCK_SIZE, PiecePicker
from tracker.peer.storage import Storage
from tracker.peer.uploading import Uploads
from tracker.receipts import ReceiptVerifier, SignedReceipt

if TYPE_CHECKING:
    from tracker.peer.connection import PeerConnection
    from tracker.peer.session import Session

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 60  # per torrent
MAX_BUFFER_BYTES = 48 * 1024 * 1024  # pieces held in memory while downloading, per torrent
MIN_PENDING_PIECES = 4
PIPELINE_SECONDS = 0.5  # keep this much of a peer's rate requested
PAID_PIPELINE_DIVISOR = 2  # keep at most this fraction of a billing seeder's credit window requested
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
    super_seed: bool = False  # once complete, offer pieces few at a time (tracker.peer.superseed)
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
        self.downloaded = 0  # verified payload bytes
        self.uploaded = 0
        self.failed_pieces = 0
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
        if any(self.have) and not self.uploads.hide_pieces(conn):
            conn.send(wire.bitfield(wire.pack_bits(self.have)))
        return True

    def detach(self, conn: PeerConnection) -> None:
        """A peer left: give its requests and availability back."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.uploads.forget(conn)
        if self.picker is not None:
            self.release_all(conn)
            self.picker.remove_peer(None if conn.is_seed else conn.flags)
        if not conn.am_choking:
            conn.am_choking = True
            self.uploads.fill_slots()

    def release_all(self, conn: PeerConnection) -> None:
        """Give every block requested from `conn` back to the picker."""
        if self.picker is not None:
            for key in conn.outstanding:
                self.picker.release(key >> 32, key & 0xFFFFFFFF, conn)
        conn.outstanding.clear()

    def ban(self, conn: PeerConnection, reason: str) -> None:
        """Drop a peer and refuse it for the rest of the session."""
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
        self.uploads.peer_has(conn, None)
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
        self.uploads.peer_has(conn, index)
        self._after_peer_news(conn)

    def _after_peer_news(self, conn: PeerConnection) -> None:
        if self.complete and conn.is_seed and not self.uploads.keeps_seeds:
            conn.close("both sides are seeds")
            return
        self.update_interest(conn)

    def update_interest(self, conn: PeerConnection) -> None:
        """Tell the peer whether we want something it has, and ask for it if we do."""
        want = self.picker is not None and conn.wanted > 0
        if want != conn.am_interested:
            conn.am_interested = want
            conn.send(wire.INTERESTED_MSG if want else wire.NOT_INTERESTED_MSG)
        if want:
            self.downloads.request_more(conn)

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
        if self.downloads.verifying:
            await asyncio.gather(*self.downloads.verifying, return_exceptions=True)
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
                    self.uploads.maybe_unchoke(other)
            elif not other.am_choking:
                self.uploads.serve(other)

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
                self.uploads.choke(conn)

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
                self.release_all(conn)
                conn.last_block_at = 0.0
            stalled = conn.credit_stalled_at
            if stalled is not None and now - stalled > CREDIT_GRACE and conn.account is not None:
                conn.credit_stalled_at = None
                self.uploads.credit_choke(conn, conn.account)
            if now - conn.last_received > IDLE_TIMEOUT:
                conn.drop("idle")
            elif now - conn.last_sent > KEEPALIVE_INTERVAL:
                conn.send(wire.KEEPALIVE_MSG)
            self.downloads.request_more(conn)
        if self.leecher is not None:
            self._save_ledger()
        self.uploads.housekeeping(now)
        if now - self.uploads.last_rechoke >= RECHOKE_INTERVAL:
            self.uploads.last_rechoke = now
            self.uploads.rechoke()

    def _paid_pipeline_cap(self) -> int:
        """Blocks to keep requested from a billing seeder: well inside its credit window."""
        return max(MIN_PIPELINE, credit_window(self.meta.piece_length) // PAID_PIPELINE_DIVISOR // BLOCK_SIZE)
