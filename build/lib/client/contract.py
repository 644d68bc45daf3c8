"""The part of the Marketplace ABI the client calls, and plain-language meanings of its reverts.

The client talks to the store only over HTTP, so it carries its own copy of the few ABI entries
it uses; `tests/client/test_contract.py` checks each one against the compiled contract.
"""

from __future__ import annotations

from typing import Any

from eth_utils import function_signature_to_4byte_selector

ETH = "0x0000000000000000000000000000000000000000"

_Field = tuple[str, str]  # (type, name)


def _params(fields: list[_Field]) -> list[dict[str, Any]]:
    return [{"internalType": kind, "name": name, "type": kind} for kind, name in fields]


def _function(name: str, inputs: list[_Field], outputs: list[_Field], mutability: str) -> dict[str, Any]:
    return {
        "inputs": _params(inputs),
        "name": name,
        "outputs": _params(outputs),
        "stateMutability": mutability,
        "type": "function",
    }


_CLAIM_REQUEST = {
    "components": _params(
        [
            ("address", "account"),
            ("address", "token"),
            ("uint256", "cumulativeAmount"),
            ("bytes32[]", "proof"),
        ]
    ),
    "internalType": "struct IMarketplace.ClaimRequest[]",
    "name": "requests",
    "type": "tuple[]",
}
_PRODUCT = {
    "components": _params(
        [
            ("address", "seller"),
            ("uint16", "discountBps"),
            ("bool", "active"),
            ("uint64", "size"),
            ("address", "token"),
            ("uint32", "termsVersion"),
            ("uint256", "price"),
            ("bytes32", "infohash"),
        ]
    ),
    "internalType": "struct IMarketplace.Product",
    "name": "",
    "type": "tuple",
}

MARKETPLACE_ABI: list[dict[str, Any]] = [
    _function(
        "purchase",
        [("uint256", "productId"), ("address", "token"), ("uint256", "price"), ("uint32", "termsVersion")],
        [("uint256", "purchaseId")],
        "payable",
    ),
    _function(
        "purchaseOf", [("uint256", "productId"), ("address", "buyer")], [("uint256", "purchaseId")], "view"
    ),
    _function("withdraw", [("address", "token")], [("uint256", "amount")], "nonpayable"),
    _function("balanceOf", [("address", "account"), ("address", "token")], [("uint256", "")], "view"),
    _function("claimed", [("address", "account"), ("address", "token")], [("uint256", "")], "view"),
    _function(
        "claim",
        [
            ("address", "account"),
            ("address", "token"),
            ("uint256", "cumulativeAmount"),
            ("bytes32[]", "proof"),
        ],
        [("uint256", "amount")],
        "nonpayable",
    ),
    {
        "inputs": [_CLAIM_REQUEST],
        "name": "claimMany",
        "outputs": _params([("uint256", "total")]),
        "stateMutability": "nonpayable",
        "type": "function",
    },
    {
        "inputs": _params([("uint256", "productId")]),
        "name": "product",
        "outputs": [_PRODUCT],
        "stateMutability": "view",
        "type": "function",
    },
    {
        "anonymous": False,
        "inputs": [
            {"indexed": True, "internalType": "uint256", "name": "purchaseId", "type": "uint256"},
            {"indexed": True, "internalType": "uint256", "name": "productId", "type": "uint256"},
            {"indexed": True, "internalType": "address", "name": "buyer", "type": "address"},
            {"indexed": False, "internalType": "address", "name": "token", "type": "address"},
            {"indexed": False, "internalType": "uint256", "name": "price", "type": "uint256"},
            {"indexed": False, "internalType": "uint256", "name": "sellerAmount", "type": "uint256"},
            {"indexed": False, "internalType": "uint256", "name": "operatorFee", "type": "uint256"},
            {"indexed": False, "internalType": "uint256", "name": "seederPool", "type": "uint256"},
        ],
        "name": "Purchased",
        "type": "event",
    },
]

ERC20_ABI: list[dict[str, Any]] = [
    _function("approve", [("address", "spender"), ("uint256", "value")], [("bool", "")], "nonpayable"),
    _function("allowance", [("address", "owner"), ("address", "spender")], [("uint256", "")], "view"),
    _function("balanceOf", [("address", "account")], [("uint256", "")], "view"),
    _function("decimals", [], [("uint8", "")], "view"),
    _function("symbol", [], [("string", "")], "view"),
]

# Custom errors the client's calls can meet, by signature, with what to tell the user.
REVERT_REASONS: dict[str, str] = {
    "UnknownProduct(uint256)": "there is no such product",
    "ProductInactive(uint256)": "the seller has closed this product to new purchases",
    "AlreadyPurchased(uint256,address,uint256)": "this wallet already bought this product",
    "WrongPayment(uint256,uint256)": "the amount sent is not the product's price",
    "TermsChanged(uint256,address,uint256,uint32)": (
        "the seller changed the product's price or terms since you saw them; "
        "nothing was paid, check them and buy again"
    ),
    "TokenNotAllowed(address)": "the store no longer accepts this product's token",
    "TokenTransferShortfall(uint256,uint256)": "the token delivered less than the price (it takes a fee)",
    "NothingToWithdraw()": "there is nothing to withdraw in this token",
    "EthTransferFailed()": "the receiving account refused the ETH",
    "NoActiveRoot()": "no rewards root is active yet; wait for the next epoch",
    "NothingToClaim()": "everything earned so far in this token was already claimed",
    "InvalidProof()": "the proof does not match the active root (it may have just changed); try again",
    "ClaimExceedsRootTotal(address,uint256,uint256)": "the root's total for this token is used up",
    "EnforcedPause()": "the store is paused by its guardian; try again later",
    "ReentrancyGuardReentrantCall()": "reentrant call refused",
    "SafeERC20FailedOperation(address)": "the token refused the transfer",
    "ERC20InsufficientBalance(address,uint256,uint256)": "the wallet does not hold enough of the token",
    "ERC20InsufficientAllowance(address,uint256,uint256)": "the token allowance is too low",
}
_BY_SELECTOR = {"0x" + function_signature_to_4byte_selector(sig).hex(): sig for sig in REVERT_REASONS}


def revert_error(data: str | bytes | None) -> str | None:
    """The signature of the custom error in revert data, e.g. "InvalidProof()", if we know it."""
    if isinstance(data, bytes):
        data = "0x" + data.hex()
    if not data or len(data) < 10:
        return None
    return _BY_SELECTOR.get(data[:10].lower())


def explain_revert(data: str | bytes | None) -> str:
    """The user-facing meaning of revert data, or a generic sentence."""
    if isinstance(data, bytes):
        data = "0x" + data.hex()
    if not data or len(data) < 10:
        return "the transaction reverted without a reason"
    error = revert_error(data)
    return REVERT_REASONS[error] if error else f"the contract refused the call (error {data[:10]})"
