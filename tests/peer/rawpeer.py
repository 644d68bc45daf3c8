"""A hand-driven peer for adversarial tests: it speaks the wire byte by byte, as a test says."""

from __future__ import annotations

import asyncio
import struct

import bencodepy

from tracker.metainfo import Metainfo
from tracker.peer import wire


class RawPeer:
    """One TCP connection whose every message the test writes and reads itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        """Open a connection to a peer listening on loopback."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        return cls(reader, writer)

    async def handshake(
        self, info_hash: bytes, peer_id: bytes = b"-XX0000-adversary000", *, fast: bool = False
    ) -> wire.Handshake:
        """Exchange handshakes (we announce the extension protocol, and the Fast extension if
        `fast`)."""
        self.send(wire.Handshake(info_hash, peer_id, wire.our_reserved(fast=fast)).encode())
        return wire.parse_handshake(await self.reader.readexactly(wire.HANDSHAKE_LENGTH))

    async def accept_as_billing_seed(self, meta: Metainfo, peer_id: bytes, wallet: bytes) -> None:
        """Answer a leecher that connected to us as a seed of every piece that bills `wallet`
        through the receipt extension (id 3 here), and unchoke it."""
        await self.reader.readexactly(wire.HANDSHAKE_LENGTH)
        self.send(wire.Handshake(meta.info_hash, peer_id, wire.our_reserved(fast=False)).encode())
        self.send_extended(0, {"m": {"sm_receipt": 3}, "sm_wallet": wallet})
        self.send(wire.bitfield(wire.pack_bits(bytearray([1]) * meta.piece_count)))
        self.send(wire.UNCHOKE_MSG)

    def send(self, data: bytes) -> None:
        """Queue raw bytes."""
        self.writer.write(data)

    def send_extended(self, ext_id: int, message: dict) -> None:
        """A bencoded BEP 10 message."""
        self.send(wire.extended(ext_id, bencodepy.encode(message)))

    async def read(self, timeout: float = 10.0) -> tuple[int, bytes] | None:
        """The next message as (id, payload); None at end of stream. Keep-alives are skipped."""
        while True:
            try:
                header = await asyncio.wait_for(self.reader.readexactly(4), timeout)
                (length,) = struct.unpack(">I", header)
                if length == 0:
                    continue
                body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return None
            return body[0], body[1:]

    async def read_until(self, msg_id: int, timeout: float = 10.0) -> bytes | None:
        """Skip messages until one with `msg_id`; its payload, or None when the stream ends."""
        while True:
            message = await self.read(timeout)
            if message is None:
                return None
            if message[0] == msg_id:
                return message[1]

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """Whether the other side closes the connection (reading and discarding until it does)."""
        try:
            while await asyncio.wait_for(self.reader.read(1 << 16), timeout):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Close our side."""
        self.writer.close()
