"""A new wallet's money on a local chain: its balance, funding it there (and nowhere else), and
"insufficient funds" that says what is held and what is needed. Against real anvils."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eth_account import Account

from client.chain import ChainClient
from client.contract import ETH
from client.errors import ClientError
from dev.devcli import Cli
from dev.devnet import Anvil, free_port

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

NO_CODE = "0x000000000000000000000000000000000000dEaD"  # calls to it succeed and do nothing


@pytest.fixture
def user(tmp_path: Path, anvil: Anvil) -> Cli:
    cli = Cli(tmp_path / "home", f"http://127.0.0.1:{free_port()}", anvil.url)
    cli.ok("wallet", "create", "alice")
    return cli


@pytest.fixture
def other_chain() -> Iterator[Anvil]:
    with Anvil(chain_id=5) as node:
        yield node


def test_a_new_wallet_shows_no_balance_and_how_to_fund_it(user: Cli) -> None:
    text = user.ok("wallet", "balance", "alice", "--rpc", user.rpc)
    address = user.json("wallet", "list")[0]["address"]
    assert "holds 0 ETH on chain 31337" in text and f"seedmarket dev fund {address}" in text


def test_dev_fund_adds_eth_that_the_balance_then_shows(user: Cli) -> None:
    address = user.json("wallet", "list")[0]["address"]
    funded = user.json("dev", "fund", address, "--eth", "1.5", "--rpc", user.rpc)
    assert funded["balance"] == str(15 * 10**17)
    user.json("dev", "fund", address, "--eth", "1", "--rpc", user.rpc)
    shown = user.json("wallet", "balance", "alice", "--rpc", user.rpc)
    assert shown == {"name": "alice", "address": address, "chainId": 31337, "balance": str(25 * 10**17)}


def test_dev_fund_is_refused_on_any_other_chain(user: Cli, other_chain: Anvil) -> None:
    address = user.json("wallet", "list")[0]["address"]
    result = user.run("dev", "fund", address, "--rpc", other_chain.url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "only on a local development chain (chain id 31337)" in result.stderr
        and "is chain 5" in result.stderr
    )
    assert other_chain.w3.eth.get_balance(address) == 0


def test_dev_fund_refuses_a_bad_address_and_amount(user: Cli) -> None:
    assert "'0x12' is not an address" in user.run("dev", "fund", "0x12", "--rpc", user.rpc).stderr
    address = user.json("wallet", "list")[0]["address"]
    assert (
        "must be a positive amount"
        in user.run("dev", "fund", address, "--eth", "-1", "--rpc", user.rpc).stderr
    )


def test_insufficient_funds_say_what_is_held_and_needed(anvil: Anvil) -> None:
    poor: LocalAccount = Account.create()
    chain = ChainClient(anvil.url, 31337, NO_CODE, poor)
    with pytest.raises(ClientError) as refused:
        chain.withdraw(ETH)
    message = str(refused.value)
    assert message.startswith(f"insufficient funds: {poor.address} holds 0 ETH, this needs 0 ETH + up to ")
    assert f"seedmarket dev fund {poor.address}" in message
    anvil.rpc("anvil_setBalance", [poor.address, hex(10**18)])
    assert chain.withdraw(ETH).startswith("0x")  # funded, the same transaction goes through
