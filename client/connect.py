"""Where the client finds the store and the chain, and the checks that tie them together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from client.chain import ChainClient
from client.errors import ClientError
from client.store_client import StoreClient

DEFAULT_STORE_URL = "http://127.0.0.1:8000"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"


def store_url(value: str | None) -> str:
    """`--store`, else `$SEEDMARKET_STORE_URL`, else the local default."""
    return value or os.environ.get("SEEDMARKET_STORE_URL", DEFAULT_STORE_URL)


def rpc_url(value: str | None) -> str:
    """`--rpc`, else `$SEEDMARKET_RPC_URL`, else the local chain; refused when not an http(s) URL."""
    url = value or os.environ.get("SEEDMARKET_RPC_URL", DEFAULT_RPC_URL)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        source = "--rpc" if value else "$SEEDMARKET_RPC_URL"
        raise ClientError(f"{source} {url!r} is not a chain node's URL (like http://127.0.0.1:8545)")
    return url


@dataclass
class Connection:
    """A store, its chain, and the facts both must agree on."""

    store: StoreClient
    chain: ChainClient
    chain_id: int
    contract: str

    def close(self) -> None:
        """Release the HTTP connections."""
        self.store.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(
    store: str | None,
    rpc: str | None,
    account: LocalAccount | None = None,
    *,
    pinned_contract: str | None = None,
) -> Connection:
    """Open the store and its chain; refuse when the store's contract is not the one pinned.

    The contract comes from the store's `/health`; `$SEEDMARKET_CONTRACT` (or `pinned_contract`)
    pins it, so a store that changed its contract cannot redirect payments unnoticed.
    """
    client = StoreClient(store_url(store))
    try:
        facts = client.health()
        chain_id = int(facts["chainId"])
        contract = str(facts["contract"])
        if not is_address(contract):
            raise ClientError(f"the store names {contract!r} as its contract, which is not an address")
        pin = pinned_contract or os.environ.get("SEEDMARKET_CONTRACT")
        if pin and to_checksum_address(pin) != to_checksum_address(contract):
            raise ClientError(f"the store uses contract {contract}, not the pinned {pin}; refusing to go on")
        chain = ChainClient(rpc_url(rpc), chain_id, contract, account)
    except BaseException:
        client.close()
        raise
    return Connection(client, chain, chain_id, to_checksum_address(contract))
