"""Buyers pay for products in ETH or an allow-listed ERC-20; the price is split to the unit."""

from __future__ import annotations

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance

from tests.contracts.helpers import DISCOUNT_BPS, ETH, FEE_BPS, PRICE, bought, listed, split, terms


class TestBuyingWithEth:
    def test_splits_the_price_between_seller_operator_and_seeders(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, treasury: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        held = market.balance

        receipt = market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

        seller_amount, fee, seeders = split(PRICE)
        event = receipt.events.filter(market.Purchased)[0]
        assert (event.purchaseId, event.productId, event.buyer, event.token) == (
            1,
            product_id,
            buyer.address,
            ETH,
        )
        assert (event.price, event.sellerAmount, event.operatorFee, event.seederPool) == (
            PRICE,
            seller_amount,
            fee,
            seeders,
        )
        assert market.balanceOf(seller, ETH) == seller_amount
        assert market.balanceOf(treasury, ETH) == fee
        assert market.seederPool(ETH) == (seeders, 0)
        assert market.balance == held + PRICE
        assert market.purchaseOf(product_id, buyer) == 1
        assert market.purchaseCount() == 1
        assert market.fundedTokenCount() == 1

    @pytest.mark.parametrize(
        ("price", "discount_bps"),
        [
            (1, 10_000),
            (3, 3_333),
            (999_999_999_999, 1),
            (10**18 + 7, 9_999),
            (5_000 * 10**18 + 3, 7_777),
            (77, 0),
        ],
    )
    def test_split_adds_up_to_the_price_to_the_wei(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, price: int, discount_bps: int
    ) -> None:
        product_id = listed(market, seller, price=price, discount_bps=discount_bps)

        event = market.purchase(
            product_id, *terms(market, product_id), sender=buyer, value=price
        ).events.filter(market.Purchased)[0]

        assert event.sellerAmount + event.operatorFee + event.seederPool == price
        assert (event.sellerAmount, event.operatorFee, event.seederPool) == split(
            price, discount_bps, FEE_BPS
        )
        assert market.seederPool(ETH)[0] == event.seederPool

    def test_without_a_discount_funds_no_pool(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller, discount_bps=0)
        bought(market, product_id, buyer)
        assert market.seederPool(ETH) == (0, 0)
        assert market.fundedTokenCount() == 0

    def test_gives_every_purchase_its_own_nonzero_id(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, others: list[AccountAPI]
    ) -> None:
        first, second = listed(market, seller), listed(market, seller)
        ids = [bought(market, p, b) for p in (first, second) for b in (buyer, *others)]
        assert sorted(ids) == list(range(1, len(ids) + 1))
        assert market.purchaseOf(second, others[-1]) == ids[-1]
        assert market.purchaseOf(first, seller) == 0

    def test_for_someone_else_is_paid_by_the_caller(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, others: list[AccountAPI]
    ) -> None:
        product_id = listed(market, seller)

        receipt = market.purchaseFor(
            product_id, others[0], *terms(market, product_id), sender=buyer, value=PRICE
        )

        assert receipt.events.filter(market.Purchased)[0].buyer == others[0].address
        assert market.purchaseOf(product_id, others[0]) == 1
        assert market.purchaseOf(product_id, buyer) == 0

    def test_for_the_zero_address_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.ZeroAddress):
            market.purchaseFor(product_id, ETH, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_twice_by_the_same_buyer_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, others: list[AccountAPI]
    ) -> None:
        product_id = listed(market, seller)
        bought(market, product_id, buyer)
        with ape.reverts(market.AlreadyPurchased, productId=product_id, buyer=buyer.address, purchaseId=1):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)
        with ape.reverts(market.AlreadyPurchased):
            market.purchaseFor(product_id, buyer, *terms(market, product_id), sender=others[0], value=PRICE)

    @pytest.mark.parametrize("value", [0, PRICE - 1, PRICE + 1])
    def test_with_the_wrong_value_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, value: int
    ) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.WrongPayment, expected=PRICE, sent=value):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=value)

    def test_of_an_unknown_product_is_refused(self, market: ContractInstance, buyer: AccountAPI) -> None:
        with ape.reverts(market.UnknownProduct, productId=1):
            market.purchase(1, *terms(market, 1), sender=buyer, value=PRICE)

    def test_of_an_inactive_product_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.setProductActive(product_id, False, sender=seller)
        with ape.reverts(market.ProductInactive, productId=product_id):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_is_refused_while_paused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, guardian: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)
        with ape.reverts(market.EnforcedPause):
            market.purchaseFor(product_id, buyer, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_uses_the_fee_and_treasury_of_its_time(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
    ) -> None:
        product_id = listed(market, seller)
        market.setOperatorFee(0, sender=owner)
        market.setTreasury(others[0], sender=owner)

        event = market.purchase(
            product_id, *terms(market, product_id), sender=buyer, value=PRICE
        ).events.filter(market.Purchased)[0]

        assert event.operatorFee == 0
        assert event.seederPool == PRICE * DISCOUNT_BPS // 10_000
        assert market.balanceOf(others[0], ETH) == 0


class TestBuyingWithAToken:
    def test_pulls_the_price_and_splits_it(
        self,
        market: ContractInstance,
        seller: AccountAPI,
        buyer: AccountAPI,
        treasury: AccountAPI,
        token: ContractInstance,
    ) -> None:
        product_id = listed(market, seller, token=token.address)
        before = token.balanceOf(buyer)

        receipt = market.purchase(product_id, *terms(market, product_id), sender=buyer)

        seller_amount, fee, seeders = split(PRICE)
        assert receipt.events.filter(market.Purchased)[0].token == token.address
        assert token.balanceOf(buyer) == before - PRICE
        assert token.balanceOf(market) == PRICE
        assert market.balanceOf(seller, token) == seller_amount
        assert market.balanceOf(treasury, token) == fee
        assert market.seederPool(token) == (seeders, 0)
        assert market.seederPool(ETH) == (0, 0)

    def test_with_ether_attached_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, token: ContractInstance
    ) -> None:
        product_id = listed(market, seller, token=token.address)
        with ape.reverts(market.WrongPayment, expected=0, sent=1):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=1)

    def test_in_a_token_taken_off_the_allow_list_is_refused(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        token: ContractInstance,
    ) -> None:
        product_id = listed(market, seller, token=token.address)
        market.setTokenAllowed(token, False, sender=owner)
        with ape.reverts(market.TokenNotAllowed, token=token.address):
            market.purchase(product_id, *terms(market, product_id), sender=buyer)

    def test_without_an_allowance_fails_and_changes_nothing(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, token: ContractInstance
    ) -> None:
        product_id = listed(market, seller, token=token.address)
        token.approve(market, 0, sender=buyer)
        with ape.reverts():
            market.purchase(product_id, *terms(market, product_id), sender=buyer)
        assert market.purchaseOf(product_id, buyer) == 0
        assert market.balanceOf(seller, token) == 0

    def test_counts_each_funded_token_once(
        self,
        market: ContractInstance,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        token: ContractInstance,
    ) -> None:
        in_eth, in_token = listed(market, seller), listed(market, seller, token=token.address)
        for account in (buyer, *others):
            bought(market, in_eth, account)
            bought(market, in_token, account)
        assert market.fundedTokenCount() == 2

    def test_with_a_pool_beyond_uint128_is_refused(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        token: ContractInstance,
    ) -> None:
        # Two maximal pools in one token cannot both be recorded: the ledger is uint128.
        top = 2**128 - 1
        market.setOperatorFee(0, sender=owner)
        first = listed(market, seller, token=token.address, price=top, discount_bps=10_000)
        second = listed(market, seller, token=token.address, price=top, discount_bps=10_000)
        for account in (buyer, others[0]):
            token.mint(account, top, sender=account)
        market.purchase(first, *terms(market, first), sender=buyer)
        with ape.reverts(market.SafeCastOverflowedUintDowncast):
            market.purchase(second, *terms(market, second), sender=others[0])
