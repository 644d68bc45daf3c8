"""The loop on a chain the store knows only by URL and chain id (11155111, Sepolia's), as a
testnet would be: nothing may assume the local chain. And on the same store: a seller whose
listing the store's going down cut short runs `ape run list_product` again and it finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import ConfigError
from dev.devstack import dev_address
from tests.e2e.helpers import (
    ETH,
    SELLER,
    SEPOLIA_CHAIN_ID,
    STORE,
    Link,
    Store,
    check_the_books,
    digest,
    published_leaves,
    sample,
    seeders,
    settle,
    settled_epoch,
    start_store,
    stop_store,
    store_get,
)

BUYER = 2


def test_buying_downloading_and_claiming_work_on_a_chain_reached_only_by_url(
    testnet_store: Store, tmp_path: Path
) -> None:
    store, books = testnet_store, testnet_store.books
    pid = store.product_id
    assert books.w3.eth.chain_id == SEPOLIA_CHAIN_ID
    assert store_get(store.url, "/health")["chainId"] == SEPOLIA_CHAIN_ID
    size = books.view("product", pid)[3]
    info_hash = bytes(books.view("product", pid)[7])[:20]
    people = [dev_address(n) for n in (STORE, SELLER, BUYER)]
    start = books.balances(people, store.start_block)

    buyer = store.user("buyer", BUYER)
    purchase = buyer.json(*buyer.on_store("buy", str(pid), "--key", "buyer"))["purchase"]
    buyer.ok(*buyer.on_store("download", str(pid), "--key", "buyer", "--out", str(tmp_path)))
    assert digest(tmp_path / "e2e-album") == digest(store.content)
    assert buyer.ledger(info_hash, purchase) == {dev_address(STORE): size}

    publication = settled_epoch(store, {(purchase, dev_address(STORE)): size})
    assert publication["chainId"] == SEPOLIA_CHAIN_ID
    leaves = settle(publication, books.purchases())
    pool = books.purchases()[purchase].seeder_pool
    assert published_leaves(publication) == leaves == {(dev_address(STORE), ETH): pool}

    operator = store.user("store", STORE)
    claimed = operator.json(*operator.on_store("claim", "--key", "store"))
    assert claimed["claimed"] == {ETH: str(pool)}
    report = buyer.json(
        "verify-epoch", str(publication["epoch"]), "--store", store.url, "--rpc", store.stack.rpc
    )
    assert report["ok"], report

    check_the_books(store, start, leaves, purchases=1)


def test_a_listing_the_store_going_down_cut_short_finishes_when_the_seller_runs_it_again(
    testnet_store: Store, tmp_path: Path
) -> None:
    store, books, stack = testnet_store, testnet_store.books, testnet_store.stack
    content = sample(tmp_path)
    listed_before = len(books.events("ProductListed"))
    # The store dies just as the seller's script registers the listing it has made on chain.
    link = Link(
        stack.store_url,
        cut_at=lambda method, path: method == "PUT" and path.endswith("/listing"),
        on_cut=lambda: stop_store(stack),
    )
    command = [
        "list_product",
        "--account",
        f"TEST::{SELLER}",
        "--path",
        str(content),
        "--price",
        "0.02",
        "--discount",
        "25%",
        "--title",
        "Second album",
        "--description",
        "Listed twice, registered once.",
        "--store",
        link.url,
    ]
    try:
        with pytest.raises(ConfigError) as cut:
            stack.run_ape(*command, log="list_product-cut")
        assert link.cut
        listed = books.events("ProductListed")[listed_before:]
        assert len(listed) == 1
        product_id = int(listed[0].args.productId)
        assert f"product {product_id} is listed on chain but the store did not register it" in str(cut.value)
        assert "run the same command again to finish" in str(cut.value)

        start_store(stack)
        # Back up, the store knows the product from the chain, unregistered: nothing half-done.
        entry = store_get(store.url, f"/products/{product_id}")
        assert not entry["registered"] and entry["title"] is None

        output = stack.run_ape(*command, log="list_product-again")
    finally:
        link.close()
        if not any(name == "store" for name, _ in stack.processes):
            start_store(stack)
    assert f"resuming: this content is already your product {product_id}" in output
    assert "listing on chain" not in output
    assert f"registered product {product_id}" in output
    assert f"the store's seed has product {product_id}" in output

    # Listed once on chain, registered once in the store, and the store's seed has it.
    assert len(books.events("ProductListed")[listed_before:]) == 1
    entry = store_get(store.url, f"/products/{product_id}")
    assert entry["registered"] and entry["title"] == "Second album"
    catalog = store_get(store.url, "/products?limit=100")["items"]
    assert [item["id"] for item in catalog].count(product_id) == 1
    assert seeders(store.url, product_id) >= 1
