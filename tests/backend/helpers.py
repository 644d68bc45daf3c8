"""Test helpers: list, buy and sign on a devnet Marketplace with anvil's unlocked accounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eth_account import Account
from web3.contract import Contract

from backend.chain import ZERO_ADDRESS, load_abi
from backend.db import Database
from backend.models import IndexerCursor, Product, Purchase
from backend.settings import Settings, load_settings, public_test_account
from dev.devnet import Anvil, Deployed, deploy_contract
from tracker.receipts import Domain, Receipt, SignedReceipt, sign_receipt


def seeder_pool(price: int, discount_bps: int = 2000, operator_fee_bps: int = 2000) -> int:
    """The seeders' part of a purchase: the discount less the operator's fee, rounded down twice as
    the contract does (the test Marketplaces take a 20 % fee; listings here give 20 % discount)."""
    return price * discount_bps // 10_000 * (10_000 - operator_fee_bps) // 10_000


def dev_key(index: int) -> bytes:
    """The private key of anvil's development account `index`."""
    return bytes(public_test_account(index).key)


class Market:
    """A Marketplace on anvil, driven from the development accounts."""

    def __init__(self, anvil: Anvil, deployed: Deployed, manifest: Path) -> None:
        self.anvil = anvil
        self.deployed = deployed
        self.w3 = anvil.w3
        self.contract: Contract = self.w3.eth.contract(address=deployed.address, abi=load_abi(manifest))
        self.accounts = anvil.accounts
        self.domain = Domain(31337, bytes.fromhex(deployed.address[2:]))
        self.manifest = manifest

    def transact(self, sender: str, function: str, *args: Any, value: int = 0) -> Any:
        """Send a transaction and wait for its receipt; fails the test on a revert."""
        tx = getattr(self.contract.functions, function)(*args).transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1, f"{function} reverted"
        return receipt

    def list_product(
        self,
        seller: str,
        *,
        size: int = 1_000_000,
        price: int = 10**18,
        discount_bps: int = 2000,
        infohash: bytes | None = None,
        token: str = ZERO_ADDRESS,
    ) -> tuple[int, bytes]:
        """List a product; its id and its 20-byte infohash."""
        infohash = infohash or os.urandom(20)
        self.transact(
            seller, "listProduct", infohash.ljust(32, b"\0"), size, token, price, discount_bps, "ipfs://x"
        )
        return self.contract.functions.productCount().call(), infohash

    def buy(self, buyer: str, product_id: int) -> int:
        """Buy a product at its price; the purchase id."""
        product = self.contract.functions.product(product_id).call()
        token, version, price = product[4], product[5], product[6]
        self.transact(buyer, "purchase", product_id, token, price, version, value=price)
        purchase_id: int = self.contract.functions.purchaseOf(product_id, buyer).call()
        return purchase_id

    def add_token(self, name: str) -> str:
        """Deploy an ERC-20 (the mintable TestToken) and allow it as payment; its address."""
        address, _ = deploy_contract(self.w3, self.manifest, "TestToken", self.accounts[0], name, name)
        self.transact(self.deployed.owner, "setTokenAllowed", address, True)
        return address

    def token(self, address: str) -> Contract:
        """The TestToken at `address`."""
        return self.w3.eth.contract(address=address, abi=load_abi(self.manifest, "TestToken"))

    def buy_in_token(self, buyer: str, product_id: int) -> int:
        """Buy a product priced in an ERC-20: mint the price to the buyer, approve, purchase; the
        purchase id."""
        product = self.contract.functions.product(product_id).call()
        token, version, price = product[4], product[5], product[6]
        functions = self.token(token).functions
        for call in (functions.mint(buyer, price), functions.approve(self.deployed.address, price)):
            self.w3.eth.wait_for_transaction_receipt(call.transact({"from": buyer}))
        self.transact(buyer, "purchase", product_id, token, price, version)
        purchase_id: int = self.contract.functions.purchaseOf(product_id, buyer).call()
        return purchase_id

    def receipt(self, purchase_id: int, seeder: str, byte_count: int, signer_index: int) -> SignedReceipt:
        """A receipt signed with development account `signer_index`'s key."""
        receipt = Receipt(purchase_id, bytes.fromhex(seeder[2:]), byte_count)
        return SignedReceipt(receipt, sign_receipt(self.domain, receipt, dev_key(signer_index)))


_KEYS: dict[int, bytes] = {}


def key(index: int) -> bytes:
    """A cached development key (deriving from the mnemonic is slow)."""
    if index not in _KEYS:
        _KEYS[index] = dev_key(index)
    return _KEYS[index]


def address_of_key(private_key: bytes) -> str:
    """The lowercase 0x address of a private key."""
    return str(Account.from_key(private_key).address).lower()


def seed_purchase(
    db: Database,
    purchase_id: int,
    buyer: str,
    *,
    pool: int,
    size: int,
    token: str = ZERO_ADDRESS,
    timestamp: int = 1_000,
    seller: str = "0x" + "5e" * 20,
) -> None:
    """Put a purchase (and a product of its own) into the chain cache, as the indexer would."""
    with db.writer() as session:
        session.add(
            Product(
                id=purchase_id,
                seller=seller,
                infohash=f"{purchase_id:040x}" + "00" * 12,
                size=size,
                token=token,
                price=pool * 10,
                discount_bps=1000,
                active=True,
                metadata_uri="",
                listed_block=1,
                listed_at=timestamp,
            )
        )
        session.add(
            Purchase(
                id=purchase_id,
                product_id=purchase_id,
                buyer=buyer.lower(),
                token=token,
                price=pool * 10,
                seller_amount=pool * 9,
                operator_fee=0,
                seeder_pool=pool,
                timestamp=timestamp,
                block_number=1,
                tx_hash="0x" + "00" * 32,
                log_index=purchase_id,
            )
        )
        cursor = session.get(IndexerCursor, 1)
        if cursor is None:
            session.add(
                IndexerCursor(
                    id=1,
                    chain_id=31337,
                    contract=ZERO_ADDRESS,
                    block_number=1,
                    block_hash="0x",
                    block_timestamp=timestamp,
                )
            )


def set_chain_time(db: Database, timestamp: int) -> None:
    """Move the indexer cursor's clock (what settlement windows are measured against)."""
    with db.writer() as session:
        cursor = session.get(IndexerCursor, 1)
        assert cursor is not None
        cursor.block_timestamp = timestamp


def signed_receipt(
    domain: Domain, purchase_id: int, seeder: str, count: int, private_key: bytes
) -> SignedReceipt:
    """A receipt signed with `private_key`."""
    receipt = Receipt(purchase_id, bytes.fromhex(seeder[2:]), count)
    return SignedReceipt(receipt, sign_receipt(domain, receipt, private_key))


def store_settings(anvil: Anvil, deployed: Deployed, db_url: str, manifest: Path, data_dir: Path) -> Settings:
    """Settings for a store on a fresh Marketplace, reading blocks without confirmations."""
    return load_settings(
        environment="development",
        data_dir=data_dir,
        database_url=db_url,
        rpc_url=anvil.url,
        chain_id=31337,
        contract_address=deployed.address,
        deployment_block=deployed.block,
        manifest=manifest,
        confirmations=0,
        poll_interval=0.1,
        settle_after=86_400,
        store_accounts=[anvil.accounts[9]],
    )
