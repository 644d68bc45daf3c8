"""A torrent's data on disk: pieces read and written straight to their final files.

Pieces map onto one or more files through the torrent's byte stream; reads and writes use
`os.preadv`/`os.pwritev` on descriptors kept open, so no file is ever held in memory, only the
piece at hand. Resuming means hash-checking what is already on disk. Every call here blocks: the
session runs them on its disk thread, never on the event loop.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracker.metainfo import FileEntry, Metainfo
from tracker.peer.errors import StorageError

CheckProgress = Callable[[int, int], None]


@dataclass(slots=True)
class _File:
    entry: FileEntry
    disk_path: Path
    number: int
    fd: int = -1


def _zero_fill(view: memoryview) -> None:
    view[:] = bytes(len(view))


class Storage:
    """The files of one torrent under `folder`, opened for reading (a seed) or also writing."""

    def __init__(self, meta: Metainfo, folder: str | os.PathLike[str], *, writable: bool = True) -> None:
        self.meta = meta
        self.folder = Path(folder)
        self.writable = writable
        sized = [entry for entry in meta.files if entry.length]
        self._files = [
            _File(entry, self.folder.joinpath(*entry.path), number) for number, entry in enumerate(sized)
        ]
        self._starts = [item.entry.offset for item in self._files]
        self._empty = [self.folder.joinpath(*entry.path) for entry in meta.files if not entry.length]
        self._opened = False
        # File sizes found before `open` extended them: what lies past them is a hole, not data.
        self._found_sizes: dict[int, int] = {}

    def open(self) -> None:
        """Open (and, when writable, create at full length) every file of the torrent."""
        if self._opened:
            return
        try:
            for item in self._files:
                if item.entry.padding:
                    continue
                if self.writable:
                    item.disk_path.parent.mkdir(parents=True, exist_ok=True)
                    item.fd = os.open(item.disk_path, os.O_RDWR | os.O_CREAT, 0o644)
                    self._found_sizes[item.number] = os.fstat(item.fd).st_size
                    if self._found_sizes[item.number] != item.entry.length:
                        os.ftruncate(item.fd, item.entry.length)  # sparse: no bytes written yet
                else:
                    item.fd = os.open(item.disk_path, os.O_RDONLY)
            if self.writable:
                for path in self._empty:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
        except OSError as exc:
            self.close()
            raise StorageError(f"cannot open the torrent's files in {self.folder}: {exc}") from exc
        self._opened = True

    def close(self) -> None:
        """Close every file."""
        for item in self._files:
            if item.fd >= 0:
                os.close(item.fd)
                item.fd = -1
        self._opened = False

    def _spans(self, offset: int, length: int) -> list[tuple[_File, int, int, int]]:
        """(file, offset in file, offset in buffer, length) covering `length` bytes at `offset`."""
        spans = []
        index = bisect.bisect_right(self._starts, offset) - 1
        done = 0
        while done < length:
            item = self._files[index]
            in_file = offset + done - item.entry.offset
            count = min(item.entry.length - in_file, length - done)
            spans.append((item, in_file, done, count))
            done += count
            index += 1
        return spans

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill `view` with the torrent's bytes at stream `offset`; raises StorageError when short."""
        for item, in_file, start, count in self._spans(offset, len(view)):
            part = view[start : start + count]
            if item.entry.padding:
                _zero_fill(part)
                continue
            got = 0
            try:
                while got < count:
                    n = os.preadv(item.fd, [part[got:]], in_file + got)
                    if n == 0:
                        raise StorageError(f"{item.disk_path} is shorter than the torrent says")
                    got += n
            except OSError as exc:
                raise StorageError(f"cannot read {item.disk_path}: {exc}") from exc

    def read_piece(self, index: int) -> bytearray:
        """The whole of piece `index` as stored on disk (a fresh buffer nobody else holds)."""
        buffer = bytearray(self.meta.piece_size(index))
        self.read_into(index * self.meta.piece_length, memoryview(buffer))
        return buffer

    def write_piece(self, index: int, data: bytes | bytearray | memoryview) -> None:
        """Write a whole piece to its files (it must already have been verified)."""
        view = memoryview(data)
        for item, in_file, start, count in self._spans(index * self.meta.piece_length, len(view)):
            if item.entry.padding:
                continue
            part = view[start : start + count]
            done = 0
            try:
                while done < count:
                    done += os.pwritev(item.fd, [part[done:]], in_file + done)
            except OSError as exc:
                raise StorageError(f"cannot write {item.disk_path}: {exc}") from exc

    def verify(self, index: int, data: bytes | bytearray | memoryview) -> bool:
        """Whether `data` hashes to piece `index`'s SHA-1."""
        return hashlib.sha1(data).digest() == self.meta.pieces[index]  # noqa: S324 (BEP 3 fixes SHA-1)

    def verify_and_write(self, index: int, data: bytes | bytearray | memoryview) -> bool:
        """Check a downloaded piece and, when it is good, write it; returns whether it was good."""
        if not self.verify(index, data):
            return False
        self.write_piece(index, data)
        return True

    def sync(self) -> None:
        """Flush written data to the disk."""
        for item in self._files:
            if item.fd >= 0 and self.writable:
                os.fsync(item.fd)

    def check(self, progress: CheckProgress | None = None) -> bytearray:
        """Hash-check what is on disk; a 0/1 flag per piece (1 = present and correct)."""
        meta = self.meta
        have = bytearray(meta.piece_count)
        sizes = self._disk_sizes()
        buffer = bytearray(meta.piece_length)
        for index in range(meta.piece_count):
            size = meta.piece_size(index)
            offset = index * meta.piece_length
            if self._on_disk(offset, size, sizes):
                view = memoryview(buffer)[:size]
                try:
                    self.read_into(offset, view)
                except StorageError:
                    pass
                else:
                    have[index] = self.verify(index, view)
            if progress is not None:
                progress(index + 1, meta.piece_count)
        return have

    def _disk_sizes(self) -> list[int]:
        sizes = []
        for item in self._files:
            if item.entry.padding:
                sizes.append(item.entry.length)
                continue
            if item.number in self._found_sizes:
                sizes.append(self._found_sizes[item.number])
                continue
            try:
                sizes.append(os.fstat(item.fd).st_size if item.fd >= 0 else item.disk_path.stat().st_size)
            except OSError:
                sizes.append(0)
        return sizes

    def _on_disk(self, offset: int, length: int, sizes: list[int]) -> bool:
        """Whether every file under a piece is long enough to hold it (skips reading holes)."""
        for item, in_file, _start, count in self._spans(offset, length):
            if sizes[item.number] < in_file + count:
                return False
        return True
