"""Torrent files: what we create, what we accept, and what libtorrent thinks of both."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import bencodepy
import libtorrent as lt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracker.conftest import write_random
from tracker.errors import TrackerError
from tracker.metainfo import (
    MAX_AUTO_PIECE_LENGTH,
    MIN_PIECE_LENGTH,
    READ_CHUNK,
    FileEntry,
    MetainfoError,
    auto_piece_length,
    create_torrent,
    parse_metainfo,
    with_announce,
)

ANNOUNCE = "http://127.0.0.1:6969/announce/0123456789abcdef0123456789abcdef"


def stream_of(root: Path, files: tuple[FileEntry, ...]) -> bytes:
    """The torrent's byte stream read back from disk, file after file."""
    base = root.parent
    return b"".join(base.joinpath(*entry.path).read_bytes() for entry in files)


def libtorrent_make(root: Path, piece_length: int, flags: int) -> bytes:
    """Let libtorrent create a private torrent of `root`."""
    storage = lt.file_storage()
    lt.add_files(storage, str(root))
    maker = lt.create_torrent(storage, piece_length, flags=flags)
    maker.set_priv(True)
    maker.add_tracker(ANNOUNCE)
    lt.set_piece_hashes(maker, str(root.parent))
    return bytes(lt.bencode(maker.generate()))


class TestCreatedTorrents:
    def test_single_file_round_trips_with_correct_piece_hashes(self, tmp_path: Path) -> None:
        source = write_random(tmp_path / "movie.mkv", 100_000, 7)
        metainfo = parse_metainfo(create_torrent(source, ANNOUNCE, piece_length=MIN_PIECE_LENGTH))
        assert metainfo.name == "movie.mkv"
        assert metainfo.files == (FileEntry(path=("movie.mkv",), length=100_000, offset=0),)
        assert metainfo.total_length == 100_000
        assert metainfo.private is True
        assert metainfo.announce == ANNOUNCE
        data = source.read_bytes()
        expected = [
            hashlib.sha1(data[i : i + MIN_PIECE_LENGTH]).digest() for i in range(0, 100_000, MIN_PIECE_LENGTH)
        ]
        assert list(metainfo.pieces) == expected
        assert metainfo.piece_size(0) == MIN_PIECE_LENGTH
        assert metainfo.piece_size(len(expected) - 1) == 100_000 - MIN_PIECE_LENGTH * (len(expected) - 1)

    def test_folder_lists_files_sorted_with_offsets_and_hashes_span_file_boundaries(
        self, content_folder: Path
    ) -> None:
        metainfo = parse_metainfo(create_torrent(content_folder, ANNOUNCE, piece_length=MIN_PIECE_LENGTH))
        paths = [entry.path for entry in metainfo.files]
        assert paths == [
            ("album", "01 intro.flac"),
            ("album", "cover.jpg"),
            ("album", "extras", "deep", "video.mkv"),
            ("album", "extras", "empty.txt"),
            ("album", "extras", "notes.txt"),
        ]
        offsets = [entry.offset for entry in metainfo.files]
        assert offsets == [0, 70_001, 86_385, 209_842, 209_842]
        stream = stream_of(content_folder, metainfo.files)
        assert len(stream) == metainfo.total_length == 209_847
        for index, digest in enumerate(metainfo.pieces):
            start = index * metainfo.piece_length
            assert hashlib.sha1(stream[start : start + metainfo.piece_size(index)]).digest() == digest

    def test_public_torrent_has_no_private_flag(self, tmp_path: Path) -> None:
        source = write_random(tmp_path / "a.bin", 10, 1)
        metainfo = parse_metainfo(create_torrent(source, ANNOUNCE, private=False, comment="hello"))
        assert metainfo.private is False
        assert b"private" not in metainfo.info
        assert bencodepy.decode(metainfo.raw)[b"comment"] == b"hello"

    def test_hashing_streams_in_chunks_and_reports_progress_up_to_the_total(self, tmp_path: Path) -> None:
        size = 3 * READ_CHUNK + 17
        source = write_random(tmp_path / "big.bin", size, 5)
        seen: list[tuple[int, int]] = []
        create_torrent(source, ANNOUNCE, progress=lambda done, total: seen.append((done, total)))
        assert len(seen) >= 4
        assert all(total == size for _, total in seen)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
        assert seen[-1] == (size, size)

    def test_a_file_growing_while_hashed_is_refused(self, tmp_path: Path) -> None:
        source = write_random(tmp_path / "growing.log", 2 * READ_CHUNK, 6)

        def append(done: int, total: int) -> None:
            with open(source, "ab") as handle:
                handle.write(b"more")

        with pytest.raises(MetainfoError, match="changed size"):
            create_torrent(source, ANNOUNCE, progress=append)

    @pytest.mark.parametrize(
        ("total", "expected"),
        [
            (1, MIN_PIECE_LENGTH),
            (2048 * MIN_PIECE_LENGTH, MIN_PIECE_LENGTH),
            (2048 * MIN_PIECE_LENGTH + 1, 2 * MIN_PIECE_LENGTH),
            (700 * 1024 * 1024, 512 * 1024),
            (50 * 1024**3, MAX_AUTO_PIECE_LENGTH),
        ],
    )
    def test_automatic_piece_length_grows_with_size_within_bounds(self, total: int, expected: int) -> None:
        assert auto_piece_length(total) == expected

    def test_magnet_names_infohash_name_and_tracker(self, tmp_path: Path) -> None:
        source = write_random(tmp_path / "my file.txt", 10, 1)
        metainfo = parse_metainfo(create_torrent(source, ANNOUNCE))
        assert metainfo.magnet() == (
            f"magnet:?xt=urn:btih:{metainfo.info_hash.hex()}&dn=my%20file.txt"
            "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce%2F0123456789abcdef0123456789abcdef"
        )

    @pytest.mark.parametrize("piece_length", [0, 1000, MIN_PIECE_LENGTH // 2, 3 * MIN_PIECE_LENGTH])
    def test_explicit_piece_length_must_be_a_sane_power_of_two(
        self, tmp_path: Path, piece_length: int
    ) -> None:
        source = write_random(tmp_path / "a.bin", 10, 1)
        with pytest.raises(MetainfoError, match="power of two"):
            create_torrent(source, ANNOUNCE, piece_length=piece_length)

    def test_refuses_empty_inputs_symlinks_and_bad_announce_urls(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        with pytest.raises(MetainfoError, match="holds no files"):
            create_torrent(tmp_path / "empty", ANNOUNCE)
        (tmp_path / "zero.bin").write_bytes(b"")
        with pytest.raises(MetainfoError, match="no data"):
            create_torrent(tmp_path / "zero.bin", ANNOUNCE)
        folder = tmp_path / "linked"
        write_random(folder / "real.bin", 10, 1)
        (folder / "link.bin").symlink_to(folder / "real.bin")
        with pytest.raises(MetainfoError, match="symbolic link"):
            create_torrent(folder, ANNOUNCE)
        with pytest.raises(MetainfoError, match="does not exist"):
            create_torrent(tmp_path / "missing", ANNOUNCE)
        with pytest.raises(MetainfoError, match="announce URL"):
            create_torrent(folder / "real.bin", "ftp://example.com/announce")


class TestLibtorrentAgrees:
    @pytest.mark.parametrize("kind", ["file", "folder"])
    def test_libtorrent_loads_our_torrents_with_the_same_infohash_and_files(
        self, kind: str, tmp_path: Path, content_folder: Path
    ) -> None:
        source = content_folder if kind == "folder" else write_random(tmp_path / "one.bin", 99_999, 9)
        data = create_torrent(source, ANNOUNCE)
        ours = parse_metainfo(data)
        theirs = lt.torrent_info(data)
        assert theirs.info_hashes().v1.to_bytes() == ours.info_hash
        assert theirs.priv() is True
        assert theirs.num_pieces() == len(ours.pieces)
        assert theirs.piece_length() == ours.piece_length
        storage = theirs.files()
        listed = [
            (tuple(Path(storage.file_path(i)).parts), storage.file_size(i), storage.file_offset(i))
            for i in range(storage.num_files())
        ]
        assert listed == [(entry.path, entry.length, entry.offset) for entry in ours.files]
        assert [tracker.url for tracker in theirs.trackers()] == [ANNOUNCE]

    def test_we_load_libtorrents_v1_torrents_with_the_same_infohash(self, content_folder: Path) -> None:
        data = libtorrent_make(content_folder, MIN_PIECE_LENGTH, lt.create_torrent.v1_only)
        ours = parse_metainfo(data)
        theirs = lt.torrent_info(data)
        assert ours.info_hash == theirs.info_hashes().v1.to_bytes()
        assert ours.private is True
        assert ours.announce == ANNOUNCE
        assert ours.total_length == theirs.total_size()
        assert sorted(entry.path for entry in ours.files) == sorted(
            tuple(Path(theirs.files().file_path(i)).parts) for i in range(theirs.files().num_files())
        )
        stream = stream_of(content_folder, ours.files)
        for index, digest in enumerate(ours.pieces):
            start = index * ours.piece_length
            assert hashlib.sha1(stream[start : start + ours.piece_size(index)]).digest() == digest

    def test_we_load_libtorrents_hybrid_torrents_marking_pad_files(self, content_folder: Path) -> None:
        data = libtorrent_make(content_folder, MIN_PIECE_LENGTH, 0)
        ours = parse_metainfo(data)
        theirs = lt.torrent_info(data)
        assert ours.info_hash == theirs.info_hashes().v1.to_bytes()
        assert any(entry.padding for entry in ours.files)
        real = [entry for entry in ours.files if not entry.padding]
        assert len(real) == 5
        assert ours.total_length == theirs.total_size()
        ends = [entry.offset + entry.length for entry in ours.files]
        assert ends[-1] == ours.total_length


def bencoded(top: dict[str, Any]) -> bytes:
    return bytes(bencodepy.encode(top))


def torrent_with(info_changes: dict[str, Any], top_changes: dict[str, Any] | None = None) -> bytes:
    """A small valid single-file torrent, then with some info fields replaced (None deletes)."""
    info: dict[str, Any] = {"name": "a.bin", "piece length": 16384, "pieces": b"x" * 40, "length": 20000}
    for key, value in info_changes.items():
        if value is None:
            info.pop(key, None)
        else:
            info[key] = value
    top: dict[str, Any] = {"announce": ANNOUNCE, "info": info}
    top.update(top_changes or {})
    return bencoded(top)


class TestMalformedTorrents:
    def test_the_baseline_torrent_is_valid(self) -> None:
        assert parse_metainfo(torrent_with({})).total_length == 20000

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "not a torrent"),
            (b"hello", "not a torrent"),
            (b"li1ee", "not a torrent"),
            (bencoded({"announce": ANNOUNCE}), "no 'info'"),
            (bencoded({"info": [1, 2]}), "must be a dictionary"),
            (torrent_with({}) + b"x", "trailing bytes"),
            (torrent_with({}).replace(b"i20000e", b"i+2000e"), "not a torrent"),
            (torrent_with({}).replace(b"i20000e", b"i02000e"), "leading zero"),
            (torrent_with({}).replace(b"i16384e", b"i-0e"), "not a torrent"),
            (torrent_with({}).replace(b"5:a.bin", b"9:a.bin"), "not a torrent"),
            (b"d4:infod" + b"l" * 100 + b"e" * 100 + b"ee", "not a torrent"),
            (torrent_with({}, {"announce": 5}), "announce must be a string"),
            (torrent_with({"name": None}), "name must be a string"),
            (torrent_with({"name": 7}), "name must be a string"),
            (torrent_with({"name": ""}), "not a file name"),
            (torrent_with({"name": ".."}), "not a file name"),
            (torrent_with({"name": "a/b"}), "separator"),
            (torrent_with({"name": b"\xff\xfe"}), "UTF-8"),
            (torrent_with({"piece length": 0}), "at least 1"),
            (torrent_with({"piece length": -16384}), "at least 1"),
            (torrent_with({"piece length": "16384"}), "must be an integer"),
            (torrent_with({"piece length": 2**40}), "larger than"),
            (torrent_with({"pieces": b"x" * 41}), "multiple of 20"),
            (torrent_with({"pieces": b""}), "multiple of 20"),
            (torrent_with({"pieces": [b"x" * 20]}), "string of SHA-1"),
            (torrent_with({"pieces": b"x" * 60}), "3 piece hashes"),
            (torrent_with({"private": 2}), "'private' must be 0 or 1"),
            (torrent_with({"length": 0}), "at least 1"),
            (torrent_with({"length": -5}), "at least 1"),
            (torrent_with({"length": None}), "exactly one of"),
            (torrent_with({"files": [{"length": 1, "path": ["x"]}]}), "exactly one of"),
        ],
    )
    def test_each_malformed_field_gets_a_clear_error(self, data: bytes, message: str) -> None:
        with pytest.raises(MetainfoError, match=message):
            parse_metainfo(data)

    @pytest.mark.parametrize(
        ("files", "message"),
        [
            ([], "non-empty list"),
            ("nope", "non-empty list"),
            ([5], "must be a dictionary"),
            ([{"length": 20000, "path": []}], "non-empty list of names"),
            ([{"length": 20000, "path": "a"}], "non-empty list of names"),
            ([{"length": 20000, "path": ["..", "etc", "passwd"]}], "not a file name"),
            ([{"length": 20000, "path": ["/etc/passwd"]}], "separator"),
            ([{"length": 20000, "path": ["C:\\Windows"]}], "separator"),
            ([{"length": 20000, "path": ["", "x"]}], "not a file name"),
            ([{"length": 20000, "path": ["a\0b"]}], "NUL"),
            ([{"length": -1, "path": ["a"]}, {"length": 20001, "path": ["b"]}], "at least 0"),
            ([{"length": "5", "path": ["a"]}], "must be an integer"),
            ([{"path": ["a"]}], "must be an integer"),
            ([{"length": 0, "path": ["a"]}], "no data"),
            ([{"length": 10000, "path": ["a"]}, {"length": 10000, "path": ["a"]}], "repeats"),
            (
                [{"length": 10000, "path": ["a"]}, {"length": 10000, "path": ["a", "b"]}],
                "both a file and a folder",
            ),
            ([{"length": 20000, "path": ["x"] * 65}], "deeper than"),
        ],
    )
    def test_each_malformed_file_list_gets_a_clear_error(self, files: Any, message: str) -> None:
        with pytest.raises(MetainfoError, match=message):
            parse_metainfo(torrent_with({"length": None, "files": files}))

    @settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=300))
    def test_random_bytes_raise_only_metainfo_errors(self, data: bytes) -> None:
        with contextlib.suppress(MetainfoError):
            parse_metainfo(data)

    @settings(max_examples=3000, deadline=None)
    @given(st.data())
    def test_mutated_valid_torrents_parse_or_raise_metainfo_errors(self, data: st.DataObject) -> None:
        original = bytearray(torrent_with({}))
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(original) - 1))
            original[position] = data.draw(st.integers(0, 255))
        with contextlib.suppress(MetainfoError):
            parse_metainfo(bytes(original))

    def test_metainfo_error_is_a_tracker_error(self) -> None:
        assert issubclass(MetainfoError, TrackerError)


class TestInfohashAndAnnounce:
    def test_infohash_hashes_the_info_bytes_as_written_even_with_unsorted_keys(self) -> None:
        info = b"d6:lengthi20000e4:name5:a.bin6:pieces40:" + b"x" * 40 + b"12:piece lengthi16384ee"
        unsorted = (
            b"d4:info"
            + info.replace(b"d6:lengthi20000e4:name5:a.bin", b"d4:name5:a.bin6:lengthi20000e")
            + b"e"
        )
        metainfo = parse_metainfo(unsorted)
        raw_info = unsorted[len(b"d4:info") : -1]
        assert metainfo.info_hash == hashlib.sha1(raw_info).digest()
        assert metainfo.info_hash != hashlib.sha1(info).digest()
        assert lt.torrent_info(unsorted).info_hashes().v1.to_bytes() == metainfo.info_hash

    def test_with_announce_replaces_the_url_and_keeps_the_infohash(self, tmp_path: Path) -> None:
        source = write_random(tmp_path / "a.bin", 50_000, 3)
        original = create_torrent(source, "http://tracker.example/announce/" + "a" * 32)
        other = "http://tracker.example/announce/" + "b" * 32
        decoded = bencodepy.decode(original)
        decoded[b"announce-list"] = [[b"http://tracker.example/announce/" + b"a" * 32]]
        with_list = bytes(bencodepy.encode(decoded))
        rewritten = parse_metainfo(with_announce(with_list, other))
        assert rewritten.announce == other
        assert rewritten.info_hash == parse_metainfo(original).info_hash
        assert b"announce-list" not in bencodepy.decode(rewritten.raw)

    def test_with_announce_keeps_unsorted_info_bytes(self) -> None:
        info = b"d4:name5:a.bin6:lengthi20000e6:pieces40:" + b"x" * 40 + b"12:piece lengthi16384ee"
        data = b"d4:info" + info + b"e"
        rewritten = with_announce(data, ANNOUNCE)
        assert info in rewritten
        assert parse_metainfo(rewritten).info_hash == hashlib.sha1(info).digest()

    def test_with_announce_refuses_bad_urls_and_bad_torrents(self) -> None:
        with pytest.raises(MetainfoError, match="announce URL"):
            with_announce(torrent_with({}), "javascript:alert(1)")
        with pytest.raises(MetainfoError):
            with_announce(b"garbage", ANNOUNCE)

    def test_piece_size_rejects_out_of_range_indexes(self) -> None:
        metainfo = parse_metainfo(torrent_with({}))
        assert metainfo.piece_size(1) == 20000 - 16384
        with pytest.raises(IndexError):
            metainfo.piece_size(2)
        with pytest.raises(IndexError):
            metainfo.piece_size(-1)
