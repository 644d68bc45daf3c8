"""Helpers of the web store's browser tests: the running store, a browser visit, page checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
from playwright.sync_api import BrowserContext, Page

from backend.services import Services
from backend.settings import Settings
from tests.backend.api_helpers import listing_body, make_torrent, sign_in
from tests.backend.helpers import Market
from tests.conftest import REPO

SCREENSHOTS = REPO / "artifacts" / "screenshots"
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
