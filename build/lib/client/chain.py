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

from client.amounts import from_units
from client.contract import ERC20_ABI, ETH, MARKETPLACE_ABI, explain_revert, revert_error
from client.errors import ClientError, TransactionReverted

RECEIPT_TIMEOUT = 120.0
# The chain id of anvil (and Hardhat) development nodes: the only chains `seedmarket dev fund` touches.
LOCAL_CHAIN_ID = 31337
WEI_PER_ETH = 10**18


def open_node(rpc_url: str) -> tuple[Web3, int]:
    """A JSON-RPC node and its chain id; a `ClientError` naming the URL when it does not answer.

    No retries: a node that refuses a connection is reported at once, in one line, instead of after
    a urllib3 "Max retries exceeded" trace."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}, exception_retry_configuration=None))
    try:
        chain_id = int(w3.eth.chain_id)
    except (OSError, ValueError, Web3Exception):
        raise ClientError(f"cannot reach the chain node at {rpc_url}: is it running? (--rpc URL)") from None
    return w3, chain_id


def eth(wei: int) -> str:
    """Wei as ETH for people: '0.01 ETH'."""
    return f"{from_units(wei)} ETH"


def fund(rpc_url: str, address: str, amount: int) -> int:
    """Add `amount` wei to `address` on a local development chain; its new balance.

    Refused on any chain id but the local one's: the node's own `anvil_setBalance` mints the ETH,
    which exists only on a development node, and the guard keeps a mistyped `--rpc` pointing at a
    real network from even trying."""
    w3, chain_id = open_node(rpc_url)
    if chain_id != LOCAL_CHAIN_ID:
        raise ClientError(
            f"`dev fund` works only on a local development chain (chain id {LOCAL_CHAIN_ID}); "
            f"{rpc_url} is chain {chain_id}: get ETH there from a faucet or an exchange"
        )
    account = to_checksum_address(address)
    balance = int(w3.eth.get_balance(account)) + amount
    answer = w3.provider.make_request("anvil_setBalance", [account, hex(balance)])  # type: ignore[arg-type]
    if answer.get("error"):
        raise ClientError(f"the node at {rpc_url} cannot set balances (not anvil?): {answer['error']}")
    return int(w3.eth.get_balance(account))


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
        self.w3, actual = open_node(rpc_url)
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
            self._check_funds(value, int(tx["gas"]) * int(tx.get("maxFeePerGas") or tx.get("gasPrice") or 0))
            signed = account.sign_transaction(tx)  # type: ignore[arg-type]  # TxParams is a valid dict
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        except (ContractCustomError, ContractLogicError) as exc:
            raise _reverted(exc) from None
        except TimeExhausted:
            raise ClientError(f"the transaction was not mined within {RECEIPT_TIMEOUT:.0f} s") from None
        except (ValueError, Web3RPCError) as exc:  # node errors such as insufficient funds
            if "insufficient funds" in _node_message(exc).lower():  # e.g. from the gas estimate
                held = self.native_balance(self._require_account().address)
                raise self._insufficient(held, value, 0) from None
            raise ClientError(f"the node refused the transaction: {_node_message(exc)}") from None
        except (OSError, Web3Exception) as exc:
            raise ClientError(f"the chain did not answer: {exc}") from None
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt)
        return receipt

    def _check_funds(self, value: int, max_gas_cost: int) -> None:
        """Refuse before signing when the account cannot pay `value` plus the most its gas may cost:
        the node would say only "insufficient funds for gas * price + value"."""
        held = self.native_balance(self._require_account().address)
        if held < value + max_gas_cost:
            raise self._insufficient(held, value, max_gas_cost)

    def _insufficient(self, held: int, value: int, max_gas_cost: int) -> ClientError:
        """What the account holds, what the transaction needs, and how to get it locally."""
        address = self._require_account().address
        gas = f" + up to {eth(max_gas_cost)} for gas" if max_gas_cost else " + gas"
        short = value + max_gas_cost - held
        more = f" ({eth(short)} more)" if short > 0 else ""
        hint = (
            f"; on this local chain: seedmarket dev fund {address}" if self.chain_id == LOCAL_CHAIN_ID else ""
        )
        return ClientError(
            f"insufficient funds: {address} holds {eth(held)}, this needs {eth(value)}{gas}{more}{hint}"
        )

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
