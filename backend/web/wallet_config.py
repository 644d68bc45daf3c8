"""What the page's JavaScript needs to talk to the chain: chain id, contract, calldata selectors,
and a one-sentence explanation per custom error; all computed from the compiled ABI.

The browser encodes calldata itself, so a selector that drifted from the contract would send a
wrong call; taking them from the ABI the backend uses (and refusing to start when a function is
missing) keeps one source of truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.errors import ConfigError
from tracker.hashing import keccak256

# The Marketplace functions the pages send, by the signature the JavaScript encodes.
MARKETPLACE_CALLS = {
    "purchase": "purchase(uint256,address,uint256,uint32)",
    "withdraw": "withdraw(address)",
    "claim": "claim(address,address,uint256,bytes32[])",
    "balanceOf": "balanceOf(address,address)",
    "purchaseOf": "purchaseOf(uint256,address)",
}
# Events whose first data word (the amount paid) the pages read from a transaction's receipt.
MARKETPLACE_EVENTS = {
    "Withdrawn": "Withdrawn(address,address,uint256)",
    "Claimed": "Claimed(address,address,uint256,uint256)",
}
# ERC-20 is a standard, not our ABI: these two signatures are fixed by EIP-20.
ERC20_CALLS = {"approve": "approve(address,uint256)", "allowance": "allowance(address,address)"}

ERROR_MESSAGES = {
    "AlreadyPurchased": "This wallet already owns this product; find it in your library.",
    "ProductInactive": "This product is not for sale right now.",
    "UnknownProduct": "This product does not exist on chain.",
    "WrongPayment": "The payment did not match the price; reload the page for the current price.",
    "TermsChanged": "The seller changed this product's price or terms; nothing was paid. Reload to see them.",
    "TokenNotAllowed": "The store does not accept this product's payment token right now.",
    "TokenTransferShortfall": "The token transfer delivered less than the price; this token cannot be used.",
    "NothingToWithdraw": "There is nothing to withdraw in this token.",
    "NothingToClaim": "There is nothing new to claim in this token.",
    "InvalidProof": "The claim proof does not match the active root; reload the page and try again.",
    "NoActiveRoot": "No rewards root is active yet; try again after the next epoch.",
    "ClaimExceedsRootTotal": "The claim exceeds what the active root allows; reload the page and try again.",
    "EnforcedPause": "The store is paused for now; try again later.",
    "EthTransferFailed": "The contract could not send ETH to this account.",
    "ReentrancyGuardReentrantCall": "The contract refused a nested call.",
}


# OpenZeppelin's ERC-20 errors (ERC-6093), which a token purchase's transferFrom passes through.
TOKEN_ERRORS = {
    "ERC20InsufficientBalance(address,uint256,uint256)": (
        "Your wallet does not hold enough of this token to pay the price."
    ),
    "ERC20InsufficientAllowance(address,uint256,uint256)": (
        "The store may not take enough of this token yet; approve the price and try again."
    ),
}


def selector(signature: str) -> str:
    """The 4-byte selector of a function or error signature, 0x-hex."""
    return "0x" + keccak256(signature.encode())[:4].hex()


def _type(entry: dict[str, Any]) -> str:
    kind: str = entry["type"]
    if kind.startswith("tuple"):
        return f"({','.join(_type(c) for c in entry['components'])}){kind[5:]}"
    return kind


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_type(i) for i in entry['inputs'])})"


def call_selectors(abi: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Selectors of the calls the pages send; ConfigError when the ABI lacks one of them."""
    present = {_signature(e) for e in abi if e.get("type") == "function"}
    missing = [s for s in MARKETPLACE_CALLS.values() if s not in present]
    if missing:
        raise ConfigError(f"the compiled Marketplace has no {', '.join(missing)}: recompile the contracts")
    calls = {**MARKETPLACE_CALLS, **ERC20_CALLS}
    return {name: selector(signature) for name, signature in calls.items()}


def event_topics(abi: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Topic0 of the events the pages read; ConfigError when the ABI lacks one of them."""
    present = {_signature(e) for e in abi if e.get("type") == "event"}
    missing = [s for s in MARKETPLACE_EVENTS.values() if s not in present]
    if missing:
        raise ConfigError(
            f"the compiled Marketplace has no event {', '.join(missing)}: recompile the contracts"
        )
    return {
        name: "0x" + keccak256(signature.encode()).hex() for name, signature in MARKETPLACE_EVENTS.items()
    }


def error_messages(abi: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Revert selector -> one sentence, for every custom error of the ABI and the ERC-20 ones."""
    messages = {selector(signature): message for signature, message in TOKEN_ERRORS.items()}
    for entry in abi:
        if entry.get("type") == "error":
            name = entry["name"]
            messages[selector(_signature(entry))] = ERROR_MESSAGES.get(
                name, f"The contract refused the transaction ({name})."
            )
    return messages


def wallet_config(abi: Sequence[dict[str, Any]], chain_id: int, contract: str) -> dict[str, Any]:
    """The JSON block every page carries for its script."""
    return {
        "chainId": chain_id,
        "contract": contract,
        "calls": call_selectors(abi),
        "events": event_topics(abi),
        "errors": error_messages(abi),
    }
