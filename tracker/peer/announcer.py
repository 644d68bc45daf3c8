"""HTTP tracker client (BEP 3 announce, compact peers BEP 23 and BEP 7 `peers6`)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes

import bencodepy
import httpx

from tracker.peer.errors import PeerError

if TYPE_CHECKING:
    from tracker.peer.session import Session
    from tracker.peer.torrent import Torrent

log = logging.getLogger(__name__)

NUMWANT = 50
MIN_INTERVAL = 30  # never announce more often, whatever a tracker says
DEFAULT_INTERVAL = 1800
RETRY_START = 15.0
RETRY_MAX = 900.0
STOPPED_TIMEOUT = 2.0  # a goodbye announce must not hold up shutting down
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_PEERS_PER_RESPONSE = 200
MAX_WARNING = 500  # characters of a tracker's warning we keep to show the user
_PEER4 = struct.Struct(">4sH")
_PEER6 = struct.Struct(">16sH")


class AnnounceError(PeerError):
    """The tracker refused an announce or could not be reached."""


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    """What a tracker told us."""

    interval: int
    peers: list[tuple[str, int]]
    connectable: bool | None = None  # the tracker's verdict on connecting back to us, if it checked
    warning: str | None = None  # BEP 3's `warning message`: the tracker answered, with a caveat


def _compact(data: bytes, item: struct.Struct) -> list[tuple[str, int]]:
    if len(data) % item.size:
        raise AnnounceError("compact peer list has a ragged length")
    peers = []
    for offset in range(0, len(data), item.size):
        raw, port = item.unpack_from(data, offset)
        if port:
            peers.append((str(ipaddress.ip_address(raw)), port))
    return peers


def parse_response(body: bytes) -> AnnounceResponse:
    """Parse a tracker's announce response; raises AnnounceError on a failure or garbage."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise AnnounceError("the tracker's response is too large")
    try:
        answer: Any = bencodepy.decode(body)
    except (bencodepy.BencodeDecodeError, ValueError, TypeError):
        raise AnnounceError("the tracker's response is not bencoded") from None
    if not isinstance(answer, dict):
        raise AnnounceError("the tracker's response is not a dictionary")
    failure = answer.get(b"failure reason")
    if failure is not None:
        reason = failure.decode("utf-8", "replace") if isinstance(failure, bytes) else repr(failure)
        raise AnnounceError(f"the tracker refused: {reason}")
    interval = answer.get(b"interval", DEFAULT_INTERVAL)
    if not isinstance(interval, int) or isinstance(interval, bool):
        raise AnnounceError("the tracker's interval is not a number")
    peers: list[tuple[str, int]] = []
    raw = answer.get(b"peers", b"")
    if isinstance(raw, bytes):
        peers += _compact(raw, _PEER4)
    elif isinstance(raw, list):
        for entry in raw:
            if (
                isinstance(entry, dict)
                and isinstance(entry.get(b"ip"), bytes)
                and isinstance(entry.get(b"port"), int)
            ):
                peers.append((entry[b"ip"].decode("ascii", "replace"), entry[b"port"]))
    raw6 = answer.get(b"peers6", b"")
    if isinstance(raw6, bytes):
        peers += _compact(raw6, _PEER6)
    valid = [(host, port) for host, port in peers if 0 < port < 65536]
    connectable = answer.get(b"sm_connectable")
    warning = answer.get(b"warning message")
    return AnnounceResponse(
        interval=max(MIN_INTERVAL, interval),
        peers=valid[:MAX_PEERS_PER_RESPONSE],
        connectable=bool(connectable) if connectable in (0, 1) else None,
        warning=warning[:MAX_WARNING].decode("utf-8", "replace") if isinstance(warning, bytes) else None,
    )


class Announcer:
    """Keeps one torrent announced to its tracker and connects to the peers it hands out."""

    def __init__(self, session: Session, torrent: Torrent, url: str, client: httpx.AsyncClient):
        self.session = session
        self.torrent = torrent
        self.url = url
        self._client = client
        self._completed = asyncio.Event()
        self.last_error: str | None = None
        self.connectable: bool | None = None  # the tracker's last word on reaching us from outside
        self.warning: str | None = None

    def _query(self, event: str | None) -> str:
        torrent = self.torrent
        fields = [
            f"info_hash={quote_from_bytes(torrent.meta.info_hash)}",
            f"peer_id={quote_from_bytes(self.session.peer_id)}",
            f"port={self.session.announced_port}",
            f"uploaded={torrent.uploaded}",
            f"downloaded={torrent.downloaded}",
            f"left={torrent.left}",
            "compact=1",
            f"numwant={NUMWANT}",
        ]
        if event:
            fields.append(f"event={event}")
        return "&".join(fields)

    async def announce(self, event: str | None = None) -> AnnounceResponse:
        """One announce; raises AnnounceError."""
        separator = "&" if "?" in self.url else "?"
        try:
            response = await self._client.get(self.url + separator + self._query(event))
        except httpx.HTTPError as exc:
            raise AnnounceError(f"cannot reach the tracker: {exc}") from exc
        return parse_response(response.content)

    def completed(self) -> None:
        """The torrent finished: say so at once rather than at the next interval."""
        self._completed.set()

    async def _connect_all(self, peers: list[tuple[str, int]]) -> None:
        known = {conn.address for conn in self.torrent.connections}
        fresh = [peer for peer in peers if peer not in known and peer != ("127.0.0.1", self.session.port)]
        await asyncio.gather(*(self.session.connect(self.torrent, host, port) for host, port in fresh))

    async def run(self) -> None:
        """Announce `started`, then every interval (and `completed` when done); `stopped` on cancel."""
        event: str | None = "started"
        retry = RETRY_START
        await self.session.map_listen_port()
        try:
            while True:
                try:
                    response = await self.announce(event)
                except AnnounceError as exc:
                    self.last_error = str(exc)
                    log.warning("announce for %s failed: %s", self.torrent.meta.name, exc)
                    delay = retry
                    retry = min(RETRY_MAX, retry * 2)
                else:
                    self.last_error = None
                    self.connectable, self.warning = response.connectable, response.warning
                    retry = RETRY_START
                    event = None
                    self.session.spawn(self._connect_all(response.peers))
                    delay = response.interval
                try:
                    await asyncio.wait_for(self._completed.wait(), delay)
                except TimeoutError:
                    continue
                self._completed.clear()
                event = "completed"
        except asyncio.CancelledError:
            with contextlib.suppress(AnnounceError, TimeoutError):
                await asyncio.wait_for(self.announce("stopped"), STOPPED_TIMEOUT)
            raise
