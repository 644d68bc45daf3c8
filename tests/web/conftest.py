"""Fixtures of the web store's browser tests: `seedmarket serve` as a real process on anvil, a
listed product with a registered torrent, and headless Chromium with an injected test wallet."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from backend.services import Services
from dev.devnet import Anvil, deploy_contract, deploy_marketplace, free_port
from tests.backend.helpers import Market, store_settings
from tests.backend.processes import cli, store_env, wait_http
from tests.conftest import REPO
from tests.web.helpers import (
    DISCOUNT_BPS,
    PRICE,
    TOKEN_PRICE,
    Shop,
    Visit,
    chromium,
    close_visits,
    list_product,
    open_wallet_page,
)


@pytest.fixture(scope="session")
def shop(anvil: Anvil, manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """`seedmarket serve --no-oracle` (API, pages, tracker, indexer) on a fresh Marketplace, with
    an ETH product and an ERC-20 product listed by account 1."""
    deployed = deploy_marketplace(anvil.w3, manifest, owner=anvil.accounts[0], root_delay=0)
    market = Market(anvil, deployed, manifest)
    token, _ = deploy_contract(anvil.w3, manifest, "TestToken", anvil.accounts[0], "Seed Dollar", "SEED")
    market.transact(anvil.accounts[0], "setTokenAllowed", token, True)
    folder = tmp_path_factory.mktemp("web-store")
    api_port, tracker_port = free_port(), free_port()
    url, tracker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{tracker_port}"
    settings = store_settings(
        anvil, deployed, f"sqlite:///{folder / 'store.db'}", manifest, folder
    ).model_copy(update={"public_url": url, "tracker_url": tracker_url})
    env = store_env(
        settings,
        api_port=api_port,
        tracker_port=tracker_port,
        poll_interval=0.2,
        epoch_length=86_400,
        SEEDMARKET_NONCE_BURST=1000,  # one browser signs in for every test of the session
        # Claims are pressed in the browser here; the keeper (its own tests, the e2e loop) would
        # pay them first whenever its account happens to hold gas money on the shared chain.
        SEEDMARKET_KEEPER="false",
    )
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            cli("serve", "--no-oracle"), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    services: Services | None = None
    try:
        wait_http(f"{url}/health")
        services = Services.open(settings)
        client = httpx.Client(base_url=url, timeout=30)
        product_id, infohash = list_product(
            client, market, folder, "Field recordings", price=PRICE, discount_bps=DISCOUNT_BPS
        )
        token_product_id, _ = list_product(
            client, market, folder, "Sample pack", price=TOKEN_PRICE, discount_bps=DISCOUNT_BPS, token=token
        )
        yield Shop(
            url,
            tracker_url,
            market,
            settings,
            services,
            product_id,
            token_product_id,
            token,
            infohash,
            client,
        )
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if services is not None:
            services.close()
    assert code == 0, log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright. One per test module, not per session:
    Playwright's sync API keeps an event loop running in the main thread while it is open, and
    the tests that a worker runs after a web module call asyncio.run()."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def visit(browser: Browser, shop: Shop) -> Iterator[Callable[..., Visit]]:
    """Open the store in a fresh browser profile whose wallet holds the given accounts (the
    accessibility test checks the page's Content-Security-Policy with no wallet at all)."""
    opened: list[Visit] = []

    def open_page(
        *indexes: int,
        width: int = 1280,
        chain_id: str | None = None,
        reject_switch: bool = False,
        reject_sign: bool = False,
    ) -> Visit:
        visit_ = open_wallet_page(
            browser,
            shop.market.anvil.url,
            {i: shop.account(i) for i in indexes},
            width=width,
            chain_id=chain_id,
            reject_switch=reject_switch,
            reject_sign=reject_sign,
        )
        opened.append(visit_)
        return visit_

    yield open_page
    close_visits(opened)
