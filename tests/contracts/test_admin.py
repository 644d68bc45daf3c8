"""The owner sets roles and parameters; the owner or guardian pauses; the constructor checks its roles."""

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
    MIN_ROOT_DELAY,
    PRICE,
    ROOT_DELAY,
    Seeders,
    bought,
    listed,
    post,
    terms,
)

DELAYS = (ROOT_DELAY, MIN_ROOT_DELAY, MAX_ROOT_DELAY)


class TestDeploying:
    def test_sets_every_role_and_parameter(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        oracle: AccountAPI,
        guardian: AccountAPI,
        treasury: AccountAPI,
    ) -> None:
        assert market.owner() == owner.address
        assert (market.oracle(), market.guardian(), market.treasury()) == (
            oracle.address,
            guardian.address,
            treasury.address,
        )
        assert (market.operatorFeeBps(), market.rootDelay(), market.BPS()) == (FEE_BPS, ROOT_DELAY, 10_000)
        assert (market.minRootDelay(), market.maxRootDelay()) == (MIN_ROOT_DELAY, MAX_ROOT_DELAY)
        assert not market.paused()
        assert (market.productCount(), market.purchaseCount(), market.lastEpoch()) == (0, 0, 0)

    def test_names_the_receipt_signing_domain(self, market: ContractInstance, chain: ChainManager) -> None:
        domain = market.eip712Domain()
        assert (domain.name, domain.version) == ("seedmarket", "1")
        assert (domain.chainId, domain.verifyingContract) == (chain.chain_id, market.address)

    @pytest.mark.parametrize("role", range(4), ids=["owner", "oracle", "guardian", "treasury"])
    def test_without_a_role_is_refused(self, project: Any, owner: AccountAPI, role: int) -> None:
        roles = [owner.address] * 4
        roles[role] = ETH
        error = project.Marketplace.OwnableInvalidOwner if role == 0 else project.Marketplace.ZeroAddress
        with ape.reverts(error):
            owner.deploy(project.Marketplace, *roles, FEE_BPS, *DELAYS)

    def test_with_a_fee_above_one_whole_is_refused(self, project: Any, owner: AccountAPI) -> None:
        with ape.reverts(project.Marketplace.InvalidBps, bps=10_001):
            owner.deploy(project.Marketplace, owner, owner, owner, owner, 10_001, *DELAYS)

    @pytest.mark.parametrize(
        ("floor", "ceiling"),
        [(10, 9), (0, 365 * 86_400 + 1)],
        ids=["floor-above-ceiling", "ceiling-above-limit"],
    )
    def test_with_root_delay_bounds_out_of_order_or_too_high_is_refused(
        self, project: Any, owner: AccountAPI, floor: int, ceiling: int
    ) -> None:
        with ape.reverts(
            project.Marketplace.InvalidRootDelayBounds, minRootDelay=floor, maxRootDelay=ceiling
        ):
            owner.deploy(project.Marketplace, owner, owner, owner, owner, FEE_BPS, floor, floor, ceiling)

    def test_with_a_root_delay_outside_its_bounds_is_refused(self, project: Any, owner: AccountAPI) -> None:
        with ape.reverts(project.Marketplace.RootDelayOutOfBounds):
            owner.deploy(project.Marketplace, owner, owner, owner, owner, FEE_BPS, 5, 10, 20)


class TestSettingRolesAndParameters:
    @pytest.mark.parametrize(
        ("setter", "getter", "event"),
        [
            ("setOracle", "oracle", "OracleSet"),
            ("setGuardian", "guardian", "GuardianSet"),
            ("setTreasury", "treasury", "TreasurySet"),
        ],
    )
    def test_the_owner_replaces_a_role(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        others: list[AccountAPI],
        setter: str,
        getter: str,
        event: str,
    ) -> None:
        receipt = getattr(market, setter)(others[0], sender=owner)
        assert getattr(market, getter)() == others[0].address
        assert len(receipt.events.filter(getattr(market, event))) == 1
        with ape.reverts(market.ZeroAddress):
            getattr(market, setter)(ETH, sender=owner)

    def test_the_owner_sets_the_fee_and_the_delay(self, market: ContractInstance, owner: AccountAPI) -> None:
        receipt = market.setOperatorFee(10_000, sender=owner)
        assert receipt.events.filter(market.OperatorFeeSet)[0].operatorFeeBps == 10_000
        receipt = market.setRootDelay(MIN_ROOT_DELAY, sender=owner)
        assert receipt.events.filter(market.RootDelaySet)[0].rootDelay == MIN_ROOT_DELAY
        assert (market.operatorFeeBps(), market.rootDelay()) == (10_000, MIN_ROOT_DELAY)
        market.setRootDelay(MAX_ROOT_DELAY, sender=owner)
        assert market.rootDelay() == MAX_ROOT_DELAY
        with ape.reverts(market.InvalidBps, bps=10_001):
            market.setOperatorFee(10_001, sender=owner)

    def test_a_new_delay_applies_to_the_next_root(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        oracle: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
    ) -> None:
        bought(market, listed(market, seller), buyer)
        market.setRootDelay(MIN_ROOT_DELAY, sender=owner)
        receipt = post(market, oracle, Seeders.of([(buyer, ETH, 1)]), [ETH])
        assert market.pendingRoot()[2] == receipt.timestamp + MIN_ROOT_DELAY

    def test_the_owner_allows_and_disallows_a_token(
        self, market: ContractInstance, owner: AccountAPI, token: ContractInstance
    ) -> None:
        receipt = market.setTokenAllowed(token, False, sender=owner)
        assert not receipt.events.filter(market.TokenAllowed)[0].allowed
        assert not market.tokenAllowed(token)
        with ape.reverts(market.ZeroAddress):
            market.setTokenAllowed(ETH, True, sender=owner)

    @pytest.mark.parametrize(
        ("method", "args"),
        [
            ("setOracle", ("others",)),
            ("setGuardian", ("others",)),
            ("setTreasury", ("others",)),
            ("setOperatorFee", (0,)),
            ("setRootDelay", (MIN_ROOT_DELAY,)),
            ("setTokenAllowed", ("others", True)),
            ("unpause", ()),
        ],
    )
    def test_nobody_but_the_owner_may(
        self,
        market: ContractInstance,
        oracle: AccountAPI,
        guardian: AccountAPI,
        others: list[AccountAPI],
        method: str,
        args: Any,
    ) -> None:
        args = [others[0] if a == "others" else a for a in args]
        for account in (oracle, guardian, others[0]):
            with ape.reverts(market.OwnableUnauthorizedAccount, account=account.address):
                getattr(market, method)(*args, sender=account)

    def test_ownership_moves_in_two_steps(
        self, market: ContractInstance, owner: AccountAPI, others: list[AccountAPI]
    ) -> None:
        market.transferOwnership(others[0], sender=owner)
        assert market.owner() == owner.address
        assert market.pendingOwner() == others[0].address
        with ape.reverts(market.OwnableUnauthorizedAccount):
            market.acceptOwnership(sender=others[1])
        market.acceptOwnership(sender=others[0])
        assert market.owner() == others[0].address


class TestPausing:
    def test_the_guardian_pauses_and_the_owner_resumes(
        self,
        market: ContractInstance,
        owner: AccountAPI,
        guardian: AccountAPI,
        seller: AccountAPI,
        buyer: AccountAPI,
    ) -> None:
        product_id = listed(market, seller)

        receipt = market.pause(sender=guardian)

        assert receipt.events.filter(market.Paused)[0].account == guardian.address
        assert market.paused()
        receipt = market.unpause(sender=owner)
        assert receipt.events.filter(market.Unpaused)[0].account == owner.address
        assert not market.paused()
        market.purchase(product_id, *terms(market, product_id), sender=buyer, value=PRICE)

    def test_the_owner_may_pause_too(self, market: ContractInstance, owner: AccountAPI) -> None:
        market.pause(sender=owner)
        assert market.paused()

    def test_nobody_else_may_pause(
        self, market: ContractInstance, oracle: AccountAPI, buyer: AccountAPI
    ) -> None:
        for account in (oracle, buyer):
            with ape.reverts(market.NotGuardian):
                market.pause(sender=account)

    def test_the_guardian_may_not_resume(self, market: ContractInstance, guardian: AccountAPI) -> None:
        market.pause(sender=guardian)
        with ape.reverts(market.OwnableUnauthorizedAccount):
            market.unpause(sender=guardian)

    def test_pausing_twice_or_resuming_a_running_store_is_refused(
        self, market: ContractInstance, owner: AccountAPI, guardian: AccountAPI
    ) -> None:
        with ape.reverts(market.ExpectedPause):
            market.unpause(sender=owner)
        market.pause(sender=guardian)
        with ape.reverts(market.EnforcedPause):
            market.pause(sender=owner)
