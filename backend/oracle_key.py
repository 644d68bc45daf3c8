"""The store's signing keys, the oracle's and the keeper's: from an encrypted keystore (with its
password) or a private key."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from backend.errors import ConfigError
from backend.settings import DEV_KEEPER_INDEX, Settings, public_test_account


def _from_keystore(path: Path, password: SecretStr | None, role: str) -> LocalAccount:
    if password is None:
        raise ConfigError(f"SEEDMARKET_{role}_KEYSTORE needs SEEDMARKET_{role}_KEYSTORE_PASSWORD")
    what = role.lower()
    try:
        keystore = json.loads(path.read_text())
        key = Account.decrypt(keystore, password.get_secret_value())
    except FileNotFoundError:
        raise ConfigError(f"{what} keystore {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"cannot open {what} keystore {path}: {exc}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def _from_key(key: SecretStr, role: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(key.get_secret_value())
    except ValueError:
        raise ConfigError(f"SEEDMARKET_{role}_KEY is not a private key") from None
    return account


def load_oracle_account(settings: Settings) -> LocalAccount:
    """The oracle's signing account from a keystore (with its password) or a private key."""
    if settings.oracle_keystore is not None:
        return _from_keystore(settings.oracle_keystore, settings.oracle_keystore_password, "ORACLE")
    if settings.oracle_key is None:
        raise ConfigError("set SEEDMARKET_ORACLE_KEY or SEEDMARKET_ORACLE_KEYSTORE")
    return _from_key(settings.oracle_key, "ORACLE")


def load_keeper_account(settings: Settings) -> LocalAccount | None:
    """The keeper's signing account; None when no keeper runs (turned off, or no key in
    production). Never the oracle's: two writers of one account's nonces would replace each
    other's transactions."""
    if not settings.keeper:
        return None
    if settings.keeper_keystore is not None:
        account = _from_keystore(settings.keeper_keystore, settings.keeper_keystore_password, "KEEPER")
    elif settings.keeper_key is not None:
        account = _from_key(settings.keeper_key, "KEEPER")
    elif not settings.production:
        account = public_test_account(DEV_KEEPER_INDEX)
    else:
        return None
    try:
        oracle = load_oracle_account(settings).address
    except ConfigError:
        oracle = None
    if account.address == oracle:
        raise ConfigError("SEEDMARKET_KEEPER_KEY is the oracle's key: give the keeper an account of its own")
    return account
