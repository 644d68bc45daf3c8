"""The signed-in wallet: its passkey and its purchases."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from backend.api.deps import ServicesDep, SessionDep, WalletDep
from backend.api.errors import documented
from backend.api.schemas import MeOut, PurchaseOut
from backend.catalog import purchases_of
from backend.models import Listing
from backend.passkeys import passkey_for
from tracker.addresses import checksum
from tracker.server.announce import announce_url

router = APIRouter(prefix="/me", tags=["library"])


@router.get("", response_model=MeOut, responses=documented(401))
def me(wallet: WalletDep, services: ServicesDep) -> MeOut:
    """Your address and personal announce URL (keep the passkey secret: it is your tracker login)."""
    passkey = passkey_for(services.db, wallet)
    return MeOut(
        address=checksum(wallet),
        passkey=passkey,
        announce_url=announce_url(services.settings.tracker_url, passkey),
    )


@router.get("/purchases", response_model=list[PurchaseOut], responses=documented(401))
def purchases(wallet: WalletDep, session: SessionDep) -> list[PurchaseOut]:
    """Your purchases (with the purchase id your receipts must name), oldest first."""
    bought = purchases_of(session, wallet)
    rows = session.execute(
        select(Listing.product_id, Listing.title).where(
            Listing.product_id.in_([p.product_id for p in bought])
        )
    ).tuples()
    titles = {product_id: title for product_id, title in rows}
    return [
        PurchaseOut(
            purchase_id=p.id,
            product_id=p.product_id,
            token=checksum(p.token),
            price=str(p.price),
            seeder_pool=str(p.seeder_pool),
            timestamp=p.timestamp,
            title=titles.get(p.product_id),
        )
        for p in bought
    ]
