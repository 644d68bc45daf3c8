"""Wallet passkeys: the secret in a personal announce URL, one per wallet, made on first need."""

from __future__ import annotations

import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.db import Database
from backend.models import Passkey

PASSKEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def is_passkey(value: str) -> bool:
    """Whether `value` looks like a passkey (32 lowercase hex characters, 128 random bits)."""
    return bool(PASSKEY_PATTERN.fullmatch(value))


def passkey_for(db: Database, wallet: str) -> str:
    """The passkey of `wallet` (lowercase 0x-hex), created the first time it is needed."""
    wallet = wallet.lower()
    with db.reader() as session:
        existing = session.scalar(select(Passkey.passkey).where(Passkey.wallet == wallet))
    if existing is not None:
        return existing
    try:
        with db.writer() as session:
            session.add(Passkey(wallet=wallet, passkey=secrets.token_hex(16), created_at=int(time.time())))
    except IntegrityError:
        pass  # a concurrent request created it first; read theirs
    with db.reader() as session:
        created = session.scalar(select(Passkey.passkey).where(Passkey.wallet == wallet))
    assert created is not None
    return created


def wallet_for(db: Database, passkey: str) -> str | None:
    """The wallet a passkey belongs to, or None."""
    if not is_passkey(passkey):
        return None
    with db.reader() as session:
        return session.scalar(select(Passkey.wallet).where(Passkey.passkey == passkey))
