"""Helpers shared by the ape scripts (ape run skips files starting with `_`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

# What click.option returns: a decorator that adds the option to a command.
OptionDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_DEPLOYMENTS = Path(os.environ.get("SEEDMARKET_DATA_DIR", ".data")) / "deployments.json"


def deployments_option() -> OptionDecorator:
    """`--deployments PATH`: the deployments file to write or read."""
    return click.option(
        "--deployments",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: Path(os.environ.get("SEEDMARKET_DEPLOYMENTS", DEFAULT_DEPLOYMENTS)),
        show_default=str(DEFAULT_DEPLOYMENTS),
        help="Deployments file (JSON keyed by chain id).",
    )


def parse_percent_or_bps(value: str) -> int:
    """'20%' or '2000' (basis points) -> basis points."""
    text = value.strip()
    try:
        bps = round(float(text[:-1]) * 100) if text.endswith("%") else int(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a percentage like 20% or basis points like 2000"
        ) from None
    if not 0 <= bps <= 10_000:
        raise click.BadParameter(f"{value!r} is outside 0%..100%")
    return bps


def store_option() -> OptionDecorator:
    """`--store URL`: the store's API."""
    return click.option(
        "--store",
        default=lambda: os.environ.get("SEEDMARKET_STORE_URL", "http://127.0.0.1:8000"),
        show_default="$SEEDMARKET_STORE_URL or http://127.0.0.1:8000",
        help="The store's URL.",
    )
