"""The user's wallet: encrypted eth-account keystores (ours or ape's), never a raw key on a command line.

Keystores live in `$SEEDMARKET_HOME/keystores/<name>.json` (default `~/.seedmarket`). An ape account
(`ape accounts generate/import`) is the same keystore format and is named `ape:<alias>`. The password
comes from a password file, `SEEDMARKET_PASSWORD` (an ape account's from ape's own
`APE_ACCOUNTS_<alias>_PASSPHRASE`: the two keystores rarely share a password), or a hidden prompt.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client.errors import ClientError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

PASSWORD_ENV = "SEEDMARKET_PASSWORD"  # noqa: S105 (the variable's name, not a password)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KDF_ITERATIONS = 262_144  # eth-account's default scrypt n: slow to brute-force, ~0.5 s to unlock


def home() -> Path:
    """seedmarket's per-user folder."""
    return Path(os.environ.get("SEEDMARKET_HOME", Path.home() / ".seedmarket"))


def keystore_dir() -> Path:
    """Where `seedmarket wallet` keeps keystores."""
    return home() / "keystores"


def ape_accounts_dir() -> Path:
    """Where ape keeps its accounts' keystores."""
    return Path(os.environ.get("APE_DATA_FOLDER", Path.home() / ".ape")) / "accounts"


@dataclass(frozen=True)
class KeystoreInfo:
    """A keystore found on disk."""

    name: str
    address: str
    path: Path


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ClientError(f"wallet name {name!r} may only use letters, digits, '.', '_' and '-'")
    return name


def keystore_path(name: str) -> Path:
    """The keystore file of a wallet name, an `ape:<alias>`, or a path to a keystore file."""
    if name.startswith("ape:"):
        return ape_accounts_dir() / f"{_check_name(name[4:])}.json"
    if os.sep in name or name.endswith(".json"):
        return Path(name)
    return keystore_dir() / f"{_check_name(name)}.json"


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(f"no wallet at {path}: create one with `seedmarket wallet create`") from None
    except (OSError, ValueError) as exc:
        raise ClientError(f"{path} is not a readable keystore: {exc}") from None
    if not isinstance(data, dict) or ("crypto" not in data and "Crypto" not in data):
        raise ClientError(f"{path} is not an encrypted keystore")
    return data


def _address_of(data: dict[str, Any]) -> str:
    from eth_utils import to_checksum_address  # noqa: PLC0415 - eth-account and friends load when used

    raw = str(data.get("address", ""))
    return to_checksum_address(raw if raw.startswith("0x") else "0x" + raw) if raw else "unknown"


def list_wallets() -> list[KeystoreInfo]:
    """Every keystore of ours and of ape's."""
    found = []
    for prefix, folder in (("", keystore_dir()), ("ape:", ape_accounts_dir())):
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(KeystoreInfo(prefix + path.stem, _address_of(_read_keystore(path)), path))
            except ClientError:
                continue
    return found


def address_of(name: str) -> str:
    """A wallet's address, read from its keystore (no password: keystores store it in the clear)."""
    path = keystore_path(name)
    address = _address_of(_read_keystore(path))
    if address == "unknown":
        raise ClientError(f"{path} does not record its address; unlock it with a command that takes --key")
    return address


def _write_keystore(name: str, account: LocalAccount, password: str) -> KeystoreInfo:
    if not password:
        raise ClientError("an empty password would leave the key unprotected; choose one")
    path = keystore_dir() / f"{_check_name(name)}.json"
    if path.exists():
        raise ClientError(f"a wallet named {name!r} already exists at {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    from eth_account import Account  # noqa: PLC0415 - every command starts faster without it

    keystore = Account.encrypt(account.key, password, iterations=_KDF_ITERATIONS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keystore, handle)
    return KeystoreInfo(name, account.address, path)


def create_wallet(name: str, password: str) -> KeystoreInfo:
    """Generate a new key and store it encrypted under `name`."""
    from eth_account import Account  # noqa: PLC0415

    return _write_keystore(name, Account.create(), password)


def import_key(name: str, private_key: str, password: str) -> KeystoreInfo:
    """Store an existing private key (hex) encrypted under `name`."""
    from eth_account import Account  # noqa: PLC0415

    try:
        account = Account.from_key(private_key.strip())
    except (ValueError, TypeError):
        raise ClientError("that is not a 32-byte hex private key") from None
    return _write_keystore(name, account, password)


def password_env(name: str) -> str:
    """The environment variable holding the password of wallet `name`."""
    if name.startswith("ape:"):
        return f"APE_ACCOUNTS_{name[4:]}_PASSPHRASE"
    return PASSWORD_ENV


def unlock(name: str, password: str, *, source: str = "") -> LocalAccount:
    """Decrypt a wallet's key (`source`: where the password came from, for the error)."""
    from eth_account import Account  # noqa: PLC0415

    path = keystore_path(name)
    data = _read_keystore(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise ClientError(f"wrong password for {path}{f' (from {source})' if source else ''}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def read_password(
    password_file: Path | None, prompt: Any = None, *, confirm: bool = False, env: str = PASSWORD_ENV
) -> str:
    """The password from a file, the environment variable `env`, or `prompt(text, confirm)`."""
    return password_and_source(password_file, prompt, confirm=confirm, env=env)[0]


def password_and_source(
    password_file: Path | None, prompt: Any = None, *, confirm: bool = False, env: str = PASSWORD_ENV
) -> tuple[str, str]:
    """`read_password`, and where the password came from ("" for a prompt)."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n"), str(password_file)
        except OSError as exc:
            raise ClientError(f"cannot read the password file: {exc}") from None
    if env in os.environ:
        return os.environ[env], f"${env}"
    if prompt is None:
        raise ClientError(f"no password: set {env} or pass --password-file")
    text = "Wallet password" if env == PASSWORD_ENV else "Passphrase of the ape account"
    value: str = prompt(text, confirm)
    return value, ""
