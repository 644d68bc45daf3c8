"""Fixtures for the Marketplace tests: roles, a deployed market and an allow-listed token.

Everything is deployed once per session; ape's isolation reverts the chain after each test.
"""

from __future__ import annotations

from typing import Any

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
    in_address_order,
    listed,
    post,
    split,
)


@pytest.fixture(scope="session")
def owner(accounts: Any) -> AccountAPI:
    return accounts[0]


@pytest.fixture(scope="session")
def oracle(accounts: Any) -> AccountAPI:
    return accounts[1]


@pytest.fixture(scope="session")
def guardian(accounts: Any) -> AccountAPI:
    return accounts[2]


@pytest.fixture(scope="session")
def treasury(accounts: Any) -> AccountAPI:
    return accounts[3]


@pytest.fixture(scope="session")
def seller(accounts: Any) -> AccountAPI:
    return accounts[4]


@pytest.fixture(scope="session")
def buyer(accounts: Any) -> AccountAPI:
    return accounts[5]


@pytest.fixture(scope="session")
def others(accounts: Any) -> list[AccountAPI]:
    """Accounts with no role: more buyers, seeders, strangers."""
    return [accounts[i] for i in range(6, 10)]


@pytest.fixture(scope="session")
def keeper(others: list[AccountAPI]) -> AccountAPI:
    """An account with no leaf that sends claims for others."""
    return others[3]


@pytest.fixture(scope="session")
def market(
    project: Any, owner: AccountAPI, oracle: AccountAPI, guardian: AccountAPI, treasury: AccountAPI
) -> ContractInstance:
    return owner.deploy(
        project.Marketplace,
        owner,
        oracle,
        guardian,
        treasury,
        FEE_BPS,
        ROOT_DELAY,
        MIN_ROOT_DELAY,
        MAX_ROOT_DELAY,
    )


@pytest.fixture(scope="session")
def token(
    project: Any, owner: AccountAPI, market: ContractInstance, buyer: AccountAPI, others: list[AccountAPI]
) -> ContractInstance:
    """An allow-listed ERC-20 that the buyer and the others hold and have approved."""
    contract = owner.deploy(project.TestToken, "Test Token", "TT")
    market.setTokenAllowed(contract, True, sender=owner)
    for account in [buyer, *others]:
        contract.mint(account, 1_000 * PRICE, sender=account)
        contract.approve(market, MAX_UINT256, sender=account)
    return contract


@pytest.fixture
def pools(
    market: ContractInstance,
    seller: AccountAPI,
    buyer: AccountAPI,
    others: list[AccountAPI],
    token: ContractInstance,
) -> dict[str, int]:
    """Five buyers bought one ETH product and one token product: both seeder pools are funded."""
    in_eth, in_token = listed(market, seller), listed(market, seller, token=token.address)
    for account in (buyer, *others):
        bought(market, in_eth, account)
        bought(market, in_token, account)
    return {ETH: 5 * split(PRICE)[2], token.address: 5 * split(PRICE)[2]}


@pytest.fixture
def tokens(token: ContractInstance) -> list[str]:
    """Every funded token of the roots posted by `live`, ascending (a module may override it)."""
    return in_address_order([ETH, token])


@pytest.fixture
def live(
    market: ContractInstance,
    oracle: AccountAPI,
    chain: ChainManager,
    pools: dict[str, int],
    seeders: Seeders,
    tokens: list[str],
) -> Seeders:
    """The module's `seeders` root is posted and active (the module defines `seeders`)."""
    post(market, oracle, seeders, tokens)
    activate(chain)
    return seeders
