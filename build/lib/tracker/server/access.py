"""A short-lived cache in front of the `SwarmPolicy`, so that most announces never wait for it.

Both answers (a passkey's wallet, whether a wallet may join a swarm) are cached, positive and
negative alike, for `ttl` seconds: a new purchase or a revoked passkey takes effect within that
time. Concurrent misses for the same question share one policy call. The server reads the cache
synchronously first and only suspends for a policy call on a miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any, Final

from tracker.policy import SwarmPolicy

DEFAULT_POLICY_TTL = 30  # seconds an answer of the policy is reused
DEFAULT_CACHE_ENTRIES = 200_000  # per kind of question; about 40 MB when full
POLICY_TIMEOUT = 10.0  # seconds before an announce gives up on the policy
WALLET_TAG_LENGTH = 4
MISS: Final = object()  # a cache miss, distinct from a cached None


class _TtlCache:
    """A dict of key -> (expires, value) that forgets its oldest tenth when full."""

    def __init__(self, max_entries: int) -> None:
        self.entries: dict[Any, tuple[int, Any]] = {}
        self.max_entries = max_entries
        self.inflight: dict[Any, asyncio.Future[Any]] = {}

    def get(self, key: Any, now: int) -> Any:
        entry = self.entries.get(key)
        if entry is None or entry[0] <= now:
            return MISS
        return entry[1]

    def put(self, key: Any, value: Any, expires: int) -> None:
        if len(self.entries) >= self.max_entries:
            for old in list(islice(self.entries, max(1, self.max_entries // 10))):
                del self.entries[old]
        self.entries[key] = (expires, value)

    async def fetch(self, key: Any, ask: Callable[[], Awaitable[Any]], expires: int) -> Any:
        """Ask once for `key` however many callers miss at the same time."""
        pending = self.inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            value = await asyncio.wait_for(ask(), POLICY_TIMEOUT)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # mark it retrieved; waiters, if any, still see it
            raise
        finally:
            del self.inflight[key]
        self.put(key, value, expires)
        future.set_result(value)
        return value


class AccessCache:
    """Cached `SwarmPolicy` answers, plus a per-process tag for each wallet (see tracker.server.swarm)."""

    def __init__(self, policy: SwarmPolicy, ttl: int, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.policy = policy
        self.ttl = ttl
        self._wallets = _TtlCache(max_entries)
        self._joins = _TtlCache(max_entries)
        self._salt = os.urandom(16)  # tags cannot be ground for collisions across restarts

    def tag(self, wallet: bytes) -> bytes:
        """A short salted tag of a wallet, to keep one account's peers apart from another's."""
        return hashlib.blake2b(wallet, digest_size=WALLET_TAG_LENGTH, key=self._salt).digest()

    def wallet_now(self, passkey: str, now: int) -> Any:
        """(wallet, tag), None for an unknown passkey, or MISS."""
        entry = self._wallets.entries.get(passkey)  # _TtlCache.get inlined: the announce hot path
        return MISS if entry is None or entry[0] <= now else entry[1]

    async def wallet(self, passkey: str, now: int) -> tuple[bytes, bytes] | None:
        """(wallet, tag) of a passkey, or None; asks the policy on a miss."""
        cached = self._wallets.get(passkey, now)
        if cached is not MISS:
            return cached

        async def ask() -> tuple[bytes, bytes] | None:
            wallet = await self.policy.wallet_for_passkey(passkey)
            return None if wallet is None else (wallet, self.tag(wallet))

        return await self._wallets.fetch(passkey, ask, now + self.ttl)

    def may_join_now(self, wallet: bytes, info_hash: bytes, now: int) -> Any:
        """True, False or MISS."""
        entry = self._joins.entries.get(wallet + info_hash)
        return MISS if entry is None or entry[0] <= now else entry[1]

    async def may_join(self, wallet: bytes, info_hash: bytes, now: int) -> bool:
        """Whether `wallet` may join `info_hash`'s swarm; asks the policy on a miss."""
        key = wallet + info_hash
        cached = self._joins.get(key, now)
        if cached is not MISS:
            return bool(cached)
        allowed = await self._joins.fetch(
            key, lambda: self.policy.may_join(wallet, info_hash), now + self.ttl
        )
        return bool(allowed)
