"""`seedmarket dev ...`: helpers for a local development chain (`make run`'s anvil), never a real one."""

from __future__ import annotations

from typing import Annotated

import typer

from client.amounts import to_units
from client.errors import ClientError
from client.options import JsonFlag, RpcOption
from client.output import emit

app = typer.Typer(help="Tools for a local development chain (chain id 31337) only.", no_args_is_help=True)


@app.command("fund")
def fund(
    address: Annotated[
        str, typer.Argument(help="The address to give ETH to (see `seedmarket wallet list`).")
    ],
    amount: Annotated[str, typer.Option("--eth", help="How much ETH to add.")] = "10",
    rpc: RpcOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Give an address test ETH on the local chain, so a new wallet can pay for gas and purchases."""
    from eth_utils import is_address, to_checksum_address  # noqa: PLC0415 - loaded only when it runs

    from client.chain import eth  # noqa: PLC0415 - web3 only when it runs
    from client.chain import fund as fund_account  # noqa: PLC0415
    from client.connect import rpc_url  # noqa: PLC0415

    if not is_address(address):
        raise ClientError(f"{address!r} is not an address")
    account = to_checksum_address(address)
    added = to_units(amount)
    balance = fund_account(rpc_url(rpc), account, added)
    emit(
        as_json,
        {"address": account, "added": str(added), "balance": str(balance)},
        f"added {eth(added)} to {account}: it now holds {eth(balance)}",
    )
