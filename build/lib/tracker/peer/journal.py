"""The seeder's crash-safe receipt journal.

A receipt is money, so a seeder appends it here and fsyncs before it serves another byte on its
strength; after a crash the journal still holds every receipt whose credit was used. The file is a
sequence of records `<length:u32><crc32:u32><bencoded dict>`: `{"r": receipt message}` for a
receipt, `{"a": [[purchase, seeder, bytes, status], ...]}` once the tracker answered for it. A torn
record at the end (a crash mid-write) is cut off on open. Only the highest receipt per
(purchase, seeder) matters, so the file is rewritten without the superseded ones when it grows.

Methods block (file I/O and fsync); `AsyncJournal` runs them on one thread with group commit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bencodepy

from tracker.peer.errors import PeerError
from tracker.receipts import ReceiptError, SignedReceipt, from_message, to_message

RECORD_HEADER = struct.Struct(">II")
MAX_RECORD_LENGTH = 1024 * 1024  # an ack batch of 1000 is ~60 KiB; anything longer is corruption
COMPACT_AFTER_BYTES = 8 * 1024 * 1024  # rewrite once the file is this big and mostly superseded
COMPACT_RATIO = 4  # ... and holds this many times more records than live receipts

Key = tuple[int, bytes]  # (purchase id, seeder address)


class JournalError(PeerError):
    """The journal cannot be opened, read or written."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """The tracker's answer for a receipt: up to `byte_count`, accepted/clipped or rejected."""

    purchase_id: int
    seeder: bytes
    byte_count: int
    status: str


def _record(payload: dict[str, Any]) -> bytes:
    body = bytes(bencodepy.encode(payload))
    return RECORD_HEADER.pack(len(body), zlib.crc32(body)) + body


class ReceiptJournal:
    """An append-only, fsynced file of receipts; one process at a time (flock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._highest: dict[Key, SignedReceipt] = {}
        self._settled: dict[Key, int] = {}
        self._records = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open the receipt journal {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise JournalError(f"{self.path} is in use by another seedmarket process") from None
        try:
            self._replay()
        except BaseException:
            os.close(self._fd)
            raise

    # ----- reading -----

    def _replay(self) -> None:
        with open(self.path, "rb") as handle:
            data = handle.read()
        pos = 0
        while pos + RECORD_HEADER.size <= len(data):
            length, crc = RECORD_HEADER.unpack_from(data, pos)
            end = pos + RECORD_HEADER.size + length
            body = data[pos + RECORD_HEADER.size : end]
            if length > MAX_RECORD_LENGTH or zlib.crc32(body) != crc:
                if end >= len(data) and length <= MAX_RECORD_LENGTH:
                    break  # the last record, torn by a crash mid-write
                raise JournalError(f"{self.path} is corrupt at byte {pos}; move it aside to start afresh")
            try:
                self._apply(bencodepy.decode(body))
            except (bencodepy.BencodeDecodeError, ReceiptError, ValueError, TypeError, KeyError) as exc:
                raise JournalError(f"{self.path} holds an unreadable record at byte {pos}: {exc}") from None
            pos = end
            self._records += 1
        if pos != len(data):
            # A record torn by a crash: everything before it was fsynced and stays.
            os.ftruncate(self._fd, pos)
            os.fsync(self._fd)

    def _apply(self, record: dict[bytes, Any]) -> None:
        if b"r" in record:
            self._keep(from_message(record[b"r"]))
        for purchase, seeder, count, _status in record.get(b"a", []):
            key = (int(purchase), bytes(seeder))
            self._settled[key] = max(self._settled.get(key, 0), int(count))

    def _keep(self, signed: SignedReceipt) -> bool:
        key = (signed.receipt.purchase_id, signed.receipt.seeder)
        old = self._highest.get(key)
        if old is not None and old.receipt.byte_count >= signed.receipt.byte_count:
            return False
        self._highest[key] = signed
        return True

    def highest(self, purchase_id: int, seeder: bytes) -> SignedReceipt | None:
        """The highest receipt journaled for (purchase, seeder)."""
        return self._highest.get((purchase_id, seeder))

    def highest_bytes(self, purchase_id: int, seeder: bytes) -> int:
        """Bytes of the highest receipt journaled for (purchase, seeder), 0 when none."""
        signed = self._highest.get((purchase_id, seeder))
        return 0 if signed is None else signed.receipt.byte_count

    def pending(self, limit: int) -> list[SignedReceipt]:
        """Up to `limit` highest receipts the tracker has not answered for yet."""
        out = []
        for key, signed in self._highest.items():
            if signed.receipt.byte_count > self._settled.get(key, 0):
                out.append(signed)
                if len(out) >= limit:
                    break
        return out

    @property
    def records(self) -> int:
        """Records in the file: one per receipt stored, one per batch of tracker answers."""
        return self._records

    def settled_bytes(self, purchase_id: int, seeder: bytes) -> int:
        """The highest figure the tracker answered for (purchase, seeder)."""
        return self._settled.get((purchase_id, seeder), 0)

    # ----- writing -----

    def _write(self, data: bytes) -> None:
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:
            raise JournalError(f"cannot write the receipt journal {self.path}: {exc}") from exc

    def append(self, receipts: list[SignedReceipt]) -> list[bool]:
        """Durably store those receipts that are higher than what is kept; one fsync for all."""
        stored = [self._keep(signed) for signed in receipts]
        data = b"".join(
            _record({"r": to_message(signed)}) for signed, kept in zip(receipts, stored, strict=True) if kept
        )
        if data:
            self._write(data)
            self._records += sum(stored)
            self._maybe_compact()
        return stored

    def settle(self, settlements: list[Settlement]) -> None:
        """Record the tracker's answers, so those receipts are not submitted again."""
        if not settlements:
            return
        rows = [[s.purchase_id, s.seeder, s.byte_count, s.status] for s in settlements]
        self._write(_record({"a": rows}))
        self._records += 1
        for s in settlements:
            key = (s.purchase_id, s.seeder)
            self._settled[key] = max(self._settled.get(key, 0), s.byte_count)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        live = max(1, len(self._highest))
        if self._records < COMPACT_RATIO * live or os.fstat(self._fd).st_size < COMPACT_AFTER_BYTES:
            return
        self.compact()

    def compact(self) -> None:
        """Rewrite the file with only the highest receipt and the tracker's answer per key."""
        temporary = self.path.with_name(self.path.name + ".compact")
        parts = [_record({"r": to_message(signed)}) for signed in self._highest.values()]
        settled = [
            [purchase, seeder, count, "settled"] for (purchase, seeder), count in self._settled.items()
        ]
        if settled:
            parts.append(_record({"a": settled}))
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = b"".join(parts)
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise
            os.replace(temporary, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise JournalError(f"cannot compact the receipt journal {self.path}: {exc}") from exc
        os.close(self._fd)
        self._fd = fd
        os.lseek(self._fd, 0, os.SEEK_END)
        self._records = len(parts)

    def close(self) -> None:
        """Release the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class AsyncJournal:
    """The journal for the event loop: appends are queued and committed together (one fsync)."""

    def __init__(self, journal: ReceiptJournal) -> None:
        self.journal = journal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._queue: list[tuple[SignedReceipt, asyncio.Future[bool]]] = []
        self._flushing = False
        self.changed = asyncio.Event()  # set whenever something new awaits submission

    async def append(self, signed: SignedReceipt) -> bool:
        """Durably store a receipt; returns whether it was higher than the kept one."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((signed, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    stored = await loop.run_in_executor(
                        self._executor, self.journal.append, [s for s, _ in batch]
                    )
                except JournalError as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), kept in zip(batch, stored, strict=True):
                    if not future.done():
                        future.set_result(kept)
                if any(stored):
                    self.changed.set()
        finally:
            self._flushing = False

    async def run(self, function: Any, *args: Any) -> Any:
        """Run another journal method on the journal's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Stop the thread and release the file."""
        self._executor.shutdown(wait=True)
        self.journal.close()
