"""Seeders claim their rewards and sellers withdraw their sales from the browser; the chain pays
exactly what the page said."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from backend.chain import ZERO_ADDRESS
from backend.models import Purchase
from tests.backend.helpers import key, signed_receipt
from tests.web.helpers import PRICE, SELLER, SIZE, Shop, Visit, goto
from tracker.receipts import to_json

SEEDER = 3
DOWNLOADER = 8
OPERATOR = 0


def _gas(shop: Shop, tx_hash: str) -> int:
    receipt = shop.market.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def _sign_in(tab: Visit) -> None:
    tab.page.get_by_role("button", name="Sign in with Ethereum").first.click()
    tab.page.wait_for_selector("text=Signed in as")


def test_a_seeder_claims_exactly_what_the_rewards_page_shows_as_claimable(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    market, seeder = shop.market, shop.account(SEEDER)
    market.buy(seeder, shop.product_id)
    purchase = market.buy(shop.account(DOWNLOADER), shop.product_id)
    shop.indexed_purchase(DOWNLOADER, shop.product_id)
    # The downloader got half the content from the seeder; the seeder hands the receipt to the tracker.
    receipt = signed_receipt(market.domain, purchase, seeder, SIZE // 2, key(DOWNLOADER))
    answer = httpx.post(f"{shop.tracker_url}/receipts", json={"receipts": [to_json(receipt)]})
    assert answer.json()["results"] == [{"status": "accepted", "bytes": SIZE // 2}]
    assert shop.services.oracle().step(force=True).status == "posted"
    pool = PRICE * 2000 // 10_000 * 8000 // 10_000  # the seeders' part of the price
    earned = pool * (SIZE // 2) // SIZE

    tab = visit(SEEDER)
    page = tab.page
    goto(page, f"{shop.url}/rewards")
    _sign_in(tab)
    row = page.locator(f"tr[data-token='{ZERO_ADDRESS}']")
    assert row.locator("[data-field=claimable]").inner_text() == "0.004 ETH"
    assert earned == 4 * 10**15
    tab.shot("rewards-before-claim")

    before = market.w3.eth.get_balance(seeder)
    row.get_by_role("button", name="Claim ETH").click()
    page.wait_for_selector("#status[data-kind=done]")
    assert tab.status() == f"Claimed 0.004 ETH, paid to {seeder[:6]}…{seeder[-4:]}."
    tx_hash = page.locator("#status").get_attribute("data-tx")
    assert tx_hash is not None
    assert market.w3.eth.get_balance(seeder) - before + _gas(shop, tx_hash) == earned
    assert market.contract.functions.claimed(seeder, ZERO_ADDRESS).call() == earned
    assert row.locator("[data-field=claimable]").inner_text() == "0 ETH"
    assert row.locator("[data-field=claimed]").inner_text() == "0.004 ETH"
    assert row.get_by_role("button", name="Claim ETH").is_disabled()
    tab.shot("rewards-claimed")


def test_the_seller_sees_every_sale_and_withdraws_the_balance(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    market, seller = shop.market, shop.account(SELLER)
    if market.contract.functions.purchaseOf(shop.product_id, shop.account(OPERATOR)).call() == 0:
        market.buy(shop.account(OPERATOR), shop.product_id)
    sold = sum(
        market.contract.functions.purchaseOf(shop.product_id, account).call() != 0
        for account in market.accounts
    )

    def indexed() -> bool:
        with shop.services.db.reader() as session:
            count = session.scalar(select(func.count()).where(Purchase.product_id == shop.product_id))
        return count == sold

    shop.until(indexed, "the store to index every sale")
    withdrawable = market.contract.functions.balanceOf(seller, ZERO_ADDRESS).call()
    assert withdrawable == sold * PRICE * 8 // 10 > 0  # unless an earlier run of this test withdrew

    tab = visit(SELLER)
    page = tab.page
    goto(page, f"{shop.url}/sell")
    _sign_in(tab)
    sales = page.locator(f"tr[data-product='{shop.product_id}']")
    assert sales.locator("[data-field=count]").inner_text() == str(sold)
    assert sales.locator("[data-field=gross]").inner_text() == f"{sold * PRICE / 10**18:g} ETH"
    assert sales.locator("[data-field=seller-amount]").inner_text() == f"{withdrawable / 10**18:g} ETH"
    tab.shot("sell")

    before = market.w3.eth.get_balance(seller)
    balance = page.locator(f"tr[data-token='{ZERO_ADDRESS}']")
    balance.get_by_role("button", name="Withdraw ETH").click()
    page.wait_for_selector("#status[data-kind=done]")
    assert tab.status() == f"Withdrew {withdrawable / 10**18:g} ETH to your wallet."
    tx_hash = page.locator("#status").get_attribute("data-tx")
    assert tx_hash is not None
    assert market.w3.eth.get_balance(seller) - before + _gas(shop, tx_hash) == withdrawable
    assert market.contract.functions.balanceOf(seller, ZERO_ADDRESS).call() == 0
    assert balance.locator("[data-field=balance]").inner_text() == "0 ETH"
    assert balance.get_by_role("button", name="Withdraw ETH").is_disabled()
