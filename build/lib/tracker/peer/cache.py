"""Pieces kept in memory for serving: one disk read feeds every block request of a piece."""

from __future__ import annotations

from collections import OrderedDict

PIECE_CACHE_BYTES = 16 * 1024 * 1024  # per torrent; a few pieces serve every unchoked peer


class PieceCache:
    """A least-recently-used set of whole pieces, bounded in bytes."""

    def __init__(self, limit: int = PIECE_CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._pieces: OrderedDict[int, bytes | bytearray] = OrderedDict()

    def get(self, index: int) -> bytes | bytearray | None:
        """The piece's bytes, or None when it is not cached."""
        data = self._pieces.get(index)
        if data is not None:
            self._pieces.move_to_end(index)
        return data

    def put(self, index: int, data: bytes | bytearray) -> None:
        """Keep a piece, evicting the least recently used ones beyond the limit."""
        old = self._pieces.pop(index, None)
        if old is not None:
            self.size -= len(old)
        self._pieces[index] = data
        self.size += len(data)
        while self.size > self.limit and len(self._pieces) > 1:
            _, evicted = self._pieces.popitem(last=False)
            self.size -= len(evicted)

    def clear(self) -> None:
        """Drop everything."""
        self._pieces.clear()
        self.size = 0
