"""The database swarm policy: passkeys name wallets; wallets join the swarms they paid for."""

from __future__ import annotations

import asyncio

import pytest

from backend.db import Database
from backend.models import Listing, Product
from backend.passkeys import passkey_for, wallet_for
from backend.tracker_policy import DatabaseSwarmPolicy
from tests.backend.helpers import seed_purchase

BUYER, STRANGER, STORE, SELLER = ("0x" + c * 40 for c in "bcde")


@pytest.fixture
def policy(db: Database) -> DatabaseSwarmPolicy:
    seed_purchase(db, 7, BUYER, pool=100, size=1000, seller=SELLER)
    return DatabaseSwarmPolicy(db, [STORE])


def _infohash(purchase_id: int) -> bytes:
    return bytes.fromhex(f"{purchase_id:040x}")


def _may_join(policy: DatabaseSwarmPolicy, wallet: str, info_hash: bytes) -> bool:
    return asyncio.run(policy.may_join(bytes.fromhex(wallet[2:]), info_hash))


def test_a_passkey_is_made_once_per_wallet_and_leads_back_to_it(
    db: Database, policy: DatabaseSwarmPolicy
) -> None:
    passkey = passkey_for(db, BUYER.upper().replace("0X", "0x"))
    assert len(passkey) == 32 and passkey == passkey.lower()
    assert passkey_for(db, BUYER) == passkey
    assert passkey_for(db, STRANGER) != passkey
    assert wallet_for(db, passkey) == BUYER
    assert asyncio.run(policy.wallet_for_passkey(passkey)) == bytes.fromhex(BUYER[2:])


@pytest.mark.parametrize("passkey", ["0" * 32, "nope", "A" * 32, "' or 1=1 --", "0" * 33])
def test_unknown_or_malformed_passkeys_have_no_wallet(policy: DatabaseSwarmPolicy, passkey: str) -> None:
    assert asyncio.run(policy.wallet_for_passkey(passkey)) is None


def test_only_buyers_the_seller_and_the_store_join_a_swarm(policy: DatabaseSwarmPolicy) -> None:
    assert _may_join(policy, BUYER, _infohash(7))
    assert _may_join(policy, SELLER, _infohash(7))
    assert _may_join(policy, STORE, _infohash(7))
    assert not _may_join(policy, STRANGER, _infohash(7))
    assert not _may_join(policy, STORE, _infohash(8))  # not a listed product
    assert not _may_join(policy, BUYER, _infohash(8))


def test_a_squatters_copy_of_a_listing_does_not_decide_who_joins_its_swarm(
    db: Database, policy: DatabaseSwarmPolicy
) -> None:
    """Product 7 is a squatter's earlier copy of content that product 9 registered: the swarm is 9's."""
    squatter, real_buyer = "0x" + "a" * 40, "0x" + "f" * 40
    seed_purchase(db, 9, real_buyer, pool=100, size=1000, seller=SELLER)
    with db.writer() as session:
        session.get(Product, 7).seller = squatter  # type: ignore[union-attr]
        session.get(Product, 9).infohash = session.get(Product, 7).infohash  # type: ignore[union-attr]
        session.add(
            Listing(
                product_id=9,
                title="t",
                description="",
                torrent=b"",
                info_hash=f"{7:040x}",
                name="n",
                total_length=1000,
                registered_by=SELLER,
                registered_at=0,
                updated_at=0,
            )
        )

    assert _may_join(policy, real_buyer, _infohash(7))
    assert _may_join(policy, SELLER, _infohash(7))
    assert not _may_join(policy, squatter, _infohash(7))
    assert not _may_join(policy, BUYER, _infohash(7))  # bought only the squatter's copy
