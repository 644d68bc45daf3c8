"""Settings: read from SEEDMARKET_* variables, validated, and unsafe defaults refused in production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from backend.errors import ConfigError
from backend.oracle_key import load_oracle_account
from backend.settings import load_settings

PRODUCTION = {
    "environment": "production",
    "store_accounts": ["0x" + "11" * 20],
    "public_url": "https://s.example",
}


def test_environment_variables_configure_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEEDMARKET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEEDMARKET_STORE_ACCOUNTS", "0x" + "AB" * 20 + ", 0x" + "cd" * 20)
    monkeypatch.setenv("SEEDMARKET_EPOCH_LENGTH", "60")
    monkeypatch.setenv("SEEDMARKET_PUBLIC_URL", "https://shop.example/")
    monkeypatch.setenv("SEEDMARKET_TRUSTED_PROXIES", "127.0.0.1/32, ::1")
    settings = load_settings()
    assert settings.trusted_proxies == ["127.0.0.1/32", "::1"]
    assert settings.store_accounts == ["0x" + "ab" * 20, "0x" + "cd" * 20]
    assert settings.epoch_length == 60
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'seedmarket.db'}"
    assert (settings.siwe_expected_domain, settings.siwe_expected_uri) == (
        "shop.example",
        "https://shop.example",
    )


def test_the_contract_comes_from_the_deployments_file(tmp_path: Path) -> None:
    (tmp_path / "deployments.json").write_text(
        '{"31337": {"Marketplace": {"address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",'
        ' "block": 7, "transaction": "0x00"}}}'
    )
    assert load_settings(data_dir=tmp_path).marketplace == ("0x5FbDB2315678afecb367f032d93F642f64180aa3", 7)
    with pytest.raises(ConfigError, match="deploy"):
        _ = load_settings(data_dir=tmp_path, chain_id=1).marketplace


@pytest.mark.parametrize(
    "bad",
    [
        {"store_accounts": ["0x1234"]},
        {"contract_address": "nope"},
        {"public_url": "ftp://x"},
        {"epoch_length": 0},
        {"environment": "staging"},
        {"trusted_proxies": ["10.0.0.0/33"]},
    ],
)
def test_invalid_values_are_one_clear_error(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(**bad)


def test_production_refuses_public_test_keys_and_missing_secrets() -> None:
    with pytest.raises(ConfigError, match="public test key"):
        load_settings(**PRODUCTION)
    with pytest.raises(ConfigError, match="public test key"):
        load_settings(
            **PRODUCTION, oracle_key="0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        )
    with pytest.raises(ConfigError, match="PASSWORD"):
        load_settings(**PRODUCTION, oracle_keystore=Path("/k.json"))
    with pytest.raises(ConfigError, match="https"):
        load_settings(**{**PRODUCTION, "public_url": "http://s.example"}, oracle_key="0x" + "42" * 32)
    assert load_settings(**PRODUCTION, oracle_key="0x" + "42" * 32).production


def test_the_oracle_key_can_come_from_an_encrypted_keystore(tmp_path: Path) -> None:
    account = Account.create()
    keystore = tmp_path / "oracle.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "s3cret", iterations=2)))
    settings = load_settings(oracle_keystore=keystore, oracle_keystore_password="s3cret")
    assert load_oracle_account(settings).address == account.address
    with pytest.raises(ConfigError, match="cannot open"):
        load_oracle_account(load_settings(oracle_keystore=keystore, oracle_keystore_password="wrong"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_oracle_account(
            load_settings(oracle_keystore=tmp_path / "nope.json", oracle_keystore_password="x")
        )
    with pytest.raises(ConfigError, match="not a private key"):
        load_oracle_account(load_settings(oracle_key="0x1234"))
