"""List a product: make its private torrent, list it on chain, register it with the store, and hand
the content to the store's seed.

    ape run list_product --network ethereum:local:foundry --account TEST::1 \\
        --path ./my-album --price 0.01 --discount 20% --title "My album" --description "..."

Safe to run again after any failure: a product this seller already listed with the same content
is picked up where it stopped (registration, hand-over); nothing is listed twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
from ape import Contract, project
from ape.api import AccountAPI, ProviderAPI
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import ApeException
from eth_utils import to_checksum_address

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
    try:
        _list(provider, account, content, price, token, discount, title, description, handover_timeout, store)
    except (ClientError, TrackerError) as exc:
        raise _fail(str(exc)) from None


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
        torrent = create_torrent(content, announce, comment=title)
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
            click.echo("handing the content to the store's seed ...")
            sent = asyncio.run(
                hand_over(
                    personal,
                    folder,
                    lambda: _handed_over(store, product_id),
                    timeout=handover_timeout,
                )
            )
            click.echo(f"the store's seed has product {product_id} ({sent} bytes sent by you)")


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
