"""A busy store with faults: load for minutes while its processes are killed and its chain stalls.

    python bench/soak.py [--duration 180] [--chain-stop 30] [--postgres URL]

Every part is a real process: anvil; `seedmarket tracker`; two `seedmarket serve --no-tracker
--no-seed` instances (API and pages; whichever holds the leader lock also runs the indexer, the
oracle and the keeper) on one PostgreSQL database; nginx in front of both as the store's one
address. The load comes from asyncio tasks here: shoppers browsing the catalog, product pages and
the JSON API; buyers buying on chain; clients announcing to the tracker with their passkeys;
seeders posting receipt batches.

The faults, once each, at fixed points of the run: SIGKILL of the leading instance, then of the
other one (which leads by then), then of the tracker, each restarted 2 s later; the chain node
stopped (SIGSTOP) for `--chain-stop` seconds; every database connection ended with
`pg_terminate_backend`.

Then the load stops and the store is given time to catch up, and the books are checked: every
receipt acknowledged to a seeder is in the database and in the last root; every purchase on chain
is indexed; each posted root is what `seedmarket verify-epoch` recomputes independently from the
chain and the published receipts; no root was posted twice (every root transaction the oracle sent
was mined as a RootPosted) and no leaf was paid twice (each account's Claimed amounts add up to its
last cumulative amount). It prints requests per second, p50/p99 and errors per interface (errors
during a fault are expected: the point is what is lost, which must be nothing) and ends with one
JSON line. `tests/backend/test_soak.py` runs a short version.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote_from_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from web3 import HTTPProvider, Web3
from web3.types import Wei

from backend.chain import ZERO_ADDRESS, load_abi
from backend.db import Database
from backend.models import Credit, Epoch, Purchase, StoredReceipt
from backend.passkeys import passkey_for
from bench._lib import drop_postgres, postgres_database
from dev.devnet import Anvil, deploy_marketplace, free_port
from dev.devstack import ANVIL_MINING, MANIFEST, dev_address, dev_key
from tracker.receipts import Domain, Receipt, SignedReceipt, sign_receipt, to_json

REPO = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ACCOUNTS = 100  # anvil's: 0 owner and oracle, 1-2 sellers, 3-6 seeders, 7 keeper, 9 store, 10- buyers
SELLERS, SEEDERS, KEEPER, STORE, FIRST_BUYER = (1, 2), (3, 4, 5, 6), 7, 9, 10
PRODUCTS = 4
SIZE = 8 * 2**20
PRICE = 10**16
LEADS = "this instance leads"
ERROR_PAUSE = 0.25  # a client that got an error waits this long before its next request
BOOT_SECONDS = 180.0  # a store process imports web3, FastAPI and SQLAlchemy before it listens

NGINX_CONF = """
master_process off;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    upstream store {{
        server 127.0.0.1:{first} max_fails=1 fail_timeout=3s;
        server 127.0.0.1:{second} max_fails=1 fail_timeout=3s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://store;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


# ----- the processes -----


@dataclass
class Service:
    """One long-running process of the store, restartable, logging to its own file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def leads(self) -> bool:
        """Whether the last leadership line in its log since its start says it leads."""
        text = self.log_path.read_text(errors="replace")
        return text.rfind(LEADS) > max(text.rfind("leadership lost"), text.rfind("==== started"))

    def mark(self, what: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"\n==== {what} {time.strftime('%H:%M:%S')}\n")


@dataclass
class Stack:
    """anvil, the Marketplace, PostgreSQL, the tracker, two store instances and nginx."""

    home: Path
    postgres: str
    anvil: Anvil | None = None
    database: str | None = None
    db_name: str | None = None
    contract: str = ""
    block: int = 0
    store_url: str = ""
    tracker_url: str = ""
    instances: list[Service] = field(default_factory=list)
    tracker: Service | None = None
    nginx: subprocess.Popen[bytes] | None = None
    health: dict[str, str] = field(default_factory=dict)  # service name -> a URL that answers when it is up

    def start(self) -> None:
        self.anvil = Anvil(extra=(*ANVIL_MINING, "--accounts", str(ACCOUNTS)))
        owner = self.anvil.accounts[0]
        deployed = deploy_marketplace(self.anvil.w3, MANIFEST, owner=owner, operator_fee_bps=2000)
        self.contract, self.block = deployed.address, deployed.block
        scratch = postgres_database(self.postgres)
        if scratch is None:
            raise SystemExit(f"PostgreSQL is not reachable at {self.postgres}")
        self.database, self.db_name = scratch
        Database(self.database).migrate()

        api_ports, tracker_port, port = (free_port(), free_port()), free_port(), free_port()
        self.store_url, self.tracker_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{tracker_port}"
        env = self._env(tracker_port)
        seedmarket = [sys.executable, "-m", "seedmarket"]
        self.tracker = Service("tracker", [*seedmarket, "tracker"], env, self.home / "tracker.log")
        for index, api_port in enumerate(api_ports):
            self.instances.append(
                Service(
                    f"store-{index + 1}",
                    [*seedmarket, "serve", "--no-tracker", "--no-seed", "--port", str(api_port)],
                    {**env, "SEEDMARKET_DATA_DIR": str(self.home / f"store-{index + 1}")},
                    self.home / f"store-{index + 1}.log",
                )
            )
        for service in (self.tracker, *self.instances):
            service.mark("started")
            service.start()
        nginx_home = self.home / "nginx"
        nginx_home.mkdir()
        (nginx_home / "nginx.conf").write_text(
            NGINX_CONF.format(home=nginx_home, first=api_ports[0], second=api_ports[1], port=port)
        )
        self.nginx = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(nginx_home),
                "-c",
                str(nginx_home / "nginx.conf"),
                "-e",
                str(nginx_home / "e.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.health = {
            "tracker": f"{self.tracker_url}/scrape",
            **{
                s.name: f"http://127.0.0.1:{p}/healthz"
                for s, p in zip(self.instances, api_ports, strict=True)
            },
        }
        _wait(
            lambda: all(_answers(url) for url in self.health.values()), "every service answers", BOOT_SECONDS
        )
        _wait(lambda: any(s.leads() for s in self.instances), "one store instance leads", BOOT_SECONDS)

    def _env(self, tracker_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "PYTHONUNBUFFERED": "1",
                "SEEDMARKET_ENVIRONMENT": "development",
                "SEEDMARKET_DATABASE_URL": str(self.database),
                "SEEDMARKET_RPC_URL": self.anvil.url if self.anvil else "",
                "SEEDMARKET_CHAIN_ID": "31337",
                "SEEDMARKET_CONTRACT_ADDRESS": self.contract,
                "SEEDMARKET_DEPLOYMENT_BLOCK": str(self.block),
                "SEEDMARKET_MANIFEST": str(MANIFEST),
                "SEEDMARKET_ORACLE_KEY": dev_key(0),
                "SEEDMARKET_KEEPER_KEY": dev_key(KEEPER),
                "SEEDMARKET_STORE_ACCOUNTS": _address(STORE),
                "SEEDMARKET_EPOCH_LENGTH": "4",
                "SEEDMARKET_SETTLE_AFTER": "15",
                "SEEDMARKET_CONFIRMATIONS": "0",
                "SEEDMARKET_POLL_INTERVAL": "0.5",
                "SEEDMARKET_TRACKER_PORT": str(tracker_port),
                "SEEDMARKET_TRACKER_CONNECT_CHECK": "false",
                "SEEDMARKET_PUBLIC_URL": self.store_url,
                "SEEDMARKET_TRACKER_URL": self.tracker_url,
                "SEEDMARKET_DATA_DIR": str(self.home / "tracker-data"),
            }
        )
        return env

    def leader(self) -> Service | None:
        return next((s for s in self.instances if s.process and s.process.poll() is None and s.leads()), None)

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(10)
        for service in (*self.instances, *([self.tracker] if self.tracker else [])):
            service.stop()
        if self.anvil is not None:
            with contextlib.suppress(ProcessLookupError):
                self.anvil.process.send_signal(signal.SIGCONT)
            self.anvil.stop()
        if self.db_name is not None:
            drop_postgres(self.postgres, self.db_name)


_address = functools.cache(dev_address)  # deriving from the mnemonic is slow; receipts need it often


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: {what}: not within {timeout:.0f} s")
        time.sleep(0.2)


# ----- the load -----


@dataclass
class Interface:
    """What one kind of client saw: latencies of answered requests, errors by kind."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def ok(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def figures(self, seconds: float) -> dict[str, Any]:
        done = sorted(self.latencies)
        return {
            "requests": len(done),
            "per_second": round(len(done) / seconds, 1),
            "p50_ms": round(1000 * done[len(done) // 2], 1) if done else None,
            "p99_ms": round(1000 * done[min(len(done) - 1, int(len(done) * 0.99))], 1) if done else None,
            "max_ms": round(1000 * done[-1], 1) if done else None,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
        }


@dataclass
class Books:
    """What the load did that the store must not lose."""

    purchases: dict[int, tuple[int, int]] = field(default_factory=dict)  # purchase id -> (buyer, product)
    acknowledged: dict[tuple[int, str], int] = field(default_factory=dict)  # (purchase, seeder) -> bytes
    sent: dict[tuple[int, str], int] = field(default_factory=dict)
    indexed: list[int] = field(default_factory=list)  # purchases the store has read from the chain


class Load:
    """The shoppers, buyers, announcing clients and seeders, until `stop`."""

    def __init__(self, stack: Stack, products: list[tuple[int, bytes]], db: Database) -> None:
        self.stack = stack
        self.products = products
        self.db = db
        self.books = Books()
        self.seen: dict[str, Interface] = defaultdict(Interface)
        self.stop = asyncio.Event()
        assert stack.anvil is not None
        self.w3 = Web3(HTTPProvider(stack.anvil.url, request_kwargs={"timeout": 10}))
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(stack.contract), abi=load_abi(MANIFEST)
        )
        self.domain = Domain(31337, bytes.fromhex(stack.contract[2:]))
        self.keys = {i: bytes.fromhex(dev_key(i)[2:]) for i in range(FIRST_BUYER, ACCOUNTS)}
        self.passkeys: dict[int, str] = {}
        self.to_buy = [(b, p) for p in range(len(products)) for b in range(FIRST_BUYER, ACCOUNTS)]
        random.Random(7).shuffle(self.to_buy)

    async def _timed(self, interface: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            answer = await call
        except (httpx.HTTPError, OSError) as exc:
            self.seen[interface].error(type(exc).__name__)
            await asyncio.sleep(ERROR_PAUSE)
            return None
        if isinstance(answer, httpx.Response) and answer.status_code >= 500:
            self.seen[interface].error(f"HTTP {answer.status_code}")
            await asyncio.sleep(ERROR_PAUSE)
            return None
        self.seen[interface].ok(time.perf_counter() - started)
        return answer

    async def shopper(self, client: httpx.AsyncClient) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            product_id, _ = rng.choice(self.products)
            path = rng.choice(["/", f"/item/{product_id}", "/products", f"/products/{product_id}"])
            await self._timed("store pages and API", client.get(self.stack.store_url + path))

    async def buyer(self) -> None:
        while not self.stop.is_set() and self.to_buy:
            buyer, product = self.to_buy.pop()
            product_id, _ = self.products[product]
            await self._timed("chain purchases", asyncio.to_thread(self._buy, buyer, product_id))
            await asyncio.sleep(0.3)

    def _buy(self, buyer: int, product_id: int) -> int:
        account = _address(buyer)
        version = int(self.contract.functions.product(product_id).call()[5])
        tx = self.contract.functions.purchase(product_id, ZERO_ADDRESS, PRICE, version).transact(
            {"from": Web3.to_checksum_address(account), "value": Wei(PRICE)}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise OSError("purchase reverted")
        purchase_id = int(self.contract.functions.purchaseOf(product_id, account).call())
        self.books.purchases[purchase_id] = (buyer, product_id)
        return purchase_id

    async def follower(self) -> None:
        """Which purchases the store has indexed: a client announces only once it has its torrent,
        which the store hands out once it has seen the purchase."""

        def read() -> list[int]:
            with self.db.reader() as session:
                return [p for p in session.scalars(select(Purchase.id)) if p in self.books.purchases]

        while not self.stop.is_set():
            with contextlib.suppress(Exception):  # the database is cut off on purpose at one point
                self.books.indexed = await asyncio.to_thread(read)
            await asyncio.sleep(1)

    async def announcer(self, client: httpx.AsyncClient) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            if not self.books.indexed:
                await asyncio.sleep(0.2)
                continue
            buyer, product_id = self.books.purchases[rng.choice(self.books.indexed)]
            if buyer not in self.passkeys:
                self.passkeys[buyer] = await asyncio.to_thread(passkey_for, self.db, _address(buyer))
            infohash = self.products[product_id - self.products[0][0]][1]
            query = (
                f"info_hash={quote_from_bytes(infohash)}&peer_id=-SM0001-{buyer:012d}&port={10000 + buyer}"
                f"&uploaded=0&downloaded=0&left={SIZE}&compact=1"
            )
            url = f"{self.stack.tracker_url}/{self.passkeys[buyer]}/announce?{query}"
            answer = await self._timed("tracker announces", client.get(url))
            if answer is not None and b"failure reason" in answer.content:
                self.seen["tracker announces"].error("refused")

    async def seeder(self, client: httpx.AsyncClient) -> None:
        """Receipt batches, as seeders' submitters send them: each one's bytes grow."""
        rng = random.Random()
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
            if not self.books.purchases:
                continue
            batch: list[tuple[tuple[int, str], SignedReceipt]] = []
            for purchase_id in rng.sample(list(self.books.purchases), min(20, len(self.books.purchases))):
                buyer, _ = self.books.purchases[purchase_id]
                seeder = _address(rng.choice(SEEDERS))
                pair = (purchase_id, seeder.lower())
                count = min(SIZE, self.books.sent.get(pair, 0) + rng.randrange(1, 2**20))
                self.books.sent[pair] = count
                receipt = Receipt(purchase_id, bytes.fromhex(seeder[2:]), count)
                batch.append(
                    (pair, SignedReceipt(receipt, sign_receipt(self.domain, receipt, self.keys[buyer])))
                )
            body = json.dumps({"receipts": [to_json(signed) for _, signed in batch]})
            answer = await self._timed(
                "receipt batches",
                client.post(
                    f"{self.stack.tracker_url}/receipts",
                    content=body,
                    headers={"Content-Type": "application/json"},
                ),
            )
            if answer is None or answer.status_code != 200:
                continue
            for (pair, signed), result in zip(batch, answer.json()["results"], strict=True):
                if result["status"] in ("accepted", "clipped"):
                    held = self.books.acknowledged.get(pair, 0)
                    self.books.acknowledged[pair] = max(held, signed.receipt.byte_count)

    async def run(self, seconds: float, faults: Faults) -> float:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            tasks = [
                *(asyncio.create_task(self.shopper(client)) for _ in range(6)),
                *(asyncio.create_task(self.announcer(client)) for _ in range(3)),
                *(asyncio.create_task(self.seeder(client)) for _ in range(2)),
                asyncio.create_task(self.buyer()),
                asyncio.create_task(self.follower()),
            ]
            started = time.perf_counter()
            # The load goes on for `seconds`, and at least until the faults are over.
            await asyncio.gather(asyncio.sleep(seconds), faults.run(seconds))
            await asyncio.sleep(2)
            self.stop.set()
            await asyncio.gather(*tasks)
            return time.perf_counter() - started


# ----- the faults -----


class Faults:
    """Kill -9 the leader, the other instance and the tracker; stall the chain; cut the database."""

    def __init__(self, stack: Stack, chain_stop: float, *, overlap: bool) -> None:
        self.stack = stack
        self.chain_stop = chain_stop
        self.overlap = overlap  # the next fault may come before the last one's process is back
        self.log: list[str] = []

    def _note(self, what: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {what}")
        print(f"  fault: {what}", flush=True)

    async def _kill_and_restart(self, service: Service, health: str) -> None:
        """SIGKILL, a restart 2 s later, and wait until it answers again."""
        self._note(f"kill -9 {service.name}{' (the leader)' if service.leads() else ''}")
        await asyncio.to_thread(service.kill)
        await asyncio.sleep(2)
        service.mark("started")
        service.start()
        if self.overlap:
            return
        started = time.monotonic()
        await asyncio.to_thread(_wait, lambda: _answers(health), f"{service.name} restarts", BOOT_SECONDS)
        self._note(f"{service.name} answers again after {time.monotonic() - started:.1f} s")

    async def run(self, seconds: float) -> None:
        at = [seconds * f for f in (0.1, 0.25, 0.4, 0.5, 0.8)]
        started = time.monotonic()

        async def until(moment: float) -> None:
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))

        await until(at[0])
        first = self.stack.leader() or self.stack.instances[0]
        await self._kill_and_restart(first, self.stack.health[first.name])
        await until(at[1])
        other = next(s for s in self.stack.instances if s is not first)
        await self._kill_and_restart(other, self.stack.health[other.name])
        await until(at[2])
        assert self.stack.tracker is not None
        await self._kill_and_restart(self.stack.tracker, self.stack.health["tracker"])
        await until(at[3])
        assert self.stack.anvil is not None
        self._note(f"chain node stopped for {self.chain_stop:.0f} s")
        self.stack.anvil.process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(self.chain_stop)
        self.stack.anvil.process.send_signal(signal.SIGCONT)
        self._note("chain node continues")
        await until(max(at[4], time.monotonic() - started))
        ended = await asyncio.to_thread(self._terminate_connections)
        self._note(f"pg_terminate_backend: {ended} database connections ended")

    def _terminate_connections(self) -> int:
        admin = (
            make_url(self.stack.postgres).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        with psycopg.connect(admin, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.stack.db_name,),
            ).fetchall()
        return len(rows)


# ----- the books -----


def _posted_roots(load: Load, last: int) -> list[tuple[int, str, str]]:
    events = load.contract.events.RootPosted().get_logs(from_block=load.stack.block, to_block=last)
    return [
        (e["args"]["epoch"], "0x" + e["args"]["root"].hex(), Web3.to_hex(e["transactionHash"]))
        for e in events
    ]


def _oracle_root_transactions(load: Load, last: int) -> int:
    """Transactions the oracle's account sent to postRoot, mined or reverted."""
    oracle = _address(0).lower()
    selector = load.contract.functions.postRoot(b"\0" * 32, 1, [], [], "")._encode_transaction_data()[:10]
    count = 0
    for number in range(load.stack.block, last + 1):
        transactions: list[Any] = list(load.w3.eth.get_block(number, full_transactions=True)["transactions"])
        for tx in transactions:
            if str(tx["from"]).lower() == oracle and Web3.to_hex(tx["input"]).startswith(selector):
                count += 1
    return count


def _receipt_ids(load: Load, acknowledged: dict[tuple[int, str], int]) -> dict[tuple[int, str], int | None]:
    """For each acknowledged (purchase, seeder): the first stored receipt reaching its bytes."""
    found: dict[tuple[int, str], int | None] = dict.fromkeys(acknowledged)
    with load.db.reader() as session:
        for row in session.execute(
            select(
                StoredReceipt.id, StoredReceipt.purchase_id, StoredReceipt.seeder, StoredReceipt.signed_bytes
            ).order_by(StoredReceipt.id)
        ):
            pair = (row.purchase_id, row.seeder)
            if pair in found and found[pair] is None and row.signed_bytes >= acknowledged[pair]:
                found[pair] = row.id
    return found


def _newest_posted_cut(load: Load) -> tuple[int | None, int]:
    """The newest epoch whose root is on chain, and its receipt cut."""
    with load.db.reader() as session:
        epoch = session.scalars(
            select(Epoch).where(Epoch.status == "posted").order_by(Epoch.number.desc()).limit(1)
        ).first()
        return (None, 0) if epoch is None else (epoch.number, epoch.receipt_cut)


def check_books(load: Load, settle_seconds: float) -> dict[str, Any]:
    """Wait for the store to catch up, then compare what it holds with what the load did."""
    stack, books = load.stack, load.books
    on_chain = {
        int(e["args"]["purchaseId"])
        for e in load.contract.events.Purchased().get_logs(from_block=stack.block)
    }

    def indexed() -> set[int]:
        with load.db.reader() as session:
            return set(session.scalars(select(Purchase.id)))

    deadline = time.monotonic() + settle_seconds
    while not on_chain <= indexed() and time.monotonic() < deadline:
        time.sleep(0.5)
    missing_purchases = sorted(on_chain - indexed())

    with load.db.reader() as session:
        credits = {(c.purchase_id, c.seeder): c.signed_bytes for c in session.scalars(select(Credit))}
    lost_receipts = sorted(pair for pair, count in books.acknowledged.items() if credits.get(pair, 0) < count)

    # Every acknowledged receipt must count in a root: the newest posted epoch's receipt cut must
    # reach, for each (purchase, seeder), the first stored receipt with the acknowledged bytes.
    needed = _receipt_ids(load, books.acknowledged)
    not_in_root = sorted(pair for pair, rid in needed.items() if rid is None)
    newest: int | None = None
    while time.monotonic() < deadline:
        newest, cut = _newest_posted_cut(load)
        if newest is not None and all(rid is not None and rid <= cut for rid in needed.values()):
            break
        time.sleep(1)
    newest, cut = _newest_posted_cut(load)
    not_in_root = sorted(pair for pair, rid in needed.items() if rid is None or rid > cut)

    last = load.w3.eth.block_number
    roots = _posted_roots(load, last)

    def verified(epoch: int) -> bool:
        command = ["verify-epoch", str(epoch), "--store", stack.store_url, "--json"]
        result = subprocess.run(
            [sys.executable, "-m", "seedmarket", *command],
            env=stack.instances[0].env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return result.returncode == 0

    epochs_posted = [epoch for epoch, _, _ in roots]
    with ThreadPoolExecutor(4) as pool:  # each is a process of its own: as a user would run it
        audits = dict(zip(epochs_posted, pool.map(verified, epochs_posted), strict=True))
    root_transactions = _oracle_root_transactions(load, last)

    claimed: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for event in load.contract.events.Claimed().get_logs(from_block=stack.block):
        args = event["args"]
        claimed[(args["account"], args["token"])].append((int(args["amount"]), int(args["cumulativeAmount"])))
    paid_twice = sorted(
        f"{account}/{token}"
        for (account, token), paid in claimed.items()
        if sum(a for a, _ in paid) != paid[-1][1] or any(b[1] <= a[1] for a, b in itertools.pairwise(paid))
    )
    return {
        "purchases_on_chain": len(on_chain),
        "purchases_not_indexed": len(missing_purchases),
        "receipts_acknowledged": len(books.acknowledged),
        "receipts_lost": len(lost_receipts),
        "receipts_not_in_last_root": len(not_in_root),
        "last_root_epoch": newest,
        "roots_posted": len(roots),
        "roots_verified": sum(audits.values()),
        "roots_twice": len(epochs_posted) - len(set(epochs_posted)) + (root_transactions - len(roots)),
        "payouts": sum(len(p) for p in claimed.values()),
        "paid_twice": len(paid_twice),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    parser.add_argument("--chain-stop", type=float, default=30.0, help="seconds the chain node stands still")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds the store may take to catch up")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="do not wait for a killed process to be back before the next fault",
    )
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="seedmarket-soak-"))
    stack = Stack(home, args.postgres)
    print(f"soak: logs in {home}", flush=True)
    ok = False
    try:
        stack.start()
        assert stack.anvil is not None and stack.database is not None
        db = Database(stack.database)
        w3, contract = (
            stack.anvil.w3,
            stack.anvil.w3.eth.contract(
                address=Web3.to_checksum_address(stack.contract), abi=load_abi(MANIFEST)
            ),
        )
        products = []
        for index in range(PRODUCTS):
            infohash = os.urandom(20)
            seller = stack.anvil.accounts[SELLERS[index % len(SELLERS)]]
            tx = contract.functions.listProduct(
                infohash.ljust(32, b"\0"), SIZE, ZERO_ADDRESS, PRICE, 2000, "ipfs://soak"
            ).transact({"from": seller})
            w3.eth.wait_for_transaction_receipt(tx)
            products.append((int(contract.functions.productCount().call()), infohash))
        load = Load(stack, products, db)
        faults = Faults(stack, args.chain_stop, overlap=args.overlap)
        print(f"soak: {args.duration:.0f} s of load on {stack.store_url} and {stack.tracker_url}", flush=True)
        seconds = asyncio.run(load.run(args.duration, faults))
        books = check_books(load, args.settle)
        interfaces = {name: seen.figures(seconds) for name, seen in sorted(load.seen.items())}
        for name, figures in interfaces.items():
            print(
                f"  {name:22} {figures['per_second']:8.1f}/s  p50 {figures['p50_ms']} ms  "
                f"p99 {figures['p99_ms']} ms  max {figures['max_ms']} ms  "
                f"errors {figures['errors']} {figures['error_kinds'] or ''}"
            )
        for name, value in books.items():
            print(f"  {name:28} {value}")
        lost = (
            books["purchases_not_indexed"]
            + books["receipts_lost"]
            + books["receipts_not_in_last_root"]
            + (books["roots_posted"] - books["roots_verified"])
            + books["roots_twice"]
            + books["paid_twice"]
        )
        ok = lost == 0 and books["roots_posted"] > 0
        print(
            json.dumps(
                {
                    "name": "soak",
                    "ours": sum(f["per_second"] for f in interfaces.values()),
                    "peer": None,
                    "ratio": None,
                    "unit": "requests/s held through the faults (all interfaces)",
                    "seconds": round(seconds, 1),
                    "faults": faults.log,
                    "interfaces": interfaces,
                    "books": books,
                    "lost": lost,
                }
            ),
            flush=True,
        )
        db.dispose()
    finally:
        stack.stop()
        if ok and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
