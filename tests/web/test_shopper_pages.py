"""What a shopper expects of a store's pages: a search box, sizes in KiB/MiB, the file list, the
description on the catalog's cards, a hint to sign in for an owner who is signed out, and a
"Completed" count that the receipts keep (the tracker counts in memory only)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from backend.models import Credit
from tests.backend.api_helpers import sign_in
from tests.web.helpers import Shop, Visit, goto
from tracker.metainfo import create_torrent, parse_metainfo

SELLER = 5  # lists the product of this module only
BUYER = 6  # buys it; its receipts say it finished
SIZE = 3 * 2**20 + 12_345
TITLE = "Night trains"
SEEDERS = ("0x" + "ab" * 20, "0x" + "cd" * 20)  # nobody else's: their earnings are this module's
DESCRIPTION = "Field recordings of sleeper trains crossing the Alps, 1998."


# The smallest valid PNG: one transparent pixel.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product's folder: a cover image and a recording."""
    folder = tmp_path_factory.mktemp("night-trains") / "night-trains"
    folder.mkdir()
    (folder / "cover.png").write_bytes(PNG)
    (folder / "night-trains.flac").write_bytes(bytes(range(256)) * (SIZE // 256) + b"\x07" * (SIZE % 256))
    return folder


@pytest.fixture(scope="module")
def product(shop: Shop, content: Path) -> int:
    """A product of its own (so the counts here are nobody else's), with a description."""
    torrent = create_torrent(content, "http://127.0.0.1:1/announce")
    meta = parse_metainfo(torrent)
    product_id, _ = shop.market.list_product(
        shop.account(SELLER), size=meta.total_length, price=10**16, infohash=meta.info_hash
    )
    shop.until(lambda: shop.client.get(f"/products/{product_id}").status_code == 200, "the listing indexed")
    body = {"title": TITLE, "description": DESCRIPTION, "torrent": base64.b64encode(torrent).decode()}
    answer = shop.client.put(
        f"/products/{product_id}/listing", json=body, headers=sign_in(shop.client, SELLER)
    )
    assert answer.status_code == 200, answer.text
    return product_id


@pytest.fixture
def tab(visit: Callable[..., Visit]) -> Page:
    """A browser page with no wallet account."""
    return visit().page


def _titles(page: Page, path: str) -> list[str]:
    goto(page, path)
    return page.locator(".products h2").all_inner_texts()


def test_the_catalog_finds_products_by_words_of_their_title_or_description(
    shop: Shop, product: int, tab: Page
) -> None:
    assert _titles(tab, f"{shop.url}/?q=night") == [TITLE]
    assert _titles(tab, f"{shop.url}/?q=ALPS+sleeper") == [TITLE]  # every word, any case
    assert TITLE not in _titles(tab, f"{shop.url}/?q=alps+jazz")
    assert _titles(tab, f"{shop.url}/?q=%25") == []  # a literal %, not a wildcard
    assert "Nothing matches" in tab.locator("main").inner_text()
    assert TITLE in _titles(tab, f"{shop.url}/")
    found = httpx.get(f"{shop.url}/products", params={"q": "sleeper"}, timeout=30).json()
    assert [item["id"] for item in found["items"]] == [product] and found["total"] == 1


def test_cards_show_the_description_and_a_human_size(shop: Shop, product: int, tab: Page) -> None:
    goto(tab, f"{shop.url}/?q=night")
    card = tab.locator(".card").first.inner_text()
    assert DESCRIPTION in card and "3.0 MiB" in card


def test_the_product_page_lists_its_files_with_human_sizes(shop: Shop, product: int, tab: Page) -> None:
    goto(tab, f"{shop.url}/item/{product}")
    assert tab.locator("[data-size]").inner_text() == "3.0 MiB"
    rows = [row.locator("td").all_inner_texts() for row in tab.locator("table.files tbody tr").all()]
    assert rows == [
        ["night-trains/cover.png", f"{len(PNG)} bytes"],
        ["night-trains/night-trains.flac", "3.0 MiB"],
    ]
    assert "bytes" not in tab.locator("dl.facts").first.inner_text()


def test_a_signed_out_visitor_is_offered_to_sign_in_before_buying_again(
    shop: Shop, product: int, tab: Page
) -> None:
    goto(tab, f"{shop.url}/item/{product}")
    hint = tab.locator(".owner-hint")
    assert "Already bought it?" in hint.inner_text()
    assert hint.get_by_role("button", name="Sign in with Ethereum").count() == 1
    signed_in = httpx.get(
        f"{shop.url}/item/{product}", cookies={"seedmarket_session": shop.session_token(BUYER)}, timeout=30
    )
    assert signed_in.status_code == 200 and "Already bought it?" not in signed_in.text


@pytest.fixture(scope="module")
def finished(shop: Shop, product: int) -> int:
    """BUYER bought the product and its receipts to two seeders add up to the whole of it: a
    finished download, though the tracker (which never saw it complete) counts none; the purchase."""
    purchase = shop.market.buy(shop.account(BUYER), product)
    shop.indexed_purchase(BUYER, product)
    with shop.services.db.writer() as session:
        for n, (seeder, count) in enumerate(((SEEDERS[0], SIZE + len(PNG) - 1000), (SEEDERS[1], 1000))):
            session.add(
                Credit(
                    purchase_id=purchase,
                    seeder=seeder,
                    signer=shop.account(BUYER).lower(),
                    signed_bytes=count,
                    credited=count,
                    receipt_id=10**12 + 2 * purchase + n,
                )
            )
    return purchase


def test_completed_counts_finished_downloads_from_the_receipts(
    shop: Shop, product: int, tab: Page, request: pytest.FixtureRequest
) -> None:
    def completed() -> str:
        goto(tab, f"{shop.url}/item/{product}")
        return tab.locator("[data-health=completed]").inner_text()

    assert completed() == "0"
    request.getfixturevalue("finished")
    assert completed() == "1"


def test_pending_earnings_say_roughly_when_they_become_claimable(
    shop: Shop, finished: int, tab: Page
) -> None:
    goto(tab, f"{shop.url}/rewards?account={SEEDERS[0]}")
    assert tab.locator("[data-field=pending]").inner_text() != "0 ETH"
    assert re.fullmatch(
        r"Pending amounts should become claimable in about \d+ (minutes?|hours|days) .*",
        tab.locator("[data-claimable-in]").inner_text(),
    )


def test_a_connected_wallet_that_owns_the_product_is_told_so_without_signing_in(
    visit: Callable[..., Visit], shop: Shop, product: int, finished: int
) -> None:
    for account, owns in ((BUYER, True), (SELLER, False)):
        tab = visit(account)
        goto(tab.page, f"{shop.url}/item/{product}")
        tab.page.wait_for_selector("html[data-owned=checked]", state="attached")
        hint = tab.page.locator("[data-owned-by-wallet]")
        assert hint.is_visible() == owns
        if owns:
            assert shop.account(BUYER) in hint.inner_text()
            tab.shot("product-owned-by-connected-wallet")
        assert [c["method"] for c in tab.wallet()["calls"] if c["method"] == "personal_sign"] == []


def test_the_cover_is_served_from_the_store_seeds_verified_copy_only(
    shop: Shop, product: int, content: Path, tab: Page
) -> None:
    url = f"{shop.url}/item/{product}/cover"
    assert httpx.get(url, timeout=30).status_code == 404  # the store's seed has no copy yet
    torrent = create_torrent(content, "http://127.0.0.1:1/announce")
    copy = shop.settings.data_dir / "store-seed" / parse_metainfo(torrent).info_hash.hex() / "night-trains"
    copy.mkdir(parents=True, exist_ok=True)
    (copy / "night-trains.flac").write_bytes((content / "night-trains.flac").read_bytes())
    (copy / "cover.png").write_bytes(PNG[:-1] + b"\x00")  # not the seller's bytes: never shown
    assert httpx.get(url, timeout=30).status_code == 404
    (copy / "cover.png").write_bytes(PNG)
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200 and answer.content == PNG
    assert (
        answer.headers["content-type"] == "image/png"
        and answer.headers["x-content-type-options"] == "nosniff"
    )
    goto(tab, f"{shop.url}/?q=night")
    assert tab.locator(".card img.cover").get_attribute("src") == f"/item/{product}/cover"
    assert tab.locator(".card img.cover").evaluate("img => img.naturalWidth") == 1


def test_the_search_box_at_phone_and_desktop_widths(
    visit: Callable[..., Visit], shop: Shop, product: int
) -> None:
    for width in (375, 1280):
        tab = visit(width=width)
        goto(tab.page, shop.url)
        tab.page.get_by_label("Search by title or description").fill("night trains")
        tab.page.get_by_role("button", name="Search").click()
        tab.page.wait_for_url(re.compile(r"q=night"))
        assert tab.page.locator(".products h2").all_inner_texts() == [TITLE]
        tab.shot(f"catalog-search-{width}")
        tab.page.get_by_role("link", name=TITLE).click()
        tab.page.wait_for_selector("table.files")
        tab.shot(f"product-files-{width}")
        assert tab.errors == []
