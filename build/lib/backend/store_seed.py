"""The store's own seed: every registered product, served to every peer the tracker lets in.

It joins each product's swarm as the store's seeding account with that account's personal
passkey. Content it lacks it downloads from whoever has it (the seller hands new products over
this way, see `scripts/list_product.py`), then serves everyone, receipts or not, and bills
receipt-speaking leechers like any seeder: journaled, then handed to the tracker.

The store minimizes its own traffic: by default it super-seeds (`tracker.peer.superseed`), giving
out only pieces no buyer in the swarm has yet, so buyers get the rest from each other and earn
for it; a buyer nobody else serves is still served. `store_seed_upload_rate` caps its upload.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from backend.catalog import personal_torrent
from backend.errors import ConfigError
from backend.models import Listing
from backend.passkeys import passkey_for
from backend.services import Services
from backend.settings import Settings
from tracker.errors import TrackerError
from tracker.metainfo import parse_metainfo
from tracker.peer.choker import PlainPeers
from tracker.peer.journal import ReceiptJournal
from tracker.peer.ratelimit import TokenBucket
from tracker.peer.session import Session
from tracker.peer.submitter import receipts_url
from tracker.peer.torrent import Torrent, TorrentConfig
from tracker.receipts import ReceiptVerifier

log = logging.getLogger(__name__)

RESCAN_SECONDS = 5.0  # how soon a newly registered product is picked up


def seed_config(settings: Settings, wallet: bytes, verifier: ReceiptVerifier) -> TorrentConfig:
    """How the store's seed takes part in every product's swarm."""
    return TorrentConfig(
        wallet=wallet,
        verifier=verifier,
        enforce_credit=False,
        plain_peers=PlainPeers.SERVE,
        super_seed=settings.store_seed_super_seed,
    )


def upload_limit(settings: Settings) -> TokenBucket | None:
    """The cap on everything the store's seed uploads, if one is set."""
    rate = settings.store_seed_upload_rate
    return TokenBucket(rate) if rate else None


@dataclass(frozen=True)
class SeedStatus:
    """What the store's seed holds of one product."""

    product_id: int
    name: str
    complete: bool
    uploaded: int
    peers: int


class StoreSeed:
    """The store's seeding account at work on every registered product."""

    def __init__(self, services: Services, *, folder: Path | None = None, port: int = 0) -> None:
        accounts = services.store_accounts
        if not accounts:
            raise ConfigError("the store seed needs a store seeding account: set SEEDMARKET_STORE_ACCOUNTS")
        self.services = services
        self.account = accounts[0]
        self.folder = folder or services.settings.data_dir / "store-seed"
        self.port = port
        self.torrents: dict[int, Torrent] = {}
        self._failed: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Seed until `stop` is set, picking up newly registered products as they come."""
        settings = self.services.settings
        journal = ReceiptJournal(self.folder / "receipts.journal")
        async with Session(port=self.port, journal=journal, upload_limit=upload_limit(settings)) as session:
            self.port = session.port
            session.submit_receipts(receipts_url(settings.tracker_url))
            log.info("store seed %s listening on port %d", self.account, session.port)
            while not stop.is_set():
                await self._add_new(session)
                try:
                    await asyncio.wait_for(stop.wait(), RESCAN_SECONDS)
                except TimeoutError:
                    continue

    def status(self) -> list[SeedStatus]:
        """Per product: complete or not, bytes uploaded, connected peers."""
        return [
            SeedStatus(pid, t.meta.name, t.complete, t.uploaded, len(t.connections))
            for pid, t in sorted(self.torrents.items())
        ]

    async def _add_new(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        torrents = await loop.run_in_executor(None, self._personal_torrents)
        wallet = bytes.fromhex(self.account[2:])
        config = seed_config(self.services.settings, wallet, self.services.verifier())
        for product_id, data in torrents:
            if product_id in self.torrents or product_id in self._failed:
                continue
            try:
                meta = parse_metainfo(data)
                folder = self.folder / meta.info_hash.hex()
                torrent = await session.add_torrent(meta, folder, config)
            except (TrackerError, OSError) as exc:
                log.warning("store seed cannot take product %d: %s", product_id, exc)
                self._failed.add(product_id)
                continue
            if meta.announce:
                session.announce(torrent, meta.announce)
            self.torrents[product_id] = torrent
            log.info(
                "store seed joined product %d (%s), %s",
                product_id,
                meta.name,
                "complete" if torrent.complete else f"{torrent.left} bytes to fetch",
            )

    def _personal_torrents(self) -> list[tuple[int, bytes]]:
        """Every registered product's torrent, announcing with the store account's passkey."""
        passkey = passkey_for(self.services.db, self.account)
        tracker_url = self.services.settings.tracker_url
        with self.services.db.reader() as session:
            listings = session.scalars(select(Listing).order_by(Listing.product_id))
            return [
                (listing.product_id, personal_torrent(listing, tracker_url, passkey)) for listing in listings
            ]
