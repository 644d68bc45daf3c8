"""Helpers of the web store's browser tests: the running store, a browser visit, page checks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from backend.services import Services
from backend.settings import Settings
from tests.backend.api_helpers import listing_body, make_torrent, sign_in
from tests.backend.helpers import Market
from tests.conftest import REPO

SCREENSHOTS = REPO / "artifacts" / "screenshots"
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
SIZE = 48_000
PRICE = 5 * 10**16  # 0.05 ETH
TOKEN_PRICE = 25 * 10**18  # 25 SEED
DISCOUNT_BPS = 2000
SELLER = 1


@dataclass
class Shop:
    """A running store: its URLs, the chain it sells on, and its two listed products."""

    url: str
    tracker_url: str
    market: Market
    settings: Settings
    services: Services  # the same database as the server, for the oracle the tests drive
    product_id: int  # priced in ETH
    token_product_id: int  # priced in the SEED test token
    token: str
    infohash: bytes
    client: httpx.Client = field(repr=False)

    def account(self, index: int) -> str:
        """Development account `index`, checksummed."""
        return self.market.accounts[index]

    def until(self, check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        """Poll `check` until it returns something truthy (the store works in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def indexed_purchase(self, index: int, product_id: int) -> None:
        """Wait until the store's indexer has seen account `index` buy `product_id`."""
        headers = sign_in(self.client, index)
        self.until(
            lambda: any(
                p["productId"] == product_id for p in self.client.get("/me/purchases", headers=headers).json()
            ),
            f"the store to index account {index}'s purchase",
        )

    def session_token(self, index: int) -> str:
        """A session token of account `index`, signed in over the API as a wallet would."""
        return sign_in(self.client, index)["Authorization"].removeprefix("Bearer ")


def list_product(
    client: httpx.Client, market: Market, folder: Path, title: str, **terms: Any
) -> tuple[int, bytes]:
    """List a product with a real torrent as account SELLER, wait for the store to index it, and
    register its title and torrent through the API; (product id, infohash)."""
    torrent, infohash = make_torrent(folder / title, SIZE, name=f"{title.lower().replace(' ', '-')}.bin")
    product_id, _ = market.list_product(market.accounts[SELLER], size=SIZE, infohash=infohash, **terms)
    deadline = time.monotonic() + 30
    while client.get(f"/products/{product_id}").status_code == 404:
        assert time.monotonic() < deadline, "the store did not index the listing"
        time.sleep(0.1)
    answer = client.put(
        f"/products/{product_id}/listing",
        json=listing_body(torrent, title),
        headers=sign_in(client, SELLER),
    )
    assert answer.status_code == 200, answer.text
    return product_id, infohash


@dataclass
class Visit:
    """A browser page with the injected wallet; `errors` collects uncaught page exceptions."""

    page: Page
    context: BrowserContext
    errors: list[str]

    def wallet(self) -> dict[str, Any]:
        """The injected wallet's state (its chain override, refusals, and the calls it received)."""
        state: dict[str, Any] = self.page.evaluate("window.__testWallet")
        return state

    def status(self) -> str:
        """The text of the page's aria-live status line."""
        return self.page.locator("#status").inner_text()

    def shot(self, name: str) -> None:
        """Save a screenshot of the whole page as a test artefact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_wallet_page(
    browser: Browser,
    rpc: str,
    accounts: Mapping[int, str],
    *,
    width: int = 1280,
    chain_id: str | None = None,
    reject_switch: bool = False,
    reject_sign: bool = False,
) -> Visit:
    """A fresh browser profile whose injected wallet holds the development `accounts` (index ->
    address) and reaches the chain at `rpc`.

    The wallet reaches the chain with fetch from the page, as an extension's background would; a
    page's Content-Security-Policy does not apply to extensions, so this profile bypasses it."""
    setup = {
        "rpc": rpc,
        "wallets": [
            {
                "account": address.lower(),
                "name": f"Dev wallet {i}",
                "rdns": f"test.dev{i}",
                "uuid": f"00000000-0000-4000-8000-{i:012d}",
            }
            for i, address in accounts.items()
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
    return Visit(page, context, errors)


def close_visits(opened: list[Visit]) -> None:
    """Close every visit's profile; fail if any page's script raised."""
    for visit in opened:
        visit.context.close()
    assert not [e for v in opened for e in v.errors], "uncaught errors in the page's script"


def goto(page: Page, url: str) -> None:
    """Load a page and wait until its script module has run."""
    page.goto(url)
    page.wait_for_selector("html[data-ready=true]", state="attached")


def announce(url: str, info_hash: bytes, *, left: int) -> bytes:
    """One BEP 3 announce to a personal announce URL; the tracker's bencoded answer."""
    query = urlencode(
        {
            "peer_id": "-SM0001-webtest00000",
            "port": 6881,
            "uploaded": 0,
            "downloaded": 0,
            "left": left,
            "compact": 1,
        }
    )
    answer = httpx.get(f"{url}?info_hash={quote_from_bytes(info_hash)}&{query}", timeout=10)
    return answer.content
