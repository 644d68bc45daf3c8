"""Sellers list products, change their terms and open or close them."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance

from tests.contracts.helpers import DISCOUNT_BPS, ETH, PRICE, listed, terms

INFOHASH = bytes.fromhex("aa" * 20) + bytes(12)


class TestListingAProduct:
    def test_records_the_terms_with_the_caller_as_seller(
        self, market: ContractInstance, seller: AccountAPI, token: ContractInstance
    ) -> None:
        receipt = market.listProduct(
            INFOHASH, 12_345, token, PRICE, DISCOUNT_BPS, "ipfs://meta", sender=seller
        )

        event = receipt.events.filter(market.ProductListed)[0]
        assert event.productId == 1
        assert event.seller == seller.address
        assert event.infohash == INFOHASH
        assert (event.size, event.token, event.price) == (12_345, token.address, PRICE)
        assert (event.discountBps, event.metadataURI) == (DISCOUNT_BPS, "ipfs://meta")
        product = market.product(1)
        assert product.seller == seller.address
        assert (product.token, product.price, product.discountBps) == (token.address, PRICE, DISCOUNT_BPS)
        assert (product.size, product.infohash, product.active) == (12_345, INFOHASH, True)
        assert product.termsVersion == 1
        assert market.productCount() == 1

    def test_numbers_products_from_one(
        self, market: ContractInstance, seller: AccountAPI, others: list[AccountAPI]
    ) -> None:
        ids = [listed(market, account) for account in [seller, *others]]
        assert ids == list(range(1, len(ids) + 1))

    def test_accepts_the_extremes_of_its_terms(self, market: ContractInstance, seller: AccountAPI) -> None:
        listed(market, seller, price=1, discount_bps=0, infohash=b"\x01" * 20 + bytes(12))
        listed(market, seller, price=2**128 - 1, discount_bps=10_000, infohash=b"\x02" * 20 + bytes(12))
        assert market.product(2).price == 2**128 - 1

    def test_accepts_an_infohash_listed_before_as_a_new_product(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        # The chain cannot tell the content's seller from a copycat; the store registers only the
        # listing whose seller uploads the info dictionary (backend.catalog).
        assert listed(market, seller, infohash=INFOHASH) == 1
        assert listed(market, buyer, infohash=INFOHASH) == 2
        assert market.product(2).seller == buyer.address

    @pytest.mark.parametrize(
        ("infohash", "size", "price"),
        [
            (bytes(32), 1, PRICE),
            (INFOHASH[:31] + b"\x01", 1, PRICE),
            (bytes(20) + b"\xff" * 12, 1, PRICE),
            (INFOHASH, 0, PRICE),
            (INFOHASH, 1, 0),
            (INFOHASH, 1, 2**128),
        ],
        ids=[
            "zero infohash",
            "low bytes set",
            "only low bytes",
            "zero size",
            "zero price",
            "price beyond uint128",
        ],
    )
    def test_rejects_an_empty_or_oversized_listing(
        self, market: ContractInstance, seller: AccountAPI, infohash: bytes, size: int, price: int
    ) -> None:
        with ape.reverts(market.InvalidListing):
            market.listProduct(infohash, size, ETH, price, DISCOUNT_BPS, "", sender=seller)

    def test_rejects_a_discount_above_one_whole(self, market: ContractInstance, seller: AccountAPI) -> None:
        with ape.reverts(market.InvalidBps, bps=10_001):
            listed(market, seller, discount_bps=10_001)

    def test_rejects_a_token_not_on_the_allow_list(
        self, market: ContractInstance, seller: AccountAPI, project: Any, owner: AccountAPI
    ) -> None:
        stranger = owner.deploy(project.TestToken, "Other", "OTH")
        with ape.reverts(market.TokenNotAllowed, token=stranger.address):
            listed(market, seller, token=stranger.address)

    def test_is_refused_while_paused(
        self, market: ContractInstance, seller: AccountAPI, guardian: AccountAPI
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            listed(market, seller)


class TestUpdatingAProduct:
    def test_changes_the_terms_but_not_the_content(
        self, market: ContractInstance, seller: AccountAPI, token: ContractInstance
    ) -> None:
        product_id = listed(market, seller, infohash=INFOHASH)

        receipt = market.updateProduct(product_id, token, 7, 100, "ipfs://new", sender=seller)

        event = receipt.events.filter(market.ProductUpdated)[0]
        assert (event.productId, event.token, event.price, event.discountBps) == (
            product_id,
            token.address,
            7,
            100,
        )
        assert (event.metadataURI, event.termsVersion) == ("ipfs://new", 2)
        product = market.product(product_id)
        assert (product.token, product.price, product.discountBps) == (token.address, 7, 100)
        assert product.termsVersion == 2
        market.updateProduct(product_id, token, 7, 100, "ipfs://new", sender=seller)
        assert market.product(product_id).termsVersion == 3
        assert (product.infohash, product.seller) == (INFOHASH, seller.address)

    def test_is_refused_to_anyone_but_the_seller(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.NotSeller, productId=product_id):
            market.updateProduct(product_id, ETH, 1, 0, "", sender=buyer)

    def test_of_an_unknown_product_is_refused(self, market: ContractInstance, seller: AccountAPI) -> None:
        with ape.reverts(market.UnknownProduct, productId=9):
            market.updateProduct(9, ETH, 1, 0, "", sender=seller)

    def test_checks_the_new_terms_like_a_listing(self, market: ContractInstance, seller: AccountAPI) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.InvalidListing):
            market.updateProduct(product_id, ETH, 0, 0, "", sender=seller)
        with ape.reverts(market.InvalidBps):
            market.updateProduct(product_id, ETH, 1, 10_001, "", sender=seller)

    def test_is_refused_while_paused(
        self, market: ContractInstance, seller: AccountAPI, guardian: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.updateProduct(product_id, ETH, 1, 0, "", sender=seller)


class TestClosingAProduct:
    def test_stops_and_restarts_sales(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)

        receipt = market.setProductActive(product_id, False, sender=seller)

        assert not receipt.events.filter(market.ProductActiveSet)[0].active
        assert market.product(product_id).active is False
        with ape.reverts(market.ProductInactive, productId=product_id):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)
        market.setProductActive(product_id, True, sender=seller)
        market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_is_refused_to_anyone_but_the_seller(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.NotSeller, productId=product_id):
            market.setProductActive(product_id, False, sender=buyer)

    def test_works_while_paused(
        self, market: ContractInstance, seller: AccountAPI, guardian: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.pause(sender=guardian)
        market.setProductActive(product_id, False, sender=seller)
        assert market.product(product_id).active is False


def test_an_unknown_product_has_no_listing(market: ContractInstance) -> None:
    with ape.reverts(market.UnknownProduct, productId=0):
        market.product(0)
