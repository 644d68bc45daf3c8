"""Token buckets per client address, for the writes anyone may make without signing in.

`POST /auth/nonce` stores a row for every caller: unlimited, one client could grow the nonce
table (and, on SQLite, hold the write lock receipt intake needs). Each address gets `burst`
requests at once and `rate` per second after that; the answer past it is 429 with Retry-After.
The buckets live in memory, per process: with several instances a client gets each instance's
allowance, still a bound. The table of buckets is bounded too: when full, the least recently
used bucket is dropped (in O(1): many addresses cannot make each request scan the table).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from backend.errors import RateLimited

MAX_CLIENTS = 100_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """`take(key)` spends one token of that key's bucket, or raises RateLimited."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("a token bucket needs rate > 0, burst >= 1 and room for one client")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()  # sync routes run in a thread pool

    def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket; RateLimited (with the seconds to wait) when empty."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                while len(self._buckets) >= self.max_clients:
                    self._buckets.popitem(last=False)
                bucket = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[key] = bucket  # most recently used last
            if bucket.tokens < 1:
                wait = math.ceil((1 - bucket.tokens) / self.rate)
                raise RateLimited(f"too many requests; try again in {wait} s", wait)
            bucket.tokens -= 1

    def __len__(self) -> int:
        return len(self._buckets)
