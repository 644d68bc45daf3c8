"""The `seedmarket` command line: the composition root that mounts the user's commands (`client`) and
the operator's (`backend`) on one app, and the one place that turns a user error into a line of text.

It is the only module that imports both: the client talks to the store over HTTP and never imports
the backend, the backend never imports the client (checked by `lint-imports`).
"""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

from backend import commands as store_commands
from backend.errors import StoreError
from client.commands import dev as dev_commands
from client.commands import library as library_commands
from client.commands import market as market_commands
from client.commands import wallet as wallet_commands
from client.errors import ClientError
from tracker.errors import TrackerError

app = typer.Typer(
    name="seedmarket",
    help="A store for digital goods delivered over BitTorrent that pays the buyers who keep seeding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, soft_wrap=True)

# Errors a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ClientError, StoreError, TrackerError)


@app.callback()
def _root() -> None:
    """seedmarket: buy, download, seed and earn."""


app.add_typer(wallet_commands.app, name="wallet")
app.add_typer(dev_commands.app, name="dev")
app.command("serve")(store_commands.serve)
app.command("tracker")(store_commands.tracker)
app.command("store-seed")(store_commands.store_seed)
app.command("oracle")(store_commands.oracle)
app.command("verify-epoch")(store_commands.verify_epoch)
app.command("download")(library_commands.download)
app.command("seed")(library_commands.seed)
app.command("buy")(market_commands.buy)
app.command("rewards")(market_commands.rewards)
app.command("claim")(market_commands.claim)
app.command("sales")(market_commands.sales)


@app.command("version")
def show_version() -> None:
    """Print seedmarket's version."""
    from importlib.metadata import version  # noqa: PLC0415 - 0.2 s that only this command needs

    typer.echo(version("seedmarket"))


def main() -> None:
    """Run the CLI, turning a user error into one clear line and exit status 1."""
    try:
        app(prog_name="seedmarket")  # the same name under `python -m seedmarket`
    except USER_ERRORS as exc:
        if "--json" in sys.argv[1:]:
            # A script asked for JSON: its error is a JSON object too, on standard output where it
            # reads the answer, with the same message a person would see.
            sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
        else:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
