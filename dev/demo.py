"""`make demo`: the store's whole story in one run, on the same stack as `make run`.

A seller lists a product; five buyers, one after another, buy it, download it (from the store's
seed and from the buyers before them) and keep seeding; the purchases settle and an epoch's root
is posted; the store's keeper pays everyone with earnings on chain, nobody claims. It ends with
who uploaded what, who earned what and was paid automatically, and the store's share of all
uploads. Every step is a real process: `ape run`, `seedmarket buy/download/seed/rewards`.

    python -m dev.demo [--buyers 5] [--size-mib 16]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from backend.errors import ConfigError
from dev.devcli import Cli
from dev.devstack import REPO, DevStack, Ports, dev_address, dev_key

STORE_ACCOUNT, SELLER_ACCOUNT, FIRST_BUYER_ACCOUNT = 0, 1, 2
SETTLE_SECONDS = 40  # purchases freeze this long after they were made: then the epoch is final
WAIT_SECONDS = 300.0
console = Console()


def say(text: str) -> None:
    """One step of the story."""
    console.print(f"[bold]>[/] {text}", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the story; 0 when every step worked."""
    parser = argparse.ArgumentParser(prog="python -m dev.demo", description=__doc__)
    parser.add_argument("--buyers", type=int, default=5, choices=range(1, 8))
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".data" / "demo")
    args = parser.parse_args(argv)
    shutil.rmtree(args.data_dir, ignore_errors=True)
    stack = DevStack(
        args.data_dir, ports=Ports.free(), epoch_length=5, root_delay=2, settle_after=SETTLE_SECONDS
    )
    try:
        with stack:
            _story(stack, args.buyers, args.size_mib * 2**20)
    except (ConfigError, AssertionError, httpx.HTTPError) as exc:
        console.print(f"[bold red]demo failed:[/] {exc} (logs in {args.data_dir / 'logs'})", highlight=False)
        return 1
    return 0


def _story(stack: DevStack, buyers: int, size: int) -> None:
    say(f"starting a local chain, the Marketplace and the store at {stack.store_url}")
    stack.start(sample=False)
    seller = dev_address(SELLER_ACCOUNT)
    say(f"the seller ({seller}) lists a {size / 2**20:.0f} MiB product with ape run list_product")
    product = stack.list_product(stack.sample_content(size), title="seedmarket demo album", price="0.01")
    names = {dev_address(STORE_ACCOUNT).lower(): "store seed", dev_address(SELLER_ACCOUNT).lower(): "seller"}
    users: list[tuple[str, Cli]] = []
    try:
        for number in range(1, buyers + 1):
            name = f"buyer{number}"
            cli = Cli(stack.data_dir / "users" / name, stack.store_url, stack.rpc)
            address = cli.import_wallet(name, dev_key(FIRST_BUYER_ACCOUNT + number - 1))
            names[address.lower()] = name
            say(f"{name} ({address}) buys product {product}, downloads it, and keeps seeding")
            cli.ok(*cli.on_store("buy", str(product), "--key", name))
            cli.ok(*cli.on_store("download", str(product), "--key", name))
            cli.spawn(*cli.on_store("seed", "--key", name), log=stack.data_dir / "logs" / f"{name}-seed.log")
            users.append((name, cli))
        say(f"waiting for the purchases to settle ({SETTLE_SECONDS} s) and their epoch's root to go live")
        publication = _final_epoch(stack, buyers)
        say("nobody claims: waiting for the store's keeper to pay every seeder automatically")
        claimed = _paid_automatically(stack, publication)
        for name, cli in users:
            standing = cli.json(*cli.on_store("rewards", "--key", name))["tokens"]
            for entry in standing:
                if entry.get("paidAutomaticallyTx"):
                    say(f"{name}: paid automatically in {entry['paidAutomaticallyTx']}")
    finally:
        for _, cli in users:
            cli.stop_all()
    _report(publication, names, claimed)


def _get(stack: DevStack, path: str) -> Any:
    response = httpx.get(f"{stack.store_url}{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def _final_epoch(stack: DevStack, purchases: int) -> dict[str, Any]:
    """The publication of the first live epoch in which every purchase is frozen (final)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        latest = _get(stack, "/epochs?limit=1")["items"]
        if latest and latest[0]["status"] == "posted" and latest[0]["activeAt"] is not None:
            epoch = latest[0]
            publication: dict[str, Any] = _get(stack, f"/epochs/{epoch['epoch']}/data")
            chain_time = int(_get(stack, "/health")["indexedTime"] or 0)
            if len(publication["frozen"]) >= purchases and chain_time >= epoch["activeAt"]:
                return publication
        time.sleep(1)
    raise ConfigError(f"no live epoch settled all {purchases} purchases within {WAIT_SECONDS:.0f} s")


def _paid_automatically(stack: DevStack, publication: dict[str, Any]) -> dict[str, int]:
    """Wait until the keeper has paid every leaf of the final epoch; wei paid per account."""
    leaves = {value["value"][0]: int(value["value"][2]) for value in publication["tree"]["values"]}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        paid = {
            account.lower(): sum(
                int(t["claimed"]) for t in _get(stack, f"/accounts/{account}/rewards")["tokens"]
            )
            for account in leaves
        }
        if all(paid[account.lower()] >= amount for account, amount in leaves.items()):
            return paid
        if time.monotonic() > deadline:
            raise ConfigError(f"the keeper did not pay every seeder within {WAIT_SECONDS:.0f} s")
        time.sleep(1)


def _report(publication: dict[str, Any], names: dict[str, str], claimed: dict[str, int]) -> None:
    credited: dict[tuple[int, str], int] = {}
    for receipt in publication["receipts"]:
        key = (receipt["purchase"], receipt["seeder"].lower())
        credited[key] = max(credited.get(key, 0), int(receipt["credited"]))
    uploaded: dict[str, int] = defaultdict(int)
    for (_, seeder), amount in credited.items():
        uploaded[seeder] += amount
    earned = {value["value"][0].lower(): int(value["value"][2]) for value in publication["tree"]["values"]}
    total = sum(uploaded.values()) or 1
    table = Table(title=f"epoch {publication['epoch']}: who uploaded what, who earned what")
    for column in ("seeder", "uploaded (receipts)", "share", "earned", "paid automatically"):
        table.add_column(column, justify="left" if column == "seeder" else "right")
    for account in sorted(set(uploaded) | set(earned), key=lambda a: -uploaded.get(a, 0)):
        table.add_row(
            names.get(account, account),
            f"{uploaded.get(account, 0) / 2**20:.2f} MiB",
            f"{100 * uploaded.get(account, 0) / total:.1f} %",
            f"{earned.get(account, 0) / 1e18:.6f} ETH",
            f"{claimed.get(account, 0) / 1e18:.6f} ETH",
        )
    console.print(table)
    store = next((a for a, n in names.items() if n == "store seed"), "")
    say(
        f"the store's seed uploaded {100 * uploaded.get(store, 0) / total:.1f} % of all bytes; "
        f"buyers uploaded the rest to each other"
    )


if __name__ == "__main__":
    sys.exit(main())
