"""Helpers of the end-to-end tests: users of the `seedmarket` CLI, the chain's books read from
blocks and events, an independent settlement of a published epoch, and libtorrent peers.

The settlement here is written from docs/ARCHITECTURE.md alone (signatures checked with eth-account's own
EIP-712 encoder, amounts with the rule floor(P * b_s / L)); it imports nothing of the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import libtorrent as lt
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import BlockIdentifier

from dev.devcli import SEEDMARKET, Cli
from dev.devstack import DevStack, dev_address, dev_key
from tests.conftest import REPO

ETH = "0x0000000000000000000000000000000000000000"
MANIFEST = REPO / ".build" / "__local__.json"
SEPOLIA_CHAIN_ID = 11155111
STORE, SELLER = 0, 1  # anvil's development accounts: the operator (oracle, treasury, store seed)
PRICE = "0.01"
CONTENT_BYTES = 3 * 2**20 + 4321  # several pieces, well inside one credit window
# Short enough for a test, long enough that each download's receipts are in before its purchase
# freezes: every purchase here freezes within the test, so the unearned-remainder rule applies.
EPOCH_SECONDS = 4
EPOCH_WAIT = 120.0  # seconds for the oracle to post a root and for it to become active
ROOT_DELAY = 2
SETTLE_AFTER = 25
LONG_WINDOW = 86_400  # a settlement window no test outlasts


def until(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def digest(folder: Path) -> str:
    """SHA-256 over every file under `folder` (relative paths and contents, in sorted order)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


# ----- users of the CLI -----


# ----- the chain's books -----


def marketplace_abi() -> list[dict[str, Any]]:
    """The compiled Marketplace's ABI."""
    abi: list[dict[str, Any]] = json.loads(MANIFEST.read_text())["contractTypes"]["Marketplace"]["abi"]
    return abi


@dataclass(frozen=True)
class Purchase:
    """A purchase as its `Purchased` event tells it, with its product's length."""

    purchase_id: int
    product_id: int
    buyer: str
    token: str
    price: int
    seller_amount: int
    operator_fee: int
    seeder_pool: int
    size: int
    block: int
    timestamp: int


class Books:
    """What the chain says happened: events of the Marketplace and the transactions of accounts."""

    def __init__(self, rpc: str, contract: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        self.market = self.w3.eth.contract(address=to_checksum_address(contract), abi=marketplace_abi())

    @property
    def head(self) -> int:
        """The newest block number."""
        return int(self.w3.eth.block_number)

    def balance(self, account: str, block: BlockIdentifier = "latest") -> int:
        """ETH held by `account` at `block`."""
        return int(self.w3.eth.get_balance(to_checksum_address(account), block))

    def balances(self, accounts: Iterable[str], block: BlockIdentifier = "latest") -> dict[str, int]:
        """ETH held by each account at `block`."""
        return {to_checksum_address(a): self.balance(a, block) for a in accounts}

    def events(self, name: str, first: int = 0, last: int | str = "latest") -> list[Any]:
        """Every `name` event of the Marketplace in blocks first..last."""
        event = getattr(self.market.events, name)()
        return list(event.get_logs(from_block=first, to_block=last))

    def view(self, name: str, *args: Any) -> Any:
        """Call one of the Marketplace's views."""
        return getattr(self.market.functions, name)(*args).call()

    def purchases(self, last: int | str = "latest") -> dict[int, Purchase]:
        """Every purchase up to block `last`."""
        sizes = {int(e.args.productId): int(e.args.size) for e in self.events("ProductListed")}
        found = {}
        for e in self.events("Purchased", 0, last):
            a = e.args
            found[int(a.purchaseId)] = Purchase(
                int(a.purchaseId),
                int(a.productId),
                to_checksum_address(a.buyer),
                to_checksum_address(a.token),
                int(a.price),
                int(a.sellerAmount),
                int(a.operatorFee),
                int(a.seederPool),
                sizes[int(a.productId)],
                int(e.blockNumber),
                int(self.w3.eth.get_block(e.blockNumber)["timestamp"]),
            )
        return found

    def spending(self, accounts: Iterable[str], first: int, last: int) -> dict[str, tuple[int, int]]:
        """Per account, (value sent, gas paid) by its transactions mined in blocks first..last, gas
        as each receipt charged it (gasUsed * effectiveGasPrice)."""
        wanted = {to_checksum_address(a) for a in accounts}
        spent: dict[str, tuple[int, int]] = {a: (0, 0) for a in wanted}
        for number in range(first, last + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                assert not isinstance(tx, bytes)  # full transactions, not hashes
                sender = to_checksum_address(tx["from"])
                if sender not in wanted:
                    continue
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                value, gas = spent[sender]
                spent[sender] = (
                    value + int(tx["value"]),
                    gas + receipt["gasUsed"] * receipt["effectiveGasPrice"],
                )
        return spent


# ----- settlement, recomputed from docs/ARCHITECTURE.md -----

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_RECEIPT_FIELDS = [
    {"name": "purchaseId", "type": "uint256"},
    {"name": "seeder", "type": "address"},
    {"name": "bytes", "type": "uint64"},
]
_KEY_FIELDS = [
    {"name": "purchaseId", "type": "uint256"},
    {"name": "key", "type": "address"},
    {"name": "expires", "type": "uint64"},
]


def _signer(chain_id: int, contract: str, kind: str, message: dict[str, Any], signature: str) -> str:
    fields = _RECEIPT_FIELDS if kind == "Receipt" else _KEY_FIELDS
    typed = {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, kind: fields},
        "primaryType": kind,
        "domain": {"name": "seedmarket", "version": "1", "chainId": chain_id, "verifyingContract": contract},
        "message": message,
    }
    return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))


def receipt_signer(entry: dict[str, Any], chain_id: int, contract: str) -> str:
    """The buyer a published receipt speaks for: its signer, or the wallet that authorised the
    session key that signed it (the key must not have expired when the receipt was accepted)."""
    signer = _signer(
        chain_id,
        contract,
        "Receipt",
        {"purchaseId": entry["purchase"], "seeder": entry["seeder"], "bytes": entry["bytes"]},
        entry["sig"],
    )
    key = entry.get("key")
    if key is None:
        return signer
    assert to_checksum_address(key["key"]) == signer, "a receipt signed by another key than it names"
    assert int(key["expires"]) > int(entry["acceptedAt"]), "a receipt accepted after its key expired"
    return _signer(
        chain_id,
        contract,
        "ReceiptKey",
        {"purchaseId": entry["purchase"], "key": key["key"], "expires": key["expires"]},
        key["sig"],
    )


Leaves = dict[tuple[str, str], int]  # (account, token) -> cumulative amount, checksummed


def settle(publication: dict[str, Any], purchases: dict[int, Purchase]) -> Leaves:
    """An epoch's leaves from the chain's purchases and the epoch's published receipts: seeder s
    of a purchase with pool P and length L earns floor(P * b_s / L); a purchase frozen after
    its settlement window gives the part nobody earned to the store's account."""
    chain_id, contract = int(publication["chainId"]), to_checksum_address(publication["contract"])
    # A v2 publication builds on the settled totals of an earlier epoch: its purchases are in them.
    base = publication.get("base")
    included = {
        pid: p
        for pid, p in purchases.items()
        if p.block <= int(publication["block"]) and not settled_before(publication, pid)
    }
    received: dict[int, dict[str, int]] = defaultdict(dict)
    for entry in publication["receipts"]:
        purchase = included[int(entry["purchase"])]
        seeder: str = to_checksum_address(entry["seeder"])
        assert receipt_signer(entry, chain_id, contract) == purchase.buyer, f"not the buyer's: {entry}"
        assert seeder != purchase.buyer, "a buyer paid itself"
        assert seeder not in received[purchase.purchase_id], "two receipts for one seeder"
        # In an honest swarm nothing is clipped: every byte signed for is credited.
        assert int(entry["credited"]) == int(entry["bytes"]), f"clipped: {entry}"
        received[purchase.purchase_id][seeder] = int(entry["bytes"])
    leaves: Leaves = defaultdict(int)
    for account, token, amount in base["totals"] if base else []:
        leaves[(to_checksum_address(account), to_checksum_address(token))] += int(amount)
    frozen: dict[int, str] = {
        int(f["purchase"]): to_checksum_address(f["recipient"]) for f in publication["frozen"]
    }
    for pid, purchase in included.items():
        assert sum(received[pid].values()) <= purchase.size, f"purchase {pid} paid for more than its length"
        paid = 0
        for seeder, count in received[pid].items():
            amount = purchase.seeder_pool * count // purchase.size
            leaves[(seeder, purchase.token)] += amount
            paid += amount
        if pid in frozen:
            assert purchase.timestamp <= int(publication["cutoff"]) - int(publication["settleAfter"])
            leaves[(frozen[pid], purchase.token)] += purchase.seeder_pool - paid
    return {key: amount for key, amount in leaves.items() if amount > 0}


def settled_before(publication: dict[str, Any], purchase_id: int) -> bool:
    """Whether a purchase's payout is in the settled totals the publication builds on."""
    base = publication.get("base")
    return bool(base) and (purchase_id < int(base["openFrom"]) or purchase_id in base["frozenAbove"])


def frozen_count(publication: dict[str, Any]) -> int:
    """How many purchases are frozen as of the epoch (ids start at 1), in the base or new."""
    base = publication.get("base")
    before = int(base["openFrom"]) - 1 + len(base["frozenAbove"]) if base else 0
    return before + len(publication["frozen"])


def published_leaves(publication: dict[str, Any]) -> Leaves:
    """The leaves in the published tree dump."""
    return {
        (to_checksum_address(account), to_checksum_address(token)): int(amount)
        for account, token, amount in (v["value"] for v in publication["tree"]["values"])
    }


# ----- a running store -----


@dataclass
class Store:
    """A running store with one product listed by its seller, and the chain's books."""

    stack: DevStack
    product_id: int
    content: Path  # the seller's copy
    books: Books
    start_block: int  # before the seller listed: every transaction since is in the accounting
    users: list[Cli] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The store's API and pages."""
        return self.stack.store_url

    def user(self, name: str, account: int | None = None) -> Cli:
        """A CLI user with its own home; with `account`, that development key imported as `name`."""
        cli = Cli(self.stack.data_dir / "users" / name, self.stack.store_url, self.stack.rpc)
        if account is not None:
            assert cli.import_wallet(name, dev_key(account)) == dev_address(account)
        self.users.append(cli)
        return cli


def sample(folder: Path) -> Path:
    """The product: a folder with a text and some random data."""
    root = folder / "e2e-album"
    root.mkdir(parents=True)
    (root / "README.txt").write_text("An album sold by the end-to-end tests.\n")
    (root / "tracks.bin").write_bytes(os.urandom(CONTENT_BYTES))
    return root


# ----- the store over HTTP -----


def store_get(store: str, path: str) -> Any:
    """GET a public JSON resource of the store."""
    response = httpx.get(f"{store}{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def seeders(store: str, product_id: int) -> int:
    """Seeders in a product's swarm, as the store's tracker counts them."""
    return int(store_get(store, f"/products/{product_id}/health")["seeders"])


# ----- libtorrent, an ordinary client -----


def lt_seed(session: lt.session, torrent: bytes, folder: Path) -> lt.torrent_handle:
    """Seed `torrent` from the content under `folder` (checked first)."""
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = str(folder)
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    until(lambda: handle.status().is_seeding, "libtorrent to check the content and seed it", 60, 0.2)
    return handle


# ----- the store's process -----


def store_process(stack: DevStack) -> subprocess.Popen[bytes]:
    """The stack's `seedmarket serve` process."""
    return next(process for name, process in stack.processes if name == "store")


@contextlib.contextmanager
def store_hung(stack: DevStack) -> Iterator[None]:
    """The store stops answering (SIGSTOP: connections are accepted, nothing is answered) and
    comes back where it was (SIGCONT)."""
    group = os.getpgid(store_process(stack).pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def stop_store(stack: DevStack) -> None:
    """Stop `seedmarket serve` (SIGTERM, as a deployment would) and wait for it to exit."""
    process = store_process(stack)
    process.terminate()
    process.wait(timeout=30)
    stack.processes.remove(("store", process))


def start_store(stack: DevStack) -> None:
    """Start `seedmarket serve` again on the same data, ports and chain."""
    stack.spawn("store", [*SEEDMARKET, "serve"])
    stack.wait_for_store()


# ----- the end of the story -----


def settled_epoch(store: Store, expected: dict[tuple[int, str], int], frozen: int = 0) -> dict[str, Any]:
    """Wait until the chain's active root is an epoch whose published receipts are exactly
    `expected` ((purchase, seeder) -> bytes, what the downloaders' clients signed) and which has
    frozen `frozen` purchases; that epoch's publication."""

    def ready() -> dict[str, Any] | None:
        _, number = store.books.view("activeRoot")
        if number == 0:
            return None
        publication: dict[str, Any] = store_get(store.url, f"/epochs/{number}/data")
        signed = {(r["purchase"], r["seeder"]): r["bytes"] for r in publication["receipts"]}
        wanted = {k: v for k, v in expected.items() if not settled_before(publication, k[0])}
        return publication if signed == wanted and frozen_count(publication) == frozen else None

    found: dict[str, Any] = until(ready, "an active root with every receipt in", EPOCH_WAIT, 1.0)
    return found


def check_the_books(store: Store, start: dict[str, int], leaves: Leaves, *, purchases: int) -> None:
    """To the wei, from the chain alone: every account in `start` (balances at the store's start
    block) holds what it had, less the prices it paid and the gas its transactions burnt, plus
    what settlement gave it; the seller's and the treasury's withdrawable balances are their
    shares of the purchases; the contract holds exactly what it still owes."""
    books = store.books
    head = books.head
    bought = books.purchases()
    assert len(bought) == purchases
    spent = books.spending(start, store.start_block + 1, head)
    for address, before in start.items():
        paid = sum(p.price for p in bought.values() if p.buyer == address)
        earned = leaves.get((address, ETH), 0)
        value, gas = spent[address]
        assert value == paid, f"{address} sent {value} wei besides gas, bought for {paid}"
        assert books.view("claimed", address, ETH) == earned, f"{address} has not claimed its leaf"
        assert books.balance(address, head) == before - paid - gas + earned, f"the balance of {address}"
    # docs/ARCHITECTURE.md's split: pool = price * discount; the operator's fee is its share of the pool.
    fee_bps = books.view("operatorFeeBps")
    products = {pid: books.view("product", pid) for pid in {p.product_id for p in bought.values()}}
    pools = {pid: p.price * products[p.product_id][1] // 10_000 for pid, p in bought.items()}
    for pid, p in bought.items():
        assert p.operator_fee == pools[pid] * fee_bps // 10_000
        assert p.seeder_pool == pools[pid] - p.operator_fee
    seller_due: dict[str, int] = defaultdict(int)
    for pid, p in bought.items():
        seller_due[products[p.product_id][0]] += p.price - pools[pid]
    for seller, due in seller_due.items():
        assert books.view("balanceOf", seller, ETH) == due
    fees = sum(p.operator_fee for p in bought.values())
    assert books.view("balanceOf", books.view("treasury"), ETH) == fees
    # What the contract still owes: withdrawable balances and the pool nobody has claimed yet.
    unclaimed_pool = sum(p.seeder_pool for p in bought.values()) - sum(leaves.values())
    assert books.balance(store.stack.contract, head) == sum(seller_due.values()) + fees + unclaimed_pool


# ----- the network between a user and the store -----

# Headers of one hop, not of the message (httpx also undoes any content encoding for us).
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class Link:
    """An HTTP hop between a user and the store (a thread of the test): it passes every request
    on, except that the first one `cut_at` matches first runs `on_cut` (say, the store going
    down) and then gets no answer at all, as when a server dies mid-request."""

    def __init__(self, upstream: str, cut_at: Callable[[str, str], bool], on_cut: Callable[[], None]) -> None:
        self.upstream = upstream
        self.cut_at = cut_at
        self.on_cut = on_cut
        self.cut = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        link = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _pass_on(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not link.cut and link.cut_at(self.command, self.path):
                    link.cut = True
                    link.on_cut()
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                try:
                    answer = httpx.request(
                        self.command, link.upstream + self.path, headers=headers, content=body, timeout=60
                    )
                except httpx.TransportError:
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = _pass_on

            def log_message(self, *_: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        """Stop passing requests on."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
