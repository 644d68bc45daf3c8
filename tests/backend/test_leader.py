"""Leadership on PostgreSQL: one instance of several runs the indexer and the oracle, and another
takes over when the leader's database session ends (killed, or cut off)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.db import Database
from backend.leader import Leadership, lead, lock_key
from backend.models import Purchase
from backend.runner import start_workers
from backend.services import Services
from backend.settings import Settings, load_settings
from tests.backend.helpers import Market, signed_receipt
from tests.backend.helpers import key as signer_key


@pytest.fixture
def databases(pg_database: str) -> Iterator[tuple[Database, Database]]:
    """Two engines on one PostgreSQL database, as two store instances would have."""
    first, second = Database(pg_database), Database(pg_database)
    yield first, second
    first.dispose()
    second.dispose()


@pytest.fixture
def key() -> int:
    """A lock key of a Marketplace of its own (other tests share the database server)."""
    return lock_key(31337, "0x" + secrets.token_hex(20))


def _terminate(pg_database: str, pid: int) -> None:
    """End a database session from outside, as a lost network or `pg_terminate_backend` does."""
    conninfo = make_url(pg_database).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it did not happen"
        time.sleep(0.05)


def test_only_one_instance_leads_until_its_session_ends(
    databases: tuple[Database, Database], key: int, pg_database: str
) -> None:
    first, second = (Leadership(db, key) for db in databases)
    assert first.try_acquire() and first.pid is not None
    assert not second.try_acquire()
    assert first.still_held()
    _terminate(pg_database, first.pid)
    _eventually(second.try_acquire)  # PostgreSQL released the lock with the session
    assert not first.still_held() and not first.held
    assert not first.try_acquire()
    second.release()
    assert first.try_acquire()
    first.release()


def test_a_store_of_another_marketplace_leads_on_its_own(
    databases: tuple[Database, Database], key: int
) -> None:
    mine = Leadership(databases[0], key)
    theirs = Leadership(databases[1], lock_key(31337, "0x" + secrets.token_hex(20)))
    assert mine.try_acquire() and theirs.try_acquire()
    mine.release()
    theirs.release()


def test_a_sqlite_store_needs_no_election(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Leadership(Database(f"sqlite:///{tmp_path}/store.db"), 1)


def test_the_workers_run_in_one_instance_and_move_when_the_leader_is_cut_off(
    databases: tuple[Database, Database], key: int, pg_database: str
) -> None:
    running: dict[str, threading.Event] = {}  # instance -> its workers' stop event, while running
    stop = threading.Event()
    leaderships = {name: Leadership(db, key) for name, db in zip(("a", "b"), databases, strict=True)}

    def starter(name: str) -> Callable[[threading.Event], list[threading.Thread]]:
        def start(stop_workers: threading.Event) -> list[threading.Thread]:
            running[name] = stop_workers
            worker = threading.Thread(target=stop_workers.wait, daemon=True)
            worker.start()
            return [worker]

        return start

    threads = [
        threading.Thread(target=lead, args=(leaderships[n], stop, starter(n), 0.1), daemon=True) for n in "ab"
    ]
    for thread in threads:
        thread.start()
    try:
        _eventually(lambda: len(running) == 1)
        (leader,) = running
        follower = "b" if leader == "a" else "a"
        pid = leaderships[leader].pid
        assert pid is not None
        _terminate(pg_database, pid)
        _eventually(lambda: follower in running)
        _eventually(running[leader].is_set)  # the old leader stopped its workers
        assert not running[follower].is_set()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert all(event.is_set() for event in running.values())


def _running(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == name and thread.is_alive())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_of_two_stores_on_one_database_one_posts_and_the_other_takes_over(
    settings: Settings, market: Market
) -> None:
    shared = load_settings(**{**settings.model_dump(), "epoch_length": 1})
    stores = [Services.open(shared), Services.open(shared)]
    workers = [start_workers(store, indexer=True, oracle=True) for store in stores]
    try:
        _eventually(lambda: any(w.leadership is not None and w.leadership.held for w in workers))
        first = next(i for i, w in enumerate(workers) if w.leadership is not None and w.leadership.held)
        assert (_running("oracle"), _running("indexer")) == (1, 1)

        product_id, _ = market.list_product(market.accounts[1])
        purchase = market.buy(market.accounts[2], product_id)
        store = stores[1 - first]  # receipts reach either instance
        _eventually(lambda: _indexed(store, purchase))
        receipt = signed_receipt(market.domain, purchase, market.accounts[3], 1000, signer_key(2))
        assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
        _eventually(lambda: _posted(market) == [1])

        workers[first].join()  # the leader stops (a crash is the test above): the other one leads
        _eventually(lambda: workers[1 - first].leadership is not None and workers[1 - first].leadership.held)
        _eventually(lambda: _running("oracle") == 1)
        purchase = market.buy(market.accounts[4], product_id)
        _eventually(lambda: _indexed(store, purchase))
        receipt = signed_receipt(market.domain, purchase, market.accounts[3], 1000, signer_key(4))
        assert store.sink().store_now([store.verifier().verify(receipt)])[0].status == "accepted"
        _eventually(lambda: _posted(market) == [1, 2])
    finally:
        for worker in workers:
            worker.join()
        for store in stores:
            store.close()


def _indexed(store: Services, purchase: int) -> bool:
    with store.db.reader() as session:
        return session.get(Purchase, purchase) is not None


def _posted(market: Market) -> list[int]:
    return [log["args"]["epoch"] for log in market.contract.events.RootPosted().get_logs(from_block=0)]
