"""A tiny raw HTTP/1.1 client for the tracker's tests: exact bytes out, exact bytes in."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import bencodepy

RESPONSE_TIMEOUT = 10.0


@dataclass
class Response:
    """A status, lower-cased headers and the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def bdecoded(self) -> Any:
        """The body decoded as bencode (fails the test if it is not)."""
        return bencodepy.decode(self.body)

    def failure(self) -> str | None:
        """The bencoded failure reason, or None for an answer without one."""
        document = self.bdecoded()
        assert isinstance(document, dict)
        reason = document.get(b"failure reason")
        return None if reason is None else reason.decode()


class RawClient:
    """One connection; requests are written as given, responses read one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def response(self) -> Response:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), RESPONSE_TIMEOUT)
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(
            self.reader.readexactly(int(headers["content-length"])), RESPONSE_TIMEOUT
        )
        return Response(int(status), headers, body)

    async def get(self, target: str | bytes, extra: bytes = b"") -> Response:
        if isinstance(target, str):
            target = target.encode()
        await self.send(b"GET " + target + b" HTTP/1.1\r\nHost: tracker\r\n" + extra + b"\r\n")
        return await self.response()

    async def post(self, target: str, body: bytes, content_type: str | None = None) -> Response:
        kind = b"" if content_type is None else b"Content-Type: " + content_type.encode() + b"\r\n"
        await self.send(
            b"POST "
            + target.encode()
            + b" HTTP/1.1\r\nHost: tracker\r\n"
            + kind
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        return await self.response()

    async def is_closed(self, timeout: float = RESPONSE_TIMEOUT) -> bool:
        """Whether the server closes the connection (reads to the end within `timeout`)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except (TimeoutError, ConnectionResetError):
            return False
        return rest == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def announce_target(
    passkey: str,
    info_hash: bytes,
    peer_id: bytes,
    *,
    port: int = 6881,
    left: int = 100,
    event: str | None = None,
    numwant: int | None = None,
) -> str:
    """An announce path and query as a BitTorrent client sends it, to `/<passkey>/announce`."""
    query = (
        f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(peer_id)}&port={port}"
        f"&uploaded=0&downloaded=0&left={left}&compact=1"
    )
    if event is not None:
        query += f"&event={event}"
    if numwant is not None:
        query += f"&numwant={numwant}"
    return f"/{passkey}/announce?{query}"


def compact_peers(blob: bytes, width: int = 6) -> list[tuple[bytes, int]]:
    """(packed address, port) pairs of a compact peer list."""
    assert len(blob) % width == 0
    return [
        (blob[i : i + width - 2], int.from_bytes(blob[i + width - 2 : i + width], "big"))
        for i in range(0, len(blob), width)
    ]
