"""Fixtures of the web store's browser tests: `seedmarket serve` as a real process on anvil, a
listed product with a registered torrent, and headless Chromium with an injected test wallet."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from backend.devnet import Anvil, deploy_contract, deploy_marketplace, free_port
from backend.services import Services
from tests.backend.helpers import Market, store_settings
from tests.backend.processes import cli, store_env, wait_http
from tests.conftest import REPO
from tests.web.helpers import DISCOUNT_BPS, PRICE, TOKEN_PRICE, Shop, Visit, list_product

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
WALLET_SCRIPT = (Path(__file__).parent / "injected_wallet.js").read_text()


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
        settings, api_port=api_port, tracker_port=tracker_port, poll_interval=0.2, epoch_length=86_400
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def visit(browser: Browser, shop: Shop) -> Iterator[Callable[..., Visit]]:
    """Open the store in a fresh browser profile whose wallet holds the given accounts.

    The wallet reaches anvil with fetch from the page, as an extension's background would; a
    page's Content-Security-Policy does not apply to extensions, so this profile bypasses it (the
    accessibility test checks the policy with no wallet at all)."""
    opened: list[Visit] = []

    def open_page(
        *indexes: int,
        width: int = 1280,
        chain_id: str | None = None,
        reject_switch: bool = False,
        reject_sign: bool = False,
    ) -> Visit:
        setup = {
            "rpc": shop.market.anvil.url,
            "wallets": [
                {
                    "account": shop.account(i).lower(),
                    "name": f"Dev wallet {i}",
                    "rdns": f"test.dev{i}",
                    "uuid": f"00000000-0000-4000-8000-{i:012d}",
                }
                for i in indexes
            ],
            "chainId": chain_id,
            "rejectSwitch": reject_switch,
            "rejectSign": reject_sign,
        }
        context = browser.new_context(
            viewport={"width": width, "height": 900}, bypass_csp=True, accept_downloads=True
        )
        context.add_init_script(f"const SETUP = {json.dumps(setup)};\n{WALLET_SCRIPT}")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append(Visit(page, context, errors))
        return opened[-1]

    yield open_page
    for visit_ in opened:
        visit_.context.close()
    assert not [e for v in opened for e in v.errors], "uncaught errors in the page's script"
