"""`seedmarket download` and `seedmarket seed`: by product id through the store, or by .torrent file.

With a product id the client signs in to the store, fetches the wallet's personal torrent and pays
seeders with receipts from a session key; `seed` without arguments seeds everything the wallet
owns and shows its earnings as they grow. With a .torrent file the engine runs on its own (see
`client.commands.peer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvloop
from rich.live import Live
from rich.table import Table

from client import wallet
from client.amounts import from_units
from client.commands.wallet import password
from client.errors import ClientError
from client.options import (
    ChainOption,
    ContractOption,
    KeyOption,
    MapPortOption,
    OutOption,
    PasswordFile,
    PeerOption,
    PortOption,
    RpcOption,
    StoreOption,
)
from client.output import console

if TYPE_CHECKING:
    from client import library


def _need(value: object, option: str) -> None:
    if value is None:
        raise ClientError(f"with a .torrent file, {option} is required (or give a product id instead)")


def download(
    target: Annotated[str, typer.Argument(help="A product id you bought, or a .torrent file.")],
    key: KeyOption,
    out: OutOption = None,
    purchase: Annotated[
        int | None, typer.Option("--purchase", help="With a .torrent: your purchase id.")
    ] = None,
    chain_id: ChainOption = None,
    contract: ContractOption = None,
    store: StoreOption = None,
    rpc: RpcOption = None,
    port: PortOption = 0,
    peer: PeerOption = None,
    password_file: PasswordFile = None,
) -> None:
    """Download a purchase, paying every seeder with signed receipts for the bytes it sent."""
    # The engine and the chain client load only when a command runs: `--help` and every other
    # command's start need neither (tracker.peer and web3 cost a second or more to import).
    from client import library  # noqa: PLC0415
    from client.commands import peer as by_torrent  # noqa: PLC0415
    from client.connect import connect  # noqa: PLC0415

    if not target.isdigit():
        for value, option in ((purchase, "--purchase"), (chain_id, "--chain-id"), (contract, "--contract")):
            _need(value, option)
        by_torrent.download_torrent(
            Path(target),
            key=key,
            purchase=purchase or 0,
            chain_id=chain_id or 0,
            contract=contract or "",
            out=out or Path(),
            port=port,
            peer=peer or [],
            password_file=password_file,
        )
        return
    product_id = int(target)
    account = wallet.unlock(key, password(password_file))
    with connect(store, rpc, pinned_contract=contract) as conn:
        library.sign_in(conn, account)
        item = library.owned(conn, product_id, account.address)
        config = library.download_config(library.domain_of(conn), item, account)
    folder = out or library.library_folder()
    peers = [by_torrent.peer_address(text) for text in peer or []]
    by_torrent.run_download(item.meta, folder, config, peers, port)
    console.print(
        f"downloaded {item.meta.name} into {folder.resolve()}; keep it seeding: seedmarket seed --key {key}"
    )


def seed(
    torrent_file: Annotated[
        Path | None, typer.Argument(help="A .torrent to seed alone (default: everything you own).")
    ] = None,
    path: Annotated[Path | None, typer.Argument(help="With a .torrent: the content or its folder.")] = None,
    key: KeyOption = "",
    out: OutOption = None,
    chain_id: ChainOption = None,
    contract: ContractOption = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="Receipt journal file (default: in $SEEDMARKET_HOME).")
    ] = None,
    tracker: Annotated[
        str | None, typer.Option("--tracker", help="With a .torrent: tracker URL for receipts.")
    ] = None,
    serve_everyone: Annotated[
        bool, typer.Option("--serve-everyone", help="With a .torrent: serve peers without receipts alike.")
    ] = False,
    store: StoreOption = None,
    rpc: RpcOption = None,
    port: PortOption = 0,
    peer: PeerOption = None,
    password_file: PasswordFile = None,
    map_port: MapPortOption = True,
) -> None:
    """Seed and earn: everything the wallet owns (downloading what is missing), or one .torrent."""
    # The engine and the chain client load only when a command runs: `--help` and every other
    # command's start need neither (tracker.peer and web3 cost a second or more to import).
    from client import library  # noqa: PLC0415
    from client.commands import peer as by_torrent  # noqa: PLC0415
    from client.connect import connect  # noqa: PLC0415

    if not key:
        raise ClientError("seeding needs a wallet: pass --key (the payout address of your receipts)")
    if torrent_file is not None:
        if path is None:
            raise ClientError("with a .torrent file, give the content's path too")
        _need(chain_id, "--chain-id")
        _need(contract, "--contract")
        by_torrent.seed_torrent(
            torrent_file,
            path,
            key=key,
            chain_id=chain_id or 0,
            contract=contract or "",
            journal=journal,
            tracker=tracker,
            serve_everyone=serve_everyone,
            port=port,
            peer=peer or [],
            password_file=password_file,
            map_port=map_port,
        )
        return
    account = wallet.unlock(key, password(password_file))
    folder = out or library.library_folder()
    journal_path = journal or library.journal_path(bytes.fromhex(account.address[2:]))
    with connect(store, rpc, pinned_contract=contract) as conn:
        library.sign_in(conn, account)
        symbols = _TokenNames(conn)

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            with Live(console=console, auto_refresh=False) as live:

                def show(report: library.SeedingReport) -> None:
                    live.update(_table(report, account.address, symbols), refresh=True)

                await library.seed_library(
                    conn,
                    account,
                    folder,
                    port=port,
                    journal_path=journal_path,
                    stop=stop,
                    show=show,
                    map_port=map_port,
                )

        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(run())


class _TokenNames:
    """Token symbols and decimals, looked up once."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self._known: dict[str, tuple[str, int]] = {}

    def __call__(self, token: str) -> tuple[str, int]:
        if token not in self._known:
            self._known[token] = self._conn.chain.token_info(token)  # type: ignore[attr-defined]
        return self._known[token]


def _table(report: library.SeedingReport, address: str, names: _TokenNames) -> Table:
    table = Table(title=f"seeding as {address} (Ctrl-C stops)")
    for column in ("product", "name", "have", "peers", "uploaded"):
        table.add_column(column, justify="right" if column in ("have", "peers", "uploaded") else "left")
    for product_id, torrent in sorted(report.torrents.items()):
        total = torrent.meta.total_length
        table.add_row(
            str(product_id),
            torrent.meta.name,
            f"{100 * (total - torrent.left) // max(total, 1)} %",
            str(len(torrent.connections)),
            f"{torrent.uploaded / 2**20:.1f} MiB",
        )
    if not report.torrents:
        table.caption = "nothing to seed yet: buy something (seedmarket buy ...)"
    earned = []
    for token, entry in report.rewards.items():
        symbol, decimals = names(token)
        earned.append(
            f"{from_units(int(entry['earned']), decimals)} {symbol} earned, "
            f"{from_units(int(entry['claimable']), decimals)} claimable"
        )
    if earned:
        table.caption = "; ".join(earned)
    table.caption = f"{table.caption}\n{report.reachability}" if table.caption else report.reachability
    return table
