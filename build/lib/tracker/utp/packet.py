"""The µTP packet (BEP 29): a 20-byte header, a chain of extensions, then the payload.

Defined once here and used by both ends of a connection. Parsing validates everything a datagram
from a stranger can get wrong (too short, another version, an unknown type, an extension running
past the end, a selective ACK of no bytes) and raises `PacketError`; the caller ignores
such datagrams. Unknown extensions are skipped, as libtorrent and libutp do. We only ever send the
selective ACK extension (type 1): libutp takes a packet whose *first* extension type is 3 or more
for an old-version packet (`UTP_Version` in its utp_internal.cpp), so any newer extension must
never come first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.utp.errors import PacketError

ST_DATA = 0
ST_FIN = 1
ST_STATE = 2
ST_RESET = 3
ST_SYN = 4
TYPE_NAMES = ("DATA", "FIN", "STATE", "RESET", "SYN")
VERSION = 1
EXT_NONE = 0
EXT_SACK = 1

HEADER = struct.Struct(">BBHIIIHH")
HEADER_SIZE = HEADER.size  # 20
SEQ_MASK = 0xFFFF
MICROS_MASK = 0xFFFFFFFF
MAX_SACK_BYTES = 32  # 256 packets past the first hole; libtorrent sends at most as many


@dataclass(slots=True)
class Packet:
    """One decoded packet; `payload` is a view into the datagram (copy it to keep it)."""

    type: int
    connection_id: int
    timestamp: int  # the sender's clock, microseconds modulo 2**32
    timestamp_diff: int  # the sender's last measured one-way delay of our packets, same units
    wnd_size: int  # bytes the sender can still take in
    seq_nr: int
    ack_nr: int
    sack: bytes | None = None  # bit i set: packet ack_nr + 2 + i arrived
    payload: memoryview | bytes = b""


def decode(data: bytes | memoryview) -> Packet:
    """Parse a datagram, raising `PacketError` for anything that is not a valid µTP v1 packet."""
    if len(data) < HEADER_SIZE:
        raise PacketError(f"a datagram of {len(data)} bytes is shorter than a µTP header")
    type_ver, extension, conn_id, timestamp, diff, wnd, seq_nr, ack_nr = HEADER.unpack_from(data)
    if type_ver & 0x0F != VERSION:
        raise PacketError(f"µTP version {type_ver & 0x0F} is not 1")
    kind = type_ver >> 4
    if kind > ST_SYN:
        raise PacketError(f"packet type {kind} is unknown")
    pos = HEADER_SIZE
    sack = None
    while extension != EXT_NONE:
        if len(data) - pos < 2:
            raise PacketError("an extension header runs past the end of the packet")
        following, length = data[pos], data[pos + 1]
        pos += 2
        if len(data) - pos < length:
            raise PacketError("an extension runs past the end of the packet")
        if extension == EXT_SACK:
            # BEP 29 asks for whole 32-bit words, but libtorrent sends 1 and 2 bytes when that is
            # all it needs (and libutp reads any length): refusing them drops its data packets
            if length == 0:
                raise PacketError("an empty selective ACK")
            sack = bytes(data[pos : pos + length])
        pos += length
        extension = following
    return Packet(kind, conn_id, timestamp, diff, wnd, seq_nr, ack_nr, sack, memoryview(data)[pos:])


def encode(
    kind: int,
    connection_id: int,
    timestamp: int,
    timestamp_diff: int,
    wnd_size: int,
    seq_nr: int,
    ack_nr: int,
    payload: bytes | memoryview = b"",
    sack: bytes | None = None,
) -> bytes:
    """One packet as bytes (with a selective ACK extension when `sack` is given)."""
    head = HEADER.pack(
        kind << 4 | VERSION,
        EXT_SACK if sack else EXT_NONE,
        connection_id & SEQ_MASK,
        timestamp & MICROS_MASK,
        timestamp_diff & MICROS_MASK,
        wnd_size & MICROS_MASK,
        seq_nr & SEQ_MASK,
        ack_nr & SEQ_MASK,
    )
    if sack:
        if len(sack) % 4 or len(sack) > 255:
            raise ValueError(f"a selective ACK of {len(sack)} bytes is not a multiple of 4 up to 252")
        return b"".join((head, bytes((EXT_NONE, len(sack))), sack, payload))
    return head + payload if payload else head


def sack_bits(ack_nr: int, received: Iterable[int]) -> bytes | None:
    """The selective ACK for packets after `ack_nr + 1` that arrived out of order, or None."""
    bits = bytearray(MAX_SACK_BYTES)
    last = -1
    for seq in received:
        offset = (seq - ack_nr - 2) & SEQ_MASK
        if offset < MAX_SACK_BYTES * 8:
            bits[offset >> 3] |= 1 << (offset & 7)
            last = max(last, offset)
    if last < 0:
        return None
    return bytes(bits[: (last // 32 + 1) * 4])


def sacked(ack_nr: int, sack: bytes) -> list[int]:
    """The sequence numbers a selective ACK reports as received, lowest first."""
    out = []
    for byte_index, byte in enumerate(sack):
        if byte:
            for bit in range(8):
                if byte >> bit & 1:
                    out.append((ack_nr + 2 + byte_index * 8 + bit) & SEQ_MASK)
    return out
