"""The client's copy of the ABI is the compiled contract's, entry for entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import function_signature_to_4byte_selector

from client.amounts import from_units, rounded, to_units
from client.contract import MARKETPLACE_ABI, REVERT_REASONS, explain_revert
from client.errors import ClientError


@pytest.fixture(scope="module")
def compiled(manifest: Path) -> list[dict[str, object]]:
    abi: list[dict[str, object]] = json.loads(manifest.read_text())["contractTypes"]["Marketplace"]["abi"]
    return abi


def test_every_client_abi_entry_is_in_the_compiled_contract(compiled: list[dict[str, object]]) -> None:
    for entry in MARKETPLACE_ABI:
        assert entry in compiled, entry["name"]


def test_every_explained_marketplace_error_exists(compiled: list[dict[str, object]]) -> None:
    declared = {
        f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"  # type: ignore[attr-defined]
        for e in compiled
        if e["type"] == "error"
    }
    ours = {sig for sig in REVERT_REASONS if not sig.startswith(("ERC20", "SafeERC20"))}
    assert ours <= declared


def test_revert_data_is_explained_by_its_selector() -> None:
    data = (
        "0x"
        + function_signature_to_4byte_selector("AlreadyPurchased(uint256,address,uint256)").hex()
        + "00" * 96
    )
    assert explain_revert(data) == "this wallet already bought this product"
    assert "without a reason" in explain_revert(None)
    assert "0xdeadbeef" in explain_revert("0xdeadbeef")


@pytest.mark.parametrize(
    ("text", "decimals", "units"), [("0.01", 18, 10**16), ("1", 6, 10**6), ("2.5", 1, 25), (" 3 ", 0, 3)]
)
def test_amounts_convert_exactly(text: str, decimals: int, units: int) -> None:
    assert to_units(text, decimals) == units
    assert to_units(from_units(units, decimals), decimals) == units


@pytest.mark.parametrize("text", ["abc", "-1", "0", "1.5e-30", "nan", "inf"])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(ClientError):
        to_units(text, 18)


@pytest.mark.parametrize(
    ("units", "shown"),
    [
        (8408203125 * 10**6, "0.008408"),
        (10**16, "0.01"),
        (0, "0"),
        (10**11, "<0.000001"),
        (15 * 10**17, "1.5"),
    ],
)
def test_earnings_at_a_glance_are_rounded_to_six_places(units: int, shown: str) -> None:
    assert rounded(units) == shown
