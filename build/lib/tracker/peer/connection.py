"""One peer connection: framing, validation and dispatch of the BEP 3 / BEP 6 / BEP 10 byte stream.

The protocol reads straight into its own buffer (`asyncio.BufferedProtocol`), parses every
complete message in place and hands the swarm logic (`tracker.peer.torrent`) typed values; block
data is passed as a memoryview into that buffer and copied once, into its piece. The stream under
it is any asyncio transport (TCP today, µTP next); the connection keeps only what the peer told
us (tracker/peer/__init__.py describes the layers). Anything a peer sends that breaks the
protocol drops that peer and nothing else.

What we accept and what drops a peer, rule by rule beside libtorrent 2.0 (RC_2_0:
src/bt_peer_connection.cpp, src/peer_connection.cpp), which mainstream clients are measured by:

- **bitfield at any time.** The first message after the handshake (bitfield, have_all,
  have_none) states what the peer has; a later one is a set of `have`s: aria2 1.36 sends a
  bitfield mid-connection when that is shorter than its haves. libtorrent accepts it too but
  *replaces* what it knew (`peer_lost` then the new set). We take the union: a peer cannot lose
  a piece, and a later bitfield leaving one out must not make us forget a piece we may be
  fetching from it. A later have_none says nothing (libtorrent clears the set).
- **Spare bits set in a bitfield, or a bitfield of the wrong length: dropped.** libtorrent drops
  a wrong length too but ignores spare bits; we treat set spare bits as a lie, as BEP 3 allows.
- **Fast extension (BEP 6)**, negotiated by the reserved bit (byte 7, 0x04) that we always set.
  Its messages without it drop the peer, as in libtorrent (`invalid_have_all`, ...). We open
  with have_all / have_none / bitfield when it is on (libtorrent does the same), answer every
  request we refuse with reject_request, and reject what a peer had queued when we choke it
  (with Fast a choke no longer voids requests). A reject from the peer frees that block for
  other peers; a reject for something we did not ask is ignored (libtorrent too). suggest and
  allowed_fast are ignored: we request only from peers that unchoke us, rarest first (libtorrent
  acts on both; ignoring them is what BEP 6 permits).
- **Requests.** Beyond the torrent, beyond the end of a piece, empty, or over 128 KiB: dropped,
  a peer cannot ask that by mistake. libtorrent rejects these and counts them, and refuses
  anything over 16 KiB, where we serve up to wire.MAX_REQUEST_LENGTH as before. Requests
  while we choke the peer or for a piece we do not have (a race with our choke, or a super-seed
  hiding pieces) are refused (rejected with Fast) and counted; over MAX_REFUSED_REQUESTS since
  the last unchoke drop the peer. libtorrent drops after 300 invalid requests from a choked,
  uninterested peer, or a request more than 2 s after its choke; our bound is wider because we
  advertise a deeper queue (reqq 1000) whose requests may all be in flight when a choke lands.
  More than MAX_QUEUED_REQUESTS queued is a flood and drops the peer (libtorrent rejects past
  its max_allowed_in_request_queue).
- **Keep-alives** are read and skipped anywhere (both). A peer silent for the torrent's
  IDLE_TIMEOUT is dropped (libtorrent: 120 s without a message).
- **Unknown message ids** are skipped up to 256 KiB. libtorrent disconnects on an id it does not
  know unless a plugin claims it; skipping costs nothing and keeps us working with clients that
  add messages (the hash messages of BEP 52, for one). **Unknown extension messages** (an id we
  never offered in BEP 10) are ignored by both.
- **Message length.** Longer than the largest message the torrent can carry (a bitfield, a
  128 KiB block, a 256 KiB extension message): dropped. libtorrent's limit is 1 MiB for any.
- **Blocks.** One we did not ask for (cancelled in end-game, or after a choke) counts as waste,
  not a lie (libtorrent too); one of another length than asked drops the peer. A piece failing
  its hash check strikes every peer that sent a block of it; MAX_STRIKES strikes, or a block
  that differs from the one in the piece that later verified (smart ban), ban the peer for the
  session. libtorrent lowers a peer's trust points by 2 per failed piece and bans at -7, with
  its smart_ban plugin doing the same block comparison.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any, cast

from tracker.peer import wire
from tracker.peer.errors import ProtocolError
from tracker.peer.extension import HANDSHAKE_ID, LOCAL_RECEIPT_ID, ExtensionHandshake, decode_handshake
from tracker.peer.mse import MseResponder, looks_like_mse

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import CipherContext

    from tracker.peer.downloading import DownloadState
    from tracker.peer.session import Session
    from tracker.peer.torrent import Torrent
    from tracker.peer.uploading import UploadState

log = logging.getLogger(__name__)

RECV_CHUNK = 256 * 1024  # bytes read per socket read at most
HANDSHAKE_BUFFER = 16 * 1024  # until a handshake names the torrent, a stranger gets only this much
WRITE_HIGH_WATER = 4 * 1024 * 1024  # stop serving blocks while this much waits in the socket buffer
WRITE_LOW_WATER = 1024 * 1024
# Transmission 3.00 leaves what arrived with our greeting unread until more bytes come: an
# incoming peer that sent nothing after its handshake this long after our greeting gets a
# keep-alive.
NUDGE_DELAY = 0.25

_LENGTH = struct.Struct(">I").unpack_from
_INDEX_BEGIN = wire.INDEX_BEGIN.unpack_from
_INDEX_BEGIN_LENGTH = wire.INDEX_BEGIN_LENGTH.unpack_from
_PIECE_MESSAGES = frozenset({wire.HAVE, wire.BITFIELD, wire.HAVE_ALL, wire.HAVE_NONE})


class PeerConnection(asyncio.BufferedProtocol):
    """A connection to one peer, on one torrent."""

    # Set by the torrent when it accepts the peer (`bind`); written only by their own modules.
    down: DownloadState
    up: UploadState

    def __init__(self, session: Session, torrent: Torrent | None, address: tuple[str, int], outgoing: bool):
        self.session = session
        self.torrent = torrent
        self.address = address
        self.outgoing = outgoing
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.peer_id = b""
        self.handshake: wire.Handshake | None = None
        self.extension: ExtensionHandshake | None = None
        self._buf = bytearray(HANDSHAKE_BUFFER)
        self._view = memoryview(self._buf)
        self._pos = 0
        self._end = 0
        self._max_length = wire.max_message_length(0)
        self._first_message = True  # the next message is the first after the handshake
        # Message Stream Encryption (incoming only): the handshake while it runs, then RC4 both
        # ways if it chose RC4 (None for plaintext)
        self._mse: MseResponder | None = None
        self._mse_finished = False
        self._decrypt: CipherContext | None = None
        self._encrypt: CipherContext | None = None
        # what the peer told us: its choking, its interest, its pieces (a 0/1 flag per piece;
        # `is_seed` peers have everything)
        self.fast = False  # both sides set the BEP 6 Fast extension bit
        self.peer_choking = True
        self.peer_interested = False
        self.flags = bytearray()
        self.is_seed = False
        self._piece_total = 0  # flags set
        self.write_paused = False  # the transport's buffer is above its high-water mark
        now = asyncio.get_running_loop().time()
        self.last_received = now
        self.last_sent = now
        self.opened_at = now

    def __repr__(self) -> str:
        return f"<peer {self.address[0]}:{self.address[1]} {self.peer_id[:8]!r}>"

    # ----- wallet / purchase announced in the extension handshake -----

    @property
    def wallet(self) -> bytes | None:
        """The peer's payout address (it seeds with sm_receipt)."""
        return self.extension.wallet if self.extension else None

    @property
    def purchase(self) -> int | None:
        """The peer's purchase id (it leeches with sm_receipt)."""
        return self.extension.purchase if self.extension else None

    def bind(self, down: DownloadState, up: UploadState) -> None:
        """The torrent accepted the peer: the state its downloader and uploader keep of it."""
        self.down = down
        self.up = up

    def infer_pieces(self, pieces: list[int]) -> None:
        """Count the peer as holding `pieces` that it showed it has without a `have` (a super-seed
        learns this from the peer losing interest in everything it offered)."""
        for index in pieces:
            self._set_piece(index)

    def _set_piece(self, index: int) -> bool:
        """Record one piece of the peer's; whether it is news."""
        flags = self.flags
        if flags[index]:
            return False
        flags[index] = 1
        self._piece_total += 1
        if self._piece_total == len(flags):
            self.is_seed = True
        return True

    # ----- asyncio plumbing -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the handshake (we speak first on outgoing connections)."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        if not self.outgoing:  # an incoming peer's address is the stream's far end
            peer = self.transport.get_extra_info("peername")
            if isinstance(peer, tuple) and len(peer) >= 2:
                self.address = (str(peer[0]), int(peer[1]))
        self.opened_at = self.session.now()
        if self.outgoing and self.torrent is not None:
            self._send_handshake()
        self.session.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Give back everything the peer held."""
        self.closed = True
        if self.torrent is not None and self.handshake is not None:
            self.torrent.detach(self)
        self.session.connection_closed(self)

    def pause_writing(self) -> None:
        """The socket buffer is full: stop serving blocks."""
        self.write_paused = True

    def resume_writing(self) -> None:
        """The socket buffer drained: serve again."""
        self.write_paused = False
        if self.torrent is not None and self.handshake is not None and not self.closed:
            self.torrent.on_writable(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next read lands."""
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Parse every complete message that arrived."""
        start = self._end
        self._end += nbytes
        self.last_received = self.session.now()
        try:
            if self._decrypt is not None:
                self._buf[start : self._end] = self._decrypt.update(self._view[start : self._end])
            elif self._in_mse() and not self._through_mse():
                return
            self._parse()
        except ProtocolError as exc:
            self.drop(str(exc))
        except Exception:  # a bug must cost this peer, not the engine
            log.exception("%r: internal error while handling its messages", self)
            self.drop("internal error")

    def eof_received(self) -> bool:
        """The peer closed its side: close ours."""
        return False

    def drop(self, reason: str) -> None:
        """Cut the connection at once, discarding unsent data (the peer broke the protocol)."""
        if self.closed:
            return
        log.debug("%r dropped: %s", self, reason)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self, reason: str) -> None:
        """Close the connection after what we queued is sent (the peer is no longer needed)."""
        if self.closed:
            return
        log.debug("%r closed: %s", self, reason)
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # ----- Message Stream Encryption -----

    @property
    def encryption(self) -> str:
        """How the stream is carried: "none", "mse-plaintext" (an MSE handshake that chose
        plaintext) or "mse-rc4"."""
        if self._mse is None:
            return "none"
        return "mse-rc4" if self._mse.rc4 else "mse-plaintext"

    def _in_mse(self) -> bool:
        """Whether the bytes that arrived belong to an MSE handshake (incoming connections whose
        first byte is not a plaintext handshake's)."""
        if self.outgoing or self._mse_finished or self.handshake is not None:
            return False
        return self._mse is not None or looks_like_mse(self._buf[self._pos])

    def _through_mse(self) -> bool:
        """Run the MSE handshake on what arrived; True once its payload waits in the buffer."""
        if self._mse is None:
            self._mse = MseResponder(self.session.torrents.keys)
        data = bytes(self._view[self._pos : self._end])
        self._pos = self._end = 0
        reply = self._mse.feed(data)
        if reply and self.transport is not None and not self.closed:
            self.transport.write(reply)  # the responder encrypted what needs it
        if not self._mse.done:
            return False
        self._mse_finished = True
        payload = self._mse.payload
        if len(payload) > len(self._buf):
            self._buf = bytearray(len(payload) + HANDSHAKE_BUFFER)
            self._view = memoryview(self._buf)
        self._buf[: len(payload)] = payload
        self._end = len(payload)
        self._decrypt, self._encrypt = self._mse.decryptor, self._mse.encryptor
        return True

    def _nudge(self, since: float) -> None:
        if not self.closed and self.last_received == since:
            self.send(wire.KEEPALIVE_MSG)

    # ----- parsing -----

    def _parse(self) -> None:
        if self.handshake is None and not self._parse_handshake():
            return
        buf = self._buf
        view = self._view
        pos = self._pos
        end = self._end
        torrent = self.torrent
        assert torrent is not None
        downloads = torrent.downloads
        max_length = self._max_length
        while end - pos >= 4 and not self.closed:
            length = _LENGTH(buf, pos)[0]
            if length == 0:
                pos += 4
                continue
            if length > max_length:
                raise ProtocolError(f"message of {length} bytes is longer than allowed")
            if end - pos - 4 < length:
                break
            msg_id = buf[pos + 4]
            if msg_id == wire.PIECE:
                if length < 9:
                    raise ProtocolError("piece message too short")
                index, begin = _INDEX_BEGIN(buf, pos + 5)
                downloads.on_block(self, index, begin, view[pos + 13 : pos + 4 + length])
            else:
                self._dispatch(msg_id, pos + 5, length - 1)
            pos += 4 + length
        # Keep the unparsed tail at the front so the buffer always has room for a whole message.
        if pos == end:
            self._pos = self._end = 0
        elif pos:
            buf[: end - pos] = view[pos:end]
            self._pos, self._end = 0, end - pos
        else:
            self._pos = pos

    def _parse_handshake(self) -> bool:
        """Consume the peer's handshake; False while it is incomplete or when it was refused."""
        if self._end - self._pos < wire.HANDSHAKE_LENGTH:
            return False
        self._on_handshake(bytes(self._buf[self._pos : self._pos + wire.HANDSHAKE_LENGTH]))
        self._pos += wire.HANDSHAKE_LENGTH
        if self.closed:
            return False
        # The torrent is known now: make room for its largest message (a big bitfield).
        assert self.torrent is not None
        self._max_length = wire.max_message_length(self.torrent.meta.piece_count)
        need = RECV_CHUNK + 4 + self._max_length
        if need > len(self._buf):
            leftover = bytes(self._buf[self._pos : self._end])
            self._buf = bytearray(need)
            self._view = memoryview(self._buf)
            self._buf[: len(leftover)] = leftover
            self._pos, self._end = 0, len(leftover)
        return True

    def _on_handshake(self, data: bytes) -> None:
        handshake = wire.parse_handshake(data)
        if self.torrent is None:
            torrent = self.session.torrent_for(handshake.info_hash)
            if torrent is None:
                raise ProtocolError("handshake for a torrent we do not have")
            self.torrent = torrent
            self._send_handshake()
        elif handshake.info_hash != self.torrent.meta.info_hash:
            raise ProtocolError("handshake for another torrent")
        if self._mse is not None and handshake.info_hash != self._mse.info_hash:
            raise ProtocolError("handshake for another torrent than its encryption named")
        if handshake.peer_id == self.session.peer_id:
            raise ProtocolError("connected to ourselves")
        self.peer_id = handshake.peer_id
        self.handshake = handshake
        self.fast = handshake.supports_fast  # we always offer it
        self.flags = bytearray(self.torrent.meta.piece_count)
        if not self.torrent.attach(self):
            self.handshake = None  # not attached: nothing to detach
            self.drop("not accepted by the torrent")
        elif not self.outgoing:
            asyncio.get_running_loop().call_later(NUDGE_DELAY, self._nudge, self.last_received)

    def _send_handshake(self) -> None:
        assert self.torrent is not None
        handshake = wire.Handshake(self.torrent.meta.info_hash, self.session.peer_id, wire.our_reserved())
        self.send(handshake.encode())

    def _dispatch(self, msg_id: int, start: int, size: int) -> None:
        torrent = self.torrent
        assert torrent is not None
        expected = wire.FIXED_PAYLOAD.get(msg_id)
        if expected is not None and size != expected:
            raise ProtocolError(f"message {msg_id} has {size} payload bytes, not {expected}")
        if msg_id in wire.FAST_MESSAGES and not self.fast:
            raise ProtocolError(f"Fast extension message {msg_id} without the Fast extension")
        buf = self._buf
        if msg_id != wire.EXTENDED:
            first, self._first_message = self._first_message, False
        if msg_id == wire.REQUEST:
            index, begin, length = _INDEX_BEGIN_LENGTH(buf, start)
            torrent.uploads.on_request(self, index, begin, length)
        elif msg_id in _PIECE_MESSAGES:
            self._on_piece_message(msg_id, start, size, first)
        elif msg_id == wire.CHOKE:
            self.peer_choking = True
            torrent.downloads.on_choke(self)
        elif msg_id == wire.UNCHOKE:
            self.peer_choking = False
            torrent.downloads.on_unchoke(self)
        elif msg_id == wire.INTERESTED:
            self.peer_interested = True
            torrent.uploads.on_interest(self)
        elif msg_id == wire.NOT_INTERESTED:
            self.peer_interested = False
            torrent.uploads.on_interest(self)
        elif msg_id == wire.CANCEL:
            index, begin, length = _INDEX_BEGIN_LENGTH(buf, start)
            torrent.uploads.on_cancel(self, index, begin, length)
        elif msg_id == wire.REJECT:
            index, begin, length = _INDEX_BEGIN_LENGTH(buf, start)
            torrent.downloads.on_reject(self, index, begin, length)
        elif msg_id == wire.EXTENDED:
            self._on_extended(start, size)
        # PORT (DHT), SUGGEST and ALLOWED_FAST (we request only when unchoked, from the rarest
        # pieces) and ids we do not speak are ignored

    def _on_extended(self, start: int, size: int) -> None:
        if size < 1:
            raise ProtocolError("extended message without an id")
        if size - 1 > wire.MAX_EXTENDED_LENGTH:
            raise ProtocolError("extended message too long")
        ext_id = self._buf[start]
        payload = self._view[start + 1 : start + size]
        assert self.torrent is not None
        if ext_id == HANDSHAKE_ID:
            self.extension = decode_handshake(payload)
            self.torrent.on_extension_handshake(self)
        elif ext_id == LOCAL_RECEIPT_ID:
            if self.extension is None or not self.extension.receipt_id:
                raise ProtocolError("sm_receipt message before the extension handshake")
            self.torrent.on_receipt_message(self, bytes(payload))
        # other extensions (ut_metadata, ut_pex, ...) are not used on private torrents

    def _on_piece_message(self, msg_id: int, start: int, size: int, first: bool) -> None:
        """have, bitfield, have_all, have_none: what the peer has."""
        if msg_id == wire.HAVE:
            self._on_have(_LENGTH(self._buf, start)[0])
        elif msg_id == wire.BITFIELD:
            self._on_pieces(wire.unpack_bits(self._view[start : start + size], len(self.flags)), first)
        elif msg_id == wire.HAVE_ALL:
            self._on_pieces(bytearray(b"\x01") * len(self.flags), first)
        elif first:  # have_none; later it says nothing (a peer cannot lose pieces)
            self._on_pieces(bytearray(len(self.flags)), first)

    def _on_pieces(self, flags: bytearray, first: bool) -> None:
        """A bitfield, have_all or have_none. The first message after the handshake states what
        the peer has; a later one (aria2 sends a bitfield when that is shorter than its haves)
        adds to it, one `have` per new piece: a peer cannot lose pieces, and a later bitfield
        that leaves out pieces it announced is read as saying nothing about them."""
        assert self.torrent is not None
        if first:
            self.flags = flags
            self._piece_total = flags.count(1)
            self.is_seed = self._piece_total == len(flags)
            self.torrent.on_bitfield(self)
            return
        for index in [i for i, flag in enumerate(flags) if flag and not self.flags[i]]:
            if self.closed:
                return
            self._set_piece(index)
            self.torrent.on_have(self, index, self.is_seed)

    def _on_have(self, index: int) -> None:
        assert self.torrent is not None
        if index >= len(self.flags):
            raise ProtocolError(f"have for piece {index}, the torrent has {len(self.flags)}")
        if self._set_piece(index):
            self.torrent.on_have(self, index, self.is_seed)

    # ----- sending -----

    def send(self, data: bytes) -> None:
        """Queue bytes on the socket."""
        if self.closed or self.transport is None:
            return
        if self._encrypt is not None:
            data = self._encrypt.update(data)
        self.transport.write(data)
        self.last_sent = self.session.now()

    def send_many(self, parts: list[Any]) -> None:
        """Queue several buffers with one system call."""
        if self.closed or self.transport is None:
            return
        if self._encrypt is not None:
            self.transport.write(self._encrypt.update(b"".join(parts)))
        else:
            self.transport.writelines(parts)
        self.last_sent = self.session.now()
