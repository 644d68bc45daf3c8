"""Seeding health of a swarm (seeders, leechers, completed, and how many seeders the tracker
could connect back to), from the tracker.

In `seedmarket serve` the tracker runs in the same process and is asked directly; when it runs
as its own process the API scrapes it over HTTP (BEP 48) with a store account's passkey, which
may see every listed swarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol
from urllib.parse import quote_from_bytes

import bencodepy
import httpx

from tracker.server.announce import scrape_url

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 2.0


class Health(NamedTuple):
    """A swarm as the tracker sees it. `reachable`: seeders its connect-back reached (a seeder
    behind a NAT without a forwarded port is listed but nobody can download from it); None when
    the tracker does not check (tracker.server.reachability)."""

    seeders: int
    leechers: int
    completed: int
    reachable: int | None = None


class SwarmStats(Protocol):
    """Where the API gets a swarm's health."""

    async def stats(self, info_hash: bytes) -> Health | None:
        """(seeders, leechers, completed), or None when the tracker cannot say."""
        ...


class TrackerLike(Protocol):
    """The part of `tracker.server.TrackerServer` the in-process stats need."""

    def stats(self, info_hash: bytes) -> tuple[int, int, int]:
        """(complete, incomplete, downloaded)."""
        ...

    def reachable_seeds(self, info_hash: bytes) -> int | None:
        """Seeders a connect-back reached, or None when the tracker does not check."""
        ...


class InProcessStats:
    """Reads a tracker running on the same event loop."""

    def __init__(self, tracker: TrackerLike) -> None:
        self.tracker = tracker

    async def stats(self, info_hash: bytes) -> Health | None:
        """The tracker's own counts."""
        return Health(*self.tracker.stats(info_hash), self.tracker.reachable_seeds(info_hash))


class ScrapeStats:
    """Scrapes a tracker in another process."""

    def __init__(self, tracker_url: str, passkey: Callable[[], str], timeout: float = SCRAPE_TIMEOUT) -> None:
        self.tracker_url = tracker_url.rstrip("/")
        self.passkey = passkey
        # One client for every scrape, made at the first: a client builds its TLS context when
        # created (~25 ms of CPU on the event loop, for each product page a client per request
        # served), and it keeps the tracker's connection alive.
        self._client: httpx.AsyncClient | None = None
        self.timeout = timeout

    async def stats(self, info_hash: bytes) -> Health | None:
        """The scrape answer for one infohash, or None when the tracker is unreachable or refuses."""
        url = f"{scrape_url(self.tracker_url, self.passkey())}?info_hash={quote_from_bytes(info_hash)}"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._client.get(url)
            answer = bencodepy.decode(response.content)
            entry = answer[b"files"][info_hash]
            reachable = entry.get(b"sm_reachable")
            return Health(
                int(entry[b"complete"]),
                int(entry[b"incomplete"]),
                int(entry[b"downloaded"]),
                None if reachable is None else int(reachable),
            )
        except (
            httpx.HTTPError,
            bencodepy.BencodeDecodeError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            log.info("scrape of %s failed: %s", info_hash.hex(), type(exc).__name__)
            return None

    async def aclose(self) -> None:
        """Close the connection to the tracker."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
