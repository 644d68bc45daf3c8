"""The FastAPI application: `uvicorn --factory backend.api.main:create_app`, or `seedmarket serve`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend.api import errors
from backend.api.deps import AppContext
from backend.api.limits import BodyLimit
from backend.api.ratelimit import TokenBuckets
from backend.api.routes import auth, epochs, health, library, products, rewards, sellers
from backend.metrics import StoreCollector, registry_for
from backend.services import Services
from backend.settings import Settings, load_settings
from backend.siwe_auth import SiweAuth
from backend.swarm_stats import InProcessStats, SwarmStats
from backend.web import install as install_web
from tracker.server import TrackerServer

DESCRIPTION = """The seedmarket store: a catalog of digital goods delivered over BitTorrent,
Sign-In with Ethereum, personal `.torrent` files, seeders' rewards with their Merkle proofs,
and the published epochs anyone can recompute. Token amounts are decimal strings; addresses
in answers are EIP-55 checksummed; errors are `{"detail": "..."}`."""


def create_app(
    settings: Settings | None = None, *, services: Services | None = None, stats: SwarmStats | None = None
) -> FastAPI:
    """Build the app for one store (settings from the environment unless given)."""
    settings = settings or load_settings()
    services = services or Services.open(settings)
    store_accounts = services.store_accounts
    tracker = stats.tracker if isinstance(stats, InProcessStats) else None

    def head() -> int:  # the chain is built on first use: an app without one still serves pages
        return services.chain.head()

    collector = StoreCollector(
        services.db,
        head,
        settings.confirmations,
        services.receipt_counts,
        tracker if isinstance(tracker, TrackerServer) else None,
    )
    context = AppContext(
        services=services,
        auth=SiweAuth(services.db, settings),
        stats=stats,
        store_accounts=frozenset(store_accounts),
        store_account=store_accounts[0] if store_accounts else None,
        metrics=registry_for(collector),
        nonce_limit=TokenBuckets(settings.nonce_rate, settings.nonce_burst),
    )
    app = FastAPI(title="seedmarket store", version="1", description=DESCRIPTION)
    app.state.context = context
    errors.install(app)
    for module in (health, auth, products, library, rewards, epochs, sellers):
        app.include_router(module.router)
    install_web(app)  # the store's pages and /static
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True, allow_methods=["*"]
        )
    app.add_middleware(BodyLimit)
    _short_validation_errors(app)
    return app


def _short_validation_errors(app: FastAPI) -> None:
    """Document 422 answers as what the handler sends: `{"detail": "..."}`, not FastAPI's list."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("ValidationError", None)
        components["HTTPValidationError"] = {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {"detail": {"type": "string", "title": "Detail"}},
            "required": ["detail"],
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
