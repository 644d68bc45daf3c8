"""Products: the catalog, seeding health, sellers registering listings, buyers' torrents."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from backend.api.deps import ContextDep, ServicesDep, SessionDep, WalletDep
from backend.api.errors import documented
from backend.api.schemas import MAX_DB_ID, ListingIn, ProductOut, ProductPage, SwarmHealthOut
from backend.catalog import (
    MAX_SEARCH,
    CatalogEntry,
    get_product,
    list_products,
    may_download,
    personal_torrent,
    register_listing,
)
from backend.errors import ForbiddenError, InvalidInput, NotFoundError
from backend.passkeys import passkey_for
from tracker.addresses import checksum

router = APIRouter(prefix="/products", tags=["products"])
ProductId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="the on-chain product id")]


def product_out(entry: CatalogEntry, health: SwarmHealthOut | None = None) -> ProductOut:
    """A catalog entry as the API shows it."""
    product, listing = entry.product, entry.listing
    return ProductOut(
        id=product.id,
        seller=checksum(product.seller),
        info_hash=entry.info_hash,
        size=product.size,
        token=checksum(product.token),
        price=str(product.price),
        discount_bps=product.discount_bps,
        terms_version=product.terms_version,
        active=product.active,
        metadata_uri=product.metadata_uri,
        listed_at=product.listed_at,
        registered=listing is not None,
        title=listing.title if listing else None,
        description=listing.description if listing else None,
        name=listing.name if listing else None,
        health=health,
    )


@router.get("", response_model=ProductPage)
def products(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    active: bool | None = None,
    registered: bool | None = None,
    q: Annotated[str | None, Query(max_length=MAX_SEARCH)] = None,
) -> ProductPage:
    """Listed products, newest first; filter by `active` (open for purchases), `registered`, and
    `q` (words of the title or description)."""
    total, entries = list_products(
        session, offset=offset, limit=limit, active=active, registered=registered, search=q
    )
    return ProductPage(total=total, items=[product_out(entry) for entry in entries])


async def _health(context: ContextDep, entry: CatalogEntry) -> SwarmHealthOut | None:
    if context.stats is None or len(entry.info_hash) != 40:
        return None
    stats = await context.stats.stats(bytes.fromhex(entry.info_hash))
    if stats is None:
        return None
    return SwarmHealthOut(
        seeders=stats.seeders, leechers=stats.leechers, completed=stats.completed, reachable=stats.reachable
    )


def _entry(services: ServicesDep, product_id: int) -> CatalogEntry:
    with services.db.reader() as session:
        entry = get_product(session, product_id)
    if entry is None:
        raise NotFoundError("no such product")
    return entry


@router.get("/{product_id}", response_model=ProductOut, responses=documented(404))
async def product(product_id: ProductId, services: ServicesDep, context: ContextDep) -> ProductOut:
    """One product with its seeding health (null when the tracker cannot say)."""
    entry = await run_in_threadpool(_entry, services, product_id)
    return product_out(entry, await _health(context, entry))


@router.get("/{product_id}/health", response_model=SwarmHealthOut, responses=documented(404))
async def product_health(product_id: ProductId, services: ServicesDep, context: ContextDep) -> SwarmHealthOut:
    """Seeders, leechers and completed downloads of the product's swarm."""
    entry = await run_in_threadpool(_entry, services, product_id)
    health = await _health(context, entry)
    return health or SwarmHealthOut(seeders=0, leechers=0, completed=0, reachable=None)


@router.put("/{product_id}/listing", response_model=ProductOut, responses=documented(401, 403, 404, 413, 422))
def register(product_id: ProductId, body: ListingIn, wallet: WalletDep, services: ServicesDep) -> ProductOut:
    """Register the title, description and `.torrent` of a product you listed on chain.

    Only the listing's seller may; the torrent must be private, with the listed infohash and size.
    """
    try:
        torrent = base64.b64decode(body.torrent, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("torrent must be standard base64") from None
    register_listing(
        services.db, product_id, wallet, title=body.title, description=body.description, torrent=torrent
    )
    return product_out(_entry(services, product_id))


@router.get(
    "/{product_id}/torrent",
    response_class=Response,
    responses={
        200: {"content": {"application/x-bittorrent": {}}, "description": "your personal .torrent"},
        **documented(401, 403, 404),
    },
)
def torrent(product_id: ProductId, wallet: WalletDep, services: ServicesDep, context: ContextDep) -> Response:
    """The product's `.torrent`, announcing with your wallet's personal passkey. Buyers, the seller
    and the store's seeds only."""
    with services.db.reader() as session:
        entry = get_product(session, product_id)
        if entry is None:
            raise NotFoundError("no such product")
        if not may_download(session, entry.product, wallet, context.store_accounts):
            raise ForbiddenError("this wallet has not bought this product")
    if entry.listing is None:
        raise NotFoundError("the seller has not registered this product's torrent yet")
    passkey = passkey_for(services.db, wallet)
    data = personal_torrent(entry.listing, services.settings.tracker_url, passkey)
    filename = f"{entry.listing.name}.torrent".replace('"', "")
    return Response(
        data,
        media_type="application/x-bittorrent",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}"},
    )
