"""The indexer follows the Marketplace into the database: idempotent, resumable, reorg-safe."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.chain import Chain
from backend.db import Database
from backend.errors import ConfigError
from backend.indexer import Indexer
from backend.models import ChainEvent, Product, Purchase
from backend.settings import Settings, load_settings
from dev.devnet import Anvil, deploy_marketplace
from tests.backend.helpers import Market


def _indexer(db: Database, settings: Settings, **kwargs: int) -> Indexer:
    _, block = settings.marketplace
    chain = Chain.from_settings(settings)
    return Indexer(db, chain, deployment_block=block, confirmations=kwargs.pop("confirmations", 0), **kwargs)


def _count(db: Database, model: type) -> int:
    with db.reader() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_products_and_purchases_are_indexed_with_their_on_chain_facts(
    db: Database, settings: Settings, market: Market
) -> None:
    seller, buyer = market.accounts[1], market.accounts[2]
    product_id, infohash = market.list_product(seller, size=4096, price=5 * 10**18, discount_bps=2500)
    purchase_id = market.buy(buyer, product_id)
    indexer = _indexer(db, settings)
    indexer.sync()
    with db.reader() as session:
        product = session.get(Product, product_id)
        purchase = session.get(Purchase, purchase_id)
    assert product is not None and purchase is not None
    assert (product.seller, product.size, product.price, product.discount_bps) == (
        seller.lower(),
        4096,
        5 * 10**18,
        2500,
    )
    assert product.infohash == infohash.hex() + "00" * 12
    assert purchase.buyer == buyer.lower()
    assert purchase.product_id == product_id
    pool = 5 * 10**18 * 2500 // 10_000
    fee = pool * 2000 // 10_000
    assert (purchase.price, purchase.seller_amount, purchase.operator_fee, purchase.seeder_pool) == (
        5 * 10**18,
        5 * 10**18 - pool,
        fee,
        pool - fee,
    )
    block = market.w3.eth.get_block(purchase.block_number)
    assert purchase.timestamp == block["timestamp"]


def test_reading_again_and_restarting_never_duplicates(
    db: Database, settings: Settings, market: Market
) -> None:
    product_id, _ = market.list_product(market.accounts[1])
    for buyer in market.accounts[2:5]:
        market.buy(buyer, product_id)
    first = _indexer(db, settings, batch_blocks=2)
    first.sync()
    events = _count(db, ChainEvent)
    cursor = first.cursor()
    first.rollback(cursor.block_number - 2, None, 0)  # as if the last batches were never committed
    restarted = _indexer(db, settings, batch_blocks=2)
    restarted.sync()
    restarted.sync()
    assert _count(db, ChainEvent) == events
    assert _count(db, Purchase) == 3
    assert restarted.cursor().block_number == market.w3.eth.block_number


def test_blocks_within_the_confirmation_depth_wait(
    sqlite_url: str, settings: Settings, market: Market
) -> None:
    db = Database(sqlite_url)
    db.migrate()
    product_id, _ = market.list_product(market.accounts[1])
    market.buy(market.accounts[2], product_id)
    indexer = _indexer(db, settings, confirmations=3)
    indexer.sync()
    assert _count(db, Purchase) == 0
    market.anvil.rpc("anvil_mine", [3])
    indexer.sync()
    assert _count(db, Purchase) == 1


def test_a_reorganisation_is_followed(db: Database, settings: Settings, market: Market) -> None:
    seller = market.accounts[1]
    product_id, _ = market.list_product(seller, price=10**18)
    kept = market.buy(market.accounts[2], product_id)
    indexer = _indexer(db, settings)
    indexer.sync()
    snapshot = market.anvil.rpc("evm_snapshot")
    market.buy(market.accounts[3], product_id)
    market.transact(seller, "updateProduct", product_id, "0x" + "00" * 20, 3 * 10**18, 1000, "ipfs://new")
    other_id, _ = market.list_product(seller)
    indexer.sync()
    assert _count(db, Purchase) == 2
    market.anvil.rpc("evm_revert", [snapshot])
    # The new branch: someone else buys, and the chain grows past the old height.
    replacement = market.buy(market.accounts[4], product_id)
    market.anvil.rpc("anvil_mine", [5])
    indexer.sync()
    assert indexer.reorgs == 1
    with db.reader() as session:
        buyers = {p.id: p.buyer for p in session.scalars(select(Purchase))}
        product = session.get(Product, product_id)
        gone = session.get(Product, other_id) if other_id != product_id else None
    assert buyers == {kept: market.accounts[2].lower(), replacement: market.accounts[4].lower()}
    assert product is not None and (product.price, product.discount_bps, product.metadata_uri) == (
        10**18,
        2000,
        "ipfs://x",
    )
    assert gone is None


def test_the_indexer_survives_the_node_going_away_and_coming_back(
    tmp_path: Path, sqlite_url: str, manifest: Path
) -> None:
    state = tmp_path / "anvil-state.json"
    node = Anvil(state=state)
    port = node.port
    try:
        deployed = deploy_marketplace(node.w3, manifest, owner=node.accounts[0])
        market = Market(node, deployed, manifest)
        product_id, _ = market.list_product(node.accounts[1])
        market.buy(node.accounts[2], product_id)
        settings = Settings(
            database_url=sqlite_url,
            rpc_url=node.url,
            contract_address=deployed.address,
            deployment_block=deployed.block,
            manifest=manifest,
            confirmations=0,
            rpc_timeout=2,
        )
        db = Database(sqlite_url)
        db.migrate()
        indexer = _indexer(db, settings)
        stop = threading.Event()
        thread = threading.Thread(target=indexer.run, args=(stop, 0.1), daemon=True)
        thread.start()
        _wait_for(lambda: _count(db, Purchase) == 1)
        node.stop()
        time.sleep(1.0)  # the indexer now fails and backs off
        assert thread.is_alive()
        node = Anvil(port, state=state)
        market = Market(node, deployed, manifest)
        market.buy(node.accounts[3], product_id)
        _wait_for(lambda: _count(db, Purchase) == 2, timeout=60)
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
    finally:
        node.stop()


def test_a_database_of_another_deployment_is_refused(
    sqlite_url: str, settings: Settings, market: Market, anvil: Anvil, manifest: Path
) -> None:
    db = Database(sqlite_url)
    db.migrate()
    _indexer(db, settings).sync()
    other = deploy_marketplace(anvil.w3, manifest, owner=anvil.accounts[0])
    moved = load_settings(
        **{**settings.model_dump(), "contract_address": other.address, "deployment_block": other.block}
    )
    with pytest.raises(ConfigError, match="use another database"):
        _indexer(db, moved).sync()


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")
