"""One peer connection: framing, validation and dispatch of the BEP 3 / BEP 10 byte stream.

The protocol reads straight into its own buffer (`asyncio.BufferedProtocol`), parses every
complete message in place and hands the swarm logic (`tracker.peer.torrent`) typed values; block
data is passed as a memoryview into that buffer and copied once, into its piece. Anything a peer
sends that breaks the protocol drops that peer and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any, cast

from tracker.peer import wire
from tracker.peer.errors import ProtocolError
from tracker.peer.extension import HANDSHAKE_ID, LOCAL_RECEIPT_ID, ExtensionHandshake, decode_handshake

if TYPE_CHECKING:
    from tracker.peer.downloading import DownloadState
    from tracker.peer.session import Session
    from tracker.peer.torrent import Torrent
    from tracker.peer.uploading import UploadState

log = logging.getLogger(__name__)

RECV_CHUNK = 256 * 1024  # bytes read per socket read at most
HANDSHAKE_BUFFER = 16 * 1024  # until a handshake names the torrent, a stranger gets only this much
WRITE_HIGH_WATER = 4 * 1024 * 1024  # stop serving blocks while this much waits in the socket buffer
WRITE_LOW_WATER = 1024 * 1024

_LENGTH = struct.Struct(">I").unpack_from
_INDEX_BEGIN = wire.INDEX_BEGIN.unpack_from
_INDEX_BEGIN_LENGTH = wire.INDEX_BEGIN_LENGTH.unpack_from


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
        # what the peer told us: its choking, its interest, its pieces (a 0/1 flag per piece;
        # `is_seed` peers have everything)
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
        self._end += nbytes
        self.last_received = self.session.now()
        try:
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
        if handshake.peer_id == self.session.peer_id:
            raise ProtocolError("connected to ourselves")
        self.peer_id = handshake.peer_id
        self.handshake = handshake
        self.flags = bytearray(self.torrent.meta.piece_count)
        if not self.torrent.attach(self):
            self.handshake = None  # not attached: nothing to detach
            self.drop("not accepted by the torrent")

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
        buf = self._buf
        if msg_id != wire.EXTENDED:
            first, self._first_message = self._first_message, False
        if msg_id == wire.REQUEST:
            index, begin, length = _INDEX_BEGIN_LENGTH(buf, start)
            torrent.uploads.on_request(self, index, begin, length)
        elif msg_id == wire.HAVE:
            self._on_have(_LENGTH(buf, start)[0])
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
        elif msg_id == wire.BITFIELD:
            if not first:
                raise ProtocolError("bitfield after other messages")
            flags = wire.unpack_bits(self._view[start : start + size], torrent.meta.piece_count)
            self.flags = flags
            self._piece_total = flags.count(1)
            self.is_seed = self._piece_total == len(flags)
            torrent.on_bitfield(self)
        elif msg_id == wire.EXTENDED:
            self._on_extended(start, size)
        # PORT (DHT) and ids we do not speak are ignored

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
        self.transport.write(data)
        self.last_sent = self.session.now()

    def send_many(self, parts: list[Any]) -> None:
        """Queue several buffers with one system call."""
        if self.closed or self.transport is None:
            return
        self.transport.writelines(parts)
        self.last_sent = self.session.now()
