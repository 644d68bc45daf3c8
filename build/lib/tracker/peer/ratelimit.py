"""A session-wide upload cap: one token bucket that every torrent of a session draws on.

The bucket fills at `rate` bytes a second up to `burst`; a block goes out only when its bytes are
in the bucket. A connection that finds too few waits, and the waiting connections are woken in
the order they came once a block's worth has accrued, so no torrent or peer is starved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

from tracker.peer.wire import MAX_REQUEST_LENGTH

BURST_SECONDS = 0.25  # the default burst: this much of a second's rate
MIN_BURST = MAX_REQUEST_LENGTH  # the largest block a peer may ask for must fit, or it would wait forever


class TokenBucket:
    """Bytes a session may upload: `rate` a second, at most `burst` at once."""

    def __init__(
        self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("an upload rate cap must be positive")
        self.rate = float(rate)
        self.burst = max(MIN_BURST, burst if burst is not None else int(rate * BURST_SECONDS))
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._waiters: dict[Hashable, tuple[int, Callable[[], None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.waits = 0  # how often a connection had to wait: the cap at work

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> int:
        """Bytes that may go out now."""
        self._refill()
        return max(0, int(self._tokens))

    def spend(self, byte_count: int) -> None:
        """Take `byte_count` bytes out of the bucket."""
        self._refill()
        self._tokens -= byte_count

    def wait(self, key: Hashable, needed: int, resume: Callable[[], None]) -> None:
        """Call `resume()` once `needed` bytes may go out (one pending call per `key`)."""
        self.waits += 1
        self._waiters[key] = (min(needed, self.burst), resume)
        if self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        needed = next(iter(self._waiters.values()))[0]
        delay = max(0.0, (needed - self.available()) / self.rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        """Resume waiters in turn while the bucket holds what the next one needs."""
        self._timer = None
        while self._waiters:
            key, (needed, resume) = next(iter(self._waiters.items()))
            if self.available() < needed:
                break
            del self._waiters[key]
            resume()  # spends, and may wait again (at the back of the line)
        if self._waiters and self._timer is None:
            self._schedule()
