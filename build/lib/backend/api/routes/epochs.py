"""Epochs: their roots and status, the tree dumps, and the receipts behind them."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from backend.api.deps import ContextDep, SessionDep
from backend.api.errors import documented
from backend.api.published import etag_of, matches
from backend.api.schemas import MAX_EPOCH, EpochOut, EpochPage
from backend.epochs import dump_of, publication
from backend.errors import NotFoundError
from backend.models import Epoch
from backend.publication import Publication, TreeDump
from tracker.addresses import checksum

router = APIRouter(prefix="/epochs", tags=["epochs"])
EpochNumber = Annotated[int, Path(ge=1, le=MAX_EPOCH)]


def epoch_out(epoch: Epoch) -> EpochOut:
    """An epoch row as the API shows it."""
    return EpochOut(
        epoch=epoch.number,
        status=epoch.status,
        root=epoch.root,
        cutoff=epoch.cutoff,
        block=epoch.block_number,
        settle_after=epoch.settle_after,
        store_account=checksum(epoch.store_account),
        totals={checksum(t): v for t, v in json.loads(epoch.totals).items()},
        leaf_count=epoch.leaf_count,
        data_uri=epoch.data_uri,
        created_at=epoch.created_at,
        tx_hash=epoch.tx_hash,
        posted_block=epoch.posted_block,
        active_at=epoch.active_at,
    )


def _epoch(session: SessionDep, number: int) -> Epoch:
    epoch = session.get(Epoch, number)
    if epoch is None:
        raise NotFoundError("no such epoch")
    return epoch


@router.get("", response_model=EpochPage)
def epochs(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EpochPage:
    """Closed epochs, newest first."""
    total = session.scalar(select(func.count()).select_from(Epoch)) or 0
    rows = session.scalars(select(Epoch).order_by(Epoch.number.desc()).offset(offset).limit(limit))
    return EpochPage(total=total, items=[epoch_out(e) for e in rows])


@router.get("/{number}", response_model=EpochOut, responses=documented(404))
def epoch(number: EpochNumber, session: SessionDep) -> EpochOut:
    """One epoch."""
    return epoch_out(_epoch(session, number))


@router.get("/{number}/tree", response_model=TreeDump, responses=documented(404))
def tree(number: EpochNumber, session: SessionDep) -> JSONResponse:
    """The epoch's Merkle tree as `StandardMerkleTree.dump()` writes it."""
    return JSONResponse(dump_of(session, _epoch(session, number)))


@router.get(
    "/{number}/data",
    response_model=Publication,
    responses={**documented(404), 304: {"description": "Not modified: the If-None-Match ETag is current"}},
)
def data(
    number: EpochNumber,
    session: SessionDep,
    context: ContextDep,
    if_none_match: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Everything needed to recompute the epoch's root from the chain: the tree, the frozen
    purchases and every receipt behind it (`seedmarket verify-epoch`). It never changes: served
    with an ETag, 304 to a client that has it."""
    settings = context.services.settings
    address, _ = settings.marketplace
    epoch = _epoch(session, number)
    etag = etag_of(epoch, settings.chain_id, address)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable"}
    if matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    body = context.publications.get(
        etag, lambda: publication(session, epoch, settings.chain_id, address).document()
    )
    return Response(body, media_type="application/json", headers=headers)
