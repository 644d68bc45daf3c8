"""The µTP packet codec against BEP 29's layout, written out by hand here."""

from __future__ import annotations

import struct

import pytest

from tracker.utp import packet as pk
from tracker.utp.errors import PacketError


def test_a_state_packet_has_the_bep29_header_layout():
    data = pk.encode(pk.ST_STATE, 0x1234, 0xDEADBEEF, 77, 65536, 10, 9)
    assert data == bytes([0x21, 0]) + struct.pack(">HIIIHH", 0x1234, 0xDEADBEEF, 77, 65536, 10, 9)
    p = pk.decode(data)
    assert (p.type, p.connection_id, p.timestamp, p.timestamp_diff, p.wnd_size, p.seq_nr, p.ack_nr) == (
        pk.ST_STATE,
        0x1234,
        0xDEADBEEF,
        77,
        65536,
        10,
        9,
    )
    assert p.sack is None and bytes(p.payload) == b""


def test_a_selective_ack_travels_as_extension_one_before_the_payload():
    data = pk.encode(pk.ST_DATA, 1, 2, 3, 4, 5, 6, payload=b"hello", sack=b"\x05\x00\x00\x80")
    assert data[1] == pk.EXT_SACK
    assert data[20:26] == b"\x00\x04\x05\x00\x00\x80"
    p = pk.decode(data)
    assert p.sack == b"\x05\x00\x00\x80" and bytes(p.payload) == b"hello"


def test_selective_ack_bits_count_from_two_past_the_ack():
    bits = pk.sack_bits(100, {102, 104, 133})
    assert bits == b"\x05\x00\x00\x80"
    assert pk.sacked(100, bits) == [102, 104, 133]


def test_selective_acks_wrap_around_the_sequence_space():
    bits = pk.sack_bits(0xFFFE, {0, 2})
    assert bits is not None
    assert pk.sacked(0xFFFE, bits) == [0, 2]


def test_packets_beyond_the_selective_ack_range_are_left_out():
    assert pk.sack_bits(0, {2 + pk.MAX_SACK_BYTES * 8}) is None


def test_a_selective_ack_shorter_than_a_word_is_read_as_libtorrent_sends_it():
    # captured from libtorrent 2.0: a data packet whose selective ACK is 2 bytes long
    data = bytes.fromhex("0101d6f72eb2b8f869d27fd2000fadf8163550c1" + "00020500") + b"request"
    p = pk.decode(data)
    assert p.sack == b"\x05\x00" and bytes(p.payload) == b"request"
    assert pk.sacked(p.ack_nr, p.sack) == [(p.ack_nr + 2) & 0xFFFF, (p.ack_nr + 4) & 0xFFFF]


def test_unknown_extensions_are_skipped():
    head = bytearray(pk.encode(pk.ST_DATA, 1, 2, 3, 4, 5, 6))
    head[1] = 2  # libutp's extension bits first, then a selective ACK
    data = bytes(head) + bytes([pk.EXT_SACK, 8]) + bytes(8) + bytes([0, 4, 1, 0, 0, 0]) + b"payload"
    p = pk.decode(data)
    assert p.sack == b"\x01\x00\x00\x00" and bytes(p.payload) == b"payload"


_STATE = pk.encode(pk.ST_STATE, 1, 2, 3, 4, 5, 6)
_SACK_FLAGGED = _STATE[:1] + b"\x01" + _STATE[2:]  # says a selective ACK follows


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (_STATE[:19], "shorter"),
        (bytes([0x22]) + pk.encode(pk.ST_STATE, 1, 2, 3, 4, 5, 6)[1:], "version"),
        (bytes([0x51]) + pk.encode(pk.ST_STATE, 1, 2, 3, 4, 5, 6)[1:], "type"),
        (_SACK_FLAGGED, "end"),
        (_SACK_FLAGGED + b"\x00\x08\x00", "end"),
        (_SACK_FLAGGED + b"\x00\x00", "empty selective ACK"),
    ],
    ids=["empty", "truncated", "version-2", "type-5", "extension-cut", "extension-long", "sack-0-bytes"],
)
def test_malformed_datagrams_are_refused(data, reason):
    with pytest.raises(PacketError, match=reason):
        pk.decode(data)


def test_a_selective_ack_that_is_not_whole_words_cannot_be_sent():
    with pytest.raises(ValueError, match="multiple of 4"):
        pk.encode(pk.ST_STATE, 1, 2, 3, 4, 5, 6, sack=b"\x01")
