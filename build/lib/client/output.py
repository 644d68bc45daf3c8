"""What the user's commands print: one function for the text a person reads and the `--json` line
a script parses, so that every command answers both the same way."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console, RenderableType

console = Console()


def emit(as_json: bool, data: Any, human: RenderableType) -> None:
    """`data` as one JSON line with `--json`, else `human`: plain text (no markup, no wrapping) or a
    rich table."""
    if as_json:
        typer.echo(json.dumps(data))
    else:
        console.print(human, highlight=False, markup=False, emoji=False, soft_wrap=True)
