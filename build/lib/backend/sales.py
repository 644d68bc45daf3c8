"""A wallet's library and a seller's sales, for the pages and the JSON API.

Amounts are `Uint` text columns, so sums are taken in Python, never in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.catalog import CatalogEntry, get_product, purchases_of
from backend.models import Listing, Product, Purchase

MAX_SELLER_PRODUCTS = 500


@dataclass(frozen=True)
class Owned:
    """A product in a wallet's library."""

    entry: CatalogEntry
    purchase: Purchase


def library_of(session: Session, wallet: str) -> list[Owned]:
    """The products a wallet bought, oldest purchase first."""
    owned = []
    for purchase in purchases_of(session, wallet):
        entry = get_product(session, purchase.product_id)
        if entry is not None:
            owned.append(Owned(entry, purchase))
    return owned


def magnet_link(info_hash: str, name: str, announce_url: str) -> str:
    """A magnet link naming the personal announce URL (private torrents use no DHT)."""
    query = urlencode({"dn": name, "tr": announce_url}, quote_via=quote)
    return f"magnet:?xt=urn:btih:{info_hash}&{query}"


@dataclass
class Sales:
    """One product's sales in one token (a product re-priced in another token has a row for each)."""

    entry: CatalogEntry
    token: str
    count: int = 0
    gross: int = 0
    seller_amount: int = 0


@dataclass
class SellerSummary:
    """A seller's products with their sales."""

    rows: list[Sales] = field(default_factory=list)

    @property
    def tokens(self) -> list[str]:
        """Every token the seller is or was paid in."""
        return sorted({row.token for row in self.rows})

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per token: (sales, gross, seller amount)."""
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in self.rows:
            total = sums[row.token]
            total[0] += row.count
            total[1] += row.gross
            total[2] += row.seller_amount
        return {token: (c, g, s) for token, (c, g, s) in sums.items()}


def seller_summary(session: Session, seller: str) -> SellerSummary:
    """The products `seller` listed (newest first) with their sales per token."""
    products = list(
        session.scalars(
            select(Product)
            .where(Product.seller == seller.lower())
            .order_by(Product.id.desc())
            .limit(MAX_SELLER_PRODUCTS)
        )
    )
    by_id = {p.id: p for p in products}
    listings = {
        row.product_id: row
        for row in session.scalars(select(Listing).where(Listing.product_id.in_(list(by_id))))
    }
    sales: dict[tuple[int, str], Sales] = {}
    for product_id, token, price, seller_amount in session.execute(
        select(Purchase.product_id, Purchase.token, Purchase.price, Purchase.seller_amount).where(
            Purchase.product_id.in_(list(by_id))
        )
    ).tuples():
        row = sales.get((product_id, token))
        if row is None:
            entry = CatalogEntry(by_id[product_id], listings.get(product_id))
            row = sales[(product_id, token)] = Sales(entry, token)
        row.count += 1
        row.gross += price
        row.seller_amount += seller_amount
    per_product: dict[int, list[Sales]] = defaultdict(list)
    for (product_id, _), row in sorted(sales.items(), key=lambda item: item[0]):
        per_product[product_id].append(row)
    rows = []
    for product in products:
        unsold = Sales(CatalogEntry(product, listings.get(product.id)), product.token)
        rows += per_product.get(product.id) or [unsold]
    return SellerSummary(rows)
