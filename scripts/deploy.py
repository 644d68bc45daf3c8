"""Deploy the Marketplace and record it in the deployments file.

ape run deploy marketplace --network ethereum:local:foundry --account TEST::0
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import project
from ape.api import AccountAPI, ProviderAPI
from ape.cli import ConnectedProviderCommand, account_option
from eth_utils import to_checksum_address

from backend.deployments import Deployment, write_deployment
from scripts._lib import deployments_option, parse_percent_or_bps


def _address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return to_checksum_address(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an address") from None


@click.group()
def cli() -> None:
    """Deploy seedmarket's contracts."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--oracle", callback=_address, help="Oracle address (default: the deployer).")
@click.option("--guardian", callback=_address, help="Guardian address (default: the deployer).")
@click.option("--treasury", callback=_address, help="Operator treasury (default: the deployer).")
@click.option("--operator-fee", default="20%", show_default=True, help="Operator's share of each pool.")
@click.option(
    "--root-delay",
    type=click.IntRange(0, 30 * 86_400),
    default=3600,
    show_default=True,
    help="Seconds before a posted root can be claimed.",
)
@deployments_option()
def marketplace(
    provider: ProviderAPI,
    account: AccountAPI,
    oracle: str | None,
    guardian: str | None,
    treasury: str | None,
    operator_fee: str,
    root_delay: int,
    deployments: Path,
) -> None:
    """Deploy a Marketplace owned by the deploying account."""
    fee_bps = parse_percent_or_bps(operator_fee)
    contract = account.deploy(
        project.Marketplace,
        account.address,
        oracle or account.address,
        guardian or account.address,
        treasury or account.address,
        fee_bps,
        root_delay,
    )
    receipt = provider.get_receipt(contract.txn_hash)
    deployment = Deployment(
        chain_id=provider.chain_id,
        address=to_checksum_address(contract.address),
        block=receipt.block_number,
        transaction=str(receipt.txn_hash),
    )
    write_deployment(deployments, deployment)
    click.echo(f"Marketplace deployed at {deployment.address} (block {deployment.block}) -> {deployments}")
