"""BitTorrent v1 metainfo (`.torrent` files, BEP 3): parse and validate, create, re-address.

Paths in a torrent come from strangers, so every component is checked before anyone joins it to
a folder: no empty parts, no `.` or `..`, no separators, no NUL. The infohash is the SHA-1 of the
info dictionary's bytes exactly as they appear in the file (see `tracker.bencode_scan`).
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bencodepy

from tracker.bencode_scan import BencodeError, dict_value_span
from tracker.errors import TrackerError

MAX_METAINFO_BYTES = 32 * 1024 * 1024  # a .torrent for a 100 GB file set is well under 4 MiB
PIECE_HASH_LENGTH = 20
MIN_PIECE_LENGTH = 16 * 1024  # one BitTorrent block; smaller pieces only bloat the metainfo
MAX_PIECE_LENGTH = 64 * 1024 * 1024  # more than any client accepts
# Receipts are earned per verified piece and a seeder extends a few MiB of credit, so automatic
# pieces stay small enough to fit inside that window.
MAX_AUTO_PIECE_LENGTH = 4 * 1024 * 1024
TARGET_PIECE_COUNT = 2048
MAX_PATH_DEPTH = 64
READ_CHUNK = 1024 * 1024
CREATED_BY = "seedmarket 0.1"
ANNOUNCE_SCHEMES = ("http://", "https://", "udp://")
_FORBIDDEN_IN_COMPONENT = ("/", "\\", "\0")

ProgressCallback = Callable[[int, int], None]


def _sha1() -> Any:
    # SHA-1 is what BitTorrent v1 names pieces and torrents by, not a security choice of ours.
    return hashlib.sha1(usedforsecurity=False)


class MetainfoError(TrackerError):
    """A .torrent that is malformed or unsafe, or a folder that cannot become one."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent: `path` relative to the download folder, starting with the torrent's
    name; `offset` is where the file starts in the torrent's byte stream. `padding` marks the
    alignment files of hybrid v1/v2 torrents (all zeros, never shown to users)."""

    path: tuple[str, ...]
    length: int
    offset: int
    padding: bool = False


@dataclass(frozen=True)
class Metainfo:
    """A validated v1 torrent."""

    info_hash: bytes
    name: str
    piece_length: int
    pieces: tuple[bytes, ...] = field(repr=False)
    files: tuple[FileEntry, ...]
    total_length: int
    private: bool
    announce: str | None
    info: dict[bytes, Any] = field(repr=False, compare=False)  # as decoded: keys and strings are bytes
    raw: bytes = field(repr=False, compare=False)

    @property
    def piece_count(self) -> int:
        """How many pieces the torrent has."""
        return len(self.pieces)

    def piece_size(self, index: int) -> int:
        """The length of piece `index` (only the last one may be shorter)."""
        if not 0 <= index < len(self.pieces):
            raise IndexError(f"piece {index} out of range 0..{len(self.pieces) - 1}")
        if index < len(self.pieces) - 1:
            return self.piece_length
        return self.total_length - self.piece_length * index

    def magnet(self) -> str:
        """A magnet link (BEP 9) naming the infohash, display name and announce URL."""
        link = f"magnet:?xt=urn:btih:{self.info_hash.hex()}&dn={quote(self.name, safe='')}"
        if self.announce:
            link += f"&tr={quote(self.announce, safe='')}"
        return link


# ----- parsing -----


def _text(value: Any, what: str) -> str:
    if not isinstance(value, bytes):
        raise MetainfoError(f"{what} must be a string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise MetainfoError(f"{what} is not valid UTF-8") from None


def _component(value: Any, what: str) -> str:
    part = _text(value, what)
    if part in ("", ".", ".."):
        raise MetainfoError(
            f"{what} {part!r} is not a file name (empty, '.' or '..' would escape the folder)"
        )
    if any(bad in part for bad in _FORBIDDEN_IN_COMPONENT):
        raise MetainfoError(f"{what} {part!r} contains a path separator or NUL")
    return part


def _int(value: Any, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MetainfoError(f"{what} must be an integer")
    if value < minimum:
        raise MetainfoError(f"{what} must be at least {minimum}, not {value}")
    return value


def _file_list(name: str, raw_files: Any) -> tuple[FileEntry, ...]:
    if not isinstance(raw_files, list) or not raw_files:
        raise MetainfoError("info 'files' must be a non-empty list")
    entries: list[FileEntry] = []
    seen: set[tuple[str, ...]] = set()
    offset = 0
    for number, raw in enumerate(raw_files):
        what = f"file #{number}"
        if not isinstance(raw, dict):
            raise MetainfoError(f"{what} must be a dictionary")
        length = _int(raw.get(b"length"), f"{what} length", 0)
        raw_path = raw.get(b"path")
        if not isinstance(raw_path, list) or not raw_path:
            raise MetainfoError(f"{what} path must be a non-empty list of names")
        if len(raw_path) > MAX_PATH_DEPTH:
            raise MetainfoError(f"{what} path is deeper than {MAX_PATH_DEPTH} folders")
        path = (name, *(_component(part, f"{what} path part") for part in raw_path))
        if path in seen:
            raise MetainfoError(f"{what} repeats the path {'/'.join(path)!r}")
        seen.add(path)
        attr = raw.get(b"attr", b"")
        padding = isinstance(attr, bytes) and b"p" in attr
        entries.append(FileEntry(path=path, length=length, offset=offset, padding=padding))
        offset += length
    # A file may not also be a folder of another file: "a" and "a/b" cannot both exist on disk.
    folders = {entry.path[:depth] for entry in entries for depth in range(1, len(entry.path))}
    clash = seen & folders
    if clash:
        raise MetainfoError(f"{'/'.join(min(clash))!r} is both a file and a folder")
    return tuple(entries)


def _decode(data: bytes) -> tuple[dict[bytes, Any], dict[bytes, Any], tuple[int, int]]:
    """The top-level dict, the info dict and the info dict's raw span."""
    if not isinstance(data, bytes):
        raise MetainfoError("metainfo must be bytes")
    if len(data) > MAX_METAINFO_BYTES:
        raise MetainfoError(f"metainfo larger than {MAX_METAINFO_BYTES} bytes")
    try:
        span = dict_value_span(data, b"info")
        top = bencodepy.decode(data)
    except (BencodeError, bencodepy.BencodeDecodeError) as error:
        raise MetainfoError(f"not a torrent file: {error}") from None
    if span is None:
        raise MetainfoError("the torrent has no 'info' dictionary")
    info = top[b"info"]
    if not isinstance(info, dict):
        raise MetainfoError("'info' must be a dictionary")
    return top, info, span


def _pieces(info: dict[bytes, Any]) -> tuple[int, bytes]:
    piece_length = _int(info.get(b"piece length"), "info 'piece length'", 1)
    if piece_length > MAX_PIECE_LENGTH:
        raise MetainfoError(f"info 'piece length' larger than {MAX_PIECE_LENGTH}")
    raw_pieces = info.get(b"pieces")
    if not isinstance(raw_pieces, bytes):
        raise MetainfoError("info 'pieces' must be a string of SHA-1 hashes (is this a v2-only torrent?)")
    if not raw_pieces or len(raw_pieces) % PIECE_HASH_LENGTH:
        raise MetainfoError(f"info 'pieces' length must be a positive multiple of {PIECE_HASH_LENGTH}")
    return piece_length, raw_pieces


def _files(name: str, info: dict[bytes, Any]) -> tuple[FileEntry, ...]:
    has_length, has_files = b"length" in info, b"files" in info
    if has_length == has_files:
        raise MetainfoError("info must have exactly one of 'length' (one file) and 'files' (a folder)")
    if has_length:
        length = _int(info[b"length"], "info length", 1)
        return (FileEntry(path=(name,), length=length, offset=0),)
    return _file_list(name, info[b"files"])


def parse_metainfo(data: bytes) -> Metainfo:
    """Parse and validate a .torrent; raises MetainfoError naming the first bad field."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    top, info, span = _decode(data)
    announce = _text(top[b"announce"], "announce") if b"announce" in top else None
    name = _component(info.get(b"name"), "info name")
    piece_length, raw_pieces = _pieces(info)
    private_flag = info.get(b"private", 0)
    if private_flag not in (0, 1) or isinstance(private_flag, bool):
        raise MetainfoError("info 'private' must be 0 or 1")
    files = _files(name, info)
    total_length = sum(entry.length for entry in files)
    if total_length <= 0:
        raise MetainfoError("the torrent holds no data (total length 0)")
    expected = math.ceil(total_length / piece_length)
    count = len(raw_pieces) // PIECE_HASH_LENGTH
    if count != expected:
        raise MetainfoError(f"{count} piece hashes for {total_length} bytes in pieces of {piece_length}")

    return Metainfo(
        info_hash=hashlib.sha1(data[span[0] : span[1]], usedforsecurity=False).digest(),
        name=name,
        piece_length=piece_length,
        pieces=tuple(raw_pieces[i : i + PIECE_HASH_LENGTH] for i in range(0, len(raw_pieces), 20)),
        files=files,
        total_length=total_length,
        private=private_flag == 1,
        announce=announce,
        info=info,
        raw=data,
    )


def with_announce(data: bytes, announce: str) -> bytes:
    """The same torrent with another announce URL; the info dictionary's bytes stay untouched.

    Any `announce-list` is dropped: clients prefer it to `announce` (BEP 12), and it would carry
    somebody else's passkey.
    """
    _check_announce(announce)
    metainfo = parse_metainfo(data)
    span = dict_value_span(metainfo.raw, b"info")
    assert span is not None  # parse_metainfo checked it
    top = bencodepy.decode(metainfo.raw)
    top.pop(b"announce-list", None)
    top[b"announce"] = announce.encode()
    top[b"info"] = bencodepy.Bencached(metainfo.raw[span[0] : span[1]])
    return bytes(bencodepy.encode(top))


# ----- creation -----


def _check_announce(announce: str) -> None:
    if not isinstance(announce, str) or not announce.startswith(ANNOUNCE_SCHEMES):
        raise MetainfoError(f"announce URL must start with one of {', '.join(ANNOUNCE_SCHEMES)}")


def auto_piece_length(total_length: int) -> int:
    """A power of two giving at most about TARGET_PIECE_COUNT pieces, within 16 KiB..4 MiB."""
    piece_length = MIN_PIECE_LENGTH
    while piece_length < MAX_AUTO_PIECE_LENGTH and piece_length * TARGET_PIECE_COUNT < total_length:
        piece_length *= 2
    return piece_length


def _collect(root: Path) -> list[tuple[Path, tuple[str, ...], int]]:
    """Regular files under `root` as (disk path, parts relative to root, size), sorted by parts."""
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        for entry in [*subfolders, *names]:
            disk = Path(folder, entry)
            if disk.is_symlink():
                raise MetainfoError(f"{disk} is a symbolic link; a torrent holds regular files only")
        for entry in names:
            disk = Path(folder, entry)
            info = disk.stat()
            if not stat.S_ISREG(info.st_mode):
                raise MetainfoError(f"{disk} is not a regular file")
            parts = disk.relative_to(root).parts
            for part in parts:
                _component(part.encode("utf-8", "surrogateescape"), f"file name in {disk}")
            found.append((disk, parts, info.st_size))
    found.sort(key=lambda item: item[1])
    return found


class _PieceHasher:
    """Cuts a byte stream into pieces and hashes each, holding at most one read chunk."""

    def __init__(self, piece_length: int) -> None:
        self.piece_length = piece_length
        self.hashes: list[bytes] = []
        self._current = _sha1()
        self._filled = 0

    def update(self, chunk: memoryview) -> None:
        while chunk:
            take = min(len(chunk), self.piece_length - self._filled)
            self._current.update(chunk[:take])
            self._filled += take
            chunk = chunk[take:]
            if self._filled == self.piece_length:
                self.hashes.append(self._current.digest())
                self._current, self._filled = _sha1(), 0

    def finish(self) -> bytes:
        if self._filled:
            self.hashes.append(self._current.digest())
        return b"".join(self.hashes)


def _sources(root: Path) -> list[tuple[Path, tuple[str, ...], int]]:
    """What a torrent of `root` holds, checked: at least one byte, no links, valid names."""
    if root.is_symlink() or not root.exists():
        raise MetainfoError(f"{root} does not exist or is a symbolic link")
    if root.is_dir():
        sources = _collect(root)
        if not sources:
            raise MetainfoError(f"{root} holds no files")
    elif root.is_file():
        sources = [(root, (), root.stat().st_size)]
    else:
        raise MetainfoError(f"{root} is neither a regular file nor a folder")
    if sum(size for _, _, size in sources) == 0:
        raise MetainfoError(f"{root} holds no data; a torrent needs at least one byte")
    return sources


def _hash_files(
    sources: list[tuple[Path, tuple[str, ...], int]], piece_length: int, progress: ProgressCallback | None
) -> bytes:
    """The concatenated piece hashes of the files' bytes, read in chunks."""
    total = sum(size for _, _, size in sources)
    hasher = _PieceHasher(piece_length)
    buffer = bytearray(READ_CHUNK)
    done = 0
    for disk, _, size in sources:
        read = 0
        with open(disk, "rb") as handle:
            # Read exactly the size listed; a file that grows or shrinks meanwhile is refused.
            while read < size:
                count = handle.readinto(memoryview(buffer)[: min(READ_CHUNK, size - read)])
                if not count:
                    break
                hasher.update(memoryview(buffer)[:count])
                read += count
                done += count
                if progress is not None:
                    progress(done, total)
            grew = bool(handle.read(1))
        if read != size or grew:
            raise MetainfoError(f"{disk} changed size while it was hashed (listed as {size} bytes)")
    return hasher.finish()


def create_torrent(
    path: str | os.PathLike[str],
    announce: str,
    *,
    piece_length: int | None = None,
    private: bool = True,
    comment: str | None = None,
    progress: ProgressCallback | None = None,
) -> bytes:
    """Hash a file or folder into a v1 .torrent (bytes), streaming; `progress(done, total)`."""
    _check_announce(announce)
    root = Path(path)
    sources = _sources(root)
    name = root.resolve().name
    _component(name.encode("utf-8", "surrogateescape"), "torrent name")
    total = sum(size for _, _, size in sources)
    if piece_length is None:
        piece_length = auto_piece_length(total)
    elif not MIN_PIECE_LENGTH <= piece_length <= MAX_PIECE_LENGTH or piece_length & (piece_length - 1):
        raise MetainfoError(
            f"piece length must be a power of two from {MIN_PIECE_LENGTH} to {MAX_PIECE_LENGTH}"
        )

    info: dict[str, Any] = {
        "name": name,
        "piece length": piece_length,
        "pieces": _hash_files(sources, piece_length, progress),
    }
    if root.is_dir():
        info["files"] = [{"length": size, "path": list(parts)} for _, parts, size in sources]
    else:
        info["length"] = total
    if private:
        info["private"] = 1
    top: dict[str, Any] = {
        "announce": announce,
        "created by": CREATED_BY,
        "creation date": int(time.time()),
        "info": info,
    }
    if comment is not None:
        top["comment"] = comment
    return bytes(bencodepy.encode(top))
