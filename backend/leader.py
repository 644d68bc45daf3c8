"""Which of several store processes on one PostgreSQL database runs the indexer, the oracle and
the keeper.

Any number of `seedmarket serve` may share a database: all serve the API, the pages and the
tracker, but the indexer, the oracle and the keeper must run in one of them at a time (two oracles
would race for the same epoch, two keepers for the same nonces). A keeper overlapping another in
the window below pays nothing twice either: the contract skips a leaf already paid up. The leader
is whoever holds a PostgreSQL session-level advisory lock (`pg_try_advisory_lock`) on a connection
of its own: PostgreSQL releases it when that connection ends, so a leader killed with SIGKILL, or
cut off from the database, lets another instance take over at its next try, after at most `retry`
seconds. A leader that loses its connection notices at its next check (within `retry` seconds) and
stops its workers; in that window two oracles may overlap, which the oracle survives as it survives
a crash: an epoch number is taken once (`epoch N exists already`), its signed transaction is stored
before it is sent, and the contract accepts only its last epoch + 1, so nothing is posted twice.

The lock's key is derived from the chain and the contract, so stores of different Marketplaces
may share one database server. SQLite has a single writer machine by design: no election there.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from backend.db import Database

log = logging.getLogger(__name__)


STEP_BACK_ROUNDS = 5  # retries a leader that lost its lock waits before it tries to lead again


def lock_key(chain_id: int, contract: str) -> int:
    """The advisory lock's key (a signed 64-bit integer) for one Marketplace."""
    digest = hashlib.sha256(f"seedmarket-leader:{chain_id}:{contract.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Tries to become leader; holds the lock on its own connection while it is."""

    def __init__(self, db: Database, key: int) -> None:
        if db.is_sqlite:
            raise ValueError("leadership needs PostgreSQL; a SQLite store is the only one on its file")
        self.db = db
        self.key = key
        self._connection: Connection | None = None
        self.pid: int | None = None  # the database backend holding our lock, while we lead

    @property
    def held(self) -> bool:
        """Whether this instance believes it leads (checked by `still_held`)."""
        return self._connection is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this instance leads now."""
        if self._connection is not None:
            return True
        try:
            connection = self.db.engine.connect()
        except DBAPIError as exc:
            log.warning("leader election: database unreachable (%s)", type(exc).__name__)
            return False
        try:
            won, pid = connection.execute(
                text("SELECT pg_try_advisory_lock(:k), pg_backend_pid()"), {"k": self.key}
            ).one()
            connection.commit()  # the lock is the session's, not the transaction's
        except DBAPIError:
            connection.invalidate()
            connection.close()
            return False
        if not won:
            connection.close()
            return False
        self._connection, self.pid = connection, int(pid)
        log.info("this instance leads (database backend %d): it runs the indexer and the oracle", pid)
        return True

    def still_held(self) -> bool:
        """Ask the database whether our lock is still ours (false once the connection is gone)."""
        connection = self._connection
        if connection is None:
            return False
        try:
            # A session-level lock lasts as long as its session: a live connection still holds it.
            connection.execute(text("SELECT 1"))
            connection.commit()
            alive = True
        except DBAPIError:
            alive = False
        if not alive:
            self._drop()
            log.warning("leadership lost: the lock's connection ended")
            return False
        return True

    def release(self) -> None:
        """Give the lock back (stepping down cleanly)."""
        connection = self._connection
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            connection.commit()
        except DBAPIError:
            pass  # the connection is gone: so is the lock
        self._drop()

    def _drop(self) -> None:
        connection, self._connection, self.pid = self._connection, None, None
        if connection is not None:
            try:
                connection.invalidate()  # never back into the pool holding (or having held) the lock
                connection.close()
            except DBAPIError:
                pass


def lead(
    leadership: Leadership,
    stop: threading.Event,
    start: Callable[[threading.Event], list[threading.Thread]],
    retry: float,
) -> None:
    """Until `stop`: become leader, run `start(stop_workers)`'s threads while leading, and stop
    them (and wait for them) as soon as leadership is lost."""
    lost = False
    while not stop.is_set():
        # An instance that just lost the lock (its connection was cut) steps back for a few rounds,
        # so that a healthy one takes over instead of the one whose database link just failed.
        if lost:
            lost = False
            stop.wait(retry * STEP_BACK_ROUNDS)
            continue
        if not leadership.try_acquire():
            stop.wait(retry)
            continue
        stop_workers = threading.Event()
        threads = start(stop_workers)
        try:
            while not stop.wait(retry):
                if not leadership.still_held():
                    lost = True
                    break
                if not any(t.is_alive() for t in threads):
                    break
        finally:
            stop_workers.set()
            for thread in threads:
                thread.join(30)
            leadership.release()
