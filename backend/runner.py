"""Running the store's processes: all in one (`serve`), or the tracker or the oracle alone.

The API (uvicorn) and the tracker share one asyncio event loop; the indexer, the oracle and the
keeper, which block on the chain and the database, run in threads. Ctrl-C (SIGINT) or SIGTERM stops
everything: uvicorn finishes its requests, the tracker its receipt batches, the threads their
current step.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import uvicorn

from backend.api.main import create_app
from backend.errors import ChainError
from backend.leader import Leadership, lead, lock_key
from backend.passkeys import passkey_for
from backend.services import Services
from backend.settings import Settings
from backend.store_seed import StoreSeed
from backend.swarm_stats import InProcessStats, ScrapeStats, SwarmStats
from tracker.server import TrackerServer, start_tracker

log = logging.getLogger(__name__)

# Seconds the API keeps an idle keep-alive connection open: longer than its clients and proxies
# keep one (httpx 5 s, nginx's upstream pool 60 s), so that the client, never the store, closes an
# idle connection. When the store closes it just as a request is sent on it, the kernel answers
# that request with a reset (ECONNRESET), and an HTTP client does not resend a POST on its own.
API_KEEP_ALIVE = 75

LEADER_RETRY = 5.0  # seconds between tries to lead, and between checks that we still do


class Workers:
    """The background threads (indexer, oracle) and their shared stop flag."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.leadership: Leadership | None = None  # PostgreSQL: run the indexer/oracle only while held

    def start(self, name: str, target: Callable[[threading.Event], None]) -> None:
        """Run `target(stop)` in a daemon thread."""
        thread = threading.Thread(target=target, args=(self.stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout: float = 30.0) -> None:
        """Ask every thread to stop and wait for it."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)


def _check_chain(services: Services) -> None:
    try:
        services.chain.check()
    except ChainError as exc:
        log.warning("chain check failed (%s); the indexer and oracle keep retrying", exc)


def start_workers(services: Services, *, indexer: bool, oracle: bool, keeper: bool = False) -> Workers:
    """Start the indexer, oracle and/or keeper threads; on PostgreSQL only while this instance leads."""
    workers = Workers()
    if not (indexer or oracle or keeper):
        return workers
    poster = services.oracle() if oracle else None
    if poster is not None:
        poster.check()
    payer = services.keeper() if keeper else None
    if keeper and payer is None:
        log.warning("no keeper key (SEEDMARKET_KEEPER_KEY): seeders are not paid automatically")
    if payer is not None:
        payer.check()

    def start(stop: threading.Event) -> list[threading.Thread]:
        started = Workers()
        started.stop = stop
        if indexer:
            follower = services.indexer()
            started.start("indexer", lambda s: follower.run(s, services.settings.poll_interval))
        if poster is not None:
            started.start("oracle", poster.run)
        if payer is not None:
            started.start("keeper", payer.run)
        return started.threads

    if services.db.is_sqlite:
        workers.threads.extend(start(workers.stop))
        return workers
    address, _ = services.settings.marketplace
    leadership = Leadership(services.db, lock_key(services.settings.chain_id, address))
    workers.leadership = leadership
    workers.start("leader", lambda stop: lead(leadership, stop, start, LEADER_RETRY))
    return workers


async def serve(
    settings: Settings,
    *,
    tracker: bool = True,
    indexer: bool = True,
    oracle: bool = True,
    seed: bool = True,
    keeper: bool = True,
) -> None:
    """API + tracker + indexer + oracle + keeper + the store's seed in one process, until interrupted."""
    services = Services.open(settings)
    _check_chain(services)
    workers = start_workers(services, indexer=indexer, oracle=oracle, keeper=keeper)
    server: TrackerServer | None = None
    seeding: asyncio.Task[None] | None = None
    stop_seeding = asyncio.Event()
    stats: SwarmStats | None = None
    try:
        if tracker:
            server = await _start_store_tracker(settings, services)
            stats = InProcessStats(server)
            log.info("tracker listening on %s:%d", settings.tracker_host, server.port)
        else:
            stats = _scrape_stats(services)
        if seed:
            seeding = asyncio.create_task(StoreSeed(services).run(stop_seeding), name="store-seed")
        app = create_app(settings, services=services, stats=stats)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            timeout_keep_alive=API_KEEP_ALIVE,
        )
        await _ApiServer(config).serve()
    finally:
        stop_seeding.set()
        if seeding is not None:
            await _finish(seeding)
        if server is not None:
            server.close()
            await server.wait_closed()
        if isinstance(stats, ScrapeStats):
            await stats.aclose()
        workers.join()
        services.close()


class _ApiServer(uvicorn.Server):
    """uvicorn, minus its habit of re-raising SIGINT/SIGTERM after a graceful shutdown: that would
    kill the process (SIGTERM) before the tracker and the threads are stopped, or exit 130."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into a graceful shutdown, and then return normally."""
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop, sig)
                handled.append(sig)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        self.should_exit = True


def _scrape_stats(services: Services) -> SwarmStats:
    accounts = services.store_accounts
    if not accounts:
        return ScrapeStats(services.settings.tracker_url, lambda: "0" * 32)
    return ScrapeStats(services.settings.tracker_url, lambda: passkey_for(services.db, accounts[0]))


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for a background task that was asked to stop; log (never raise) how it failed."""
    try:
        await asyncio.wait_for(task, timeout=30)
    except Exception:
        log.exception("%s failed", task.get_name())


async def run_store_seed(settings: Settings) -> None:
    """The store's seed alone (sharing the database with `serve --no-seed`), until SIGINT/SIGTERM."""
    services = Services.open(settings)
    stop = asyncio.Event()
    seeding = asyncio.create_task(StoreSeed(services).run(stop), name="store-seed")
    try:
        signalled = asyncio.create_task(_until_signalled())
        await asyncio.wait({seeding, signalled}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
    finally:
        stop.set()
        await _finish(seeding)
        services.close()


async def _start_store_tracker(settings: Settings, services: Services) -> TrackerServer:
    """The tracker on the store's database: its access policy, receipt sink and verifier."""
    return await start_tracker(
        settings.tracker_host,
        settings.tracker_port,
        services.policy(),
        services.sink(),
        services.verifier(),
        trusted_proxies=settings.trusted_proxies,
        connect_check=settings.tracker_connect_check,
    )


async def run_tracker(settings: Settings) -> None:
    """The tracker alone, with the database policy and sink, until SIGINT/SIGTERM."""
    services = Services.open(settings)
    server = await _start_store_tracker(settings, services)
    log.info("tracker listening on %s:%d", settings.tracker_host, server.port)
    try:
        await _until_signalled()
    finally:
        server.close()
        await server.wait_closed()
        services.close()


def run_oracle(settings: Settings, *, indexer: bool = True) -> None:
    """The oracle loop (with its own indexer unless told otherwise), until SIGINT/SIGTERM."""
    _run_workers(settings, indexer=indexer, oracle=True)


def run_keeper(settings: Settings, *, indexer: bool = True) -> None:
    """The keeper loop (with its own indexer unless told otherwise), until SIGINT/SIGTERM."""
    _run_workers(settings, indexer=indexer, keeper=True)


def _run_workers(settings: Settings, *, indexer: bool, oracle: bool = False, keeper: bool = False) -> None:
    services = Services.open(settings)
    _check_chain(services)
    workers = start_workers(services, indexer=indexer, oracle=oracle, keeper=keeper)
    stopped = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(1.0):
            if not any(t.is_alive() for t in workers.threads):
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        workers.join()
        services.close()


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    await done.wait()
