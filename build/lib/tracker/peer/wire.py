"""BEP 3 peer wire with the BEP 6 Fast extension's messages: the handshake and message codec,
with every length a peer can claim capped.

Messages are `<length:u32><id:u8><payload>`. The connection parses its byte stream with the
structs and limits defined here; encoding functions return ready-to-send bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.peer.errors import ProtocolError

PROTOCOL_NAME = b"BitTorrent protocol"
HANDSHAKE_PREFIX = bytes([len(PROTOCOL_NAME)]) + PROTOCOL_NAME
HANDSHAKE_LENGTH = 68
EXTENSION_BIT_BYTE = 5  # BEP 10: reserved byte 5, bit 0x10
EXTENSION_BIT = 0x10
FAST_BIT_BYTE = 7  # BEP 6: reserved byte 7, bit 0x04
FAST_BIT = 0x04

BLOCK_SIZE = 16 * 1024  # what every client requests and what libtorrent serves at most
MAX_REQUEST_LENGTH = 128 * 1024  # larger requests drop the peer (BEP 3 clients close at 16 KiB)
MAX_EXTENDED_LENGTH = 256 * 1024  # BEP 10 messages we accept; ours are tiny, ut_metadata ~16 KiB
MAX_UNKNOWN_LENGTH = 256 * 1024  # messages with ids we do not speak are skipped up to this size

CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9
SUGGEST = 0x0D  # BEP 6 Fast extension, from here to ALLOWED_FAST
HAVE_ALL = 0x0E
HAVE_NONE = 0x0F
REJECT = 0x10
ALLOWED_FAST = 0x11
EXTENDED = 20
FAST_MESSAGES = frozenset({SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST})

LENGTH = struct.Struct(">I")
HEADER = struct.Struct(">IB")
HAVE_MSG = struct.Struct(">IBI")
REQUEST_MSG = struct.Struct(">IBIII")
INDEX_BEGIN = struct.Struct(">II")
INDEX_BEGIN_LENGTH = struct.Struct(">III")
PIECE_HEADER = struct.Struct(">IBII")

KEEPALIVE_MSG = LENGTH.pack(0)
CHOKE_MSG = HEADER.pack(1, CHOKE)
UNCHOKE_MSG = HEADER.pack(1, UNCHOKE)
INTERESTED_MSG = HEADER.pack(1, INTERESTED)
NOT_INTERESTED_MSG = HEADER.pack(1, NOT_INTERESTED)
HAVE_ALL_MSG = HEADER.pack(1, HAVE_ALL)
HAVE_NONE_MSG = HEADER.pack(1, HAVE_NONE)

# Exact payload sizes (after the id byte) of fixed-size messages.
FIXED_PAYLOAD = {
    CHOKE: 0,
    UNCHOKE: 0,
    INTERESTED: 0,
    NOT_INTERESTED: 0,
    HAVE: 4,
    REQUEST: 12,
    CANCEL: 12,
    PORT: 2,
    SUGGEST: 4,
    HAVE_ALL: 0,
    HAVE_NONE: 0,
    REJECT: 12,
    ALLOWED_FAST: 4,
}


@dataclass(frozen=True, slots=True)
class Handshake:
    """The 68-byte BEP 3 handshake."""

    info_hash: bytes
    peer_id: bytes
    reserved: bytes = bytes(8)

    @property
    def supports_extensions(self) -> bool:
        """Whether the peer set the BEP 10 extension-protocol bit."""
        return bool(self.reserved[EXTENSION_BIT_BYTE] & EXTENSION_BIT)

    @property
    def supports_fast(self) -> bool:
        """Whether the peer set the BEP 6 Fast extension bit."""
        return bool(self.reserved[FAST_BIT_BYTE] & FAST_BIT)

    def encode(self) -> bytes:
        """The handshake's wire bytes."""
        return HANDSHAKE_PREFIX + self.reserved + self.info_hash + self.peer_id


def our_reserved(*, fast: bool = True) -> bytes:
    """Reserved bytes announcing the extension protocol and (unless told not to) the Fast
    extension, and nothing else."""
    reserved = bytearray(8)
    reserved[EXTENSION_BIT_BYTE] |= EXTENSION_BIT
    if fast:
        reserved[FAST_BIT_BYTE] |= FAST_BIT
    return bytes(reserved)


def parse_handshake(data: bytes) -> Handshake:
    """Parse 68 handshake bytes; raises ProtocolError on anything but BitTorrent's."""
    if len(data) != HANDSHAKE_LENGTH or not data.startswith(HANDSHAKE_PREFIX):
        raise ProtocolError("not a BitTorrent handshake")
    return Handshake(reserved=bytes(data[20:28]), info_hash=bytes(data[28:48]), peer_id=bytes(data[48:68]))


def bitfield_length(num_pieces: int) -> int:
    """Bytes in a bitfield of `num_pieces` pieces."""
    return (num_pieces + 7) // 8


def max_message_length(num_pieces: int) -> int:
    """The longest message (id and payload) a peer may send on a torrent of `num_pieces` pieces."""
    return max(
        1 + bitfield_length(num_pieces),
        PIECE_HEADER.size - 4 + MAX_REQUEST_LENGTH,
        1 + MAX_EXTENDED_LENGTH,
        1 + MAX_UNKNOWN_LENGTH,
    )


def have(index: int) -> bytes:
    """A `have` message."""
    return HAVE_MSG.pack(5, HAVE, index)


def bitfield(bits: bytes) -> bytes:
    """A `bitfield` message carrying packed bits."""
    return HEADER.pack(1 + len(bits), BITFIELD) + bits


def request(index: int, begin: int, length: int) -> bytes:
    """A `request` message."""
    return REQUEST_MSG.pack(13, REQUEST, index, begin, length)


def requests(blocks: Iterable[tuple[int, int, int]]) -> bytes:
    """Many `request` messages in one buffer, to send with one write."""
    pack = REQUEST_MSG.pack
    return b"".join([pack(13, REQUEST, index, begin, length) for index, begin, length in blocks])


def cancel(index: int, begin: int, length: int) -> bytes:
    """A `cancel` message."""
    return REQUEST_MSG.pack(13, CANCEL, index, begin, length)


def reject(index: int, begin: int, length: int) -> bytes:
    """A BEP 6 `reject_request` message."""
    return REQUEST_MSG.pack(13, REJECT, index, begin, length)


def piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13 bytes that precede `length` bytes of block data in a `piece` message."""
    return PIECE_HEADER.pack(9 + length, PIECE, index, begin)


def extended(ext_id: int, payload: bytes) -> bytes:
    """A BEP 10 extended message (`ext_id` 0 is the extension handshake)."""
    return HEADER.pack(2 + len(payload), EXTENDED) + bytes([ext_id]) + payload


def pack_bits(flags: bytes | bytearray) -> bytes:
    """Pack a 0/1-per-piece array into a BEP 3 bitfield (high bit first)."""
    out = bytearray(bitfield_length(len(flags)))
    for index, flag in enumerate(flags):
        if flag:
            out[index >> 3] |= 0x80 >> (index & 7)
    return bytes(out)


def unpack_bits(bits: bytes | memoryview, num_pieces: int) -> bytearray:
    """A 0/1-per-piece array from a bitfield; raises ProtocolError on a wrong size or spare bits."""
    if len(bits) != bitfield_length(num_pieces):
        raise ProtocolError("bitfield has the wrong length")
    flags = bytearray(num_pieces)
    for byte_index, byte in enumerate(bytes(bits)):
        if not byte:
            continue
        base = byte_index << 3
        for bit in range(8):
            if byte & (0x80 >> bit):
                if base + bit >= num_pieces:
                    raise ProtocolError("bitfield sets bits past the last piece")
                flags[base + bit] = 1
    return flags
