"""A product's cover image: a `cover`, `folder` or `front` image (JPEG, PNG, WebP) in its own
content, the names music and e-book releases use. The store serves it from the store's seed's
copy, only once every piece the image spans is on disk and matches the torrent's hashes: the
seller's torrent vouches for the bytes, and nothing the seller did not list is ever shown."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from tracker.metainfo import FileEntry, Metainfo

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
COVER_NAMES = frozenset({"cover", "folder", "front"})
MAX_COVER_BYTES = 5 * 2**20


def store_seed_copy(data_dir: Path, info_hash: bytes) -> Path:
    """Where the store's seed keeps a product's content: `backend.store_seed.StoreSeed`'s default
    folder (`<data dir>/store-seed`), one folder per infohash."""
    return data_dir / "store-seed" / info_hash.hex()


def cover_file(meta: Metainfo) -> FileEntry | None:
    """The product's cover among its files (the first by the torrent's order), or None."""
    for entry in meta.files:
        name = PurePosixPath(entry.path[-1])
        if (
            not entry.padding
            and name.suffix.lower() in IMAGE_TYPES
            and name.stem.lower() in COVER_NAMES
            and 0 < entry.length <= MAX_COVER_BYTES
        ):
            return entry
    return None


def read_cover(meta: Metainfo, folder: Path) -> tuple[bytes, str] | None:
    """The cover's bytes and media type from the content under `folder`, when every piece it
    spans is there and verified; else None."""
    cover = cover_file(meta)
    if cover is None:
        return None
    first = cover.offset // meta.piece_length
    last = (cover.offset + cover.length - 1) // meta.piece_length
    start = first * meta.piece_length
    span = _read(meta, folder, start, sum(meta.piece_size(i) for i in range(first, last + 1)))
    if span is None:
        return None
    for index in range(first, last + 1):
        at = (index - first) * meta.piece_length
        piece = span[at : at + meta.piece_size(index)]
        if hashlib.sha1(piece, usedforsecurity=False).digest() != meta.pieces[index]:
            return None
    data = span[cover.offset - start : cover.offset - start + cover.length]
    return data, IMAGE_TYPES[PurePosixPath(cover.path[-1]).suffix.lower()]


def _read(meta: Metainfo, folder: Path, start: int, length: int) -> bytes | None:
    """Bytes [start, start + length) of the torrent's byte stream, from its files on disk."""
    out = bytearray()
    end = start + length
    for entry in meta.files:
        lo, hi = max(start, entry.offset), min(end, entry.offset + entry.length)
        if lo >= hi:
            continue
        if entry.padding:
            out += bytes(hi - lo)
            continue
        try:
            with folder.joinpath(*entry.path).open("rb") as handle:
                handle.seek(lo - entry.offset)
                chunk = handle.read(hi - lo)
        except OSError:
            return None
        if len(chunk) != hi - lo:
            return None
        out += chunk
    return bytes(out) if len(out) == length else None
