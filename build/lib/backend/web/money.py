"""Amounts as people read them: token symbols and decimals, and a price's split."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

import eth_abi

from backend.chain import ZERO_ADDRESS, Chain
from backend.errors import ChainError
from backend.web.wallet_config import selector

log = logging.getLogger(__name__)

BPS = 10_000
MAX_DECIMALS = 36
_SYMBOL = re.compile(r"^[A-Za-z0-9.$_-]{1,12}$")


@dataclass(frozen=True)
class TokenInfo:
    """How to show amounts of one token."""

    address: str  # lowercase 0x-hex; ZERO_ADDRESS is ETH
    symbol: str
    decimals: int

    @property
    def is_eth(self) -> bool:
        """Whether this is the chain's native currency."""
        return self.address == ZERO_ADDRESS


ETH = TokenInfo(ZERO_ADDRESS, "ETH", 18)


def format_units(amount: int, decimals: int) -> str:
    """`amount` smallest units as an exact decimal string (10**18 wei, 18 -> "1")."""
    whole, fraction = divmod(amount, 10**decimals)
    if fraction == 0:
        return f"{whole:,}"
    digits = str(fraction).rjust(decimals, "0").rstrip("0")
    return f"{whole:,}.{digits}"


class TokenBook:
    """Symbols and decimals of ERC-20 tokens, read from the chain once and remembered."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._known: dict[str, TokenInfo] = {ZERO_ADDRESS: ETH}
        self._lock = threading.Lock()

    def info(self, token: str) -> TokenInfo:
        """The token's symbol and decimals; a short address and 18 when the token does not say."""
        token = token.lower()
        with self._lock:
            known = self._known.get(token)
        if known is not None:
            return known
        try:
            found = TokenInfo(token, self._symbol(token), self._decimals(token))
        except (ChainError, ValueError, eth_abi.exceptions.DecodingError) as exc:
            log.info("token %s did not describe itself: %s", token, exc)
            return TokenInfo(token, f"{token[:6]}…{token[-4:]}", 18)  # not remembered: try again later
        with self._lock:
            self._known[token] = found
        return found

    def _call(self, token: str, signature: str) -> bytes:
        answer = self.chain.rpc("eth_call", [{"to": token, "data": selector(signature)}, "latest"])
        if not isinstance(answer, str) or not answer.startswith("0x"):
            raise ValueError("eth_call answered no data")
        return bytes.fromhex(answer[2:])

    def _symbol(self, token: str) -> str:
        (symbol,) = eth_abi.decode(["string"], self._call(token, "symbol()"))
        if not _SYMBOL.fullmatch(symbol):
            raise ValueError(f"unusable symbol {symbol[:20]!r}")
        return str(symbol)

    def _decimals(self, token: str) -> int:
        (decimals,) = eth_abi.decode(["uint8"], self._call(token, "decimals()"))
        if decimals > MAX_DECIMALS:
            raise ValueError(f"implausible decimals {decimals}")
        return int(decimals)


@dataclass(frozen=True)
class Split:
    """Where a purchase's price goes, as the contract computes it."""

    seller: int
    operator_fee: int
    seeders: int

    @property
    def price(self) -> int:
        """The whole price."""
        return self.seller + self.operator_fee + self.seeders


def split_of(price: int, discount_bps: int, operator_fee_bps: int) -> Split:
    """The contract's split: pool = price * discount; fee = pool * operator fee; seeders the rest."""
    pool = price * discount_bps // BPS
    fee = pool * operator_fee_bps // BPS
    return Split(seller=price - pool, operator_fee=fee, seeders=pool - fee)


def human_size(size: int) -> str:
    """Bytes as a shopper reads them: 48000 -> "46.9 KiB", 4194304 -> "4.0 MiB" (binary units)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
