"""Every page passes a basic accessibility check, fits a 375 px phone without sideways scrolling,
and runs under its own Content-Security-Policy (no wallet here: nothing bypasses the policy)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from backend.chain import ZERO_ADDRESS
from tests.backend.helpers import key, signed_receipt
from tests.web.helpers import SCREENSHOTS, SELLER, SIZE, Shop, goto
from tracker.receipts import to_json

CHECK = (Path(__file__).parent / "a11y_check.js").read_text()
OWNER = 7  # buys, and is signed in for the library and rewards pages
SEEDER = 9  # the store's seeding account: earns from OWNER's receipt
SESSION_COOKIE = "seedmarket_session"


@pytest.fixture(scope="module")
def pages(shop: Shop) -> list[tuple[str, str, int | None]]:
    """(name, path, signed-in account) of every page in the states worth looking at."""
    market = shop.market
    owner = shop.account(OWNER)
    if market.contract.functions.purchaseOf(shop.product_id, owner).call() == 0:
        purchase = market.buy(owner, shop.product_id)
        shop.indexed_purchase(OWNER, shop.product_id)
        receipt = signed_receipt(market.domain, purchase, shop.account(SEEDER), SIZE // 4, key(OWNER))
        answer = httpx.post(f"{shop.tracker_url}/receipts", json={"receipts": [to_json(receipt)]})
        assert answer.json()["results"][0]["status"] == "accepted"
    return [
        ("catalog", "/", None),
        ("product", f"/item/{shop.product_id}", None),
        ("token-product", f"/item/{shop.token_product_id}", None),
        ("not-found", "/item/999999", None),
        ("library-signed-out", "/library", None),
        ("library", "/library", OWNER),
        ("rewards-signed-out", "/rewards", None),
        ("rewards", f"/rewards?account={shop.account(SEEDER)}", OWNER),
        ("sell-signed-out", "/sell", None),
        ("sell", "/sell", SELLER),
    ]


def _open(
    browser: Browser, shop: Shop, width: int, account: int | None, scheme: str
) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme=scheme)  # type: ignore[arg-type]
    if account is not None:
        context.add_cookies([{"name": SESSION_COOKIE, "value": shop.session_token(account), "url": shop.url}])
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda error: violations.append(str(error)))
    return page, violations


@pytest.mark.parametrize(("width", "scheme"), [(375, "light"), (1280, "light"), (375, "dark")])
def test_every_page_is_labelled_ordered_readable_and_fits_the_screen(
    browser: Browser, shop: Shop, pages: list[tuple[str, str, int | None]], width: int, scheme: str
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for name, path, account in pages:
        page, violations = _open(browser, shop, width, account, scheme)
        try:
            goto(page, f"{shop.url}{path}")
            if account is not None:
                assert page.get_by_text("Signed in as").is_visible(), name
            found = page.evaluate(CHECK) + violations
            if found:
                problems[name] = found
            page.screenshot(path=SCREENSHOTS / f"page-{name}-{width}-{scheme}.png", full_page=True)
        finally:
            page.context.close()
    assert problems == {}


def test_the_rewards_table_shows_pending_earnings_with_nothing_to_claim_yet(
    browser: Browser, shop: Shop, pages: list[tuple[str, str, int | None]]
) -> None:
    page, _ = _open(browser, shop, 1280, OWNER, "light")
    try:
        goto(page, f"{shop.url}/rewards?account={shop.account(SEEDER)}")
        row = page.locator(f"tr[data-token='{ZERO_ADDRESS}']")
        assert row.locator("[data-field=pending]").inner_text() != "0 ETH"
        assert row.get_by_role("button", name="Claim ETH").is_disabled()
    finally:
        page.context.close()


BROKEN_PAGE = """<!doctype html><html><head><title>x</title></head><body style="background:#fff">
<h1>One</h1><h3>Skipped a level</h3><h1>Two</h1>
<input id="twice"><button id="twice"></button><a href="/x"></a><img src="data:,">
<p style="color:#bbb">Too pale to read</p>
<div style="width:600px">Too wide</div>
</body></html>"""


def test_the_accessibility_check_reports_each_kind_of_problem(browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        page.set_content(BROKEN_PAGE)
        found = "\n".join(page.evaluate(CHECK))
    finally:
        context.close()
    for problem in (
        "<html> has no lang",
        "expected one h1, found 2",
        "jumps from h1 to h3",
        "control without a name: <input",
        "control without a name: <button",
        "control without a name: <a",
        'duplicate id "twice"',
        "image without alt",
        'too low for "Too pale to read"',
        "scrolls sideways",
    ):
        assert problem in found, problem
