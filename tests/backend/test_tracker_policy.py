"""The database swarm policy: passkeys name wallets; wallets join the swarms they paid for."""

from __future__ import annotations

import asyncio

import pytest

from backend.db import Database
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
