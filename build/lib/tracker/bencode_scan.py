"""Strict structural scan of bencoded bytes: finds where values start and end without decoding.

A torrent's infohash is the SHA-1 of the info dictionary exactly as it appears in the file, so
the raw span must be found rather than re-encoded (a file with unsorted keys would otherwise get
another hash than every client computes). bencode.py's decoder is lenient about integers (it uses
`int()`, which takes `+1`, ` 1` and `1_0`); this scan rejects those first.
"""

from __future__ import annotations

from tracker.errors import TrackerError

MAX_NESTING = 64  # no real torrent nests deeper than a handful of levels
MAX_DIGITS = 32  # longer numbers are not sizes or counts of anything real


class BencodeError(TrackerError):
    """Bytes that are not strict bencode."""


def _digits_end(data: bytes, start: int, stop_byte: int) -> int:
    """Index of `stop_byte` after a run of ASCII digits starting at `start` (at least one)."""
    end = start
    size = len(data)
    while end < size and 0x30 <= data[end] <= 0x39:
        end += 1
    if end == start or end >= size or data[end] != stop_byte:
        raise BencodeError(f"bad number at byte {start}")
    if end - start > MAX_DIGITS:
        raise BencodeError(f"number too long at byte {start}")
    if data[start] == 0x30 and end - start > 1:
        raise BencodeError(f"number with a leading zero at byte {start}")
    return end


def _scalar_end(data: bytes, pos: int) -> int:
    """The index just past the integer or string at `pos`."""
    byte = data[pos]
    if byte == 0x69:  # 'i'
        digits = pos + 1
        if digits < len(data) and data[digits] == 0x2D:  # '-'
            digits += 1
            if digits < len(data) and data[digits] == 0x30:
                raise BencodeError(f"negative zero or leading zero at byte {pos}")
        return _digits_end(data, digits, 0x65) + 1
    if 0x30 <= byte <= 0x39:
        colon = _digits_end(data, pos, 0x3A)
        end = colon + 1 + int(data[pos:colon])
        if end > len(data):
            raise BencodeError("a string runs past the end of the data")
        return end
    raise BencodeError(f"unexpected byte {byte:#04x} at byte {pos}")


def value_end(data: bytes, start: int) -> int:
    """The index just past the bencoded value that starts at `start`; raises BencodeError."""
    depth = 0
    pos = start
    size = len(data)
    while True:
        if pos >= size:
            raise BencodeError("bencoded data ends too early")
        byte = data[pos]
        if byte in (0x64, 0x6C):  # 'd', 'l'
            depth += 1
            if depth > MAX_NESTING:
                raise BencodeError("bencoded data nests too deeply")
            pos += 1
            continue
        if byte == 0x65:  # 'e' closes a container
            if depth == 0:
                raise BencodeError(f"unexpected end marker at byte {pos}")
            depth -= 1
            pos += 1
        else:
            pos = _scalar_end(data, pos)
        if depth == 0:
            return pos


def dict_value_span(data: bytes, key: bytes) -> tuple[int, int] | None:
    """The raw span of `key`'s value in the top-level dictionary of `data`, checking the whole
    document is one strict bencoded dictionary; None when the key is absent."""
    if not data or data[0] != 0x64:
        raise BencodeError("a torrent file is a bencoded dictionary")
    if value_end(data, 0) != len(data):
        raise BencodeError("trailing bytes after the bencoded dictionary")
    pos = 1
    found: tuple[int, int] | None = None
    while data[pos] != 0x65:
        key_end = value_end(data, pos)
        if not 0x30 <= data[pos] <= 0x39:
            raise BencodeError("dictionary keys must be strings")
        name = data[data.index(b":", pos) + 1 : key_end]
        end = value_end(data, key_end)
        if name == key:
            if found is not None:
                raise BencodeError(f"duplicate key {key.decode(errors='replace')!r}")
            found = (key_end, end)
        pos = end
    return found
