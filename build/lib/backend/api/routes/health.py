"""GET /health: is the store up, and how far has it read the chain; the probes and metrics for
whoever runs it (`/healthz`, `/readyz`, `/metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from backend.api.deps import ContextDep, ServicesDep, SessionDep
from backend.api.schemas import HealthOut, ProbeOut
from backend.metrics import readiness
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


@router.get("/healthz", response_model=ProbeOut)
def healthz() -> ProbeOut:
    """Liveness: the process answers (nothing else is checked: restarting would not fix an outage)."""
    return ProbeOut(status="ok", problems=[])


@router.get("/readyz", response_model=ProbeOut, responses={503: {"model": ProbeOut}})
def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the database and the chain answer and the indexer is not far behind; 503 with
    the reasons otherwise (a load balancer sends no traffic to it until it is ready)."""
    state = readiness(services.db, services.chain.head, services.settings.confirmations)
    body = ProbeOut(status="ready" if state.ready else "unready", problems=state.problems, lag=state.lag)
    return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(context: ContextDep) -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(context.metrics), media_type=CONTENT_TYPE_LATEST)
