"""Change a Marketplace parameter through its owner, the SeedmarketTimelock.

    ape run govern propose setRootDelay 7200 --network ethereum:local:foundry --account TEST::0
    ape run govern execute setRootDelay 7200 --network ethereum:local:foundry --account TEST::0
    ape run govern cancel  setRootDelay 7200 --network ethereum:local:foundry --account TEST::2

A change is one Marketplace call (`setOracle`, `setGuardian`, `setTreasury`, `setOperatorFee`,
`setRootDelay`, `setTokenAllowed`, `pause`, `unpause`, `transferOwnership`). `propose` schedules it
with the timelock's minimum delay (proposer role); `execute` runs it once that delay has passed
(anyone); `cancel` drops it before (the guardian or the proposer); `status` says where it stands.
The same call with the same `--salt` names the same operation, so each command is given the call
again rather than an opaque id.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import Contract, project
from ape.api import AccountAPI, ProviderAPI
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import ApeException
from eth_utils import keccak, to_checksum_address

from backend.deployments import read_deployment
from scripts._lib import deployments_option

CALLS = {
    "setOracle",
    "setGuardian",
    "setTreasury",
    "setOperatorFee",
    "setRootDelay",
    "setTokenAllowed",
    "pause",
    "unpause",
    "transferOwnership",
}
NO_PREDECESSOR = bytes(32)
STATES = ["unset", "waiting", "ready", "done"]  # TimelockController.OperationState


def _argument(kind: str, text: str) -> object:
    """A command-line word as the ABI type `kind` wants it, or a clear error."""
    try:
        if kind.startswith(("uint", "int")):
            return int(text, 0)
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError("say true or false")
            return text.lower() == "true"
        if kind == "address":
            return to_checksum_address(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a {kind}: {exc}") from None
    raise click.BadParameter(f"arguments of type {kind} are not supported")


class Operation:
    """One Marketplace call as a timelock operation: its target, payload, salt and id."""

    def __init__(self, provider: ProviderAPI, deployments: Path, call: str, args: tuple[str, ...], salt: str):
        if call not in CALLS:
            raise click.BadParameter(f"{call!r} is not one of {', '.join(sorted(CALLS))}", param_hint="CALL")
        deployment = read_deployment(deployments, provider.chain_id)
        self.market = Contract(deployment.address, contract_type=project.Marketplace.contract_type)
        self.timelock = Contract(self.market.owner(), contract_type=project.SeedmarketTimelock.contract_type)
        method = getattr(self.market, call)
        inputs = method.abis[0].inputs
        if len(inputs) != len(args):
            raise click.BadParameter(
                f"{call} takes {len(inputs)} argument(s), got {len(args)}", param_hint="ARGS"
            )
        values = [_argument(i.type, a) for i, a in zip(inputs, args, strict=True)]
        self.description = f"{call}({', '.join(args)})"
        self.payload = method.encode_input(*values)
        self.salt = keccak(text=salt)
        self.id = self.timelock.hashOperation(self.market.address, 0, self.payload, NO_PREDECESSOR, self.salt)

    def args(self) -> tuple[object, ...]:
        return (self.market.address, 0, self.payload, NO_PREDECESSOR, self.salt)

    def state(self) -> str:
        return STATES[int(self.timelock.getOperationState(self.id))]


def _operation_command(function):  # type: ignore[no-untyped-def]
    """The arguments every subcommand shares: the call, its arguments, the salt, the deployments."""
    function = click.argument("args", nargs=-1)(function)
    function = click.argument("call")(function)
    function = click.option("--salt", default="", help="Tells apart two proposals of the same call.")(
        function
    )
    function = deployments_option()(function)
    return function


@click.group()
def cli() -> None:
    """Propose, execute or cancel a Marketplace parameter change through its timelock."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@_operation_command
def propose(
    provider: ProviderAPI, account: AccountAPI, call: str, args: tuple[str, ...], salt: str, deployments: Path
) -> None:
    """Schedule CALL ARGS... with the timelock's minimum delay (proposer only)."""
    op = Operation(provider, deployments, call, args, salt)
    delay = int(op.timelock.getMinDelay())
    try:
        receipt = op.timelock.schedule(*op.args(), delay, sender=account)
    except ApeException as exc:
        raise click.ClickException(f"the timelock refused the proposal: {exc}") from None
    ready = int(op.timelock.getTimestamp(op.id))
    click.echo(f"proposed {op.description} as operation 0x{bytes(op.id).hex()} (tx {receipt.txn_hash})")
    click.echo(f"executable from chain time {ready} ({delay} s); the guardian can cancel it until then")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@_operation_command
def execute(
    provider: ProviderAPI, account: AccountAPI, call: str, args: tuple[str, ...], salt: str, deployments: Path
) -> None:
    """Run CALL ARGS... once its delay has passed."""
    op = Operation(provider, deployments, call, args, salt)
    state = op.state()
    if state != "ready":
        raise click.ClickException(f"{op.description} is {state}, not ready (see `ape run govern status`)")
    try:
        receipt = op.timelock.execute(*op.args(), sender=account)
    except ApeException as exc:
        raise click.ClickException(f"executing {op.description} failed: {exc}") from None
    click.echo(f"executed {op.description} (tx {receipt.txn_hash})")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@_operation_command
def cancel(
    provider: ProviderAPI, account: AccountAPI, call: str, args: tuple[str, ...], salt: str, deployments: Path
) -> None:
    """Drop CALL ARGS... before it runs (guardian or proposer)."""
    op = Operation(provider, deployments, call, args, salt)
    try:
        receipt = op.timelock.cancel(op.id, sender=account)
    except ApeException as exc:
        raise click.ClickException(f"the timelock refused the cancel: {exc}") from None
    click.echo(f"canceled {op.description} (tx {receipt.txn_hash})")


@cli.command(cls=ConnectedProviderCommand)
@_operation_command
def status(provider: ProviderAPI, call: str, args: tuple[str, ...], salt: str, deployments: Path) -> None:
    """Where CALL ARGS... stands: unset, waiting, ready or done."""
    op = Operation(provider, deployments, call, args, salt)
    state = op.state()
    ready = int(op.timelock.getTimestamp(op.id))
    when = f", executable from chain time {ready}" if state == "waiting" else ""
    click.echo(f"{op.description}: {state}{when}")
