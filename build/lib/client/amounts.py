"""Token amounts between what people type (0.01) and what contracts hold (10**16 units)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from client.errors import ClientError

ETH_DECIMALS = 18


def to_units(text: str, decimals: int = ETH_DECIMALS) -> int:
    """'0.01' -> 10**16 for 18 decimals; refuses negative, non-numeric and over-precise amounts."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ClientError(f"{text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ClientError(f"{text!r} must be a positive amount")
    units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise ClientError(f"{text!r} has more than {decimals} decimals")
    return int(units)


def from_units(units: int, decimals: int = ETH_DECIMALS) -> str:
    """10**16 -> '0.01' (exact, no trailing zeros)."""
    text = format(Decimal(units).scaleb(-decimals).normalize(), "f")
    return text


def rounded(units: int, decimals: int = ETH_DECIMALS, places: int = 6) -> str:
    """10**16 + 8408203125 -> '0.01' at 6 places: for a glance (exact amounts: from_units); a
    non-zero amount too small to show says so ('<0.000001')."""
    value = Decimal(units).scaleb(-decimals)
    shown = value.quantize(Decimal(1).scaleb(-places)).normalize()
    if shown == 0 and units:
        return "<" + format(Decimal(1).scaleb(-places), "f")
    return format(shown, "f")
