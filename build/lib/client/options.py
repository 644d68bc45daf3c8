"""The command-line options the user's commands share, defined once so their names, types and help
agree everywhere (`--key` is always a wallet, `--json` always one JSON line, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_KEY_HELP = "Wallet name, `ape:<alias>` or keystore file."

KeyOption = Annotated[str, typer.Option("--key", help=_KEY_HELP)]
OptionalKey = Annotated[str | None, typer.Option("--key", help=_KEY_HELP)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output (one JSON line).")]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="Read the password from this file (else $SEEDMARKET_PASSWORD or a prompt)."
    ),
]
StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL (default $SEEDMARKET_STORE_URL or local).")
]
RpcOption = Annotated[
    str | None, typer.Option("--rpc", help="Chain JSON-RPC URL (default $SEEDMARKET_RPC_URL or local).")
]
# Needed with a .torrent file (no store to ask), optional with a product id.
ChainOption = Annotated[
    int | None,
    typer.Option("--chain-id", envvar="SEEDMARKET_CHAIN_ID", help="With a .torrent: the receipts' chain id."),
]
ContractOption = Annotated[
    str | None,
    typer.Option(
        "--contract", envvar="SEEDMARKET_CONTRACT", help="The Marketplace (with a product id: a pin)."
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Folder for the content (default: $SEEDMARKET_HOME/library).")
]
PortOption = Annotated[int, typer.Option("--port", help="TCP port to listen on for peers (0: any).")]
MapPortOption = Annotated[
    bool,
    typer.Option(
        "--map-port/--no-map-port",
        envvar="SEEDMARKET_MAP_PORT",
        help="Ask the router (NAT-PMP, UPnP) to forward the listen port, so peers at home can reach you.",
    ),
]
PeerOption = Annotated[
    list[str] | None, typer.Option("--peer", help="Also connect to this HOST:PORT (repeatable).")
]
ProductArg = Annotated[int, typer.Argument(help="The product id (see the store's catalog).", min=1)]
