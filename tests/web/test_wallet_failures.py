"""What the store tells a visitor when the wallet is on another chain, declines, or would revert;
what a wallet that bought nothing can see; and choosing among several announced wallets."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.web.helpers import Shop, Visit, goto

NOT_A_BUYER = 5
WRONG_CHAIN = 6
DECLINER = 7
ALREADY_OWNER = 9  # the store's seeding account; it buys below, signed out


def _sent(tab: Visit, method: str) -> int:
    return sum(call["method"] == method for call in tab.wallet()["calls"])


def test_a_wallet_on_another_chain_is_asked_to_switch_and_a_refusal_is_explained(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    buyer = shop.account(WRONG_CHAIN)
    tab = visit(WRONG_CHAIN, chain_id="0x1", reject_switch=True)
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.product_id}")
    page.get_by_role("button", name=re.compile("^Buy for")).click()
    page.wait_for_selector("#status[data-kind=error]")
    assert tab.status() == (
        "Your wallet is on Ethereum mainnet (chain 1), but this store runs on the local development chain "
        "(chain 31337); switch networks in your wallet and try again."
    )
    assert _sent(tab, "wallet_switchEthereumChain") == 1
    assert _sent(tab, "eth_sendTransaction") == 0
    assert shop.market.contract.functions.purchaseOf(shop.product_id, buyer).call() == 0
    tab.shot("wrong-chain")

    page.evaluate("window.__testWallet.rejectSwitch = false")  # this time the user accepts the switch
    page.get_by_role("button", name=re.compile("^Buy for")).click()
    page.wait_for_selector("#status[data-kind=done]")
    assert _sent(tab, "wallet_switchEthereumChain") == 2
    assert shop.market.contract.functions.purchaseOf(shop.product_id, buyer).call() != 0


def test_a_declined_signature_leaves_the_visitor_signed_out_with_one_clear_sentence(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    tab = visit(DECLINER, reject_sign=True)
    page = tab.page
    goto(page, f"{shop.url}/library")
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    page.wait_for_selector("#status[data-kind=error]")
    assert tab.status() == "You declined to sign the message, so you are not signed in."
    assert page.get_by_role("button", name="Sign in with Ethereum").first.is_enabled()
    assert not [c for c in tab.context.cookies() if c["name"] == "seedmarket_session"]
    tab.shot("signature-declined")


def test_a_wallet_that_bought_nothing_sees_no_download_and_cannot_fetch_the_torrent(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    tab = visit(NOT_A_BUYER)
    page = tab.page
    goto(page, f"{shop.url}/library")
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    page.wait_for_selector("text=Signed in as")
    assert page.get_by_text("This wallet has not bought anything yet").is_visible()
    assert page.get_by_role("link", name="Download .torrent").count() == 0
    assert page.get_by_role("link", name="Magnet link").count() == 0

    goto(page, f"{shop.url}/item/{shop.product_id}")
    assert page.get_by_role("button", name=re.compile("^Buy for")).is_visible()
    assert page.get_by_role("link", name=re.compile("Download")).count() == 0
    answer = page.request.get(f"{shop.url}/products/{shop.product_id}/torrent")  # with the session cookie
    assert answer.status == 403


def test_a_purchase_the_contract_would_refuse_is_explained_before_the_wallet_asks(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    owner = shop.account(ALREADY_OWNER)
    if shop.market.contract.functions.purchaseOf(shop.product_id, owner).call() == 0:
        shop.market.buy(owner, shop.product_id)
    tab = visit(ALREADY_OWNER)
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.product_id}")
    page.get_by_role("button", name=re.compile("^Buy for")).click()
    page.wait_for_selector("#status[data-kind=error]")
    assert tab.status() == "This wallet already owns this product; find it in your library."
    assert _sent(tab, "eth_sendTransaction") == 0


def test_the_visitor_picks_a_wallet_when_several_announce_themselves(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    tab = visit(DECLINER, NOT_A_BUYER)
    page = tab.page
    goto(page, f"{shop.url}/rewards")
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    picker = page.get_by_role("dialog", name="Choose a wallet")
    picker.wait_for()
    assert picker.get_by_role("button").all_inner_texts() == ["Dev wallet 7", "Dev wallet 5", "Cancel"]
    tab.shot("wallet-picker")
    picker.get_by_role("button", name="Dev wallet 5").click()
    page.wait_for_selector("text=Signed in as")
    assert tab.status() == f"Signed in as {shop.account(NOT_A_BUYER)}."

    page.get_by_role("button", name="Sign out").click()  # the choice is remembered for this tab
    page.wait_for_selector("text=Signed out.")
    page.get_by_role("button", name="Sign in with Ethereum").first.click()
    page.wait_for_selector("text=Signed in as")
    assert tab.status() == f"Signed in as {shop.account(NOT_A_BUYER)}."  # no second question


def test_a_buyer_without_enough_tokens_is_told_so_and_buys_nothing(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    tab = visit(NOT_A_BUYER)
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.token_product_id}")
    page.get_by_role("button", name="Buy for 25 SEED").click()
    page.wait_for_selector("#status[data-kind=error]")
    assert tab.status() == "Your wallet does not hold enough of this token to pay the price."
    assert _sent(tab, "eth_sendTransaction") == 1  # the approval; the purchase was never sent
    assert (
        shop.market.contract.functions.purchaseOf(shop.token_product_id, shop.account(NOT_A_BUYER)).call()
        == 0
    )


def test_a_rejected_transaction_is_explained_and_can_be_retried(
    visit: Callable[..., Visit], shop: Shop
) -> None:
    tab = visit(NOT_A_BUYER)
    page = tab.page
    goto(page, f"{shop.url}/item/{shop.product_id}")
    page.evaluate("window.__testWallet.rejectSend = true")
    buy = page.get_by_role("button", name=re.compile("^Buy for"))
    buy.click()
    page.wait_for_selector("#status[data-kind=error]")
    assert tab.status() == "You rejected the request in your wallet; nothing was sent."
    assert buy.is_enabled() and buy.get_attribute("aria-busy") is None  # ready for another try
    assert shop.market.contract.functions.purchaseOf(shop.product_id, shop.account(NOT_A_BUYER)).call() == 0
