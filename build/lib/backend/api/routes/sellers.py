"""Sellers: what each one listed and sold (public, as the chain's Purchased events are)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from backend.api.deps import SessionDep
from backend.api.errors import documented
from backend.api.schemas import Address, SalesOut, SalesRowOut, SalesTotalOut
from backend.sales import seller_summary
from tracker.addresses import checksum

router = APIRouter(prefix="/sellers", tags=["sellers"])
SellerPath = Annotated[Address, Path(description="the seller's address")]


@router.get("/{seller}/sales", response_model=SalesOut, responses=documented(422))
def sales(seller: SellerPath, session: SessionDep) -> SalesOut:
    """The seller's products (newest first) with sales count, gross and the seller's amount per token."""
    summary = seller_summary(session, seller)
    return SalesOut(
        seller=checksum(seller),
        products=[
            SalesRowOut(
                product_id=row.entry.product.id,
                title=row.entry.listing.title if row.entry.listing else None,
                token=checksum(row.token),
                count=row.count,
                gross=str(row.gross),
                seller_amount=str(row.seller_amount),
            )
            for row in summary.rows
        ],
        totals=[
            SalesTotalOut(token=checksum(token), count=count, gross=str(gross), seller_amount=str(amount))
            for token, (count, gross, amount) in sorted(summary.totals().items())
        ],
    )
