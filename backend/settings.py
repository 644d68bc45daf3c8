"""The store's settings: one pydantic-settings object read from `SEEDMARKET_*` variables.

Defaults serve a local anvil chain. Outside development, secrets left at their defaults (the
oracle key of anvil's public test mnemonic) are refused, so a misconfigured production store
fails at start instead of signing roots with a key the whole world knows.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.deployments import DeploymentError, read_deployment
from backend.errors import ConfigError
from tracker.server.proxies import TrustedProxies

# anvil's first development account: a well-known key, fine for a local chain only.
DEV_ORACLE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PUBLIC_TEST_MNEMONIC = "test test test test test test test test test test test junk"
_PUBLIC_TEST_ACCOUNTS = 10
# The keeper's development key: the public test mnemonic's account 10, which anvil does not fund
# by default (the dev stack and the tests fund it), so it shares no nonce with any role's account.
DEV_KEEPER_INDEX = 10
REPO_ROOT = Path(__file__).resolve().parent.parent


def public_test_account(index: int) -> LocalAccount:
    """Account `index` of the public test mnemonic: anvil's and ape's development accounts."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(PUBLIC_TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def _public_test_addresses() -> set[str]:
    """Addresses of the public test mnemonic's first accounts (anvil's and ape's defaults)."""
    return {public_test_account(i).address for i in range(_PUBLIC_TEST_ACCOUNTS)}


class Settings(BaseSettings):
    """Everything the store's processes need to know; env vars `SEEDMARKET_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="SEEDMARKET_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".data")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir")

    # Chain
    rpc_url: str = "http://127.0.0.1:8545"
    rpc_timeout: float = Field(10.0, gt=0)
    chain_id: int = Field(31337, gt=0)
    contract_address: str | None = Field(None, description="default: from the deployments file")
    deployment_block: int | None = Field(None, ge=0)
    deployments_file: Path | None = Field(None, description="default: data_dir/deployments.json")
    manifest: Path | None = Field(None, description="compiled contracts; default: .build/__local__.json")
    confirmations: int = Field(2, ge=0, le=1000)
    poll_interval: float = Field(2.0, gt=0)
    log_batch_blocks: int = Field(2000, ge=1)

    # Oracle
    oracle_key: SecretStr | None = SecretStr(DEV_ORACLE_KEY)
    oracle_keystore: Path | None = None
    oracle_keystore_password: SecretStr | None = None
    epoch_length: int = Field(3600, ge=1, description="seconds between epoch closes")
    settle_after: int = Field(7 * 86_400, ge=0, description="seconds after a purchase before it is frozen")
    store_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="the store's seeding accounts; the first gets unearned pools"
    )
    gas_limit_margin: float = Field(1.25, ge=1.0)
    tx_replace_after: float = Field(
        180.0,
        gt=0,
        description="seconds a root transaction may stay unmined before it is sent again with higher fees",
    )
    max_fee_gwei: float = Field(
        1000.0, gt=0, description="the oracle never offers more than this per gas, however long it waits"
    )

    # Keeper (automatic payouts): a key of its own, so it never competes with the oracle for a nonce
    keeper: bool = Field(True, description="pay seeders automatically after each root activates")
    keeper_key: SecretStr | None = Field(
        None, description="default: test account 10 in development, no keeper in production"
    )
    keeper_keystore: Path | None = None
    keeper_keystore_password: SecretStr | None = None
    keeper_threshold_wei: int = Field(
        10**15, ge=1, description="an ETH leaf is paid automatically once its unpaid part reaches this"
    )
    keeper_gas_fraction: float = Field(
        0.05,
        gt=0,
        description="a payee's share of its batch's gas may cost at most this part of it "
        "(above 1 only on a development chain, where gas costs nothing real)",
    )
    keeper_batch_gas: int = Field(
        8_000_000, ge=200_000, description="the gas a payout batch is sized to (well under a block's)"
    )
    keeper_token_thresholds: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="ERC-20s paid automatically: token=least unpaid amount (base units), comma-separated",
    )
    keeper_token_prices: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="token=wei per base unit, for the gas-fraction rule on ERC-20s (without: threshold only)",
    )

    # The store's own seed
    store_seed_super_seed: bool = Field(
        True, description="offer pieces a few at a time, only those buyers cannot get elsewhere (BEP 16)"
    )
    store_seed_upload_rate: int = Field(0, ge=0, description="bytes a second it uploads at most; 0: no cap")
    store_seed_target_rate: int = Field(
        1024 * 1024,
        ge=0,
        description="a buyer's expected download rate, bytes a second: the super-seed serves at full"
        " speed while buyers get less (or the swarm lacks complete copies); 0: super-seed throughout",
    )

    # HTTP
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    tracker_host: str = "127.0.0.1"
    tracker_port: int = Field(6969, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    tracker_url: str = "http://127.0.0.1:6969"
    tracker_connect_check: bool = Field(
        True, description="connect back to seeders and tell them (and the store) whether they are reachable"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose X-Forwarded-For/X-Real-IP the tracker believes",
    )
    siwe_domain: str | None = Field(None, description="default: public_url's host:port")
    siwe_uri: str | None = Field(None, description="default: public_url")
    session_lifetime: int = Field(86_400, ge=60)
    nonce_lifetime: int = Field(600, ge=10)
    nonce_rate: float = Field(
        0.5, gt=0, le=1000, description="POST /auth/nonce per second per client address, after the burst"
    )
    nonce_burst: int = Field(
        20, ge=1, le=100_000, description="POST /auth/nonce a client address may send at once"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("store_accounts", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("store_accounts")
    @classmethod
    def _lowercase_accounts(cls, value: list[str]) -> list[str]:
        for account in value:
            if not is_address(account):
                raise ValueError(f"store account {account!r} is not an address")
        return [account.lower() for account in value]

    @field_validator("keeper_token_thresholds", "keeper_token_prices", mode="before")
    @classmethod
    def _split_token_map(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            token, sep, amount = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not token=value")
            pairs[token.strip()] = amount.strip()
        return pairs

    @field_validator("keeper_token_thresholds", "keeper_token_prices")
    @classmethod
    def _lowercase_tokens(cls, value: dict[str, object]) -> dict[str, object]:
        for token in value:
            if not is_address(token):
                raise ValueError(f"token {token!r} is not an address")
        return {token.lower(): amount for token, amount in value.items()}

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        TrustedProxies(value)  # raises ValueError naming the malformed entry
        return value

    @field_validator("contract_address")
    @classmethod
    def _checksum_contract(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_address(value):
            raise ValueError(f"contract address {value!r} is not an address")
        return to_checksum_address(value)

    @field_validator("public_url", "tracker_url", "rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if self.oracle_keystore is None and self.oracle_key is not None:
            try:
                address = Account.from_key(self.oracle_key.get_secret_value()).address
            except ValueError:
                raise ValueError("SEEDMARKET_ORACLE_KEY is not a private key") from None
            if address in _public_test_addresses():
                raise ValueError(
                    "SEEDMARKET_ORACLE_KEY is a public test key; set your own key or "
                    "SEEDMARKET_ORACLE_KEYSTORE outside development"
                )
        if self.oracle_keystore is not None and self.oracle_keystore_password is None:
            raise ValueError("SEEDMARKET_ORACLE_KEYSTORE needs SEEDMARKET_ORACLE_KEYSTORE_PASSWORD")
        if self.keeper_keystore is None and self.keeper_key is not None:
            try:
                keeper = Account.from_key(self.keeper_key.get_secret_value()).address
            except ValueError:
                raise ValueError("SEEDMARKET_KEEPER_KEY is not a private key") from None
            if keeper in _public_test_addresses() | {public_test_account(DEV_KEEPER_INDEX).address}:
                raise ValueError(
                    "SEEDMARKET_KEEPER_KEY is a public test key; set your own key outside development"
                )
        if self.keeper_keystore is not None and self.keeper_keystore_password is None:
            raise ValueError("SEEDMARKET_KEEPER_KEYSTORE needs SEEDMARKET_KEEPER_KEYSTORE_PASSWORD")
        if not self.store_accounts:
            raise ValueError("set SEEDMARKET_STORE_ACCOUNTS (the store's seeding accounts) in production")
        if not self.public_url.startswith("https://"):
            raise ValueError("SEEDMARKET_PUBLIC_URL must be https:// in production (session cookies)")
        return self

    # ----- derived values -----

    @property
    def production(self) -> bool:
        """Whether this is a production deployment (secure cookies, no default secrets)."""
        return self.environment == "production"

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'seedmarket.db').resolve()}"

    @property
    def manifest_path(self) -> Path:
        """Where the compiled contract types are (ape's `.build/__local__.json`)."""
        if self.manifest is not None:
            return self.manifest
        local = Path(".build") / "__local__.json"
        return local if local.exists() else REPO_ROOT / ".build" / "__local__.json"

    @property
    def siwe_expected_domain(self) -> str:
        """The `domain` a sign-in message must name."""
        return self.siwe_domain or urlsplit(self.public_url).netloc

    @property
    def siwe_expected_uri(self) -> str:
        """The `URI` a sign-in message must name."""
        return self.siwe_uri or self.public_url

    @cached_property
    def marketplace(self) -> tuple[str, int]:
        """The Marketplace's checksummed address and deployment block."""
        if self.contract_address is not None:
            return self.contract_address, self.deployment_block or 0
        path = self.deployments_file or self.data_dir / "deployments.json"
        try:
            deployment = read_deployment(path, self.chain_id)
        except DeploymentError as exc:
            raise ConfigError(f"{exc} (or set SEEDMARKET_CONTRACT_ADDRESS)") from None
        block = deployment.block if self.deployment_block is None else self.deployment_block
        return deployment.address, block

    @property
    def store_account(self) -> str | None:
        """The account that receives the unearned part of settled pools (None: the oracle's)."""
        return self.store_accounts[0] if self.store_accounts else None


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, turning validation errors into one ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
