"""Sign-In with Ethereum: a nonce, then a signed message for a session."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from backend.api.deps import SESSION_COOKIE, ContextDep, SessionAuthDep
from backend.api.errors import documented
from backend.api.schemas import NonceOut, SessionOut, SignInIn
from tracker.addresses import checksum

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/nonce", response_model=NonceOut, responses=documented(429))
def nonce(context: ContextDep, request: Request) -> NonceOut:
    """A single-use nonce for an EIP-4361 message, and the domain, URI and chain id it must name.
    Each client address may ask `nonce_burst` times at once and `nonce_rate` times a second after."""
    context.nonce_limit.take(request.client.host if request.client is not None else "")
    value, expires = context.auth.issue_nonce()
    return NonceOut(
        nonce=value,
        expires_at=expires,
        domain=context.auth.domain,
        uri=context.auth.uri,
        chain_id=context.auth.chain_id,
    )


@router.post("/session", response_model=SessionOut, responses=documented(401))
async def sign_in(body: SignInIn, context: ContextDep, response: Response) -> SessionOut:
    """Trade a signed sign-in message for a session token (also set as an HttpOnly cookie)."""
    session = await run_in_threadpool(context.auth.sign_in, body.message, body.signature)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=max(session.expires_at - int(time.time()), 0),
        httponly=True,
        samesite="lax",
        secure=context.services.settings.production,
    )
    return SessionOut(token=session.token, address=checksum(session.address), expires_at=session.expires_at)


@router.get("/session", response_model=SessionOut, responses=documented(401))
def who(session: SessionAuthDep) -> SessionOut:
    """The signed-in wallet and when its session ends."""
    return SessionOut(address=checksum(session.address), expires_at=session.expires_at)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, responses=documented(401))
def sign_out(session: SessionAuthDep, context: ContextDep) -> Response:
    """End this session and clear its cookie."""
    context.auth.sign_out(session.token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE)
    return response
