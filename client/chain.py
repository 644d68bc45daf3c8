"""The client's transactions: buy, claim, withdraw, signed locally and sent to any EVM JSON-RPC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import TxParams, Wei

from client.contract import ERC20_ABI, ETH, MARKETPLACE_ABI, explain_revert, revert_error
from client.errors import ClientError, TransactionReverted

RECEIPT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Product:
    """A listing as the contract holds it."""

    product_id: int
    seller: str
    discount_bps: int
    active: bool
    size: int
    token: str
    terms_version: int
    price: int
    infohash: bytes


@dataclass(frozen=True)
class ClaimRequest:
    """One leaf to claim: `(account, token, cumulativeAmount)` and its proof."""

    account: str
    token: str
    cumulative_amount: int
    proof: Sequence[bytes]


class ChainClient:
    """The Marketplace on one chain, acting for one account."""

    def __init__(
        self, rpc_url: str, chain_id: int, contract: str, account: LocalAccount | None = None
    ) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        try:
            actual = self.w3.eth.chain_id
        except (OSError, Web3Exception) as exc:
            raise ClientError(f"cannot reach the chain at {rpc_url} ({exc})") from None
        if actual != chain_id:
            raise ClientError(f"{rpc_url} is chain {actual}, but the store runs on chain {chain_id}")
        self.chain_id = chain_id
        self.account = account
        self.market = self.w3.eth.contract(address=to_checksum_address(contract), abi=MARKETPLACE_ABI)

    # ----- reads -----

    def product(self, product_id: int) -> Product:
        """A product's on-chain listing."""
        fields = self._call(self.market.functions.product(product_id))
        seller, discount, active, size, token, version, price, infohash = fields
        return Product(product_id, seller, discount, active, size, token, version, price, bytes(infohash))

    def purchase_of(self, product_id: int, buyer: str) -> int:
        """The purchase id of `buyer` for `product_id`, 0 if none."""
        result: int = self._call(self.market.functions.purchaseOf(product_id, to_checksum_address(buyer)))
        return result

    def balance_of(self, account: str, token: str) -> int:
        """A seller's or the treasury's withdrawable balance."""
        result: int = self._call(self.market.functions.balanceOf(to_checksum_address(account), token))
        return result

    def native_balance(self, account: str) -> int:
        """ETH held by an account."""
        return int(self.w3.eth.get_balance(to_checksum_address(account)))

    def token_balance(self, token: str, account: str) -> int:
        """ERC-20 held by an account (ETH for the zero address)."""
        if token == ETH:
            return self.native_balance(account)
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)
        result: int = self._call(erc20.functions.balanceOf(to_checksum_address(account)))
        return result

    def token_info(self, token: str) -> tuple[str, int]:
        """(symbol, decimals) of a payment token; ETH for the zero address."""
        if token == ETH:
            return "ETH", 18
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)
        return str(self._call(erc20.functions.symbol())), int(self._call(erc20.functions.decimals()))

    # ----- transactions -----

    def purchase(self, product_id: int, token: str, price: int, terms_version: int) -> tuple[int, str]:
        """Buy a product for this account on the terms the buyer agreed to (`token`, `price`, the
        product's `terms_version`), approving the ERC-20 first if needed: (purchase id, tx hash).
        The contract refuses the purchase if the seller changed the terms meanwhile, so a standing
        approval never pays more than agreed."""
        account = self._require_account()
        product = self.product(product_id)
        token = to_checksum_address(token)
        current = (to_checksum_address(product.token), product.price, product.terms_version)
        if current != (token, price, terms_version):
            raise ClientError(
                f"the seller changed product {product_id}'s terms since you saw them (now {product.price} "
                f"of {product.token}, terms version {product.terms_version}); nothing was paid"
            )
        if not product.active:
            raise ClientError(f"product {product_id} is closed to new purchases")
        existing = self.purchase_of(product_id, account.address)
        if existing:
            raise ClientError(f"this wallet already bought product {product_id} (purchase {existing})")
        value = 0
        if token == ETH:
            value = price
        else:
            self._approve(token, price)
        receipt = self._send(
            self.market.functions.purchase(product_id, token, price, terms_version), value=value
        )
        events = self.market.events.Purchased().process_receipt(receipt)
        if not events:
            raise ClientError("the purchase went through but emitted no Purchased event")
        return int(events[0]["args"]["purchaseId"]), "0x" + bytes(receipt["transactionHash"]).hex()

    def claim_many(self, requests: Sequence[ClaimRequest]) -> str:
        """Claim every leaf in one transaction; the tx hash."""
        if not requests:
            raise ClientError("nothing to claim")
        payload = [
            (to_checksum_address(r.account), to_checksum_address(r.token), r.cumulative_amount, list(r.proof))
            for r in requests
        ]
        receipt = self._send(self.market.functions.claimMany(payload))
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def withdraw(self, token: str) -> str:
        """Withdraw this account's seller balance in `token`; the tx hash."""
        receipt = self._send(self.market.functions.withdraw(to_checksum_address(token)))
        return "0x" + bytes(receipt["transactionHash"]).hex()

    # ----- plumbing -----

    def _approve(self, token: str, amount: int) -> None:
        account = self._require_account()
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)
        allowance: int = self._call(erc20.functions.allowance(account.address, self.market.address))
        if allowance < amount:
            self._send(erc20.functions.approve(self.market.address, amount))

    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise ClientError("this needs a wallet: pass --key")
        return self.account

    def _call(self, function: ContractFunction) -> Any:
        try:
            return function.call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise _reverted(exc) from None
        except (OSError, Web3Exception) as exc:
            raise ClientError(f"the chain did not answer: {exc}") from None

    def _send(self, function: ContractFunction, *, value: int = 0) -> Any:
        account = self._require_account()
        try:
            params: TxParams = {
                "from": account.address,
                "value": Wei(value),
                "chainId": self.chain_id,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            }
            tx = function.build_transaction(params)
            signed = account.sign_transaction(tx)  # type: ignore[arg-type]  # TxParams is a valid dict
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        except (ContractCustomError, ContractLogicError) as exc:
            raise _reverted(exc) from None
        except TimeExhausted:
            raise ClientError(f"the transaction was not mined within {RECEIPT_TIMEOUT:.0f} s") from None
        except (ValueError, Web3RPCError) as exc:  # node errors such as insufficient funds
            raise ClientError(f"the node refused the transaction: {_node_message(exc)}") from None
        except (OSError, Web3Exception) as exc:
            raise ClientError(f"the chain did not answer: {exc}") from None
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt)
        return receipt

    def _mined_revert(self, tx: Any, receipt: Any) -> TransactionReverted:
        """Why a mined transaction reverted: replay it in its block (same timestamp, same roots)."""
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        replay = cast(TxParams, {k: tx[k] for k in ("from", "to", "data", "value") if k in tx})
        try:
            self.w3.eth.call(replay, block_identifier=receipt["blockNumber"])
        except (ContractCustomError, ContractLogicError) as exc:
            reverted = _reverted(exc)
            return TransactionReverted(f"the transaction {tx_hash} reverted: {reverted}", reverted.error)
        except (OSError, Web3Exception):
            pass
        return TransactionReverted(f"the transaction {tx_hash} reverted")


def _reverted(exc: Exception) -> TransactionReverted:
    data = _revert_data(exc)
    return TransactionReverted(explain_revert(data), revert_error(data))


def _revert_data(exc: Exception) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, str) else None


def _node_message(exc: Exception) -> str:
    detail = getattr(exc, "rpc_response", None) or (exc.args[0] if exc.args else exc)
    if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
        detail = detail["error"]
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    return str(detail)
