"""The engine's parts on their own: wire codec, extension messages, picker, storage resume."""

from __future__ import annotations

import pytest

from tests.peer.conftest import make_content, new_wallet, signer_for
from tracker.peer import wire
from tracker.peer.errors import ProtocolError
from tracker.peer.extension import (
    Need,
    decode_handshake,
    decode_message,
    encode_handshake,
    encode_need,
    encode_receipt,
)
from tracker.peer.picker import BLOCK_SIZE, FEW_CANDIDATES, PiecePicker
from tracker.peer.storage import Storage


def test_handshake_round_trips_and_other_protocols_are_refused():
    handshake = wire.Handshake(b"i" * 20, b"p" * 20, wire.our_reserved())
    parsed = wire.parse_handshake(handshake.encode())
    assert parsed == handshake and parsed.supports_extensions
    with pytest.raises(ProtocolError):
        wire.parse_handshake(b"\x13BitTorrent protocoX" + bytes(48))


def test_bitfields_round_trip_and_spare_bits_are_refused():
    flags = bytearray([1, 0, 1, 1, 0, 0, 0, 0, 1, 1])
    assert wire.unpack_bits(wire.pack_bits(flags), 10) == flags
    with pytest.raises(ProtocolError):
        wire.unpack_bits(b"\xff\xff", 10)
    with pytest.raises(ProtocolError):
        wire.unpack_bits(b"\xff", 10)


def test_extension_handshake_carries_wallet_and_purchase_and_rejects_bad_ones():
    wallet = new_wallet().address
    parsed = decode_handshake(encode_handshake(wallet=wallet, purchase=42, request_queue=500))
    assert (parsed.receipt_id, parsed.wallet, parsed.purchase, parsed.request_queue) == (1, wallet, 42, 500)
    with pytest.raises(ProtocolError):
        decode_handshake(b"d1:md10:sm_receipti1ee9:sm_wallet3:abce")
    with pytest.raises(ProtocolError):
        decode_handshake(b"d1:md10:sm_receipti1ee11:sm_purchasei-1ee")
    with pytest.raises(ProtocolError):
        decode_handshake(b"d1:mi1ee")
    assert decode_handshake(b"d1:md6:ut_pexi2eee").receipt_id == 0  # a client without our extension


def test_sm_receipt_messages_round_trip_and_unknown_kinds_are_ignored():
    signed = signer_for(new_wallet(), 3).sign(new_wallet().address, 1000)
    assert decode_message(encode_receipt(signed)) == signed
    assert decode_message(encode_need(77)) == Need(77)
    assert decode_message(b"d1:t5:helloe") is None
    for bad in (b"d1:t4:neede", b"d1:t7:receipte", b"l1:xe", b"d1:t4:need5:bytesi-1ee", b"garbage"):
        with pytest.raises(ProtocolError):
            decode_message(bad)


def _picker(count: int = 8, size: int = 4 * BLOCK_SIZE) -> PiecePicker:
    return PiecePicker([size] * count, bytearray(count), max_pending=count, seed=1)


def test_the_picker_starts_the_rarest_piece_and_finishes_a_peer_s_own_pieces_first():
    picker = _picker()
    common = bytearray([1] * 8)
    common[5] = 0
    rare = bytearray([0] * 8)
    rare[5] = 1
    picker.add_peer(common)
    picker.add_peer(common)
    picker.add_peer(rare)  # piece 5: one copy; every other piece: two
    own: list[int] = []
    first = picker.pick("a", bytearray([1] * 8), 2, own)
    assert {index for index, _, _ in first} == {5}
    second = picker.pick("a", bytearray([1] * 8), 2, own)
    assert {index for index, _, _ in second} == {5} and own == [5]


def test_released_blocks_go_to_other_peers_and_end_game_duplicates_the_rest():
    picker = _picker(count=1)
    own_a: list[int] = []
    blocks = picker.pick("a", None, 10, own_a)
    assert len(blocks) == 4
    assert picker.in_endgame
    duplicates = picker.pick("b", None, 10, [])
    assert sorted(duplicates) == sorted(blocks)  # end-game: b may ask for the same blocks
    picker.release(0, 0, "a")
    picker.release(0, 0, "b")
    again = picker.pick("c", None, 1, [])
    assert again == [(0, 0, BLOCK_SIZE)]


def test_end_game_duplicates_only_for_a_peer_that_ran_dry_newest_pieces_first_twice_at_most():
    picker = _picker(count=3, size=BLOCK_SIZE)  # three pieces of one block
    first = picker.pick("a", None, 3, [])  # a asks for everything, in its own order
    assert picker.in_endgame
    assert picker.pick("b", None, 3, [], in_flight=1) == []  # b still waits for its own: nothing
    assert picker.pick("b", None, 1, []) == [first[-1]]  # the newest piece: last in a's queue
    assert picker.pick("c", None, 3, []) == [first[1], first[0]]  # first[-1] has two requesters
    assert picker.pick("d", None, 3, []) == []


def test_rarest_first_holds_for_peers_with_few_and_with_many_new_pieces():
    # 400 one-block pieces: a leecher with a handful of them is served from its own pieces, one
    # with most of them from the buckets (FEW_CANDIDATES); both get the rarest they have, and a
    # peer whose every piece is started or had gets nothing, a failed piece being startable again.
    count = 400
    picker = PiecePicker([BLOCK_SIZE] * count, bytearray(count), max_pending=count, seed=7)
    few = bytearray(count)
    for index in (3, 150, 151, 399):
        few[index] = 1
    many = bytearray([1]) * count
    many[10] = 0
    for flags in (few, many, many):
        picker.add_peer(flags)  # pieces 3, 150, 151, 399: three copies; 10: none; the rest two
    picker.add_peer(bytearray(count))
    rare = bytearray(count)
    rare[200] = rare[201] = 1
    picker.add_peer(rare)  # pieces 200 and 201: three copies, like few's
    assert few.count(1) <= FEW_CANDIDATES < many.count(1)  # both ways of finding the rarest
    first = {index for index, _, _ in picker.pick("many", many, 3, [])}
    assert first.isdisjoint({3, 150, 151, 399, 200, 201, 10})  # two copies before three
    got = sorted(index for index, _, _ in picker.pick("few", few, 10, []))
    assert got == [3, 150, 151, 399]  # all it has, and nothing it lacks
    assert picker.pick("few", few, 10, []) == []  # nothing left to start, and not end-game
    (index, begin, length) = picker.pick("other", bytearray([1]) * count, 1, [])[0]
    picker.received(index, begin, memoryview(bytes(length)), "other")
    picker.finished(index, good=False)
    one = bytearray(count)
    one[index] = 1
    assert picker.pick("again", one, 1, []) == [(index, 0, BLOCK_SIZE)]


def test_a_piece_that_fails_its_hash_is_downloaded_again():
    picker = _picker(count=1, size=BLOCK_SIZE)
    (block,) = picker.pick("a", None, 1, [])
    progress = picker.received(0, 0, memoryview(bytes(BLOCK_SIZE)), "a")
    assert progress is not None and progress.complete
    picker.finished(0, good=False)
    assert picker.pick("b", None, 1, []) == [block]
    assert picker.received(0, 0, memoryview(bytes(BLOCK_SIZE)), "a") is None  # a is no longer asked


def test_storage_resume_finds_exactly_the_pieces_that_are_on_disk(tmp_path):
    content = make_content(tmp_path, name="set", sizes=(50_000, 30_000, 70_000), piece_length=16384)
    seed = Storage(content.meta, content.folder, writable=False)
    seed.open()
    leech = Storage(content.meta, tmp_path / "leech")
    leech.open()
    assert not any(leech.check())
    for index in (0, 3, content.meta.piece_count - 1):
        assert leech.verify_and_write(index, seed.read_piece(index))
    assert not leech.verify_and_write(1, bytes(content.meta.piece_size(1)))
    leech.close()
    reopened = Storage(content.meta, tmp_path / "leech")
    reopened.open()
    have = reopened.check()
    assert [i for i, flag in enumerate(have) if flag] == [0, 3, content.meta.piece_count - 1]
    reopened.close()
    seed.close()
