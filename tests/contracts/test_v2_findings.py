"""The seven findings of the v1 security review (issue 12), each replayed from the attacker's side.

Every test here did what the attacker wanted on v1 (reproduced on anvil) and must fail for them
now: the veto window holds against the oracle, the owner, a pause, sellers and strangers.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.managers import ChainManager

from tests.contracts.helpers import (
    ETH,
    FEE_BPS,
    MAX_ROOT_DELAY,
    MAX_UINT256,
    MIN_ROOT_DELAY,
    PRICE,
    ROOT_DELAY,
    Seeders,
    activate,
    bought,
    funded_tokens,
    listed,
    post,
    split,
)

POOL = split(PRICE)[2]
TIMELOCK_DELAY = MAX_ROOT_DELAY  # what deploy.py sets: at least the highest root delay
SALT = bytes(32)
NO_PREDECESSOR = bytes(32)


@pytest.fixture
def timelock(project: Any, owner: AccountAPI, guardian: AccountAPI) -> ContractInstance:
    """The owner proposes; the guardian cancels; anyone executes."""
    return owner.deploy(project.SeedmarketTimelock, TIMELOCK_DELAY, TIMELOCK_DELAY, owner, guardian, ETH)


@pytest.fixture
def governed(
    project: Any,
    owner: AccountAPI,
    oracle: AccountAPI,
    guardian: AccountAPI,
    treasury: AccountAPI,
    timelock: ContractInstance,
) -> ContractInstance:
    """A market as scripts/deploy.py sets it up: owned by the timelock."""
    return owner.deploy(
        project.Marketplace,
        timelock,
        oracle,
        guardian,
        treasury,
        FEE_BPS,
        ROOT_DELAY,
        MIN_ROOT_DELAY,
        MAX_ROOT_DELAY,
    )


def schedule(
    timelock: ContractInstance, market: ContractInstance, call: str, *args: Any, sender: AccountAPI
) -> bytes:
    """Propose `market.call(*args)` with the timelock's delay; the operation id."""
    payload = getattr(market, call).encode_input(*args)
    timelock.schedule(market, 0, payload, NO_PREDECESSOR, SALT, TIMELOCK_DELAY, sender=sender)
    return bytes(timelock.hashOperation(market, 0, payload, NO_PREDECESSOR, SALT))


def execute(
    timelock: ContractInstance, market: ContractInstance, call: str, *args: Any, sender: AccountAPI
) -> Any:
    payload = getattr(market, call).encode_input(*args)
    return timelock.execute(market, 0, payload, NO_PREDECESSOR, SALT, sender=sender)


class TestFinding1EpochsAreConsecutive:
    def test_an_oracle_cannot_post_an_epoch_that_locks_out_every_later_root(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        oracle: AccountAPI,
        guardian: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(oracle, ETH, POOL)])

        with ape.reverts(market.EpochNotNext, epoch=2**64 - 1, expected=1):
            post(market, oracle, seeders, [ETH], epoch=2**64 - 1)
        # The next epoch is the only one it can take; the guardian vetoes that root ...
        post(market, oracle, seeders, [ETH], epoch=1)
        market.cancelRoot(sender=guardian)
        # ... and a replaced oracle carries on with the epoch after it.
        market.setOracle(others[0], sender=owner)
        post(market, others[0], Seeders.of([(buyer, ETH, POOL)]), [ETH], epoch=2)
        assert market.lastEpoch() == 2


class TestFinding2TheOwnerCannotSkipTheVetoWindow:
    def test_the_owner_account_no_longer_changes_parameters_directly(
        self, governed: ContractInstance, timelock: ContractInstance, owner: AccountAPI
    ) -> None:
        assert governed.owner() == timelock.address
        for call, args in (
            ("setOracle", (owner,)),
            ("setGuardian", (owner,)),
            ("setRootDelay", (MIN_ROOT_DELAY,)),
        ):
            with ape.reverts(governed.OwnableUnauthorizedAccount, account=owner.address):
                getattr(governed, call)(*args, sender=owner)

    def test_a_proposal_to_take_the_oracle_and_guardian_roles_waits_and_the_guardian_vetoes_it(
        self,
        governed: ContractInstance,
        timelock: ContractInstance,
        chain: ChainManager,
        owner: AccountAPI,
        oracle: AccountAPI,
        guardian: AccountAPI,
    ) -> None:
        payload = governed.setOracle.encode_input(owner)
        with ape.reverts(timelock.TimelockInsufficientDelay):
            timelock.schedule(governed, 0, payload, NO_PREDECESSOR, SALT, 0, sender=owner)
        take_oracle = schedule(timelock, governed, "setOracle", owner, sender=owner)
        take_guardian = schedule(timelock, governed, "setGuardian", owner, sender=owner)

        # Not in the same block, nor one second before the delay is up.
        with ape.reverts(timelock.TimelockUnexpectedOperationState):
            execute(timelock, governed, "setOracle", owner, sender=owner)
        chain.mine(deltatime=TIMELOCK_DELAY - 10)
        with ape.reverts(timelock.TimelockUnexpectedOperationState):
            execute(timelock, governed, "setGuardian", owner, sender=owner)
        timelock.cancel(take_oracle, sender=guardian)
        timelock.cancel(take_guardian, sender=guardian)
        chain.mine(deltatime=TIMELOCK_DELAY)

        for call in ("setOracle", "setGuardian"):
            with ape.reverts(timelock.TimelockUnexpectedOperationState):
                execute(timelock, governed, call, owner, sender=owner)
        assert (governed.oracle(), governed.guardian()) == (oracle.address, guardian.address)

    def test_not_even_a_waited_out_proposal_sets_the_root_delay_to_zero(
        self, governed: ContractInstance, timelock: ContractInstance, chain: ChainManager, owner: AccountAPI
    ) -> None:
        schedule(timelock, governed, "setRootDelay", 0, sender=owner)
        chain.mine(deltatime=TIMELOCK_DELAY)
        with ape.reverts():
            execute(timelock, governed, "setRootDelay", 0, sender=owner)
        assert governed.rootDelay() == ROOT_DELAY

    def test_nor_shortens_the_timelock_below_the_longest_root_delay(
        self, timelock: ContractInstance, chain: ChainManager, owner: AccountAPI
    ) -> None:
        payload = timelock.updateDelay.encode_input(0)
        timelock.schedule(timelock, 0, payload, NO_PREDECESSOR, SALT, TIMELOCK_DELAY, sender=owner)
        chain.mine(deltatime=TIMELOCK_DELAY)
        with ape.reverts(timelock.DelayBelowFloor, delay=0, floor=TIMELOCK_DELAY):
            timelock.execute(timelock, 0, payload, NO_PREDECESSOR, SALT, sender=owner)
        assert timelock.getMinDelay() == TIMELOCK_DELAY

    def test_the_guardian_cannot_propose_and_a_stranger_cannot_cancel(
        self,
        governed: ContractInstance,
        timelock: ContractInstance,
        owner: AccountAPI,
        guardian: AccountAPI,
        others: list[AccountAPI],
    ) -> None:
        with ape.reverts(timelock.AccessControlUnauthorizedAccount):
            schedule(timelock, governed, "setOracle", guardian, sender=guardian)
        operation = schedule(timelock, governed, "setTreasury", owner, sender=owner)
        with ape.reverts(timelock.AccessControlUnauthorizedAccount):
            timelock.cancel(operation, sender=others[0])


class TestFinding3APauseFreezesTheRootClock:
    @pytest.fixture
    def bad_root(
        self, market: ContractInstance, oracle: AccountAPI, seller: AccountAPI, buyer: AccountAPI
    ) -> Any:
        """A pending root that pays the oracle the whole pool."""
        bought(market, listed(market, seller), buyer)
        return post(market, oracle, Seeders.of([(oracle, ETH, POOL)]), [ETH])

    def test_a_root_whose_delay_runs_out_during_a_pause_can_still_be_canceled(
        self,
        market: ContractInstance,
        bad_root: Any,
        chain: ChainManager,
        owner: AccountAPI,
        oracle: AccountAPI,
        guardian: AccountAPI,
        buyer: AccountAPI,
    ) -> None:
        market.pause(sender=guardian)
        chain.mine(deltatime=3 * ROOT_DELAY)

        assert market.pendingRoot()[1] == 1
        assert market.activeRoot() == (bytes(32), 0)
        market.cancelRoot(sender=guardian)
        market.unpause(sender=owner)
        # The correction need not match the bad root's totals, and it is the only root to come.
        fix = Seeders.of([(buyer, ETH, POOL // 2)])
        post(market, oracle, fix, [ETH])
        activate(chain)
        with ape.reverts(market.InvalidProof):
            market.claim(oracle, ETH, POOL, [], sender=oracle)
        market.claim(*fix.claim_args(buyer, ETH), sender=buyer)
        assert market.claimed(oracle, ETH) == 0

    def test_after_a_pause_a_root_waits_its_whole_delay_of_unpaused_time(
        self,
        market: ContractInstance,
        bad_root: Any,
        chain: ChainManager,
        owner: AccountAPI,
        oracle: AccountAPI,
        guardian: AccountAPI,
    ) -> None:
        chain.mine(deltatime=ROOT_DELAY // 2)
        paused = market.pause(sender=guardian)
        chain.mine(deltatime=2 * ROOT_DELAY)

        resumed = market.unpause(sender=owner)

        stood_still = resumed.timestamp - paused.timestamp
        active_at = bad_root.timestamp + ROOT_DELAY + stood_still
        assert resumed.events.filter(market.RootDelayed)[0].activeAt == active_at
        assert market.pendingRoot()[1:] == (1, active_at)
        with ape.reverts(market.NoActiveRoot):
            market.claim(oracle, ETH, POOL, [], sender=oracle)
        # The guardian, back from the pause, still has the rest of the window.
        market.cancelRoot(sender=guardian)
        assert market.pendingRoot() == (bytes(32), 0, 0)


class TestFinding4PurchaseHasAPriceGuard:
    def test_a_seller_who_front_runs_a_price_rise_takes_nothing_from_a_standing_approval(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, token: ContractInstance
    ) -> None:
        product_id = listed(market, seller, token=token.address, price=1)
        assert token.allowance(buyer, market) == MAX_UINT256
        before = token.balanceOf(buyer)

        market.updateProduct(product_id, token, 50 * PRICE, 2_500, "", sender=seller)

        with ape.reverts(market.TermsChanged, productId=product_id, token=token.address, price=50 * PRICE):
            market.purchase(product_id, token, 1, 1, sender=buyer)
        with ape.reverts(market.TermsChanged):
            market.purchaseFor(product_id, buyer, token, 1, 1, sender=buyer)
        assert token.balanceOf(buyer) == before
        assert market.purchaseOf(product_id, buyer) == 0

    def test_same_price_other_terms_are_refused_too(
        self, market: ContractInstance, seller: AccountAPI, buyer: AccountAPI, token: ContractInstance
    ) -> None:
        product_id = listed(market, seller, price=PRICE)
        # Same number, now in a token the buyer has approved.
        market.updateProduct(product_id, token, PRICE, 2_500, "", sender=seller)
        with ape.reverts(market.TermsChanged, termsVersion=2):
            market.purchase(product_id, token, PRICE, 1, sender=buyer)
        # And the version alone: the description may have changed under the same price.
        market.updateProduct(product_id, token, PRICE, 2_500, "ipfs://other", sender=seller)
        with ape.reverts(market.TermsChanged, termsVersion=3):
            market.purchase(product_id, token, PRICE, 2, sender=buyer)
        market.purchase(product_id, token, PRICE, 3, sender=buyer)


class TestFinding5CheapGriefing:
    def test_claiming_one_leaf_first_does_not_make_the_batch_revert(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        chain: ChainManager,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
        keeper: AccountAPI,
    ) -> None:
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(buyer, ETH, POOL // 2), (others[0], ETH, POOL // 4)])
        post(market, oracle, seeders, [ETH])
        activate(chain)
        batch = [seeders.claim_args(buyer, ETH), seeders.claim_args(others[0], ETH)]
        market.claim(*batch[0], sender=others[1])  # the griefer, first

        receipt = market.claimMany(batch, sender=keeper)

        assert [e.account for e in receipt.events.filter(market.Claimed)] == [others[0].address]
        assert (market.claimed(buyer, ETH), market.claimed(others[0], ETH)) == (POOL // 2, POOL // 4)

    def test_dust_funding_a_new_token_delays_a_root_by_one_retry_once_per_token(
        self,
        project: Any,
        market: ContractInstance,
        owner: AccountAPI,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
        others: list[AccountAPI],
    ) -> None:
        # Design: the contract still wants every funded token (a root cannot forget a pool); the
        # oracle reads the funded set from the chain when it signs and re-signs on TokensIncomplete.
        dust = owner.deploy(project.TestToken, "Dust", "DST")
        market.setTokenAllowed(dust, True, sender=owner)
        griefer = others[2]
        dust.mint(griefer, 10, sender=griefer)
        dust.approve(market, MAX_UINT256, sender=griefer)
        bought(market, listed(market, seller), buyer)
        seeders = Seeders.of([(buyer, ETH, POOL)])
        signed = funded_tokens(market, [ETH, dust.address])
        dust_product = listed(market, griefer, token=dust.address, price=1, discount_bps=10_000)

        bought(market, dust_product, griefer)  # lands before the oracle's transaction

        with ape.reverts(market.TokensIncomplete, given=1, funded=2):
            post(market, oracle, seeders, signed)
        tokens = funded_tokens(market, [ETH, dust.address])
        post(market, oracle, seeders, tokens)
        # Funding the same token again changes nothing the next root must list.
        bought(market, listed(market, others[1], token=dust.address, price=1, discount_bps=10_000), griefer)
        assert market.fundedTokenCount() == len(tokens) == 2


class TestFinding6InfohashSquatting:
    def test_a_squatter_who_lists_an_infohash_first_does_not_block_its_seller(
        self, market: ContractInstance, seller: AccountAPI, others: list[AccountAPI]
    ) -> None:
        infohash = bytes.fromhex("ab" * 20) + bytes(12)
        squatted = listed(market, others[0], infohash=infohash)

        mine = listed(market, seller, infohash=infohash)

        assert (market.product(squatted).seller, market.product(mine).seller) == (
            others[0].address,
            seller.address,
        )

    @pytest.mark.parametrize("tail", [b"\x00" * 11 + b"\x01", b"\x80" + bytes(11), b"\xff" * 12])
    def test_the_same_content_cannot_be_spelled_another_way(
        self, market: ContractInstance, others: list[AccountAPI], tail: bytes
    ) -> None:
        with ape.reverts(market.InvalidListing):
            market.listProduct(bytes.fromhex("ab" * 20) + tail, 1, ETH, PRICE, 0, "", sender=others[0])


class TestFinding7RootDelayBoundsAndOwnership:
    @pytest.mark.parametrize("delay", [0, MIN_ROOT_DELAY - 1, MAX_ROOT_DELAY + 1, 2**64 - 1])
    def test_the_root_delay_stays_within_its_deployment_bounds(
        self, market: ContractInstance, owner: AccountAPI, delay: int
    ) -> None:
        with ape.reverts(
            market.RootDelayOutOfBounds,
            rootDelay=delay,
            minRootDelay=MIN_ROOT_DELAY,
            maxRootDelay=MAX_ROOT_DELAY,
        ):
            market.setRootDelay(delay, sender=owner)
        assert market.rootDelay() == ROOT_DELAY

    def test_renouncing_ownership_while_paused_is_refused(
        self, market: ContractInstance, owner: AccountAPI, guardian: AccountAPI
    ) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.OwnershipNotRenounceable):
            market.renounceOwnership(sender=owner)
        assert market.owner() == owner.address
        market.unpause(sender=owner)
        assert not market.paused()
