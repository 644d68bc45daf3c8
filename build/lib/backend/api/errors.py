"""Every error becomes `{"detail": "<short reason>"}` with a fitting status, and is logged."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.schemas import ErrorOut
from backend.errors import (
    AuthError,
    ChainError,
    ChainUnavailable,
    ForbiddenError,
    InvalidInput,
    NotFoundError,
    RateLimited,
    StoreError,
)

log = logging.getLogger("backend.api")

_STATUS: list[tuple[type[StoreError], int]] = [
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (InvalidInput, 422),
    (RateLimited, 429),
    (ChainUnavailable, 503),
    (ChainError, 502),
]


def status_of(exc: StoreError) -> int:
    """The HTTP status for a store error (an unmapped one is a bug: 500)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _answer(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if status >= 500:
        log.error("%s %s -> %d: %s", request.method, request.url.path, status, detail)
    else:
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, detail)
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"[:300]


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.exception("unexpected store error on %s %s", request.method, request.url.path)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        if isinstance(exc, RateLimited):
            return _answer(request, status, str(exc), {"Retry-After": str(exc.retry_after)})
        return _answer(request, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(request, 422, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's only 400: a body it cannot decode (not UTF-8, not JSON). Same as other
            # invalid input for a client, and documented as such.
            return _answer(request, 422, "request body is not valid JSON")
        return _answer(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)


_DESCRIPTIONS = {
    401: "Not signed in, or the sign-in failed",
    403: "The signed-in wallet may not do this",
    404: "Not found",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many requests from this address; see Retry-After",
    502: "The chain answered something unusable",
    503: "The chain is unreachable",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in codes}
