"""Sellers and the treasury pull what they are owed, in each token, even while the store is paused."""

from __future__ import annotations

from typing import Any

import ape
from ape.api import AccountAPI
from ape.contracts import ContractInstance

from tests.contracts.helpers import ETH, PRICE, bought, listed, split


class TestWithdrawingEth:
    def test_pays_the_seller_exactly_its_balance(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seller_amount = split(PRICE)[0]
        before = seller.balance

        receipt = market.withdraw(ETH, sender=seller)

        assert seller.balance == before + seller_amount - receipt.total_fees_paid
        event = receipt.events.filter(market.Withdrawn)[0]
        assert (event.account, event.token, event.amount) == (seller.address, ETH, seller_amount)
        assert market.balanceOf(seller, ETH) == 0

    def test_pays_the_treasury_its_fees(
        self,
        market: ContractInstance,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        treasury: AccountAPI,
    ) -> None:
        product_id = listed(market, seller)
        for account in (buyer, *others):
            bought(market, product_id, account)
        before = treasury.balance

        receipt = market.withdraw(ETH, sender=treasury)

        assert treasury.balance == before + 5 * split(PRICE)[1] - receipt.total_fees_paid

    def test_twice_pays_only_once(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        market.withdraw(ETH, sender=seller)
        with ape.reverts(market.NothingToWithdraw):
            market.withdraw(ETH, sender=seller)

    def test_leaves_later_sales_to_be_withdrawn(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, others: list[AccountAPI]
    ) -> None:
        product_id = listed(market, seller)
        bought(market, product_id, buyer)
        market.withdraw(ETH, sender=seller)

        bought(market, product_id, others[0])

        assert market.balanceOf(seller, ETH) == split(PRICE)[0]
        assert (
            market.withdraw(ETH, sender=seller).events.filter(market.Withdrawn)[0].amount == split(PRICE)[0]
        )

    def test_works_while_paused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, guardian: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        market.pause(sender=guardian)
        market.withdraw(ETH, sender=seller)
        assert market.balanceOf(seller, ETH) == 0

    def test_by_someone_owed_nothing_is_refused(self, market: ContractInstance, buyer: AccountAPI) -> None:
        with ape.reverts(market.NothingToWithdraw):
            market.withdraw(ETH, sender=buyer)

    def test_never_touches_the_seeder_pool(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, treasury: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        market.withdraw(ETH, sender=seller)
        market.withdraw(ETH, sender=treasury)
        assert market.balance == split(PRICE)[2] == market.seederPool(ETH)[0]

    def test_to_a_contract_that_refuses_ether_fails_and_keeps_the_balance(
        self, market: ContractInstance, project: Any, owner: AccountAPI, buyer: AccountAPI
    ) -> None:
        shop = owner.deploy(project.ReentrantReceiver)
        shop.execute(
            market,
            0,
            market.listProduct.encode_input(b"\x01" * 20 + bytes(12), 1, ETH, PRICE, 0, ""),
            sender=owner,
        )
        bought(market, 1, buyer)
        shop.setRefuseEth(True, sender=owner)

        with ape.reverts(market.EthTransferFailed):
            shop.execute(market, 0, market.withdraw.encode_input(ETH), sender=owner)

        assert market.balanceOf(shop, ETH) == PRICE


class TestWithdrawingTokens:
    def test_pays_each_token_separately(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, token: ContractInstance
    ) -> None:
        bought(market, listed(market, seller), buyer)
        bought(market, listed(market, seller, token=token.address), buyer)

        market.withdraw(token, sender=seller)

        assert token.balanceOf(seller) == split(PRICE)[0]
        assert market.balanceOf(seller, token) == 0
        assert market.balanceOf(seller, ETH) == split(PRICE)[0]

    def test_works_after_the_token_leaves_the_allow_list(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        token: ContractInstance,
    ) -> None:
        bought(market, listed(market, seller, token=token.address), buyer)
        market.setTokenAllowed(token, False, sender=owner)
        market.withdraw(token, sender=seller)
        assert token.balanceOf(seller) == split(PRICE)[0]
