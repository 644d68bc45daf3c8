"""Attempts to take money the attacker is not owed; each must fail and leave the books intact."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager
from eth_utils import keccak, to_checksum_address

from backend.merkle import hash_pair
from tests.contracts.helpers import (
    ETH,
    ETHER,
    PRICE,
    ROOT_DELAY,
    Seeders,
    activate,
    bought,
    in_address_order,
    listed,
    post,
    split,
    terms,
)

REENTRANCY = keccak(text="ReentrancyGuardReentrantCall()")[:4]


@pytest.fixture
def receiver(project: Any, owner: AccountAPI) -> ContractInstance:
    """A contract account that calls back into the market whenever it receives ETH."""
    return owner.deploy(project.ReentrantReceiver)


class TestReentrancy:
    def test_a_seller_contract_cannot_withdraw_twice_by_reentering(
        self, market: ContractInstance, receiver: ContractInstance, owner: AccountAPI, buyer: AccountAPI
    ) -> None:
        listing = market.listProduct.encode_input(b"\x01" * 20 + bytes(12), 1, ETH, PRICE, 0, "")
        receiver.execute(market, 0, listing, sender=owner)
        bought(market, 1, buyer)
        withdraw = market.withdraw.encode_input(ETH)
        receiver.arm(market, withdraw, sender=owner)

        receiver.execute(market, 0, withdraw, sender=owner)

        assert receiver.attempted()
        assert not receiver.lastCallSucceeded()
        assert bytes(receiver.lastCallResult())[:4] == REENTRANCY
        assert receiver.balance == PRICE
        assert market.balanceOf(receiver, ETH) == 0
        assert market.balance == 0

    def test_a_seeder_contract_cannot_reenter_a_claim(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        receiver: ContractInstance,
        owner: AccountAPI,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        bought(market, listed(market, buyer), keeper)
        pool = split(PRICE)[2]
        seeders = Seeders.of([(receiver, ETH, pool // 2), (buyer, ETH, pool // 2)])
        post(market, oracle, seeders, [ETH])
        activate(chain)
        # While being paid, the receiver tries to claim the other leaf, which alone would succeed.
        receiver.arm(market, market.claim.encode_input(*seeders.claim_args(buyer, ETH)), sender=owner)

        market.claim(*seeders.claim_args(receiver, ETH), sender=keeper)

        assert receiver.attempted()
        assert not receiver.lastCallSucceeded()
        assert bytes(receiver.lastCallResult())[:4] == REENTRANCY
        assert receiver.balance == pool // 2
        assert market.claimed(buyer, ETH) == 0
        market.claim(*seeders.claim_args(buyer, ETH), sender=keeper)
        assert market.seederPool(ETH) == (pool, pool)

    def test_a_seeder_contract_that_refuses_payment_only_blocks_its_own_claim(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        receiver: ContractInstance,
        owner: AccountAPI,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        bought(market, listed(market, buyer), keeper)
        seeders = Seeders.of([(receiver, ETH, 1), (buyer, ETH, 2)])
        post(market, oracle, seeders, [ETH])
        activate(chain)
        receiver.setRefuseEth(True, sender=owner)

        with ape.reverts(market.EthTransferFailed):
            market.claim(*seeders.claim_args(receiver, ETH), sender=keeper)

        market.claim(*seeders.claim_args(buyer, ETH), sender=keeper)
        assert market.claimed(receiver, ETH) == 0


class TestForgedClaims:
    @pytest.fixture
    def live(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> Seeders:
        product_id = listed(market, seller)
        for account in (buyer, *others):
            bought(market, product_id, account)
        seeders = Seeders.of([(buyer, ETH, 3 * ETHER // 10), (others[0], ETH, 2 * ETHER // 10)])
        post(market, oracle, seeders, [ETH])
        activate(chain)
        return seeders

    def test_claiming_twice_pays_once(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        market.claim(*live.claim_args(buyer, ETH), sender=keeper)
        with ape.reverts(market.NothingToClaim):
            market.claim(*live.claim_args(buyer, ETH), sender=keeper)
        receipt = market.claimMany([live.claim_args(buyer, ETH)], sender=keeper)
        assert not receipt.events.filter(market.Claimed)
        assert market.claimed(buyer, ETH) == 3 * ETHER // 10
        assert market.seederPool(ETH)[1] == 3 * ETHER // 10

    def test_one_batch_cannot_claim_a_leaf_twice(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        receipt = market.claimMany([live.claim_args(buyer, ETH)] * 2, sender=keeper)
        assert len(receipt.events.filter(market.Claimed)) == 1
        assert market.claimed(buyer, ETH) == 3 * ETHER // 10
        assert market.seederPool(ETH)[1] == 3 * ETHER // 10

    def test_a_raised_amount_does_not_verify(
        self, market: ContractInstance, live: Seeders, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        account, token, amount, proof = live.claim_args(buyer, ETH)
        with ape.reverts(market.InvalidProof):
            market.claim(account, token, amount + 1, proof, sender=keeper)

    def test_a_made_up_proof_does_not_verify(
        self, market: ContractInstance, live: Seeders, keeper: AccountAPI
    ) -> None:
        with ape.reverts(market.InvalidProof):
            market.claim(keeper, ETH, ETHER // 10, [b"\x42" * 32], sender=keeper)
        with ape.reverts(market.InvalidProof):
            market.claim(keeper, ETH, ETHER // 10, [], sender=keeper)

    def test_another_accounts_proof_does_not_verify(
        self, market: ContractInstance, live: Seeders, others: list[AccountAPI], keeper: AccountAPI
    ) -> None:
        _, token, amount, proof = live.claim_args(others[0], ETH)
        with ape.reverts(market.InvalidProof):
            market.claim(keeper, token, amount, proof, sender=keeper)

    def test_a_proof_for_one_token_does_not_verify_for_another(
        self,
        market: ContractInstance,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
        token: ContractInstance,
    ) -> None:
        bought(market, listed(market, buyer, token=token.address), keeper)
        account, _, amount, proof = live.claim_args(buyer, ETH)
        with ape.reverts(market.InvalidProof):
            market.claim(account, token, amount, proof, sender=keeper)

    def test_an_inner_node_cannot_be_claimed_as_a_leaf(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        pools: dict[str, int],
        project: Any,
        owner: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        # In a four-leaf tree, node 1 has a one-step proof to the root. A contract that took leaf
        # hashes, or hashed a 64-byte leaf once, would accept node 1's children as a leaf. Ours
        # builds the leaf itself from (account, token, amount), hashed twice.
        tokens = in_address_order(pools)
        seeders = Seeders.of([(to_checksum_address(bytes([i]) * 20), ETH, i) for i in range(1, 5)])
        post(market, oracle, seeders, tokens, totals=[10 if t == ETH else 0 for t in tokens])
        activate(chain)
        tree = seeders.tree.tree
        node, sibling, left, right = tree[1], tree[2], tree[3], tree[4]
        assert hash_pair(node, sibling) == seeders.root
        assert hash_pair(left, right) == node
        harness = owner.deploy(project.EarningsTreeHarness)
        assert harness.verifyLeafHash([sibling], seeders.root, node)
        low, high = sorted([left, right])
        attempts: list[tuple[str, str, int]] = [
            (to_checksum_address(low[12:]), to_checksum_address(high[12:]), 1),
            (to_checksum_address(low[12:]), ETH, int.from_bytes(high, "big")),
            (ETH, ETH, int.from_bytes(node, "big")),
        ]
        for account, token, amount in attempts:
            with ape.reverts(market.InvalidProof):
                market.claim(account, token, amount, [sibling], sender=keeper)

    def test_a_leaf_of_a_root_not_yet_active_is_refused(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        newer = Seeders.of([(keeper, ETH, ETHER // 10), (buyer, ETH, 3 * ETHER // 10)])
        post(market, oracle, newer, [ETH], totals=live.totals([ETH]))
        with ape.reverts(market.InvalidProof):
            market.claim(*newer.claim_args(keeper, ETH), sender=keeper)

    def test_a_leaf_of_a_canceled_root_is_refused_for_good(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        chain: ChainManager,
        live: Seeders,
        keeper: AccountAPI,
    ) -> None:
        bad = Seeders.of([(keeper, ETH, 5 * ETHER // 10)])
        post(market, oracle, bad, [ETH])
        market.cancelRoot(sender=guardian)
        activate(chain)
        with ape.reverts(market.InvalidProof):
            market.claim(*bad.claim_args(keeper, ETH), sender=keeper)

    def test_nothing_can_be_claimed_before_a_root_is_active(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(keeper, ETH, 1)])
        with ape.reverts(market.NoActiveRoot):
            market.claim(*seeders.claim_args(keeper, ETH), sender=keeper)
        post(market, oracle, seeders, [ETH])
        with ape.reverts(market.NoActiveRoot):
            market.claim(*seeders.claim_args(keeper, ETH), sender=keeper)

    def test_claims_are_refused_while_paused(
        self,
        market: ContractInstance,
        guardian: AccountAPI,
        live: Seeders,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.claim(*live.claim_args(buyer, ETH), sender=keeper)


class TestDishonestOracle:
    def test_a_stranger_cannot_post_a_root(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, keeper: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        greedy = Seeders.of([(keeper, ETH, split(PRICE)[2])])
        with ape.reverts(market.NotOracle):
            post(market, keeper, greedy, [ETH])

    def test_the_oracle_cannot_promise_more_than_was_funded(
        self, market: ContractInstance, oracle: AccountAPI, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        bought(market, listed(market, seller), buyer)
        # The contract holds the whole price, but only the seeder pool is the oracle's to give.
        greedy = Seeders.of([(oracle, ETH, PRICE)])
        with ape.reverts(market.TotalExceedsFunded, token=ETH, total=PRICE, funded=split(PRICE)[2]):
            post(market, oracle, greedy, [ETH])

    def test_the_oracle_cannot_reuse_an_old_epoch(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(buyer, ETH, 1)])
        post(market, oracle, seeders, [ETH], epoch=1)
        activate(chain)
        with ape.reverts(market.EpochNotNext, epoch=1, expected=2):
            post(market, oracle, seeders, [ETH], epoch=1)

    def test_a_tree_worth_more_than_its_total_cannot_pay_more_than_the_total(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        treasury: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        product_id = listed(market, seller)
        for account in (buyer, *others):
            bought(market, product_id, account)
        pool = 5 * split(PRICE)[2]
        # Five leaves of half the pool each (two and a half pools) under a declared total of half a pool.
        half = pool // 2
        greedy = Seeders.of([(account, ETH, half) for account in (buyer, *others)])
        post(market, oracle, greedy, [ETH], totals=[half])
        activate(chain)
        first = market.claim(*greedy.claim_args(buyer, ETH), sender=keeper)
        assert first.events.filter(market.Claimed)[0].amount == half

        for account in others:
            with ape.reverts(market.ClaimExceedsRootTotal, token=ETH, claimedTotal=2 * half, rootTotal=half):
                market.claim(*greedy.claim_args(account, ETH), sender=keeper)
        # Not even in one batch, and the sellers' and operator's money is all still there.
        with ape.reverts(market.ClaimExceedsRootTotal):
            market.claimMany([greedy.claim_args(a, ETH) for a in others], sender=keeper)
        assert market.seederPool(ETH) == (pool, half)
        market.withdraw(ETH, sender=seller)
        market.withdraw(ETH, sender=treasury)
        assert market.balance == pool - half

    def test_a_later_root_cannot_take_back_what_was_paid(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
        keeper: AccountAPI,
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(buyer, ETH, 100)])
        post(market, oracle, seeders, [ETH])
        activate(chain)
        market.claim(*seeders.claim_args(buyer, ETH), sender=keeper)
        lower = Seeders.of([(buyer, ETH, 40), (keeper, ETH, 60)])
        with ape.reverts(market.TotalDecreased):
            post(market, oracle, lower, [ETH], totals=[99])
        # The same total, shifted to another account: the buyer's lower leaf pays nothing more.
        post(market, oracle, lower, [ETH], totals=[100])
        activate(chain)
        with ape.reverts(market.NothingToClaim):
            market.claim(*lower.claim_args(buyer, ETH), sender=keeper)
        with ape.reverts(market.ClaimExceedsRootTotal):
            market.claim(*lower.claim_args(keeper, ETH), sender=keeper)


class TestBadPayments:
    def test_underpaying_in_eth_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        with ape.reverts(market.WrongPayment, expected=PRICE, sent=PRICE - 1):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE - 1)

    def test_buying_a_closed_product_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.setProductActive(product_id, False, sender=seller)
        with ape.reverts(market.ProductInactive):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_buying_while_paused_is_refused(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, guardian: AccountAPI
    ) -> None:
        product_id = listed(market, seller)
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_sending_ether_without_a_purchase_is_refused(
        self, market: ContractInstance, buyer: AccountAPI
    ) -> None:
        with ape.reverts():
            buyer.transfer(market, 1)
        assert market.balance == 0


class TestMaliciousTokens:
    @pytest.fixture
    def evil(
        self, project: Any, owner: AccountAPI, market: ContractInstance, buyer: AccountAPI
    ) -> ContractInstance:
        contract = owner.deploy(project.MaliciousToken)
        market.setTokenAllowed(contract, True, sender=owner)
        contract.mint(buyer, 10 * PRICE, sender=owner)
        contract.approve(market, 10 * PRICE, sender=buyer)
        return contract

    def test_a_fee_on_transfer_token_cannot_be_paid_with(
        self, market: ContractInstance, project: Any, owner: AccountAPI, seller: AccountAPI, buyer: AccountAPI
    ) -> None:
        fot = owner.deploy(project.FeeOnTransferToken)
        market.setTokenAllowed(fot, True, sender=owner)
        fot.mint(buyer, PRICE, sender=owner)
        fot.approve(market, PRICE, sender=buyer)
        product_id = listed(market, seller, token=fot.address)

        with ape.reverts(market.TokenTransferShortfall, expected=PRICE, received=PRICE - PRICE // 100):
            market.purchase(product_id, *terms(market, product_id), sender=buyer)

        assert market.purchaseOf(product_id, buyer) == 0
        assert market.seederPool(fot) == (0, 0)
        assert fot.balanceOf(market) == 0

    def test_a_token_that_lies_about_a_transfer_in_buys_nothing(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, evil: ContractInstance
    ) -> None:
        product_id = listed(market, seller, token=evil.address)
        evil.setMode(2, ETH, b"", sender=buyer)  # LieOnTransferFrom

        with ape.reverts(market.TokenTransferShortfall, expected=PRICE, received=0):
            market.purchase(product_id, *terms(market, product_id), sender=buyer)

        assert market.balanceOf(seller, evil) == 0

    def test_a_token_that_fails_a_transfer_out_keeps_the_balance_owed(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, evil: ContractInstance
    ) -> None:
        bought(market, listed(market, seller, token=evil.address), buyer)
        evil.setMode(3, ETH, b"", sender=buyer)  # FailTransfer

        with ape.reverts(market.SafeERC20FailedOperation, token=evil.address):
            market.withdraw(evil, sender=seller)

        assert market.balanceOf(seller, evil) == split(PRICE)[0]

    def test_a_token_cannot_reenter_during_a_purchase(
        self,
        market: ContractInstance,
        seller: AccountAPI,
        buyer: AccountAPI,
        treasury: AccountAPI,
        evil: ContractInstance,
    ) -> None:
        bought(market, listed(market, seller), buyer)  # the treasury is owed ETH fees
        product_id = listed(market, seller, token=evil.address)
        evil.setMode(1, market, market.withdraw.encode_input(ETH), sender=buyer)  # Reenter

        bought(market, product_id, buyer)

        assert not evil.lastCallSucceeded()
        assert bytes(evil.lastCallResult())[:4] == REENTRANCY
        assert evil.balanceOf(market) == PRICE
        assert market.balanceOf(seller, evil) == split(PRICE)[0]

    def test_a_token_cannot_reenter_a_withdrawal(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, evil: ContractInstance
    ) -> None:
        bought(market, listed(market, seller, token=evil.address), buyer)
        evil.setMode(1, market, market.withdraw.encode_input(evil), sender=buyer)

        market.withdraw(evil, sender=seller)

        assert bytes(evil.lastCallResult())[:4] == REENTRANCY
        assert evil.balanceOf(seller) == split(PRICE)[0]
        assert evil.balanceOf(market) == PRICE - split(PRICE)[0]

    def test_a_token_cannot_reenter_a_claim(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
        evil: ContractInstance,
    ) -> None:
        bought(market, listed(market, seller, token=evil.address), buyer)
        pool = split(PRICE)[2]
        seeders = Seeders.of([(others[0], evil.address, pool // 2), (others[1], evil.address, pool // 2)])
        post(market, oracle, seeders, [evil.address])
        activate(chain)
        evil.setMode(
            1, market, market.claim.encode_input(*seeders.claim_args(others[1], evil.address)), sender=buyer
        )

        market.claim(*seeders.claim_args(others[0], evil.address), sender=keeper)

        assert bytes(evil.lastCallResult())[:4] == REENTRANCY
        assert market.claimed(others[1], evil) == 0
        assert evil.balanceOf(others[0]) == pool // 2


def test_the_delay_gives_the_guardian_time_to_stop_a_bad_root(
    market: ContractInstance,
    oracle: AccountAPI,
    guardian: AccountAPI,
    chain: ChainManager,
    seller: AccountAPI,
    buyer: AccountAPI,
    keeper: AccountAPI,
) -> None:
    bought(market, listed(market, seller), buyer)
    bad = Seeders.of([(keeper, ETH, split(PRICE)[2])])
    posted = post(market, oracle, bad, [ETH])
    chain.mine(timestamp=posted.timestamp + ROOT_DELAY - 2)
    market.cancelRoot(sender=guardian)
    activate(chain)
    with ape.reverts(market.NoActiveRoot):
        market.claim(*bad.claim_args(keeper, ETH), sender=keeper)
