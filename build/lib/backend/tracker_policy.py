"""The database-backed `SwarmPolicy`: passkey -> wallet -> the swarms it may join.

A wallet may join the swarm of a listed product it bought (an indexed `Purchased`), that it
sells, or any listed product's swarm when it is one of the store's seeding accounts. The tracker
caches these answers briefly; this class asks the database every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import exists, select

from backend.db import Database
from backend.models import Listing, Product, Purchase
from backend.passkeys import wallet_for
from tracker.receipts import to_hex_address

INFOHASH_PADDING = "00" * 12  # a v1 infohash is left-aligned in the contract's bytes32


def infohash_key(info_hash: bytes) -> str:
    """The `products.infohash` value of a 20-byte v1 infohash."""
    return info_hash.hex() + INFOHASH_PADDING


class DatabaseSwarmPolicy:
    """Who may announce in which swarm, from the indexed purchases and the store's accounts."""

    def __init__(self, db: Database, store_accounts: Iterable[str]) -> None:
        self.db = db
        self.store_accounts = frozenset(a.lower() for a in store_accounts)

    async def wallet_for_passkey(self, passkey: str) -> bytes | None:
        """The wallet of a passkey, or None for an unknown or malformed one."""
        wallet = await asyncio.to_thread(wallet_for, self.db, passkey)
        return None if wallet is None else bytes.fromhex(wallet[2:])

    async def may_join(self, wallet: bytes, info_hash: bytes) -> bool:
        """Whether `wallet` bought, sells, or seeds for the store the product of `info_hash`."""
        if len(wallet) != 20 or len(info_hash) != 20:
            return False
        return await asyncio.to_thread(self.may_join_now, to_hex_address(wallet), info_hash)

    def may_join_now(self, wallet: str, info_hash: bytes) -> bool:
        """`may_join`, blocking; `wallet` lowercase 0x-hex."""
        with self.db.reader() as session:
            # Several products may list the same infohash (the chain allows copies); the swarm is
            # the registered one's, whose seller uploaded the info dictionary (else the oldest).
            product = session.execute(
                select(Product.id, Product.seller)
                .outerjoin(Listing, Listing.product_id == Product.id)
                .where(Product.infohash == infohash_key(info_hash))
                .order_by(Listing.product_id.is_(None), Product.id)
            ).first()
            if product is None:
                return False
            if wallet in self.store_accounts or wallet == product.seller:
                return True
            bought = session.scalar(
                select(exists().where(Purchase.product_id == product.id, Purchase.buyer == wallet))
            )
            return bool(bought)
