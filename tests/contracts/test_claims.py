"""Seeders claim their cumulative earnings against the active root; anyone may send the claim."""

from __future__ import annotations

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager
from eth_utils import to_checksum_address

from tests.contracts.helpers import ETH, ETHER, Seeders, activate, in_address_order, post


@pytest.fixture
def seeders(buyer: AccountAPI, others: list[AccountAPI], token: ContractInstance) -> Seeders:
    return Seeders.of(
        [
            (buyer, ETH, 3 * ETHER // 10),
            (others[0], ETH, 2 * ETHER // 10),
            (buyer, token.address, 4 * ETHER // 10),
            (others[1], token.address, ETHER // 10),
            (others[2], ETH, 0),
        ]
    )


class TestClaimingEth:
    def test_pays_the_account_its_earnings(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        before = buyer.balance

        receipt = market.claim(*live.claim_args(buyer, ETH), sender=keeper)

        amount = 3 * ETHER // 10
        assert buyer.balance == before + amount
        event = receipt.events.filter(market.Claimed)[0]
        assert (event.account, event.token, event.amount, event.cumulativeAmount) == (
            buyer.address,
            ETH,
            amount,
            amount,
        )
        assert market.claimed(buyer, ETH) == amount
        assert market.seederPool(ETH)[1] == amount

    def test_by_the_account_itself_pays_it_too(
        self, market: ContractInstance, live: Seeders, others: list[AccountAPI]
    ) -> None:
        before = others[0].balance
        receipt = market.claim(*live.claim_args(others[0], ETH), sender=others[0])
        assert others[0].balance == before + 2 * ETHER // 10 - receipt.total_fees_paid

    def test_pays_only_the_growth_of_a_later_root(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        market.claim(*live.claim_args(buyer, ETH), sender=keeper)
        later = Seeders.of([(buyer, ETH, 5 * ETHER // 10), (others[0], ETH, 2 * ETHER // 10)])
        post(
            market,
            oracle,
            later,
            tokens,
            totals=[7 * ETHER // 10 if t == ETH else 5 * ETHER // 10 for t in tokens],
        )
        activate(chain)
        before = buyer.balance

        receipt = market.claim(*later.claim_args(buyer, ETH), sender=keeper)

        assert buyer.balance == before + 2 * ETHER // 10
        assert receipt.events.filter(market.Claimed)[0].amount == 2 * ETHER // 10
        assert market.claimed(buyer, ETH) == 5 * ETHER // 10

    def test_uses_the_current_root_while_a_newer_one_waits(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        tokens: list[str],
    ) -> None:
        newer = Seeders.of([(buyer, ETH, 6 * ETHER // 10)])
        post(market, oracle, newer, tokens, totals=live.totals(tokens))

        market.claim(*live.claim_args(others[0], ETH), sender=keeper)

        with ape.reverts(market.InvalidProof):
            market.claim(*newer.claim_args(buyer, ETH), sender=keeper)

    def test_of_a_zero_leaf_pays_nothing(
        self, market: ContractInstance, live: Seeders, others: list[AccountAPI], keeper: AccountAPI
    ) -> None:
        with ape.reverts(market.NothingToClaim):
            market.claim(*live.claim_args(others[2], ETH), sender=keeper)


class TestClaimingATokenReward:
    def test_pays_the_account_in_that_token(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
        token: ContractInstance,
    ) -> None:
        before = token.balanceOf(buyer)
        market.claim(*live.claim_args(buyer, token.address), sender=keeper)
        assert token.balanceOf(buyer) == before + 4 * ETHER // 10
        assert market.claimed(buyer, token) == 4 * ETHER // 10
        assert market.claimed(buyer, ETH) == 0
        assert market.seederPool(token) == (ETHER, 4 * ETHER // 10)


class TestClaimingMany:
    def test_pays_every_claim_of_the_batch(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        token: ContractInstance,
    ) -> None:
        requests = [
            live.claim_args(a, t)
            for a, t in [(buyer, ETH), (buyer, token.address), (others[1], token.address)]
        ]
        eth_before, token_before = buyer.balance, token.balanceOf(buyer)

        receipt = market.claimMany(requests, sender=keeper)

        assert [e.amount for e in receipt.events.filter(market.Claimed)] == [
            x * ETHER // 10 for x in (3, 4, 1)
        ]
        assert buyer.balance == eth_before + 3 * ETHER // 10
        assert token.balanceOf(buyer) == token_before + 4 * ETHER // 10
        assert market.claimed(others[1], token) == ETHER // 10

    def test_fails_as_a_whole_when_one_claim_fails(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        good = live.claim_args(buyer, ETH)
        account, token_, amount, proof = live.claim_args(others[0], ETH)
        with ape.reverts(market.InvalidProof):
            market.claimMany([good, (account, token_, amount + 1, proof)], sender=keeper)
        assert market.claimed(buyer, ETH) == 0

    def test_of_nothing_pays_nothing(
        self, market: ContractInstance, live: Seeders, keeper: AccountAPI
    ) -> None:
        receipt = market.claimMany([], sender=keeper)
        assert not receipt.events.filter(market.Claimed)

    def test_is_refused_while_paused(
        self,
        market: ContractInstance,
        guardian: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.claimMany([live.claim_args(buyer, ETH)], sender=keeper)

    def test_before_any_root_is_active_is_refused(self, market: ContractInstance, keeper: AccountAPI) -> None:
        with ape.reverts(market.NoActiveRoot):
            market.claimMany([], sender=keeper)


def test_a_leaf_for_a_stranger_pays_the_stranger(
    market: ContractInstance,
    oracle: AccountAPI,
    chain: ChainManager,
    pools: dict[str, int],
    keeper: AccountAPI,
) -> None:
    stranger = to_checksum_address("0x" + "5e" * 20)
    seeders = Seeders.of([(stranger, ETH, 12345)])
    tokens = in_address_order(pools)
    post(market, oracle, seeders, tokens, totals=[12345 if t == ETH else 0 for t in tokens])
    activate(chain)
    market.claim(*seeders.claim_args(stranger, ETH), sender=keeper)
    assert chain.provider.get_balance(stranger) == 12345
