"""GET /health: is the store up, and how far has it read the chain."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from backend.api.deps import ServicesDep, SessionDep
from backend.api.schemas import HealthOut
from backend.models import Epoch, IndexerCursor

router = APIRouter(tags=["store"])


@router.get("/health", response_model=HealthOut)
def health(services: ServicesDep, session: SessionDep) -> HealthOut:
    """The chain and contract served, the indexer's cursor and the newest epoch."""
    cursor = session.get(IndexerCursor, 1)
    address, _ = services.settings.marketplace
    return HealthOut(
        status="ok",
        chain_id=services.settings.chain_id,
        contract=address,
        indexed_block=cursor.block_number if cursor else None,
        indexed_time=cursor.block_timestamp if cursor else None,
        latest_epoch=session.scalar(select(func.max(Epoch.number))),
    )
