"""What the pages share per app: templates, the wallet config, the token book."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from backend.api.deps import SESSION_COOKIE, AppContext
from backend.web.money import TokenBook, TokenInfo, format_units, human_size
from backend.web.wallet_config import wallet_config
from tracker.addresses import checksum

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


class WebState:
    """Built once per app; the chain-derived parts on first use, so a page can report a dead chain."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.templates = Jinja2Templates(directory=TEMPLATES)
        self.templates.env.filters["checksum"] = checksum
        self.templates.env.filters["size"] = human_size

    @cached_property
    def config(self) -> dict[str, Any]:
        """The JSON block for the page's script."""
        chain = self.context.services.chain
        return wallet_config(chain.abi, chain.chain_id, chain.address)

    @cached_property
    def tokens(self) -> TokenBook:
        """Token symbols and decimals."""
        return TokenBook(self.context.services.chain)

    def token(self, address: str) -> TokenInfo:
        """One token's display facts."""
        return self.tokens.info(address)

    def money(self, amount: int, token: str) -> str:
        """An amount with its symbol: "0.01 ETH"."""
        info = self.token(token)
        return f"{format_units(amount, info.decimals)} {info.symbol}"

    def signed_in(self, request: Request) -> str | None:
        """The wallet of the request's session cookie (lowercase), or None."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        session = self.context.auth.resolve(token)
        return None if session is None else session.address


def web_state(request: Request) -> WebState:
    """The app's page state (set by `backend.web.install`)."""
    state: WebState = request.app.state.web
    return state
