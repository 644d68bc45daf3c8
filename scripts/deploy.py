"""Deploy the Marketplace and record it in the deployments file.

ape run deploy marketplace --network ethereum:local:foundry --account TEST::0

The Marketplace is owned by a `SeedmarketTimelock` deployed first (see `scripts/govern.py`).
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

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


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


DAY = 86_400
ROOT_DELAY_LIMIT = 365 * DAY  # Marketplace.ROOT_DELAY_LIMIT


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--oracle", callback=_address, help="Oracle address (default: the deployer).")
@click.option("--guardian", callback=_address, help="Guardian address (default: the deployer).")
@click.option("--treasury", callback=_address, help="Operator treasury (default: the deployer).")
@click.option(
    "--proposer",
    callback=_address,
    help="Who proposes parameter changes to the timelock (default: the deployer).",
)
@click.option("--operator-fee", default="20%", show_default=True, help="Operator's share of each pool.")
@click.option(
    "--root-delay",
    type=click.IntRange(0, 30 * DAY),
    default=3600,
    show_default=True,
    help="Seconds of unpaused time before a posted root can be claimed.",
)
@click.option(
    "--min-root-delay",
    type=click.IntRange(0, ROOT_DELAY_LIMIT),
    help="The lowest root delay governance may ever set (default: --root-delay).",
)
@click.option(
    "--max-root-delay",
    type=click.IntRange(0, ROOT_DELAY_LIMIT),
    help="The highest root delay governance may ever set (default: twice --root-delay).",
)
@click.option(
    "--timelock-delay",
    type=click.IntRange(0, ROOT_DELAY_LIMIT),
    help="Seconds every parameter change waits; never below --max-root-delay (default: that).",
)
@deployments_option()
def marketplace(
    provider: ProviderAPI,
    account: AccountAPI,
    oracle: str | None,
    guardian: str | None,
    treasury: str | None,
    proposer: str | None,
    operator_fee: str,
    root_delay: int,
    min_root_delay: int | None,
    max_root_delay: int | None,
    timelock_delay: int | None,
    deployments: Path,
) -> None:
    """Deploy a SeedmarketTimelock and a Marketplace it owns.

    The timelock's delay (and its floor) is at least the highest root delay, so no parameter
    change lands before a root posted under the old parameters could be vetoed; the guardian can
    cancel both. Anyone may execute a change once its delay has passed.
    """
    fee_bps = parse_percent_or_bps(operator_fee)
    floor = root_delay if min_root_delay is None else min_root_delay
    ceiling = 2 * root_delay if max_root_delay is None else max_root_delay
    if not floor <= root_delay <= ceiling:
        raise click.BadParameter(
            f"the root delay {root_delay} must lie within [{floor}, {ceiling}]", param_hint="--root-delay"
        )
    delay = ceiling if timelock_delay is None else timelock_delay
    if delay < ceiling:
        raise click.BadParameter(
            f"{delay} s is shorter than the highest root delay ({ceiling} s)", param_hint="--timelock-delay"
        )
    guardian = guardian or account.address
    timelock = account.deploy(
        project.SeedmarketTimelock, delay, ceiling, proposer or account.address, guardian, ZERO_ADDRESS
    )
    contract = account.deploy(
        project.Marketplace,
        timelock.address,
        oracle or account.address,
        guardian,
        treasury or account.address,
        fee_bps,
        root_delay,
        floor,
        ceiling,
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
    click.echo(
        f"Owned by the SeedmarketTimelock at {timelock.address} (delay {delay} s); see `ape run govern`."
    )
