"""List a product: make its private torrent, list it on chain, register it with the store, and hand
the content to the store's seed.

    ape run list_product --network ethereum:local:node --account TEST::1 \\
        --path ./my-album --price 0.01 --discount 20% --title "My album" --description "..."

`ethereum:local:node` is the chain of `make run` (ape-config.yaml: http://127.0.0.1:8545, chain id
31337); any other node is `--network http://HOST:PORT`. `TEST::1` is anvil's development account #1;
a keystore account (`ape accounts import seller`, then `--account seller`) asks for its passphrase
once (or reads `APE_ACCOUNTS_seller_PASSPHRASE`) and then signs the sign-in and the listing without
a y/N prompt for each.

Safe to run again after any failure: a product this seller already listed with the same content
is picked up where it stopped (registration, hand-over); nothing is listed twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from ape import Contract, project
from ape.api import AccountAPI, ProviderAPI
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import ApeException
from ape_accounts import KeyfileAccount
from eth_utils import to_checksum_address
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from client.amounts import to_units
from client.errors import ClientError
from client.handoff import hand_over
from client.store_client import StoreClient
from scripts._lib import parse_percent_or_bps, store_option
from tracker.errors import TrackerError
from tracker.metainfo import create_torrent, parse_metainfo

ETH = "0x0000000000000000000000000000000000000000"
HANDOVER_SECONDS = 600
INDEXING_SECONDS = 180


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@contextmanager
def _bar(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on the terminal (on stderr: the script's output lines stay parseable); a
    function taking the bytes done so far."""
    with Progress(
        TextColumn(what),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def _sign_without_asking(account: AccountAPI) -> None:
    """A keystore account asks for its passphrase once here (unless APE_ACCOUNTS_<alias>_PASSPHRASE
    holds it), instead of a passphrase, a "leave unlocked?" and a "Sign:" y/N for every signature:
    the command line itself says what to sign."""
    if isinstance(account, KeyfileAccount):
        account.set_autosign(True)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option(
    "--path", "content", required=True, type=click.Path(path_type=Path), help="The file or folder to sell."
)
@click.option("--price", required=True, help="Price in whole tokens, e.g. 0.01.")
@click.option("--token", default=ETH, show_default="ETH", help="Payment token address (allow-listed ERC-20).")
@click.option(
    "--discount", default="20%", show_default=True, help="Wholesale discount shared by operator and seeders."
)
@click.option("--title", required=True, help="Product title shown in the store.")
@click.option("--description", default="", help="Product description.")
@click.option(
    "--handover-timeout",
    type=float,
    default=HANDOVER_SECONDS,
    show_default=True,
    help="Seconds to wait for the store's seed to take the content (0: skip the hand-over).",
)
@store_option()
def cli(
    provider: ProviderAPI,
    account: AccountAPI,
    content: Path,
    price: str,
    token: str,
    discount: str,
    title: str,
    description: str,
    handover_timeout: float,
    store: str,
) -> None:
    """List a file or folder for sale."""
    # ape's warnings about an unlocked key ("Danger! ...", "Using cached key") are what this
    # script asked for; its errors still show.
    ape_logger = logging.getLogger("ape")
    level = ape_logger.level
    ape_logger.setLevel(logging.ERROR)
    try:
        _sign_without_asking(account)
        _list(provider, account, content, price, token, discount, title, description, handover_timeout, store)
    except (ClientError, TrackerError) as exc:
        raise _fail(str(exc)) from None
    finally:
        ape_logger.setLevel(level)


def _list(
    provider: ProviderAPI,
    account: AccountAPI,
    content: Path,
    price: str,
    token: str,
    discount: str,
    title: str,
    description: str,
    handover_timeout: float,
    store_url: str,
) -> None:
    if not content.exists():
        raise ClientError(f"{content} does not exist")
    discount_bps = parse_percent_or_bps(discount)
    token = to_checksum_address(token)

    with StoreClient(store_url) as store:
        facts = store.health()
        if int(facts["chainId"]) != provider.chain_id:
            raise ClientError(
                f"the store runs on chain {facts['chainId']}, this network is {provider.chain_id}"
            )
        market = Contract(facts["contract"], contract_type=project.Marketplace.contract_type)
        decimals = 18 if token == ETH else int(Contract(token).decimals())
        units = to_units(price, decimals)

        click.echo(f"signing in to {store_url} as {account.address}")
        store.sign_in(account.address, lambda text: _sign(account, text))
        announce = store.me()["announceUrl"]

        click.echo(f"hashing {content} ...")
        with _bar("hashing", _size(content)) as hashed:
            torrent = create_torrent(content, announce, comment=title, progress=lambda done, _: hashed(done))
        meta = parse_metainfo(torrent)
        infohash32 = meta.info_hash.ljust(32, b"\0")

        product_id = _own_listing(market, account, infohash32, provider)
        if product_id is None:
            product_id = _list_on_chain(
                market, account, infohash32, meta.total_length, token, units, discount_bps, store_url
            )
        else:
            click.echo(f"resuming: this content is already your product {product_id}")

        _wait_until_indexed(store, product_id)
        try:
            store.register_listing(product_id, title, description, torrent)
        except ClientError as exc:
            raise ClientError(
                f"product {product_id} is listed on chain but the store did not register it: {exc}; "
                "run the same command again to finish"
            ) from None
        click.echo(f"registered product {product_id} with the store: {store_url}/item/{product_id}")

        if handover_timeout > 0:
            personal = parse_metainfo(store.torrent(product_id))
            folder = content.resolve().parent
            click.echo("handing the content to the store's seed (run again to resume if stopped) ...")
            with _bar("sent to the store's seed", personal.total_length) as sent_so_far:
                sent = asyncio.run(
                    hand_over(
                        personal,
                        folder,
                        lambda: _handed_over(store, product_id),
                        timeout=handover_timeout,
                        progress=sent_so_far,
                    )
                )
            click.echo(f"the store's seed has product {product_id} ({sent} bytes sent by you)")


def _size(content: Path) -> int:
    if content.is_file():
        return content.stat().st_size
    return sum(path.stat().st_size for path in content.rglob("*") if path.is_file())


def _own_listing(market, account, infohash32, provider) -> int | None:  # type: ignore[no-untyped-def]
    """This seller's earlier listing of the same content, if any. Others may list the same
    infohash too (the chain allows it); the store serves only the listing whose seller uploads the
    info dictionary, so their listings do not stand in the way."""
    logs = market.ProductListed.range(
        0,
        provider.chain_manager.blocks.height + 1,
        search_topics={"infohash": infohash32, "seller": account.address},
    )
    ids = [int(log.productId) for log in logs]
    return min(ids) if ids else None


def _list_on_chain(market, account, infohash32, size, token, units, discount_bps, store_url) -> int:  # type: ignore[no-untyped-def]
    click.echo("listing on chain ...")
    try:
        receipt = market.listProduct(
            infohash32, size, token, units, discount_bps, f"{store_url}/products", sender=account
        )
    except ApeException as exc:
        raise ClientError(f"the listing transaction failed: {exc}") from None
    listed = [log for log in receipt.events if log.event_name == "ProductListed"]
    if not listed:
        raise ClientError("the listing transaction emitted no ProductListed event")
    product_id = int(listed[0].productId)
    click.echo(f"listed as product {product_id} (tx {receipt.txn_hash})")
    return product_id


def _wait_until_indexed(store: StoreClient, product_id: int) -> None:
    """The store learns of listings from the chain, a few confirmations late: wait for it."""
    deadline = time.monotonic() + INDEXING_SECONDS
    while True:
        try:
            store.product(product_id)
            return
        except ClientError:
            if time.monotonic() > deadline:
                raise ClientError(
                    f"the store has not seen product {product_id} after {INDEXING_SECONDS} s "
                    "(is its indexer following this chain?); run the same command again to finish"
                ) from None
            time.sleep(1)


def _sign(account: AccountAPI, text: str) -> bytes:
    signature = account.sign_message(text)
    if signature is None:
        raise ClientError("the account declined to sign the sign-in message")
    return signature.encode_rsv()


def _handed_over(store: StoreClient, product_id: int) -> bool:
    try:
        return int(store.swarm_health(product_id)["seeders"]) >= 2
    except ClientError:
        return False
