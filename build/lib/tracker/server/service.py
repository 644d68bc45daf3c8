"""The private HTTP tracker: a lean asyncio server for announce, scrape and receipts.

    GET  /<passkey>/announce?info_hash=...   BEP 3 with compact peers (BEP 23, BEP 7 `peers6`)
    GET  /<passkey>/scrape?info_hash=...     BEP 48, only for swarms the passkey's wallet may join
    POST /receipts                           batches of signed receipts (tracker.server.receipt_intake)

`/announce/<passkey>` and `/scrape/<passkey>`, the form of the first torrents handed out, are
answered too.

`start_tracker` runs it on the current event loop, beside uvicorn if need be. Requests are
framed and answered by `tracker.server.http_connection`; the swarms live in `tracker.server.swarm`;
the policy is asked through the TTL cache of `tracker.server.access`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.policy import ReceiptSink, SwarmPolicy
from tracker.receipts import ReceiptVerifier
from tracker.server import responses
from tracker.server.access import DEFAULT_POLICY_TTL, AccessCache
from tracker.server.announce import STOPPED, AnnounceRequest, RequestError
from tracker.server.http_connection import Connection
from tracker.server.proxies import TrustedProxies
from tracker.server.reachability import DEFAULT_BUDGET, DEFAULT_TIMEOUT, DEFAULT_WINDOW, Reachability
from tracker.server.swarm import DEFAULT_MAX_PEERS, SwarmFull, SwarmRegistry

DEFAULT_INTERVAL = 1800  # seconds between a client's announces
DEFAULT_MIN_INTERVAL = 300
DEFAULT_GRACE = 300  # a peer is listed for interval + grace after its last announce
DEFAULT_MAX_CONNECTIONS = 10_000
HEAD_TIMEOUT = 10  # seconds to send a complete request head once it started
BODY_TIMEOUT = 30  # seconds to send a body once its head arrived
KEEPALIVE_TIMEOUT = 30  # seconds an idle keep-alive connection stays open
TICK_SECONDS = 1.0  # clock, expiry sweep and timeout checks
SWEEP_CYCLE = 10  # seconds in which the sweep visits every swarm once
MAX_CONCURRENT_BATCHES = 4  # receipt batches verified at once; announces keep the rest of the CPU
PRUNE_CYCLE = 60  # seconds between forgetting old connect-back verdicts
LISTEN_BACKLOG = 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tunables of one tracker."""

    interval: int = DEFAULT_INTERVAL
    min_interval: int = DEFAULT_MIN_INTERVAL
    grace: int = DEFAULT_GRACE
    policy_ttl: int = DEFAULT_POLICY_TTL
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_peers: int = DEFAULT_MAX_PEERS
    head_timeout: int = HEAD_TIMEOUT
    body_timeout: int = BODY_TIMEOUT
    keepalive_timeout: int = KEEPALIVE_TIMEOUT
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For/X-Real-IP are believed
    connect_check: bool = False  # connect back to seeders (tracker.server.reachability)
    connect_timeout: float = DEFAULT_TIMEOUT
    connect_window: int = DEFAULT_WINDOW
    connect_budget: int = DEFAULT_BUDGET

    def __post_init__(self) -> None:
        for name in ("interval", "min_interval", "policy_ttl", "max_connections", "max_peers"):
            if getattr(self, name) < 1:
                raise ValueError(f"tracker {name} must be at least 1")
        if min(self.grace, self.head_timeout, self.body_timeout, self.keepalive_timeout) < 0:
            raise ValueError("tracker grace and timeouts cannot be negative")
        TrustedProxies(self.trusted_proxies)  # raises ValueError naming a malformed entry
        if self.connect_timeout <= 0 or self.connect_window < 1 or self.connect_budget < 1:
            raise ValueError("tracker connect check timeout, window and budget must be positive")


class TrackerServer:
    """A running tracker: its listening sockets, swarms, caches and counters."""

    def __init__(
        self, policy: SwarmPolicy, sink: ReceiptSink, verifier: ReceiptVerifier, config: TrackerConfig
    ) -> None:
        self.config = config
        self.sink = sink
        self.verifier = verifier
        self.access = AccessCache(policy, config.policy_ttl)
        self.proxies = TrustedProxies(config.trusted_proxies)
        self.reachability = (
            Reachability(config.connect_timeout, config.connect_window, config.connect_budget)
            if config.connect_check
            else None
        )
        self.registry = SwarmRegistry(config.interval + config.grace, config.max_peers)
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.batch_slots = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self.requests = 0
        self.announces = 0
        self.refusals = 0
        self.internal_errors = 0  # bugs: every one is logged with its traceback
        self._epoch = time.monotonic()
        self.now = 0
        self._server: asyncio.Server | None = None
        self._tick_handle: asyncio.TimerHandle | None = None

    async def start(self, host: str | None, port: int) -> None:
        """Listen on `host`:`port` (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, reuse_address=True, backlog=LISTEN_BACKLOG
        )
        self._tick_handle = loop.call_later(TICK_SECONDS, self._tick)

    @property
    def port(self) -> int:
        """The port of the first listening socket."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    def stats(self, info_hash: bytes) -> tuple[int, int, int]:
        """(complete, incomplete, downloaded) of a swarm."""
        return self.registry.stats(info_hash)

    def reachable_seeds(self, info_hash: bytes) -> int | None:
        """How many of a swarm's seeds a connect-back reached; None when the tracker does not check."""
        if self.reachability is None:
            return None
        return self.reachability.reachable(self.registry.seeds(info_hash))

    def close(self) -> None:
        """Stop listening and close every connection; running receipt batches finish."""
        if self._server is not None:
            self._server.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for connection in list(self.connections):
            connection.close()

    async def wait_closed(self) -> None:
        """Wait until the listener is closed and in-flight requests are done."""
        if self._server is not None:
            await self._server.wait_closed()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def __aenter__(self) -> TrackerServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def _tick(self) -> None:
        """Advance the clock, sweep a share of the swarms, close connections past their deadline."""
        self._tick_handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        self.now = int(time.monotonic() - self._epoch)
        try:
            swarms = len(self.registry.swarms)
            if swarms:
                self.registry.sweep(self.now, max(1, math.ceil(swarms / SWEEP_CYCLE)))
            for connection in [c for c in self.connections if c.deadline < self.now]:
                connection.close()
            if self.reachability is not None and self.now % PRUNE_CYCLE == 0:
                self.reachability.prune(self.now, self.config.interval + self.config.grace)
        except Exception:  # a bug here must not stop the clock
            self.internal_errors += 1
            log.exception("tracker housekeeping failed")

    def needs_check(self, request: AnnounceRequest, ip: bytes) -> bool:
        """Whether this announce waits for a connect-back to the seeder before it is answered:
        a seeder with no fresh verdict whose address may be checked now."""
        reachability = self.reachability
        if reachability is None or request.left or request.event == STOPPED:
            return False
        addr = ip + request.port.to_bytes(2, "big")
        return reachability.fresh(addr, self.now) is None and reachability.may_check(addr, self.now)

    async def check(self, request: AnnounceRequest, ip: bytes) -> bool | None:
        """Connect back to the announcer's own address and announced port (never another)."""
        assert self.reachability is not None
        return await self.reachability.check(
            ip + request.port.to_bytes(2, "big"), request.info_hash, self.now
        )

    def verdict(self, request: AnnounceRequest, ip: bytes) -> bool | None:
        """The latest verdict on a seeder's address and port; None for leechers or unknown."""
        reachability = self.reachability
        if reachability is None or request.left or request.event == STOPPED:
            return None
        return reachability.last(ip + request.port.to_bytes(2, "big"))

    def answer_announce(
        self, request: AnnounceRequest, tag: bytes, ip: bytes, connectable: bool | None = None
    ) -> bytes:
        """Record an announce that passed the policy; the bencoded answer, with the seeder's
        connect-back verdict when there is one."""
        # The peer's key: its peer_id, its account's tag and its address family (tracker.server.swarm).
        key = request.peer_id + tag + (b"4" if len(ip) == 4 else b"6")
        try:
            complete, incomplete, peers, peers6 = self.registry.announce(
                request.info_hash,
                key,
                ip + request.port.to_bytes(2, "big"),
                request.left == 0,
                request.event,
                request.numwant,
                self.now,
            )
        except SwarmFull:
            raise RequestError("tracker is full; try again later") from None
        config = self.config
        return responses.announce(
            complete,
            incomplete,
            config.interval,
            config.min_interval,
            peers,
            peers6,
            connectable,
            request.port,
        )


async def start_tracker(
    host: str | None,
    port: int,
    policy: SwarmPolicy,
    sink: ReceiptSink,
    verifier: ReceiptVerifier,
    *,
    interval: int = DEFAULT_INTERVAL,
    min_interval: int = DEFAULT_MIN_INTERVAL,
    grace: int = DEFAULT_GRACE,
    policy_ttl: int = DEFAULT_POLICY_TTL,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_peers: int = DEFAULT_MAX_PEERS,
    head_timeout: int = HEAD_TIMEOUT,
    body_timeout: int = BODY_TIMEOUT,
    keepalive_timeout: int = KEEPALIVE_TIMEOUT,
    trusted_proxies: Iterable[str] = (),
    connect_check: bool = False,
    connect_timeout: float = DEFAULT_TIMEOUT,
    connect_window: int = DEFAULT_WINDOW,
    connect_budget: int = DEFAULT_BUDGET,
) -> TrackerServer:
    """Start a tracker on the running event loop; `close()` then `await wait_closed()` stops it.
    `trusted_proxies` are CIDRs of reverse proxies whose forwarding headers name the client
    (tracker.server.proxies); by default none. `connect_check` makes it connect back to seeders
    and tell them whether they are reachable (tracker.server.reachability); off by default."""
    config = TrackerConfig(
        interval=interval,
        min_interval=min(min_interval, interval),
        grace=grace,
        policy_ttl=policy_ttl,
        max_connections=max_connections,
        max_peers=max_peers,
        head_timeout=head_timeout,
        body_timeout=body_timeout,
        keepalive_timeout=keepalive_timeout,
        trusted_proxies=tuple(trusted_proxies),
        connect_check=connect_check,
        connect_timeout=connect_timeout,
        connect_window=connect_window,
        connect_budget=connect_budget,
    )
    server = TrackerServer(policy, sink, verifier, config)
    await server.start(host, port)
    return server
