"""The API's request and response bodies.

JSON uses camelCase. Addresses in answers are EIP-55 checksummed. Token amounts (wei and the
like) are decimal strings, since they outgrow JavaScript's numbers; byte counts are integers.
"""

from __future__ import annotations

import re
from typing import Annotated

from eth_utils import is_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
MAX_DB_ID = (1 << 63) - 1
MAX_EPOCH = (1 << 31) - 1
MAX_TORRENT_BASE64 = 12 * 1024 * 1024  # a 9 MiB .torrent; real ones are far smaller


def _address(value: str) -> str:
    if not re.fullmatch(ADDRESS_PATTERN, value):
        raise ValueError("not a 0x-prefixed 20-byte hex address")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError("mixed-case address with a wrong EIP-55 checksum")
    return value.lower()


Address = Annotated[str, AfterValidator(_address)]
Amount = Annotated[str, Field(pattern=r"^[0-9]+$", description="a token amount, decimal string")]


class Model(BaseModel):
    """Base of every body: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ErrorOut(Model):
    """Every error answer."""

    detail: str


class HealthOut(Model):
    """The store's own state."""

    status: str
    chain_id: int
    contract: str
    indexed_block: int | None
    indexed_time: int | None
    latest_epoch: int | None


class ProbeOut(Model):
    """A liveness or readiness probe's answer."""

    status: str
    problems: list[str]
    lag: int | None = None  # blocks the indexer is behind the confirmed head (readiness)


# ----- auth -----


class NonceOut(Model):
    """A sign-in nonce and what the message must say to be accepted."""

    nonce: str
    expires_at: int
    domain: str
    uri: str
    chain_id: int


class SignInIn(Model):
    """A signed EIP-4361 message."""

    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(min_length=1, max_length=200)


class SessionOut(Model):
    """A session: the token goes in `Authorization: Bearer ...` (or the cookie that is also set)."""

    token: str | None = None
    address: str
    expires_at: int


# ----- products -----


class SwarmHealthOut(Model):
    """A swarm as the tracker sees it."""

    seeders: int
    leechers: int
    completed: int
    reachable: int | None = Field(
        None, description="seeders the tracker could connect back to; null when it does not check"
    )


class ProductOut(Model):
    """A listed product: on-chain terms and, once the seller registered it, its description."""

    id: int
    seller: str
    info_hash: str
    size: int
    token: str
    price: Amount
    discount_bps: int
    terms_version: int  # what a purchase names with the token and price it agrees to
    active: bool
    metadata_uri: str
    listed_at: int
    registered: bool
    title: str | None = None
    description: str | None = None
    name: str | None = None
    health: SwarmHealthOut | None = None


class ProductPage(Model):
    """A page of products."""

    total: int
    items: list[ProductOut]


class ListingIn(Model):
    """A seller's description and torrent for a product listed on chain."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    torrent: str = Field(
        min_length=4, max_length=MAX_TORRENT_BASE64, description="the .torrent file, standard base64"
    )


# ----- library -----


class MeOut(Model):
    """The signed-in wallet and its personal tracker URL."""

    address: str
    passkey: str
    announce_url: str


class PurchaseOut(Model):
    """One purchase of the signed-in wallet."""

    purchase_id: int
    product_id: int
    token: str
    price: Amount
    seeder_pool: Amount
    timestamp: int
    title: str | None = None


# ----- rewards -----


class TokenRewardsOut(Model):
    """One account's standing in one token."""

    token: str
    earned: Amount
    in_root: Amount
    claimed: Amount
    claimable: Amount
    pending: Amount


class RewardsOut(Model):
    """An account's standing in every token it has anything in."""

    account: str
    active_epoch: int | None
    tokens: list[TokenRewardsOut]


class ProofOut(Model):
    """What `claim(account, token, cumulativeAmount, proof)` needs."""

    account: str
    token: str
    cumulative_amount: Amount
    proof: list[str]
    root: str
    epoch: int


# ----- epochs -----


class EpochOut(Model):
    """A closed epoch."""

    epoch: int
    status: str
    root: str
    cutoff: int
    block: int
    settle_after: int
    store_account: str
    totals: dict[str, Amount]
    leaf_count: int
    data_uri: str
    created_at: int
    tx_hash: str | None
    posted_block: int | None
    active_at: int | None


class EpochPage(Model):
    """A page of epochs, newest first."""

    total: int
    items: list[EpochOut]


# The publication (`GET /epochs/{n}/data`) and the tree dump are backend.publication's models.


# ----- sellers -----


class SalesRowOut(Model):
    """One product's sales in one token."""

    product_id: int
    title: str | None
    token: str
    count: int
    gross: Amount
    seller_amount: Amount


class SalesTotalOut(Model):
    """A seller's sales in one token, all products together."""

    token: str
    count: int
    gross: Amount
    seller_amount: Amount


class SalesOut(Model):
    """A seller's products and what they sold (withdrawable balances are on chain: `balanceOf`)."""

    seller: str
    products: list[SalesRowOut]
    totals: list[SalesTotalOut]
