"""Durable transactions: sign, broadcast, await, re-broadcast and replace one key's transactions.

The sender holds no state of its own. Its caller stores each signed transaction (raw bytes, hash,
nonce) durably *before* broadcasting it, and then, after a crash as well as in its normal course,
hands it to `follow`, which asks the chain what became of it: mined (the receipt), its nonce taken
by another transaction (lost), or still unmined: then the same bytes are broadcast again when the
node forgot them, or, once it has waited long enough, a fee replacement with the same nonce is
signed, handed to the caller to store, and only then broadcast. This is the one implementation of
durable transactions: the oracle keeps its transaction in the epoch's row, the keeper in its
payout batch's row. The fee rules are backend.oracle.fees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.types import Nonce, TxParams, Wei

from backend.chain import Chain
from backend.errors import ChainError, ChainUnavailable, OracleError
from backend.oracle.fees import GWEI, Offer, first_offer, replacement_offer

if TYPE_CHECKING:
    from backend.settings import Settings

log = logging.getLogger(__name__)

RECEIPT_POLL = 0.25


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction as the caller stores it before broadcasting."""

    raw: bytes
    hash: str  # 0x-hex
    nonce: int


@dataclass(frozen=True, slots=True)
class Followed:
    """What `follow` found: the receipt once mined (of `tx`, the version that was mined), or
    `lost` (the nonce went to a transaction that is none of ours), or neither (still unmined)."""

    tx: SignedTx
    receipt: dict[str, Any] | None = None
    lost: bool = False


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

    @classmethod
    def for_settings(cls, chain: Chain, account: LocalAccount, settings: Settings) -> TransactionSender:
        """A sender under the store's fee ceiling and confirmation depth (the oracle's, the keeper's)."""
        return cls(
            chain, account, max_fee=int(settings.max_fee_gwei * GWEI), confirmations=settings.confirmations
        )

    def fees_now(self) -> tuple[int, int]:
        """(the latest block's base fee, the node's suggested tip), wei per gas."""
        block = self.chain.call(lambda: self.chain.w3.eth.get_block("latest"))
        tip = self.chain.call(lambda: self.chain.w3.eth.max_priority_fee)
        return int(block.get("baseFeePerGas") or 0), int(tip)

    def next_nonce(self) -> int:
        """The account's next nonce as the node sees it (its pending transactions counted)."""
        sender = self.account.address
        return int(self.chain.call(lambda: self.chain.w3.eth.get_transaction_count(sender, "pending")))

    def sign(
        self, function: ContractFunction, gas: int, *, nonce: int | None = None, offer: Offer | None = None
    ) -> SignedTx:
        """The call signed with `nonce` (default: the account's next) and a first offer (not
        broadcast); a caller signing several at once passes consecutive nonces and one offer."""
        sender = self.account.address
        if nonce is None:
            nonce = self.next_nonce()
        if offer is None:
            offer = self.first_offer()
        params: TxParams = {
            "from": sender,
            "nonce": Nonce(nonce),
            "gas": gas,
            "maxFeePerGas": Wei(offer.max_fee),
            "maxPriorityFeePerGas": Wei(offer.tip),
            "chainId": self.chain.chain_id,
        }
        tx = function.build_transaction(params)
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), nonce)

    def sign_data(self, data: bytes, gas: int, *, nonce: int, offer: Offer) -> SignedTx:
        """A call of the Marketplace with ready-made calldata, signed (not broadcast): for callers
        that encode many large calls, where web3's encoder is the bottleneck."""
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain.chain_id,
            "nonce": nonce,
            "to": self.chain.address,
            "data": "0x" + data.hex(),
            "value": 0,
            "gas": gas,
            "maxFeePerGas": offer.max_fee,
            "maxPriorityFeePerGas": offer.tip,
        }
        signed = self.account.sign_transaction(tx)
        return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), nonce)

    def first_offer(self) -> Offer:
        """What a transaction signed now offers per gas."""
        return first_offer(*self.fees_now(), self.max_fee)

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

    def follow(
        self,
        stored: SignedTx,
        *,
        stale: bool,
        store: Callable[[SignedTx], None],
        prior: Sequence[str] = (),
        wait: bool = True,
    ) -> Followed:
        """Drive a stored transaction towards being mined: see the module's docstring.

        `stale`: it has been unmined long enough to replace it with higher fees; `store` must make
        the replacement durable (and raise if the caller's state changed) before it is broadcast;
        `prior`: hashes of versions it replaced, any of which may be the one that was mined."""
        receipt = self.receipt(stored.hash)
        if receipt is not None:
            return Followed(stored, receipt)
        known = self.known(stored.hash)
        if not known and self.nonce_used(stored.nonce):
            for old in prior:
                receipt = self.receipt(old)
                if receipt is not None:
                    return Followed(SignedTx(stored.raw, old, stored.nonce), receipt)
            return Followed(stored, lost=True)
        current = stored
        replacement = self.replacement(stored) if stale else None
        if replacement is not None:
            store(replacement)
            self.broadcast(replacement.raw)
            current = replacement
        elif not known:
            log.info("re-broadcasting transaction %s", stored.hash)
            self.broadcast(stored.raw)
        return Followed(current, self.await_receipt(current.hash, wait=wait))

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
