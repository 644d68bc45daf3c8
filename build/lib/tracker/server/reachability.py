"""Whether a seeder can be reached: the tracker connects back to the address and port a seeder
announced from and exchanges BitTorrent handshakes for the announced torrent.

Most buyers seed from home behind a router's NAT; unless the port is forwarded (by hand, UPnP IGD
or NAT-PMP) nobody can connect to them, and they seed all day without earning. The tracker is
the one party that sees the address the world sees, so it checks, and says so in its answer
(`tracker.server.responses`: `sm_connectable` and a `warning message` saying what to do). The
store counts a swarm's reachable seeders for its seeding health.

Safety, since this makes the tracker open connections on request:
- only ever to the announcing connection's own address (or the client a trusted proxy names),
  never to an `ip=` parameter or any other address;
- at most `budget` checks per address in `window` seconds, whatever the ports or torrents, and
  at most `MAX_CONCURRENT_CHECKS` checks in flight; a verdict is reused for `window` seconds;
- each check is bounded by `timeout` seconds, reads 48 bytes at most, and sends nothing but a
  handshake (no extension bits: the peer sees a client that is not interested and leaves).
A random open port does not count: the peer must answer with the BitTorrent handshake for the
same infohash, which a client that does not have the torrent never sends.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterable

HANDSHAKE_PREFIX = b"\x13BitTorrent protocol"
CHECKER_PEER_ID_PREFIX = b"-SMCHK-"  # the tracker's checks show up under this client prefix
MAX_CONCURRENT_CHECKS = 64
DEFAULT_TIMEOUT = 5.0  # seconds for connecting and for the peer's handshake
DEFAULT_WINDOW = 900  # seconds a verdict stands, and the span of an address's check budget
DEFAULT_BUDGET = 4  # checks per address and window


def _host(ip: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip)


async def probe(ip: bytes, port: int, info_hash: bytes, timeout: float) -> bool:
    """Connect to `ip`:`port`, send a handshake for `info_hash`, and tell whether the peer answers
    with a handshake for the same torrent within `timeout` seconds."""
    handshake = HANDSHAKE_PREFIX + bytes(8) + info_hash + CHECKER_PEER_ID_PREFIX + os.urandom(13)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(_host(ip), port)
            writer.write(handshake)
            answer = await reader.readexactly(48)  # prefix, reserved bytes and infohash
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.transport.abort()  # nothing more to say; no lingering FIN handshake
    return answer.startswith(HANDSHAKE_PREFIX) and answer[28:48] == info_hash


class Reachability:
    """Verdicts on seeders' compact addresses (address + port), and the checks that make them."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT, window: int = DEFAULT_WINDOW, budget: int = DEFAULT_BUDGET
    ) -> None:
        if timeout <= 0 or window < 1 or budget < 1:
            raise ValueError("connect check timeout, window and budget must be positive")
        self.timeout = timeout
        self.window = window
        self.budget = budget
        self.verdicts: dict[bytes, tuple[bool, int]] = {}  # compact address -> (reachable, when)
        self.spent: dict[bytes, tuple[int, int]] = {}  # address -> (window start, checks in it)
        self.pending: dict[bytes, asyncio.Future[bool]] = {}
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        self.checks = 0  # connections opened, for tests and metrics

    def fresh(self, addr: bytes, now: int) -> bool | None:
        """The verdict on `addr` if one was made in the last `window` seconds."""
        verdict = self.verdicts.get(addr)
        if verdict is None or now - verdict[1] >= self.window:
            return None
        return verdict[0]

    def last(self, addr: bytes) -> bool | None:
        """The latest verdict on `addr`, however old."""
        verdict = self.verdicts.get(addr)
        return None if verdict is None else verdict[0]

    def may_check(self, addr: bytes, now: int) -> bool:
        """Whether a check of `addr` would start now: one is in flight, or the budget allows."""
        if addr in self.pending:
            return True
        start, count = self.spent.get(addr[:-2], (now, 0))
        return now - start >= self.window or count < self.budget

    async def check(self, addr: bytes, info_hash: bytes, now: int) -> bool | None:
        """Check `addr` (a compact address: the announcer's own address and port) for
        `info_hash`; joins a check already in flight. None when the address's budget is spent."""
        pending = self.pending.get(addr)
        if pending is not None:
            return await asyncio.shield(pending)
        ip = addr[:-2]
        start, count = self.spent.get(ip, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.budget:
            return None
        self.spent[ip] = (start, count + 1)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[addr] = future
        try:
            async with self.slots:
                self.checks += 1
                reachable = await probe(ip, int.from_bytes(addr[-2:], "big"), info_hash, self.timeout)
        except BaseException:
            future.cancel()  # the tracker is closing: whoever waits for this check stops too
            raise
        finally:
            del self.pending[addr]
        self.verdicts[addr] = (reachable, now)
        future.set_result(reachable)
        return reachable

    def reachable(self, addrs: Iterable[bytes]) -> int:
        """How many of these compact addresses were reachable when last checked."""
        verdicts = self.verdicts
        return sum(1 for addr in addrs if (verdict := verdicts.get(addr)) is not None and verdict[0])

    def prune(self, now: int, keep: int) -> None:
        """Forget verdicts older than `keep` seconds (peers listed no longer) and spent budgets."""
        self.verdicts = {a: v for a, v in self.verdicts.items() if now - v[1] < keep}
        self.spent = {a: s for a, s in self.spent.items() if now - s[0] < self.window}
