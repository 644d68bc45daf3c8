"""Wallets are encrypted keystores; keys never travel in the clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from client import wallet
from client.errors import ClientError

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDMARKET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APE_DATA_FOLDER", str(tmp_path / "ape"))
    monkeypatch.delenv(wallet.PASSWORD_ENV, raising=False)


def test_created_wallet_unlocks_with_its_password_only() -> None:
    info = wallet.create_wallet("alice", "correct horse")
    assert wallet.unlock("alice", "correct horse").address == info.address
    with pytest.raises(ClientError, match="wrong password"):
        wallet.unlock("alice", "battery staple")


def test_keystore_file_holds_no_plain_key_and_is_private() -> None:
    info = wallet.import_key("bob", KEY, "pw")
    text = info.path.read_text()
    assert KEY[2:] not in text
    assert info.path.stat().st_mode & 0o077 == 0
    assert info.address == Account.from_key(KEY).address


def test_wallet_names_cannot_escape_the_keystore_folder() -> None:
    with pytest.raises(ClientError, match="may only use"):
        wallet.create_wallet("../evil", "pw")
    with pytest.raises(ClientError, match="may only use"):
        wallet.create_wallet("a/b", "pw")


def test_existing_wallet_is_never_overwritten() -> None:
    wallet.create_wallet("carol", "pw")
    with pytest.raises(ClientError, match="already exists"):
        wallet.create_wallet("carol", "pw")


def test_empty_password_and_bad_key_are_refused() -> None:
    with pytest.raises(ClientError, match="empty password"):
        wallet.create_wallet("dave", "")
    with pytest.raises(ClientError, match="not a 32-byte"):
        wallet.import_key("dave", "0x1234", "pw")


def test_ape_accounts_are_listed_and_unlocked(tmp_path: Path) -> None:
    ape_dir = tmp_path / "ape" / "accounts"
    ape_dir.mkdir(parents=True)
    (ape_dir / "seller.json").write_text(json.dumps(Account.encrypt(KEY, "ape-pw", iterations=2)))
    names = {info.name: info.address for info in wallet.list_wallets()}
    assert names == {"ape:seller": Account.from_key(KEY).address}
    assert wallet.unlock("ape:seller", "ape-pw").address == Account.from_key(KEY).address


def test_missing_wallet_says_how_to_create_one() -> None:
    with pytest.raises(ClientError, match="seedmarket wallet create"):
        wallet.unlock("nobody", "pw")


def test_password_comes_from_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("from-file\n")
    assert wallet.read_password(secret) == "from-file"
    monkeypatch.setenv(wallet.PASSWORD_ENV, "from-env")
    assert wallet.read_password(None) == "from-env"
    monkeypatch.delenv(wallet.PASSWORD_ENV)
    with pytest.raises(ClientError, match="no password"):
        wallet.read_password(None)


def test_an_ape_account_takes_apes_passphrase_variable_not_seedmarkets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.commands.wallet import unlock  # noqa: PLC0415 - the command layer's unlock

    ape_dir = tmp_path / "ape" / "accounts"
    ape_dir.mkdir(parents=True)
    (ape_dir / "seller.json").write_text(json.dumps(Account.encrypt(KEY, "ape-pw", iterations=2)))
    monkeypatch.setenv(wallet.PASSWORD_ENV, "dev")  # exported for the seedmarket wallets
    monkeypatch.setattr("sys.stdin", None)  # nothing to prompt
    with pytest.raises(ClientError, match="no passphrase of the ape account on standard input"):
        unlock("ape:seller", None)
    monkeypatch.setenv("APE_ACCOUNTS_seller_PASSPHRASE", "wrong")
    with pytest.raises(ClientError, match=r"wrong password for .*seller.json \(from \$APE_ACCOUNTS_seller"):
        unlock("ape:seller", None)
    monkeypatch.setenv("APE_ACCOUNTS_seller_PASSPHRASE", "ape-pw")
    assert unlock("ape:seller", None).address == Account.from_key(KEY).address
