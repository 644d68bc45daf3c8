"""Durable transactions: sign, broadcast, await, re-broadcast and replace one key's transactions.

The sender holds no state of its own. Its caller stores each signed transaction (raw bytes, hash,
nonce) durably *before* broadcasting it, and after a crash asks the chain what became of it
(`receipt`, `known`, `nonce_used`), broadcasting the same bytes again or a fee replacement with
the same nonce. The oracle keeps its transaction in the epoch's row; the automatic-payouts keeper
can keep its own the same way. The fee rules are backend.oracle.fees.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.types import TxParams, Wei

from backend.chain import Chain
from backend.errors import ChainError, ChainUnavailable, OracleError
from backend.oracle.fees import GWEI, Offer, first_offer, replacement_offer

log = logging.getLogger(__name__)

RECEIPT_POLL = 0.25


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction as the caller stores it before broadcasting."""

    raw: bytes
    hash: str  # 0x-hex
    nonce: int


class TransactionSender:
    """Sends one account's transactions to one chain under a fee ceiling."""

    def __init__(
        self, chain: Chain, account: LocalAccount, *, max_fee: int, confirmations: int, timeout: float = 120.0
    ) -> None:
        self.chain = chain
        self.account = account
        self.max_fee = max_fee  # wei per gas, never exceeded
        self.confirmations = confirmations
        self.timeout = timeout

    def fees_now(self) -> tuple[int, int]:
        """(the latest block's base fee, the node's suggested tip), wei per gas."""
        block = self.chain.call(lambda: self.chain.w3.eth.get_block("latest"))
        tip = self.chain.call(lambda: self.chain.w3.eth.max_priority_fee)
        return int(block.get("baseFeePerGas") or 0), int(tip)

    def sign(self, function: ContractFunction, gas: int) -> SignedTx:
        """The call signed with the account's next nonce and a first offer (not broadcast)."""
        sender = self.account.address
        nonce = self.chain.call(lambda: self.chain.w3.eth.get_transaction_count(sender, "pending"))
        offer = first_offer(*self.fees_now(), self.max_fee)
        params: TxParams = {
            "from": sender,
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": Wei(offer.max_fee),
            "maxPriorityFeePerGas": Wei(offer.tip),
            "chainId": self.chain.chain_id,
        }
        tx = function.build_transaction(params)
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), nonce)

    def replacement(self, previous: SignedTx) -> SignedTx | None:
        """`previous` signed again with the same nonce and higher fees (not broadcast); None when
        that would cross the fee ceiling."""
        old = TypedTransaction.from_bytes(HexBytes(previous.raw)).as_dict()
        offer = replacement_offer(
            *self.fees_now(), Offer(old["maxFeePerGas"], old["maxPriorityFeePerGas"]), self.max_fee
        )
        if offer is None:
            log.warning(
                "transaction %s is unmined; a replacement would cross max_fee_gwei %.2f: waiting",
                previous.hash,
                self.max_fee / GWEI,
            )
            return None
        tx = {
            "type": 2,
            "chainId": old["chainId"],
            "nonce": old["nonce"],
            "to": to_checksum_address(old["to"]),
            "data": old["data"],
            "value": old["value"],
            "gas": old["gas"],
            "maxFeePerGas": offer.max_fee,
            "maxPriorityFeePerGas": offer.tip,
        }
        signed = self.account.sign_transaction(tx)
        log.warning(
            "transaction %s unmined; replaced by %s at %.2f gwei per gas",
            previous.hash,
            "0x" + bytes(signed.hash).hex(),
            offer.max_fee / GWEI,
        )
        return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), previous.nonce)

    def broadcast(self, raw: bytes) -> None:
        """Send a signed transaction; a node that has it already is not an error."""
        try:
            self.chain.rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
        except ChainUnavailable:
            raise
        except ChainError as exc:
            # "already known" / "nonce too low": it was broadcast before; the receipt tells the rest.
            log.info("broadcast answered %s", exc)

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction's receipt, None while it is unmined."""
        receipt: dict[str, Any] | None = self.chain.rpc("eth_getTransactionReceipt", [tx_hash])
        return receipt

    def await_receipt(self, tx_hash: str, *, wait: bool = True) -> dict[str, Any] | None:
        """The receipt once mined, polling up to the timeout (not at all without `wait`)."""
        deadline = time.monotonic() + (self.timeout if wait else 0)
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None or time.monotonic() >= deadline:
                return receipt
            time.sleep(RECEIPT_POLL)

    def known(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (mined or in its pool)."""
        return self.chain.rpc("eth_getTransactionByHash", [tx_hash]) is not None

    def nonce_used(self, nonce: int) -> bool:
        """Whether a mined transaction of this account has taken `nonce`."""
        used = int(self.chain.rpc("eth_getTransactionCount", [self.account.address, "latest"]), 16)
        return used > nonce

    def wait_confirmations(self, block: int) -> None:
        """Return once `block` has the configured number of confirmations."""
        target = block + self.confirmations
        deadline = time.monotonic() + self.timeout
        while self.confirmations and self.chain.head() < target:
            if time.monotonic() > deadline:
                raise OracleError(f"block {block} did not get {self.confirmations} confirmations in time")
            time.sleep(RECEIPT_POLL * 4)
