"""The engine: one listening socket, one disk thread pool and a set of torrents at once.

A session accepts peers for any of its torrents (the handshake names which), connects out to
peers it is told about (by the announcer or directly), and drives every torrent's once-a-second
housekeeping. Seeders give it a receipt journal; the submitter hands journaled receipts to the
tracker.

Peers reach it over TCP and over µTP (BEP 29, `tracker.utp`) on the same port number, as
libtorrent listens; a µTP connection is handed to the same `PeerConnection` as a TCP one, which
cannot tell them apart. Going out, µTP is tried first (what libtorrent, qBittorrent, Deluge and
Transmission prefer) and TCP starts after a short head start if µTP has not connected; whichever
connects first is kept and remembered for that peer, so a peer without µTP costs half a second
once, never a multi-second stall.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tracker.metainfo import Metainfo
from tracker.peer.announcer import Announcer
from tracker.peer.connection import PeerConnection
from tracker.peer.errors import PeerError, StorageError
from tracker.peer.journal import AsyncJournal, ReceiptJournal
from tracker.peer.portmap import PortMapper
from tracker.peer.ratelimit import TokenBucket
from tracker.peer.storage import CheckProgress, Storage
from tracker.peer.submitter import Answer, Submitter
from tracker.peer.torrent import Torrent, TorrentConfig
from tracker.utp import UtpEndpoint, UtpError, open_endpoint

log = logging.getLogger(__name__)

PEER_ID_PREFIX = b"-SM0100-"
DISK_THREADS = 2  # hashing and writing on one, reading for peers on the other
TICK_INTERVAL = 1.0
CONNECT_TIMEOUT = 10.0
MAX_HALF_OPEN = 16  # outgoing connection attempts at once
MAX_SESSION_CONNECTIONS = 500  # across all torrents; more are refused at once
HANDSHAKE_TIMEOUT = 10.0  # seconds a connection may take to complete its handshake
UTP_HEAD_START = 0.5  # seconds µTP has to connect before TCP is tried as well
LISTEN_ATTEMPTS = 20  # tries for a free port number that is free for both TCP and UDP
TRACKER_TIMEOUT = 30.0  # seconds for an announce or a receipt submission


def new_peer_id() -> bytes:
    """A BitTorrent peer id naming this client (Azureus style)."""
    return PEER_ID_PREFIX + os.urandom(20 - len(PEER_ID_PREFIX))


class Session:
    """Runs torrents; use `async with Session(...)` or call `start` and `close`."""

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",  # noqa: S104 (a peer listens on every interface by default)
        port: int = 0,
        journal: ReceiptJournal | None = None,
        peer_id: bytes | None = None,
        map_port: bool = False,
        upload_limit: TokenBucket | None = None,
        utp: bool = True,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.peer_id = peer_id or new_peer_id()
        self.disk = ThreadPoolExecutor(max_workers=DISK_THREADS, thread_name_prefix="disk")
        self.journal = AsyncJournal(journal) if journal is not None else None
        self.upload_limit = upload_limit  # a cap on what all torrents upload together
        self.torrents: dict[bytes, Torrent] = {}
        self.connections: set[PeerConnection] = set()
        self._server: asyncio.Server | None = None
        self.utp_enabled = utp
        self.utp: UtpEndpoint | None = None
        self._transport_of: dict[tuple[str, int], str] = {}  # "utp" or "tcp": what last connected
        self._tasks: set[asyncio.Task[Any]] = set()
        self._half_open = asyncio.Semaphore(MAX_HALF_OPEN)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self.completion_hooks: list[Callable[[Torrent], None]] = []
        self.submitters: list[Submitter] = []
        self.map_port = map_port  # ask the router (NAT-PMP, UPnP) to forward the listen port
        self.port_mapper: PortMapper | None = None
        self._mapping: asyncio.Future[Any] | None = None
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def now(self) -> float:
        """The event loop's clock."""
        assert self._loop is not None
        return self._loop.time()

    async def start(self) -> None:
        """Listen for peers and start housekeeping."""
        self._loop = asyncio.get_running_loop()
        for attempt in range(LISTEN_ATTEMPTS):
            self._server = await self._loop.create_server(self._incoming, self.host, self.requested_port)
            sockets = self._server.sockets
            self.port = sockets[0].getsockname()[1] if sockets else 0
            if not self.utp_enabled:
                break
            try:
                self.utp = await open_endpoint(self.host, self.port, self._incoming)
                break
            except OSError as exc:
                # the number is free for TCP but taken for UDP: with a port of our choosing, pick another
                self._server.close()
                await self._server.wait_closed()
                self._server = None
                if self.requested_port or attempt == LISTEN_ATTEMPTS - 1:
                    raise PeerError(f"cannot listen for µTP on UDP port {self.port}: {exc}") from exc
        self.spawn(self._housekeeping())

    def _incoming(self) -> PeerConnection:
        return PeerConnection(self, None, ("?", 0), outgoing=False)

    async def close(self) -> None:
        """Stop everything: connections, tasks, files, threads (and the router's port mapping)."""
        if self.port_mapper is not None:
            if self._mapping is not None and not self._mapping.done():
                self._mapping.cancel()
            await self.port_mapper.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close("session closing")
        for torrent in self.torrents.values():
            await torrent.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.utp is not None:
            self.utp.close()
            self.utp = None
            await asyncio.sleep(0)  # let the µTP connections' connection_lost run
        loop = asyncio.get_running_loop()
        for torrent in self.torrents.values():
            await loop.run_in_executor(self.disk, torrent.storage.close)
        self.torrents.clear()
        self.disk.shutdown(wait=True)
        if self._http is not None:
            await self._http.aclose()  # after the tasks: a cancelled announcer says `stopped` with it
            self._http = None
        if self.journal is not None:
            self.journal.close()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task the session keeps track of (and cancels on close)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # ----- torrents -----

    async def add_torrent(
        self,
        meta: Metainfo,
        folder: str | os.PathLike[str],
        config: TorrentConfig | None = None,
        *,
        writable: bool = True,
        progress: CheckProgress | None = None,
    ) -> Torrent:
        """Open a torrent's files under `folder`, hash-check what is there and join its swarm."""
        if meta.info_hash in self.torrents:
            raise PeerError(f"{meta.name} is already in this session")
        storage = Storage(meta, Path(folder), writable=writable)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.disk, storage.open)
        try:
            have = await loop.run_in_executor(self.disk, storage.check, progress)
        except BaseException:
            await loop.run_in_executor(self.disk, storage.close)
            raise
        if not writable and not all(have):
            await loop.run_in_executor(self.disk, storage.close)
            missing = len(have) - sum(have)
            raise StorageError(
                f"{missing} of {len(have)} pieces on disk do not match the torrent {meta.name}"
            )
        torrent = Torrent(self, meta, storage, config or TorrentConfig(), have)
        self.torrents[meta.info_hash] = torrent
        return torrent

    def torrent_for(self, info_hash: bytes) -> Torrent | None:
        """The torrent a handshake names, if we have it."""
        torrent = self.torrents.get(info_hash)
        return torrent if torrent is not None and torrent.error is None else None

    def torrent_completed(self, torrent: Torrent) -> None:
        """Hook for a torrent that just finished downloading (the announcer reports it)."""
        for hook in list(self.completion_hooks):
            hook(torrent)

    async def map_listen_port(self) -> None:
        """With `map_port`, have the router forward the listen port before the first announce (once
        for all torrents; tracker.peer.portmap keeps it renewed), so the tracker learns the port
        peers outside can reach."""
        if not self.map_port or not self.port:
            return
        if self._mapping is None:
            self.port_mapper = PortMapper(self.port)
            self._mapping = asyncio.ensure_future(self.port_mapper.start())
        await asyncio.shield(self._mapping)

    @property
    def announced_port(self) -> int:
        """The port peers should connect to: the router's mapped port, else the one we listen on."""
        mapped = self.port_mapper.external_port if self.port_mapper is not None else None
        return mapped or self.port

    @property
    def http(self) -> httpx.AsyncClient:
        """The one HTTP client of every announce and receipt submission: a client builds its TLS
        context when created (~25 ms of CPU, which a client per request paid each time, stalling
        every transfer of the session), and keeps the tracker's connection alive between requests."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=TRACKER_TIMEOUT)
        return self._http

    def announce(self, torrent: Torrent, url: str) -> Announcer:
        """Keep `torrent` announced to the tracker at `url` and connect to the peers it names."""
        announcer = Announcer(self, torrent, url, self.http)
        self.completion_hooks.append(lambda done: announcer.completed() if done is torrent else None)
        self.spawn(announcer.run())
        return announcer

    def submit_receipts(self, tracker_url: str) -> Submitter:
        """Hand journaled receipts to the tracker at `tracker_url` until each is acknowledged."""
        if self.journal is None:
            raise PeerError("submitting receipts needs a journal")
        submitter = Submitter(
            self.journal,
            tracker_url,
            self.http,
            on_rejected=self._receipt_rejected,
            on_accepted=self._receipt_accepted,
        )
        self.submitters.append(submitter)
        self.spawn(submitter.run())
        return submitter

    def submit_soon(self) -> None:
        """Ask the submitters to hand in journaled receipts now rather than after gathering."""
        for submitter in self.submitters:
            submitter.urgent.set()

    def _receipt_accepted(self, answer: Answer) -> None:
        receipt = answer.signed.receipt
        for torrent in self.torrents.values():
            if torrent.billing is not None and torrent.billing.wallet == receipt.seeder:
                torrent.receipt_accepted(receipt.purchase_id)

    def _receipt_rejected(self, answer: Answer) -> None:
        receipt = answer.signed.receipt
        for torrent in self.torrents.values():
            if torrent.billing is not None and torrent.billing.wallet == receipt.seeder:
                torrent.receipt_rejected(receipt.purchase_id, answer.reason)

    # ----- peers -----

    async def connect(self, torrent: Torrent, host: str, port: int) -> bool:
        """Open a connection to a peer for `torrent` (µTP, or TCP); returns whether one opened."""
        if self._loop is None:
            raise PeerError("the session is not started")
        async with self._half_open:
            kind = await self._race(torrent, host, port)
        if kind is not None:
            self._transport_of[(host, port)] = kind
        return kind is not None

    async def _race(self, torrent: Torrent, host: str, port: int) -> str | None:
        """µTP first; TCP too once µTP had its head start; the first to connect wins."""
        if self.utp is None or self._transport_of.get((host, port)) == "tcp":
            return "tcp" if await self._connect_tcp(torrent, host, port) else None
        attempts = {asyncio.ensure_future(self._connect_utp(torrent, host, port)): "utp"}
        done, _ = await asyncio.wait(attempts, timeout=UTP_HEAD_START)
        if not (done and next(iter(done)).result()):
            attempts[asyncio.ensure_future(self._connect_tcp(torrent, host, port))] = "tcp"
        pending = set(attempts)
        winner = None
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner = next((attempts[task] for task in done if task.result()), None)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return winner

    async def _connect_tcp(self, torrent: Torrent, host: str, port: int) -> bool:
        assert self._loop is not None
        try:
            await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: PeerConnection(self, torrent, (host, port), outgoing=True), host, port
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            log.debug("cannot connect to %s:%d over TCP: %s", host, port, exc)
            return False
        return True

    async def _connect_utp(self, torrent: Torrent, host: str, port: int) -> bool:
        assert self.utp is not None
        address = (host, port)
        try:
            await self.utp.connect(
                lambda: PeerConnection(self, torrent, address, outgoing=True), host, port, CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError, UtpError) as exc:
            log.debug("cannot connect to %s:%d over µTP: %s", host, port, exc)
            return False
        return True

    def connection_opened(self, conn: PeerConnection) -> None:
        """Track a new connection; refuse one too many."""
        if len(self.connections) >= MAX_SESSION_CONNECTIONS:
            conn.drop("too many connections")
            return
        self.connections.add(conn)

    def connection_closed(self, conn: PeerConnection) -> None:
        """Forget a closed connection."""
        self.connections.discard(conn)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            now = loop.time()
            for conn in list(self.connections):
                if conn.handshake is None and now - conn.opened_at > HANDSHAKE_TIMEOUT:
                    conn.drop("no handshake in time")
            for torrent in list(self.torrents.values()):
                if torrent.error is None:
                    torrent.tick(now, now - last)
            last = now
