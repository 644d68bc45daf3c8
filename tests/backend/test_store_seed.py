"""The store's seed: it super-seeds by default, and both that and its upload cap come from settings."""

from __future__ import annotations

import pytest

from backend.errors import ConfigError
from backend.settings import load_settings
from backend.store_seed import seed_config, upload_limit
from tracker.peer.choker import PlainPeers
from tracker.receipts import Domain, ReceiptVerifier

VERIFIER = ReceiptVerifier(Domain(chain_id=31337, verifying_contract=bytes(20)))
WALLET = bytes.fromhex("ab" * 20)


def test_the_store_seed_super_seeds_without_a_cap_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEEDMARKET_STORE_SEED_SUPER_SEED", raising=False)
    monkeypatch.delenv("SEEDMARKET_STORE_SEED_UPLOAD_RATE", raising=False)
    settings = load_settings()
    config = seed_config(settings, WALLET, VERIFIER)
    assert config.super_seed
    assert config.wallet == WALLET
    assert config.plain_peers is PlainPeers.SERVE  # every peer the tracker admits
    assert not config.enforce_credit
    assert upload_limit(settings) is None


def test_settings_turn_super_seeding_off_and_cap_the_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDMARKET_STORE_SEED_SUPER_SEED", "false")
    monkeypatch.setenv("SEEDMARKET_STORE_SEED_UPLOAD_RATE", "2000000")
    settings = load_settings()
    assert not seed_config(settings, WALLET, VERIFIER).super_seed
    limit = upload_limit(settings)
    assert limit is not None
    assert limit.rate == 2_000_000


def test_a_negative_upload_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDMARKET_STORE_SEED_UPLOAD_RATE", "-1")
    with pytest.raises(ConfigError, match="store_seed_upload_rate"):
        load_settings()


def test_the_store_seed_adapts_to_buyers_rate_by_default_and_a_zero_target_super_seeds_throughout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEEDMARKET_STORE_SEED_TARGET_RATE", raising=False)
    assert seed_config(load_settings(), WALLET, VERIFIER).seed_target_rate == 1024 * 1024
    monkeypatch.setenv("SEEDMARKET_STORE_SEED_TARGET_RATE", "0")
    config = seed_config(load_settings(), WALLET, VERIFIER)
    assert config.super_seed
    assert config.seed_target_rate is None
