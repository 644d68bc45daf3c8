"""`seedmarket wallet ...`: create, import and list encrypted keystores."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from client import wallet
from client.errors import ClientError
from client.options import JsonFlag, PasswordFile, RpcOption
from client.output import emit

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

app = typer.Typer(help="Manage wallets (encrypted keystores).", no_args_is_help=True)


def _prompt(text: str, confirm: bool) -> str:
    """A secret typed at a hidden prompt in a terminal, else the next line of standard input.

    A hidden prompt reads the controlling terminal (`/dev/tty`), not standard input: `echo KEY |
    seedmarket wallet import` run from a terminal would wait for typing that never comes. Piped
    input is a script's, so it is read as is, one line per secret, without a confirmation."""
    if sys.stdin is not None and sys.stdin.isatty():
        value: str = typer.prompt(text, hide_input=True, confirmation_prompt=confirm, err=True)
        return value
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise ClientError(f"no {text.lower()} on standard input (it is not a terminal, so nothing is asked)")
    return line.rstrip("\r\n")


def password(password_file: Path | None, *, confirm: bool = False) -> str:
    """The wallet password from a file, the environment, or a hidden prompt."""
    return wallet.read_password(password_file, _prompt, confirm=confirm)


def unlock(key: str, password_file: Path | None) -> LocalAccount:
    """Wallet `key` unlocked with its password (an ape account's from ape's passphrase variable,
    never $SEEDMARKET_PASSWORD); a wrong one is named with where it came from."""
    secret, source = wallet.password_and_source(password_file, _prompt, env=wallet.password_env(key))
    return wallet.unlock(key, secret, source=source)


def _as_dict(info: wallet.KeystoreInfo) -> dict[str, str]:
    return {"name": info.name, "address": info.address, "path": str(info.path)}


def _show(info: wallet.KeystoreInfo, as_json: bool) -> None:
    emit(as_json, _as_dict(info), f"{info.name}  {info.address}  ({info.path})")


@app.command("create")
def create(name: str, password_file: PasswordFile = None, as_json: JsonFlag = False) -> None:
    """Generate a new wallet and store it encrypted."""
    _show(wallet.create_wallet(name, password(password_file, confirm=True)), as_json)


@app.command("import")
def import_(name: str, password_file: PasswordFile = None, as_json: JsonFlag = False) -> None:
    """Import a private key, typed at a hidden prompt or piped on standard input (never on the
    command line); the password follows it on the next line unless $SEEDMARKET_PASSWORD is set."""
    key = _prompt("Private key (hex)", False)
    _show(wallet.import_key(name, key, password(password_file, confirm=True)), as_json)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List wallets: ours, and ape's as `ape:<alias>`."""
    found = wallet.list_wallets()
    if as_json:
        emit(True, [_as_dict(w) for w in found], "")
        return
    if not found:
        raise ClientError("no wallets yet: `seedmarket wallet create NAME`")
    for info in found:
        _show(info, False)


@app.command("balance")
def balance(name: str, rpc: RpcOption = None, as_json: JsonFlag = False) -> None:
    """Show a wallet's ETH on the chain (what pays for purchases and gas); no password needed."""
    from eth_utils import to_checksum_address  # noqa: PLC0415

    from client.chain import LOCAL_CHAIN_ID, eth, open_node  # noqa: PLC0415 - web3 only when it runs
    from client.connect import rpc_url  # noqa: PLC0415

    address = wallet.address_of(name)
    url = rpc_url(rpc)
    w3, chain_id = open_node(url)
    held = int(w3.eth.get_balance(to_checksum_address(address)))
    hint = ""
    if held == 0:
        how = f"seedmarket dev fund {address}" if chain_id == LOCAL_CHAIN_ID else "send it ETH"
        hint = f"\nit cannot pay for anything yet: {how}"
    emit(
        as_json,
        {"name": name, "address": address, "chainId": chain_id, "balance": str(held)},
        f"{name}  {address}  holds {eth(held)} on chain {chain_id} ({url}){hint}",
    )
