"""The store's pages: catalog, product, library, rewards, seller dashboard (server-rendered HTML).

Pages read the database and the chain through the backend's services; the signed-in wallet comes
from the session cookie that `POST /auth/session` sets. Actions (buy, sign in, claim, withdraw)
happen in the browser, in `static/store.js`, against the JSON API and the user's wallet.
Database and chain reads, and rendering (which may look up a token's symbol), run in the thread
pool; only the swarm-health lookups, which belong to the event loop, stay on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from backend.api.deps import ContextDep
from backend.catalog import (
    MAX_SEARCH,
    CatalogEntry,
    completed_downloads,
    get_product,
    list_products,
    may_download,
)
from backend.chain import ZERO_ADDRESS
from backend.epochs import latest_epoch
from backend.errors import ChainError, ConfigError
from backend.models import EpochStatus
from backend.passkeys import passkey_for
from backend.rewards import rewards_of
from backend.sales import library_of, magnet_link, seller_summary
from backend.swarm_stats import Health
from backend.web.covers import cover_file, read_cover, store_seed_copy
from backend.web.money import split_of
from backend.web.state import WebState, web_state
from tracker.addresses import checksum
from tracker.metainfo import Metainfo, MetainfoError, parse_metainfo
from tracker.server.announce import announce_url

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
WebDep = Annotated[WebState, Depends(web_state)]

PAGE_SIZE = 24
MAX_PAGE = 10_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_PAGE = re.compile(r"^[1-9][0-9]{0,4}$")
CHAIN_DOWN = "The store cannot reach the chain right now; try again in a minute."
NO_PRODUCT = "There is no product with that number."
# The page's own script and styles only; wallets run outside the page (extensions, injected).
# An image answer: never a document, whatever its bytes say.
COVER_HEADERS = {"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # library pages hold personal announce URLs
}


def signed_in(request: Request, web: WebDep) -> str | None:
    """The wallet of the request's session cookie (lowercase), or None; a sync dependency, so it
    reads the database in the thread pool."""
    return web.signed_in(request)


SignedInDep = Annotated[str | None, Depends(signed_in)]


def render(
    web: WebState,
    request: Request,
    template: str,
    *,
    wallet: str | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page from `template`, with the wallet config block and the signed-in wallet."""
    try:
        config: dict[str, Any] | None = web.config
    except (ConfigError, ChainError) as exc:
        log.warning("wallet config unavailable: %s", exc)
        config = None
    return web.templates.TemplateResponse(
        request,
        template,
        {"config": config, "wallet": checksum(wallet) if wallet else None, "money": web.money, **context},
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def _problem(
    web: WebState, request: Request, wallet: str | None, status: int, title: str, message: str
) -> HTMLResponse:
    return render(web, request, "error.html", wallet=wallet, status=status, title=title, message=message)


async def _health(context: ContextDep, entry: CatalogEntry) -> Health | None:
    if context.stats is None or len(entry.info_hash) != 40:
        return None
    return await context.stats.stats(bytes.fromhex(entry.info_hash))


def _with_completed(health: Health | None, finished: int) -> Health | None:
    """The tracker's health with "completed" never below the downloads the receipts prove (the
    tracker counts in memory and starts from zero after a restart)."""
    if health is None or health.completed >= finished:
        return health
    return health._replace(completed=finished)


def _meta(entry: CatalogEntry) -> Metainfo | None:
    """The product's registered torrent, parsed; None before the seller registers it."""
    if entry.listing is None:
        return None
    try:
        return parse_metainfo(entry.listing.torrent)
    except MetainfoError:
        return None


def _files(meta: Metainfo | None) -> list[tuple[str, int]]:
    """The product's files (path inside the download, size)."""
    return [] if meta is None else [("/".join(f.path), f.length) for f in meta.files if not f.padding]


def _has_cover(entry: CatalogEntry) -> bool:
    meta = _meta(entry)
    return meta is not None and cover_file(meta) is not None


@router.get("/", response_class=HTMLResponse)
async def catalog(
    request: Request, web: WebDep, context: ContextDep, wallet: SignedInDep, page: str = "1", q: str = ""
) -> HTMLResponse:
    """The catalog: products open for sale, newest first, with price and seeding health; `q`
    keeps those whose title or description holds every word of it."""
    q = q.strip()[:MAX_SEARCH]
    if not _PAGE.fullmatch(page) or int(page) > MAX_PAGE:
        return await run_in_threadpool(
            _problem, web, request, wallet, 404, "No such page", "The catalog has no page by that number."
        )
    number = int(page)

    def read() -> tuple[int, list[CatalogEntry], list[int]]:
        with context.services.db.reader() as session:
            total, entries = list_products(
                session,
                offset=(number - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
                active=True,
                registered=True,
                search=q,
            )
            return total, entries, [completed_downloads(session, e.product) for e in entries]

    total, entries, finished = await run_in_threadpool(read)
    healths = [
        _with_completed(health, done)
        for health, done in zip(
            await asyncio.gather(*(_health(context, e) for e in entries)), finished, strict=True
        )
    ]
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return await run_in_threadpool(
        lambda: render(
            web,
            request,
            "catalog.html",
            wallet=wallet,
            title="Catalog",
            nav="catalog",
            items=list(zip(entries, healths, strict=True)),
            page=number,
            pages=pages,
            q=q,
            covers={e.product.id for e in entries if _has_cover(e)},
        )
    )


@router.get("/item/{product_id}", response_class=HTMLResponse)
async def item(
    product_id: str, request: Request, web: WebDep, context: ContextDep, wallet: SignedInDep
) -> HTMLResponse:
    """A product: price and its split, seeding health, and Buy (or a link to the library)."""
    if not _ID.fullmatch(product_id):
        return await run_in_threadpool(_problem, web, request, wallet, 404, "Not found", NO_PRODUCT)

    def read() -> tuple[CatalogEntry | None, bool, int]:
        with context.services.db.reader() as session:
            entry = get_product(session, int(product_id))
            owned = bool(
                entry and wallet and may_download(session, entry.product, wallet, context.store_accounts)
            )
            return entry, owned, completed_downloads(session, entry.product) if entry else 0

    entry, owned, finished = await run_in_threadpool(read)
    if entry is None:
        return await run_in_threadpool(_problem, web, request, wallet, 404, "Not found", NO_PRODUCT)
    health = _with_completed(await _health(context, entry), finished)

    def page() -> HTMLResponse:
        product = entry.product
        try:
            fee_bps: int | None = int(context.services.chain.view("operatorFeeBps"))
            split = split_of(product.price, product.discount_bps, fee_bps or 0)
            token = web.token(product.token)
        except (ChainError, ConfigError) as exc:
            log.warning("product %s: %s", product.id, exc)
            split, token, fee_bps = None, None, None
        return render(
            web,
            request,
            "product.html",
            wallet=wallet,
            title=entry.listing.title if entry.listing else f"Product {product.id}",
            nav="catalog",
            entry=entry,
            health=health,
            split=split,
            fee_bps=fee_bps,
            token=token,
            owned=owned,
            files=_files(_meta(entry)),
            has_cover=_has_cover(entry),
        )

    return await run_in_threadpool(page)


@router.get("/item/{product_id}/cover")
def cover(product_id: str, context: ContextDep) -> Response:
    """The product's cover image from its own content (backend.web.covers), or 404."""
    entry = None
    if _ID.fullmatch(product_id):
        with context.services.db.reader() as session:
            entry = get_product(session, int(product_id))
    meta = _meta(entry) if entry is not None else None
    found = None
    if meta is not None:
        found = read_cover(meta, store_seed_copy(context.services.settings.data_dir, meta.info_hash))
    if found is None:
        return Response(status_code=404, headers=COVER_HEADERS)
    data, media_type = found
    return Response(data, media_type=media_type, headers={**COVER_HEADERS, "Cache-Control": "max-age=3600"})


@router.get("/library", response_class=HTMLResponse)
def library(request: Request, web: WebDep, context: ContextDep, wallet: SignedInDep) -> HTMLResponse:
    """The signed-in wallet's products: personal .torrent, magnet link, and how to seed."""
    common: dict[str, Any] = {"title": "Your library", "nav": "library"}
    if wallet is None:
        return render(web, request, "library.html", wallet=None, owned=None, **common)
    passkey = passkey_for(context.services.db, wallet)
    with context.services.db.reader() as session:
        owned = library_of(session, wallet)
    announce = announce_url(context.services.settings.tracker_url, passkey)
    magnets = {
        o.entry.product.id: magnet_link(o.entry.info_hash, o.entry.listing.name, announce)
        for o in owned
        if o.entry.listing is not None
    }
    return render(web, request, "library.html", wallet=wallet, owned=owned, magnets=magnets, **common)


@router.get("/rewards", response_class=HTMLResponse)
def rewards(
    request: Request, web: WebDep, context: ContextDep, wallet: SignedInDep, account: str | None = None
) -> HTMLResponse:
    """Seeding rewards per token (earned, claimable, claimed, pending) and Claim."""
    if account is not None and not _ADDRESS.fullmatch(account):
        return _problem(
            web,
            request,
            wallet,
            422,
            "Not an address",
            "The account must be 0x followed by 40 hexadecimal digits.",
        )
    who = (account or wallet or "").lower() or None
    common: dict[str, Any] = {"title": "Rewards", "nav": "rewards", "account": checksum(who) if who else None}
    if who is None:
        return render(web, request, "rewards.html", wallet=wallet, standing=None, **common)
    try:
        with context.services.db.reader() as session:
            epoch, tokens = rewards_of(session, context.services.chain, who, context.store_account)
        standing = [(t, web.token(t.token)) for t in tokens]
    except (ChainError, ConfigError) as exc:
        log.warning("rewards of %s: %s", who, exc)
        return render(
            web,
            request,
            "rewards.html",
            wallet=wallet,
            status=503,
            standing=None,
            problem=CHAIN_DOWN,
            **common,
        )
    if any(t.pending > 0 for t in tokens):
        common["claimable_in"] = _claimable_in(context)
    return render(web, request, "rewards.html", wallet=wallet, standing=standing, epoch=epoch, **common)


def _claimable_in(context: ContextDep) -> str | None:
    """Roughly when pending earnings become claimable, as "about N minutes": the next epoch closes
    `epoch_length` after the last one, its root is posted, and claims open `rootDelay` later."""
    try:
        root_delay = int(context.services.chain.view("rootDelay"))
    except (ChainError, ConfigError):
        return None
    with context.services.db.reader() as session:
        last = latest_epoch(session, tuple(EpochStatus))
    now = time.time()
    closes = now if last is None else max(now, last.created_at + context.services.settings.epoch_length)
    return _about(closes + root_delay - now)


def _about(seconds: float) -> str:
    minutes = max(round(seconds / 60), 1)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"about {hours} hours" if hours < 36 else f"about {round(hours / 24)} days"


@router.get("/sell", response_class=HTMLResponse)
def sell(request: Request, web: WebDep, context: ContextDep, wallet: SignedInDep) -> HTMLResponse:
    """The seller's dashboard: products and sales, withdrawable balances and Withdraw."""
    common: dict[str, Any] = {"title": "Seller dashboard", "nav": "sell"}
    if wallet is None:
        return render(web, request, "sell.html", wallet=None, summary=None, **common)
    with context.services.db.reader() as session:
        summary = seller_summary(session, wallet)
    try:
        chain = context.services.chain
        balances = {
            token: int(chain.view("balanceOf", checksum(wallet), checksum(token)))
            for token in sorted({*summary.tokens, ZERO_ADDRESS})
        }
        tokens = {token: web.token(token) for token in balances}
    except (ChainError, ConfigError) as exc:
        log.warning("seller page of %s: %s", wallet, exc)
        return render(
            web, request, "sell.html", wallet=wallet, status=503, summary=None, problem=CHAIN_DOWN, **common
        )
    return render(
        web, request, "sell.html", wallet=wallet, summary=summary, balances=balances, tokens=tokens, **common
    )
