"""The config block the pages' script encodes calls with, checked against web3's own encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_utils import abi_to_signature, keccak
from web3 import Web3

from backend.chain import ZERO_ADDRESS, load_abi
from backend.errors import ConfigError
from backend.web.money import format_units, split_of
from backend.web.wallet_config import ERROR_MESSAGES, wallet_config

ACCOUNT = "0x" + "11" * 20
MARKET = "0x" + "cd" * 20


@pytest.fixture(scope="module")
def abi(repo: Path) -> list[dict[str, object]]:
    return load_abi(repo / ".build" / "__local__.json")


def test_call_selectors_are_the_ones_web3_encodes(abi: list[dict[str, object]]) -> None:
    calls = wallet_config(abi, 31337, MARKET)["calls"]
    market = Web3().eth.contract(abi=abi)
    assert market.encode_abi("purchase", [7, ZERO_ADDRESS, 1, 1])[:10] == calls["purchase"]
    assert market.encode_abi("withdraw", [ZERO_ADDRESS])[:10] == calls["withdraw"]
    assert market.encode_abi("claim", [ACCOUNT, ZERO_ADDRESS, 5, []])[:10] == calls["claim"]
    assert market.encode_abi("balanceOf", [ACCOUNT, ZERO_ADDRESS])[:10] == calls["balanceOf"]
    assert market.encode_abi("purchaseOf", [7, ACCOUNT])[:10] == calls["purchaseOf"]
    assert calls["approve"] == "0x095ea7b3" and calls["allowance"] == "0xdd62ed3e"  # EIP-20


def test_every_custom_error_has_a_sentence_and_the_named_ones_are_real(abi: list[dict[str, object]]) -> None:
    errors = wallet_config(abi, 31337, MARKET)["errors"]
    declared = {e["name"]: abi_to_signature(e) for e in abi if e["type"] == "error"}  # type: ignore[arg-type]
    assert set(ERROR_MESSAGES) <= set(declared)  # no sentence for an error the contract lost
    token_errors = {"0xe450d38c", "0xfb8f41b2"}  # ERC20InsufficientBalance, ERC20InsufficientAllowance
    assert set(errors) == {"0x" + keccak(text=s)[:4].hex() for s in declared.values()} | token_errors
    assert all(message.endswith(".") for message in errors.values())


def test_a_contract_without_a_call_the_pages_send_is_refused(abi: list[dict[str, object]]) -> None:
    crippled = [e for e in abi if e.get("name") != "claim"]
    with pytest.raises(ConfigError, match="claim"):
        wallet_config(crippled, 31337, MARKET)


def test_amounts_are_exact_decimals_and_the_split_adds_up_to_the_price() -> None:
    assert format_units(10**18, 18) == "1"
    assert format_units(1_234_500_000_000_000_000_000, 18) == "1,234.5"
    assert format_units(1, 18) == "0.000000000000000001"
    assert format_units(0, 6) == "0"
    split = split_of(10**18 + 7, 2000, 2000)
    assert split.price == 10**18 + 7
    assert (split.seller, split.operator_fee, split.seeders) == (
        10**18 + 7 - (10**18 + 7) * 2000 // 10_000,
        (10**18 + 7) * 2000 // 10_000 * 2000 // 10_000,
        (10**18 + 7) * 2000 // 10_000 - (10**18 + 7) * 2000 // 10_000 * 2000 // 10_000,
    )
