"""Typed dependencies of the routes: the store's parts, a database session, the signed-in wallet."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Cookie, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from backend.api.published import RenderedPublications
from backend.api.ratelimit import TokenBuckets
from backend.errors import AuthError
from backend.services import Services
from backend.siwe_auth import Session as SignedIn
from backend.siwe_auth import SiweAuth
from backend.swarm_stats import SwarmStats

SESSION_COOKIE = "seedmarket_session"


@dataclass
class AppContext:
    """What the app was built with (kept on `app.state.context`)."""

    services: Services
    auth: SiweAuth
    stats: SwarmStats | None
    store_accounts: frozenset[str]
    store_account: str | None  # gets the unearned part of pools that freeze from now on
    metrics: CollectorRegistry
    nonce_limit: TokenBuckets  # POST /auth/nonce per client address
    publications: RenderedPublications = field(default_factory=RenderedPublications)


def get_context(request: Request) -> AppContext:
    """The app's context."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_services(context: ContextDep) -> Services:
    """The store's parts."""
    return context.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    """A read session for one request."""
    with services.db.reader() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="the token from POST /auth/session")


def current_session(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> SignedIn:
    """The live session of the request's bearer token or cookie; 401 without one."""
    token = credentials.credentials if credentials is not None else cookie
    if not token:
        raise AuthError("sign in first (POST /auth/nonce, then POST /auth/session)")
    session = context.auth.resolve(token)
    if session is None:
        raise AuthError("session expired or unknown; sign in again")
    return session


SessionAuthDep = Annotated[SignedIn, Depends(current_session)]


def current_wallet(session: SessionAuthDep) -> str:
    """The signed-in wallet, lowercase 0x-hex."""
    return session.address


WalletDep = Annotated[str, Depends(current_wallet)]
