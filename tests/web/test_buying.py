"""Buying in the browser: a wallet pays in ETH or approves and pays in ERC-20, signs in, and
downloads its personal torrent from the library."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from backend.models import Purchase
from backend.passkeys import passkey_for
from backend.web.money import format_units
from tests.web.helpers import PRICE, SIZE, TOKEN_PRICE, Shop, Visit, announce, goto
from tracker.metainfo import parse_metainfo

BUYER = 2
TOKEN_BUYER = 4


def test_a_buyer_pays_in_eth_signs_in_and_downloads_a_personal_torrent(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    market, buyer = shop.market, shop.account(BUYER)
    tab = visit(BUYER)
    page = tab.page
    goto(page, shop.url)
    page.get_by_role("link", name="Field recordings").click()
    page.wait_for_selector("h1:has-text('Field recordings')")
    assert "0.05 ETH" in page.locator(".price").inner_text()
    split = page.locator("table.split tbody td[data-label=Amount]").all_inner_texts()
    tab.shot("product-page")

    before = market.w3.eth.get_balance(buyer)
    page.get_by_role("button", name="Buy for 0.05 ETH").click()
    page.wait_for_selector("#status[data-kind=done]")
    assert tab.status().startswith("Purchase confirmed in block")
    assert page.get_by_text("You own this product now").is_visible()
    assert page.get_by_role("button", name="Buy for 0.05 ETH").count() == 0
    purchase_id = market.contract.functions.purchaseOf(shop.product_id, buyer).call()
    assert purchase_id != 0
    assert before - market.w3.eth.get_balance(buyer) > PRICE  # the price and some gas
    tab.shot("product-bought")

    page.get_by_role("link", name="Library", exact=True).click()
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    page.wait_for_selector("text=Signed in as")
    assert tab.status() == f"Signed in as {buyer}."
    shop.until(
        lambda: (goto(page, f"{shop.url}/library"), page.get_by_text("Field recordings").count())[1],
        "the purchase to reach the library",
    )
    tab.shot("library")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download .torrent").click()
    metainfo = parse_metainfo(download.value.path().read_bytes())
    passkey = passkey_for(shop.services.db, buyer)
    assert metainfo.announce == f"{shop.tracker_url}/{passkey}/announce"
    assert metainfo.info_hash == shop.infohash and metainfo.total_length == SIZE

    magnet = page.get_by_role("link", name="Magnet link").get_attribute("href")
    assert magnet is not None
    query = parse_qs(urlsplit(magnet).query)
    assert query["xt"] == [f"urn:btih:{shop.infohash.hex()}"]
    assert query["tr"] == [metainfo.announce]
    assert page.get_by_text("seedmarket seed").is_visible()

    with shop.services.db.reader() as session:
        paid = session.get(Purchase, purchase_id)
    assert paid is not None  # the split the page promised is the one the contract made
    assert split == [
        f"{format_units(a, 18)} ETH" for a in (paid.seller_amount, paid.operator_fee, paid.seeder_pool)
    ]

    # The buyer seeds with the personal torrent; the product page counts it.
    assert b"failure reason" not in announce(metainfo.announce, shop.infohash, left=0)
    goto(page, f"{shop.url}/item/{shop.product_id}")
    assert page.get_by_text("You own this product.").is_visible()
    assert page.get_by_role("button", name=re.compile("^Buy")).count() == 0
    assert page.locator("[data-health=seeders]").inner_text() == "1"
    # The store's tracker connected back to the announced port, where no peer has this torrent.
    assert page.locator("[data-health=reachable]").inner_text() == "0"


def test_an_erc20_product_is_approved_then_bought(visit: Callable[..., Visit], shop: Shop) -> None:
    market, buyer = shop.market, shop.account(TOKEN_BUYER)
    token = market.w3.eth.contract(address=shop.token, abi=ERC20_ABI)
    market.w3.eth.wait_for_transaction_receipt(
        token.functions.mint(buyer, TOKEN_PRICE).transact({"from": buyer})
    )
    tab = visit(TOKEN_BUYER)
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.token_product_id}")
    assert "25 SEED" in page.locator(".price").inner_text()
    page.get_by_role("button", name="Buy for 25 SEED").click()
    page.wait_for_selector("#status[data-kind=done]")
    assert market.contract.functions.purchaseOf(shop.token_product_id, buyer).call() != 0
    assert token.functions.balanceOf(buyer).call() == 0
    sent = [c["method"] for c in tab.wallet()["calls"] if c["method"] == "eth_sendTransaction"]
    assert len(sent) == 2  # approve, then purchase


ERC20_ABI = [
    {
        "type": "function",
        "name": "mint",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


def test_the_keyboard_alone_skips_to_the_content_and_buys(visit: Callable[..., Visit], shop: Shop) -> None:
    tab = visit(TOKEN_BUYER)  # it bought the token product above; this is the ETH one
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.product_id}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.action") == "buy":
            break
    else:
        raise AssertionError("Tab never reached the Buy button")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus shows
    page.keyboard.press("Enter")
    page.wait_for_selector("#status[data-kind=done]")
    assert shop.market.contract.functions.purchaseOf(shop.product_id, shop.account(TOKEN_BUYER)).call() != 0
    assert page.evaluate("document.activeElement.id") == "status"  # the button is gone; focus is on the news
