"""The web store: server-rendered pages and their one script, mounted on the API's app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from backend.web.pages import router
from backend.web.state import STATIC, WebState


def install(app: FastAPI) -> None:
    """Add the pages and `/static` to an app built by `backend.api.main.create_app`."""
    app.state.web = WebState(app.state.context)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
