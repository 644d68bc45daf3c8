"""Fixtures of the end-to-end tests: whole stores as separate processes (`DevStack`: anvil or a
chain reached by URL, `ape run deploy`, `seedmarket serve`, `ape run list_product`), CLI users,
and headless Chromium with the injected test wallet of the web store's tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from backend.devnet import Anvil
from backend.devstack import DevStack, Ports, dev_address
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
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, WALLET_SCRIPT
from tests.web.helpers import Visit


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
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def wallet_tab(browser: Browser) -> Iterator[Callable[[str, int], Visit]]:
    """A browser profile whose injected wallet holds one development account on a chain."""
    opened: list[Visit] = []

    def open_tab(rpc: str, account: int) -> Visit:
        setup = {
            "rpc": rpc,
            "wallets": [
                {
                    "account": dev_address(account).lower(),
                    "name": f"Dev wallet {account}",
                    "rdns": f"test.dev{account}",
                    "uuid": f"00000000-0000-4000-8000-{account:012d}",
                }
            ],
            "chainId": None,
            "rejectSwitch": False,
            "rejectSign": False,
        }
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=True, accept_downloads=True
        )
        context.add_init_script(f"const SETUP = {json.dumps(setup)};\n{WALLET_SCRIPT}")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append(Visit(page, context, errors))
        return opened[-1]

    yield open_tab
    for tab in opened:
        tab.context.close()
    assert not [e for tab in opened for e in tab.errors], "uncaught errors in the page's script"
