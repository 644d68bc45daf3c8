"""The oracle posts cumulative roots; each waits `rootDelay` and may be canceled by the guardian."""

from __future__ import annotations

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager

from tests.contracts.helpers import (
    ETH,
    PRICE,
    ROOT_DELAY,
    Seeders,
    activate,
    bought,
    in_address_order,
    listed,
    post,
    split,
)

POOL = 2 * split(PRICE)[2]  # the ETH seeder pool funded by the `funded` fixture


@pytest.fixture
def funded(market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, others: list[AccountAPI]) -> None:
    """Two ETH purchases: ETH is the only funded token."""
    product_id = listed(market, seller)
    bought(market, product_id, buyer)
    bought(market, product_id, others[0])


@pytest.fixture
def seeders(buyer: AccountAPI, others: list[AccountAPI]) -> Seeders:
    return Seeders.of([(buyer, ETH, POOL // 2), (others[0], ETH, POOL // 4)])


class TestPostingARoot:
    def test_makes_it_pending_for_the_delay(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        receipt = post(market, oracle, seeders, [ETH], epoch=1)

        activates = receipt.timestamp + ROOT_DELAY
        event = receipt.events.filter(market.RootPosted)[0]
        assert (event.epoch, event.root, event.activeAt) == (1, seeders.root, activates)
        assert (event.tokens, event.cumulativeTotals) == ([ETH], seeders.totals([ETH]))
        assert event.dataURI == "ipfs://epoch"
        assert market.pendingRoot() == (seeders.root, 1, activates)
        assert market.activeRoot() == (bytes(32), 0)
        assert market.lastEpoch() == 1
        assert market.activeTotal(ETH) == 0

    def test_activates_it_once_the_delay_has_passed(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH], epoch=1)
        activate(chain)
        assert market.activeRoot() == (seeders.root, 1)
        assert market.pendingRoot() == (bytes(32), 0, 0)
        assert market.activeTotal(ETH) == 3 * POOL // 4

    def test_keeps_the_previous_root_active_until_the_new_one_is(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
        buyer: AccountAPI,
    ) -> None:
        post(market, oracle, seeders, [ETH], epoch=1)
        activate(chain)
        later = Seeders.of([(buyer, ETH, POOL)])

        post(market, oracle, later, [ETH], epoch=2)

        assert market.activeRoot() == (seeders.root, 1)
        assert market.activeTotal(ETH) == 3 * POOL // 4
        activate(chain)
        assert market.activeRoot() == (later.root, 2)
        assert market.activeTotal(ETH) == POOL
        # And the promotion on the next post keeps epoch 2 as the current root.
        post(market, oracle, later, [ETH], epoch=3)
        assert market.activeRoot() == (later.root, 2)

    def test_may_keep_totals_unchanged(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH])
        activate(chain)
        post(market, oracle, Seeders.of([(ETH, ETH, 1)]), [ETH], totals=seeders.totals([ETH]))

    def test_lists_no_token_before_any_pool_is_funded(
        self, market: ContractInstance, oracle: AccountAPI, buyer: AccountAPI
    ) -> None:
        post(market, oracle, Seeders.of([(buyer, ETH, 0)]), [], totals=[])
        assert market.pendingRoot()[1] == 1

    def test_lists_every_funded_token_in_address_order(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        token: ContractInstance,
        funded: None,
    ) -> None:
        bought(market, listed(market, seller, token=token.address), buyer)
        tokens = in_address_order([ETH, token])
        post(market, oracle, Seeders.of([(buyer, ETH, 1), (buyer, token.address, 2)]), tokens)
        assert market.lastEpoch() == 1

    def test_from_anyone_but_the_oracle_is_refused(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        guardian: AccountAPI,
        funded: None,
        seeders: Seeders,
    ) -> None:
        for account in (owner, guardian):
            with ape.reverts(market.NotOracle):
                post(market, account, seeders, [ETH])

    def test_from_a_replaced_oracle_is_refused(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        oracle: AccountAPI,
        others: list[AccountAPI],
        funded: None,
        seeders: Seeders,
    ) -> None:
        market.setOracle(others[0], sender=owner)
        with ape.reverts(market.NotOracle):
            post(market, oracle, seeders, [ETH])
        post(market, others[0], seeders, [ETH])

    def test_of_the_zero_root_is_refused(
        self, market: ContractInstance, oracle: AccountAPI, funded: None
    ) -> None:
        with ape.reverts(market.ZeroRoot):
            market.postRoot(bytes(32), 1, [ETH], [1], "", sender=oracle)

    def test_with_any_epoch_but_the_next_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        for epoch in (0, 2, 2**64 - 1):
            with ape.reverts(market.EpochNotNext, epoch=epoch, expected=1):
                post(market, oracle, seeders, [ETH], epoch=epoch)
        post(market, oracle, seeders, [ETH], epoch=1)
        activate(chain)
        for epoch in (1, 0, 3):
            with ape.reverts(market.EpochNotNext, epoch=epoch, expected=2):
                post(market, oracle, seeders, [ETH], epoch=epoch)

    def test_with_arrays_of_different_lengths_is_refused(
        self, market: ContractInstance, oracle: AccountAPI, funded: None, seeders: Seeders
    ) -> None:
        with ape.reverts(market.LengthMismatch):
            post(market, oracle, seeders, [ETH], totals=[1, 2])

    def test_that_leaves_out_a_funded_token_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        token: ContractInstance,
        funded: None,
        seeders: Seeders,
    ) -> None:
        bought(market, listed(market, seller, token=token.address), buyer)
        with ape.reverts(market.TokensIncomplete, given=1, funded=2):
            post(market, oracle, seeders, [ETH])

    def test_that_lists_an_unfunded_token_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        token: ContractInstance,
        funded: None,
        seeders: Seeders,
    ) -> None:
        with ape.reverts(market.TokenNotFunded, token=token.address):
            post(market, oracle, seeders, [token.address], totals=[0])

    def test_with_tokens_out_of_order_or_repeated_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        token: ContractInstance,
        funded: None,
        seeders: Seeders,
    ) -> None:
        bought(market, listed(market, seller, token=token.address), buyer)
        ascending = in_address_order([ETH, token])
        for tokens in (ascending[::-1], [ascending[1], ascending[1]]):
            with ape.reverts(market.TokensNotSorted):
                post(market, oracle, seeders, tokens, totals=[0, 0])

    def test_whose_total_decreases_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH])
        activate(chain)
        lower = seeders.totals([ETH])[0] - 1
        with ape.reverts(market.TotalDecreased, token=ETH, previous=lower + 1, total=lower):
            post(market, oracle, seeders, [ETH], totals=[lower])

    def test_whose_total_exceeds_the_funded_pool_is_refused(
        self, market: ContractInstance, oracle: AccountAPI, funded: None, buyer: AccountAPI
    ) -> None:
        greedy = Seeders.of([(buyer, ETH, POOL + 1)])
        with ape.reverts(market.TotalExceedsFunded, token=ETH, total=POOL + 1, funded=POOL):
            post(market, oracle, greedy, [ETH])

    def test_while_another_is_pending_is_refused(
        self, market: ContractInstance, oracle: AccountAPI, funded: None, seeders: Seeders
    ) -> None:
        receipt = post(market, oracle, seeders, [ETH], epoch=1)
        with ape.reverts(market.RootPending, epoch=1, activeAt=receipt.timestamp + ROOT_DELAY):
            post(market, oracle, seeders, [ETH], epoch=2)

    def test_is_refused_while_paused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        funded: None,
        seeders: Seeders,
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            post(market, oracle, seeders, [ETH])


class TestCancelingARoot:
    def test_drops_the_pending_root_and_keeps_the_active_one(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH], epoch=1)
        activate(chain)
        bad = Seeders.of([(guardian, ETH, POOL)])
        post(market, oracle, bad, [ETH], epoch=2)

        receipt = market.cancelRoot(sender=guardian)

        event = receipt.events.filter(market.RootCanceled)[0]
        assert (event.epoch, event.root) == (2, bad.root)
        assert market.pendingRoot() == (bytes(32), 0, 0)
        activate(chain)
        assert market.activeRoot() == (seeders.root, 1)
        assert market.activeTotal(ETH) == 3 * POOL // 4

    def test_uses_up_its_epoch(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH], epoch=1)
        market.cancelRoot(sender=guardian)
        with ape.reverts(market.EpochNotNext, epoch=1, expected=2):
            post(market, oracle, seeders, [ETH], epoch=1)
        post(market, oracle, seeders, [ETH], epoch=2)

    def test_forgets_the_canceled_totals(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
        buyer: AccountAPI,
    ) -> None:
        post(market, oracle, Seeders.of([(buyer, ETH, POOL)]), [ETH])
        market.cancelRoot(sender=guardian)
        post(market, oracle, seeders, [ETH])
        activate(chain)
        assert market.activeTotal(ETH) == 3 * POOL // 4

    def test_of_the_first_root_leaves_none_active(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH])
        market.cancelRoot(sender=guardian)
        activate(chain)
        assert market.activeRoot() == (bytes(32), 0)

    def test_works_while_paused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH])
        market.pause(sender=guardian)
        market.cancelRoot(sender=guardian)
        assert market.pendingRoot() == (bytes(32), 0, 0)

    def test_by_anyone_but_the_guardian_is_refused(
        self, market: ContractInstance, owner: AccountAPI, oracle: AccountAPI, funded: None, seeders: Seeders
    ) -> None:
        post(market, oracle, seeders, [ETH])
        for account in (owner, oracle):
            with ape.reverts(market.NotGuardian):
                market.cancelRoot(sender=account)

    def test_without_a_pending_root_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        with ape.reverts(market.NoPendingRoot):
            market.cancelRoot(sender=guardian)
        post(market, oracle, seeders, [ETH])
        market.cancelRoot(sender=guardian)
        with ape.reverts(market.NoPendingRoot):
            market.cancelRoot(sender=guardian)

    def test_after_the_root_became_active_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        funded: None,
        seeders: Seeders,
    ) -> None:
        post(market, oracle, seeders, [ETH])
        activate(chain)
        with ape.reverts(market.NoPendingRoot):
            market.cancelRoot(sender=guardian)
