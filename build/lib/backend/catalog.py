"""The catalog: listed products joined with their sellers' descriptions and torrents.

On-chain facts come from the indexer's tables; what a seller registers (title, description,
`.torrent`) is checked against them: only the listing's seller may register, the torrent's
infohash must be the listed one, its total length the listed size, and it must be private.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.errors import ForbiddenError, InvalidInput, NotFoundError
from backend.models import Credit, Listing, Product, Purchase
from backend.tracker_policy import INFOHASH_PADDING
from tracker.metainfo import MetainfoError, parse_metainfo, with_announce
from tracker.server.announce import announce_url

MAX_TITLE = 200
MAX_DESCRIPTION = 20_000


@dataclass(frozen=True)
class CatalogEntry:
    """A product and, once registered, its listing."""

    product: Product
    listing: Listing | None

    @property
    def info_hash(self) -> str:
        """The v1 infohash in hex when the listed bytes32 is one, else the whole bytes32."""
        value = self.product.infohash
        return value[:40] if value.endswith(INFOHASH_PADDING) else value


def _entries(session: Session, products: list[Product]) -> list[CatalogEntry]:
    ids = [p.id for p in products]
    listings = {
        row.product_id: row for row in session.scalars(select(Listing).where(Listing.product_id.in_(ids)))
    }
    return [CatalogEntry(p, listings.get(p.id)) for p in products]


MAX_SEARCH = 100


def list_products(
    session: Session,
    *,
    offset: int,
    limit: int,
    active: bool | None,
    registered: bool | None,
    search: str | None = None,
) -> tuple[int, list[CatalogEntry]]:
    """A page of products, newest first, and how many match in total; `search`: words that must
    all appear in the title or the description (case-insensitive; registered products only)."""
    query = select(Product)
    words = (search or "")[:MAX_SEARCH].split()
    if words:
        matching = select(Listing.product_id)
        for word in words:
            pattern = "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            matching = matching.where(
                func.lower(Listing.title).like(pattern, escape="\\")
                | func.lower(Listing.description).like(pattern, escape="\\")
            )
        query = query.where(Product.id.in_(matching))
    if active is not None:
        query = query.where(Product.active == active)
    if registered is not None:
        has_listing = exists().where(Listing.product_id == Product.id)
        query = query.where(has_listing if registered else ~has_listing)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    products = list(session.scalars(query.order_by(Product.id.desc()).offset(offset).limit(limit)))
    return total, _entries(session, products)


def get_product(session: Session, product_id: int) -> CatalogEntry | None:
    """One product, or None when the indexer has not seen it."""
    product = session.get(Product, product_id)
    return None if product is None else _entries(session, [product])[0]


def register_listing(
    db: Database, product_id: int, wallet: str, *, title: str, description: str, torrent: bytes
) -> None:
    """Store (or replace) a product's description and torrent; `wallet` must be its seller."""
    title, description = title.strip(), description.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be 1 to {MAX_TITLE} characters")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description must be at most {MAX_DESCRIPTION} characters")
    try:
        metainfo = parse_metainfo(torrent)
    except MetainfoError as exc:
        raise InvalidInput(f"not a valid torrent: {exc}") from None
    now = int(time.time())
    with db.writer() as session:
        product = session.get(Product, product_id)
        if product is None:
            raise NotFoundError("no such product (listed on chain? the store may not have indexed it yet)")
        if product.seller != wallet.lower():
            raise ForbiddenError("only the listing's seller may register it")
        if metainfo.info_hash.hex() + INFOHASH_PADDING != product.infohash:
            raise InvalidInput("the torrent's infohash is not the one listed on chain")
        if metainfo.total_length != product.size:
            raise InvalidInput(
                f"the torrent holds {metainfo.total_length} bytes, the listing says {product.size}"
            )
        if not metainfo.private:
            raise InvalidInput("the torrent must be private (BEP 27): peers come from our tracker only")
        # Anyone may list a copy of an infohash on chain; the store serves the content under the
        # first product whose own seller uploaded its info dictionary (the unique index on
        # `listings.info_hash` settles a race).
        taken = session.scalar(
            select(Listing.product_id).where(
                Listing.info_hash == metainfo.info_hash.hex(), Listing.product_id != product_id
            )
        )
        if taken is not None:
            raise ForbiddenError(f"this content is already registered as product {taken}")
        listing = session.get(Listing, product_id)
        if listing is None:
            listing = Listing(product_id=product_id, registered_by=wallet.lower(), registered_at=now)
            session.add(listing)
        listing.title, listing.description = title, description
        listing.torrent, listing.info_hash, listing.name = torrent, metainfo.info_hash.hex(), metainfo.name
        listing.total_length, listing.updated_at = metainfo.total_length, now


def may_download(session: Session, product: Product, wallet: str, store_accounts: frozenset[str]) -> bool:
    """Whether `wallet` may fetch the product's torrent: its buyers, its seller, the store's seeds."""
    wallet = wallet.lower()
    if wallet == product.seller or wallet in store_accounts:
        return True
    return bool(
        session.scalar(select(exists().where(Purchase.product_id == product.id, Purchase.buyer == wallet)))
    )


def completed_downloads(session: Session, product: Product) -> int:
    """Purchases of `product` whose downloads finished, by the receipts their buyers signed (the
    bytes credited to all seeders reach the size). Kept in the database, so the count outlives a
    restart of the tracker, whose own "completed" is in memory; downloads by ordinary clients,
    which sign no receipts, are not in it."""
    signed: dict[int, int] = defaultdict(int)
    rows = session.execute(
        select(Credit.purchase_id, Credit.signed_bytes)
        .join(Purchase, Purchase.id == Credit.purchase_id)
        .where(Purchase.product_id == product.id)
    ).tuples()
    for purchase_id, count in rows:  # summed here: Uint columns are decimal text in the database
        signed[purchase_id] += count
    return sum(1 for total in signed.values() if total >= product.size)


def personal_torrent(listing: Listing, announce_base: str, passkey: str) -> bytes:
    """The listing's torrent announcing to `announce_base/<passkey>/announce`."""
    return with_announce(listing.torrent, announce_url(announce_base, passkey))


def purchases_of(session: Session, wallet: str) -> list[Purchase]:
    """A wallet's purchases, oldest first."""
    return list(
        session.scalars(select(Purchase).where(Purchase.buyer == wallet.lower()).order_by(Purchase.id))
    )
