"""The oracle's signing key: from an encrypted keystore (with its password) or a private key."""

from __future__ import annotations

import json

from eth_account import Account
from eth_account.signers.local import LocalAccount

from backend.errors import ConfigError
from backend.settings import Settings


def load_oracle_account(settings: Settings) -> LocalAccount:
    """The oracle's signing account from a keystore (with its password) or a private key."""
    if settings.oracle_keystore is not None:
        if settings.oracle_keystore_password is None:
            raise ConfigError("SEEDMARKET_ORACLE_KEYSTORE needs SEEDMARKET_ORACLE_KEYSTORE_PASSWORD")
        try:
            keystore = json.loads(settings.oracle_keystore.read_text())
            key = Account.decrypt(keystore, settings.oracle_keystore_password.get_secret_value())
        except FileNotFoundError:
            raise ConfigError(f"oracle keystore {settings.oracle_keystore} does not exist") from None
        except ValueError as exc:
            raise ConfigError(f"cannot open oracle keystore {settings.oracle_keystore}: {exc}") from None
        account: LocalAccount = Account.from_key(key)
        return account
    if settings.oracle_key is None:
        raise ConfigError("set SEEDMARKET_ORACLE_KEY or SEEDMARKET_ORACLE_KEYSTORE")
    try:
        account = Account.from_key(settings.oracle_key.get_secret_value())
    except ValueError:
        raise ConfigError("SEEDMARKET_ORACLE_KEY is not a private key") from None
    return account
