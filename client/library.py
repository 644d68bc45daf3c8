"""A buyer's library: products fetched by id from the store, downloaded with receipts, and seeded.

Downloads sign receipts with a short-lived session key that the buyer's wallet authorises once
(`ReceiptKey`), so the wallet's own key never signs in the engine's hot path. Content lives in
`$SEEDMARKET_HOME/library/` unless told otherwise.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from client import reachability, wallet
from client.connect import Connection
from client.errors import ClientError, TransactionReverted
from tracker.metainfo import Metainfo, parse_metainfo
from tracker.peer.announcer import Announcer
from tracker.peer.credit import ReceiptSigner
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.submitter import receipts_url
from tracker.peer.torrent import Torrent, TorrentConfig
from tracker.receipts import Domain, ReceiptKey, ReceiptVerifier, SignedKey, address_of, sign_receipt_key

SESSION_KEY_SECONDS = 7 * 86_400  # a session key signs receipts for a week, then a new one is made
RESCAN_SECONDS = 30.0  # how soon `seed` picks up a new purchase


def library_folder() -> Path:
    """Where downloads go by default."""
    return wallet.home() / "library"


def session_signer(domain: Domain, purchase_id: int, buyer_key: bytes) -> ReceiptSigner:
    """A receipt signer with a fresh session key, authorised by the buyer's key."""
    from coincurve import PrivateKey  # noqa: PLC0415 - only downloads need it

    session_key = PrivateKey(os.urandom(32))
    authorisation = ReceiptKey(
        purchase_id=purchase_id,
        key=address_of(session_key.public_key),
        expires=int(time.time()) + SESSION_KEY_SECONDS,
    )
    delegation = SignedKey(authorisation, sign_receipt_key(domain, authorisation, buyer_key))
    return ReceiptSigner(domain, purchase_id, session_key.secret, delegation)


def sign_in(conn: Connection, account: LocalAccount) -> None:
    """Sign in to the store with the wallet (EIP-4361)."""
    conn.store.sign_in(
        account.address, lambda text: bytes(account.sign_message(encode_defunct(text=text)).signature)
    )


def domain_of(conn: Connection) -> Domain:
    """The receipts' EIP-712 domain of the store's chain and contract."""
    return Domain(conn.chain_id, bytes.fromhex(conn.contract[2:]))


@dataclass(frozen=True)
class Owned:
    """A purchase ready to join its swarm."""

    product_id: int
    purchase_id: int
    meta: Metainfo


def owned(conn: Connection, product_id: int, buyer: str) -> Owned:
    """The buyer's purchase of a product and its personal torrent (signed in already)."""
    purchase_id = conn.chain.purchase_of(product_id, buyer)
    if purchase_id == 0:
        try:
            conn.chain.product(product_id)
        except TransactionReverted as exc:
            if exc.error != "UnknownProduct(uint256)":
                raise
            raise ClientError(
                f"there is no product {product_id} on chain {conn.chain_id} (the store's catalog lists them)"
            ) from None
        raise ClientError(
            f"this wallet has not bought product {product_id}: seedmarket buy {product_id} --key ..."
        )
    return Owned(product_id, purchase_id, parse_metainfo(conn.store.torrent(product_id)))


def ledger_path(info_hash: bytes, purchase_id: int, home: Path | None = None) -> Path:
    """Where a download of a purchase remembers what it verified and signed per seeder (in
    `home`, by default this user's seedmarket folder)."""
    return (home or wallet.home()) / "receipts" / f"{info_hash.hex()}-{purchase_id}.json"


def journal_path(address: bytes) -> Path:
    """Where a wallet's seeding journals the receipts it collects, with or without a .torrent."""
    return wallet.home() / "journals" / f"{address.hex()}.journal"


def download_config(domain: Domain, item: Owned, account: LocalAccount) -> TorrentConfig:
    """Leech `item`, paying seeders with session-key receipts."""
    return TorrentConfig(
        signer=session_signer(domain, item.purchase_id, bytes(account.key)),
        receipt_ledger=ledger_path(item.meta.info_hash, item.purchase_id),
    )


def seeding_config(domain: Domain, item: Owned, account: LocalAccount) -> TorrentConfig:
    """Finish downloading `item` if needed, and seed it for receipts paid to this wallet."""
    return TorrentConfig(
        signer=session_signer(domain, item.purchase_id, bytes(account.key)),
        receipt_ledger=ledger_path(item.meta.info_hash, item.purchase_id),
        wallet=bytes.fromhex(account.address[2:]),
        verifier=ReceiptVerifier(domain),
    )


@dataclass
class SeedingReport:
    """What the long-running seeder shows: per product, and the wallet's rewards."""

    torrents: dict[int, Torrent]
    rewards: dict[str, dict[str, str]]
    reachability: str = ""  # whether peers outside can connect (client.reachability)


async def seed_library(
    conn: Connection,
    account: LocalAccount,
    folder: Path,
    *,
    port: int,
    journal_path: Path,
    stop: asyncio.Event,
    show: Callable[[SeedingReport], None],
    refresh: float = 2.0,
    map_port: bool = False,
    checking: Callable[[str, int, int], None] | None = None,
) -> None:
    """Seed every product the wallet owns (downloading what is missing), handing receipts to the
    tracker, until `stop` is set; new purchases join within `RESCAN_SECONDS`. `checking(name,
    pieces, of)` follows the hash check of what is on disk (on the disk thread)."""
    domain = domain_of(conn)
    loop = asyncio.get_running_loop()
    torrents: dict[int, Torrent] = {}
    rewards: dict[str, dict[str, str]] = {}
    announcers: list[Announcer] = []
    async with Session(port=port, journal=ReceiptJournal(journal_path), map_port=map_port) as session:
        submitted_to: str | None = None
        next_scan = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + RESCAN_SECONDS
                for item in await loop.run_in_executor(None, _new_purchases, conn, account, set(torrents)):
                    torrent = await session.add_torrent(
                        item.meta,
                        folder,
                        seeding_config(domain, item, account),
                        progress=_named(checking, item.meta.name),
                    )
                    if item.meta.announce:
                        announcers.append(session.announce(torrent, item.meta.announce))
                        if submitted_to is None:
                            submitted_to = receipts_url(item.meta.announce)
                            session.submit_receipts(submitted_to)
                    torrents[item.product_id] = torrent
                rewards = await loop.run_in_executor(None, _rewards, conn, account.address)
            reach = reachability.describe(session.port, session.port_mapper, announcers)
            show(SeedingReport(torrents, rewards, reach))
            try:
                await asyncio.wait_for(stop.wait(), refresh)
            except TimeoutError:
                continue


def _named(checking: Callable[[str, int, int], None] | None, name: str) -> Callable[[int, int], None] | None:
    if checking is None:
        return None
    return lambda done, total: checking(name, done, total)


def _new_purchases(conn: Connection, account: LocalAccount, known: set[int]) -> list[Owned]:
    found = []
    for purchase in conn.store.purchases():
        product_id = int(purchase["productId"])
        if product_id not in known and purchase.get("title") is not None:
            found.append(owned(conn, product_id, account.address))
    return found


def _rewards(conn: Connection, address: str) -> dict[str, dict[str, str]]:
    try:
        return {entry["token"]: entry for entry in conn.store.rewards(address)["tokens"]}
    except ClientError:
        return {}
