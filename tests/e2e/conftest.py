"""Fixtures of the end-to-end tests: whole stores as separate processes (`DevStack`: anvil or a
chain reached by URL, `ape run deploy`, `seedmarket serve`, `ape run list_product`), CLI users,
and headless Chromium with the injected test wallet of the web store's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from dev.devnet import Anvil
from dev.devstack import DevStack, Ports, dev_address
from tests.e2e.helpers import (
    EPOCH_SECONDS,
    LONG_WINDOW,
    PRICE,
    ROOT_DELAY,
    SEPOLIA_CHAIN_ID,
    SETTLE_AFTER,
    Books,
    Store,
    sample,
)
from tests.web.helpers import Visit, chromium, close_visits, open_wallet_page


def open_store(data_dir: Path, *, settle_after: int = SETTLE_AFTER, **chain: object) -> Iterator[Store]:
    """Start a stack, list the product as the seller with `ape run list_product`; stop it all."""
    stack = DevStack(
        data_dir,
        Ports.free(),
        epoch_length=EPOCH_SECONDS,
        root_delay=ROOT_DELAY,
        settle_after=settle_after,
        **chain,  # type: ignore[arg-type]
    )
    store: Store | None = None
    try:
        stack.start(sample=False)
        books = Books(stack.rpc, stack.contract)
        start = books.head
        content = sample(data_dir / "seller")
        product_id = stack.list_product(content, title="E2E album", price=PRICE)
        store = Store(stack, product_id, content, books, start)
        yield store
    finally:
        if store is not None:
            for user in store.users:
                user.stop_all()
        stack.stop()


@pytest.fixture(scope="module")
def anvil_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The whole store on its own anvil, the product listed."""
    yield from open_store(tmp_path_factory.mktemp("e2e-anvil"))


@pytest.fixture(scope="module")
def testnet_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The whole store on a chain it reaches only by URL, with Sepolia's chain id: an anvil
    that mines a block every second on its own, as a testnet does (ape waits for Sepolia's two
    confirmations, which a chain mining only on demand would never give). Purchases do not
    freeze here: the settlement window outlasts the tests."""
    with Anvil(chain_id=SEPOLIA_CHAIN_ID, extra=("--block-time", "1")) as chain:
        yield from open_store(
            tmp_path_factory.mktemp("e2e-testnet"),
            settle_after=LONG_WINDOW,
            rpc_url=chain.url,
            chain_id=SEPOLIA_CHAIN_ID,
            keeper=False,  # the store's operator claims here: `seedmarket claim` stays tested end to end
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def wallet_tab(browser: Browser) -> Iterator[Callable[[str, int], Visit]]:
    """A browser profile whose injected wallet holds one development account on a chain."""
    opened: list[Visit] = []

    def open_tab(rpc: str, account: int) -> Visit:
        opened.append(open_wallet_page(browser, rpc, {account: dev_address(account)}))
        return opened[-1]

    yield open_tab
    close_visits(opened)
