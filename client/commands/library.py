"""`seedmarket download` and `seedmarket seed`: by product id through the store, or by .torrent file.

With a product id the client signs in to the store, fetches the wallet's personal torrent and pays
seeders with receipts from a session key; `seed` without arguments seeds everything the wallet
owns and shows its earnings as they grow. With a .torrent file the engine runs on its own (see
`client.commands.peer`).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from client.amounts import rounded
from client.commands.wallet import unlock
from client.errors import ClientError
from client.options import (
    ChainOption,
    ContractOption,
    JsonFlag,
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
from tracker.heap import run_frozen

if TYPE_CHECKING:
    from rich.table import Table

    from client import library


def _missing(meta_name: str, given: Mapping[str, object], path: Path) -> None:
    """Every option a .torrent needs and did not get, in one error (the file is read first: a
    missing or broken file is the first thing to say)."""
    missing = [option for option, value in given.items() if value is None]
    if missing:
        raise ClientError(
            f"{path} is a .torrent ({meta_name}); without the store it also needs "
            f"{' '.join(f'{option} ...' for option in missing)} (or give the product id instead)"
        )


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
    as_json: JsonFlag = False,
) -> None:
    """Download a purchase, paying every seeder with signed receipts for the bytes it sent."""
    # The engine and the chain client load only when a command runs: `--help` and every other
    # command's start need neither (tracker.peer and web3 cost a second or more to import).
    from client import library  # noqa: PLC0415
    from client.commands import peer as by_torrent  # noqa: PLC0415
    from client.connect import connect  # noqa: PLC0415

    if not target.isdigit():
        meta = by_torrent.load_torrent(Path(target))
        given = {"--purchase": purchase, "--chain-id": chain_id, "--contract": contract}
        _missing(meta.name, given, Path(target))
        by_torrent.download_torrent(
            meta,
            key=key,
            purchase=purchase or 0,
            chain_id=chain_id or 0,
            contract=contract or "",
            out=out or Path(),
            port=port,
            peer=peer or [],
            password_file=password_file,
            as_json=as_json,
        )
        return
    product_id = int(target)
    account = unlock(key, password_file)
    with connect(store, rpc, pinned_contract=contract) as conn:
        library.sign_in(conn, account)
        item = library.owned(conn, product_id, account.address)
        config = library.download_config(library.domain_of(conn), item, account)
    folder = out or library.library_folder()
    peers = [by_torrent.peer_address(text) for text in peer or []]
    by_torrent.run_download(item.meta, folder, config, peers, port, as_json=as_json)
    # Seeding reads the folder it was downloaded to: a hint without --out would download the
    # whole product again into the library.
    hint = f"seedmarket seed --key {key}" + (f" --out {shlex.quote(str(folder.resolve()))}" if out else "")
    where = (folder / item.meta.name).resolve()
    if as_json:
        by_torrent.json_line(
            {
                "event": "done",
                "product": product_id,
                "name": item.meta.name,
                "path": str(where),
                "total": item.meta.total_length,
                "seed": hint,
            }
        )
        return
    console.print(
        f"downloaded {item.meta.name} into {folder.resolve()}; keep it seeding: {hint}",
        soft_wrap=True,
        highlight=False,
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
    as_json: JsonFlag = False,
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
        meta = by_torrent.load_torrent(torrent_file)
        given = {"PATH (the content or its folder)": path, "--chain-id": chain_id, "--contract": contract}
        _missing(meta.name, given, torrent_file)
        assert path is not None  # for mypy: _missing refused a missing path
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
            as_json=as_json,
        )
        return
    account = unlock(key, password_file)
    folder = out or library.library_folder()
    journal_path = journal or library.journal_path(bytes.fromhex(account.address[2:]))
    with connect(store, rpc, pinned_contract=contract) as conn:
        library.sign_in(conn, account)
        symbols = _TokenNames(conn)

        # The event loop and the live table are loaded here, not when the CLI starts (`--help`).
        import asyncio  # noqa: PLC0415

        from rich.live import Live  # noqa: PLC0415

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            rates = _Rates()
            with (
                contextlib.nullcontext(None) if as_json else Live(console=console, auto_refresh=False) as live
            ):
                last_check = [0.0]

                def checking(name: str, done: int, total: int) -> None:
                    if done != total and time.monotonic() - last_check[0] < 0.5:
                        return
                    last_check[0] = time.monotonic()
                    if live is None:
                        by_torrent.json_line({"event": "checking", "name": name, "pieces": done, "of": total})
                    else:
                        live.update(f"checking {name} on disk: {100 * done // max(total, 1)} %", refresh=True)

                def show(report: library.SeedingReport) -> None:
                    sent[0] = sum(t.uploaded for t in report.torrents.values())
                    sent[1] = len(report.torrents)
                    if live is None:
                        by_torrent.json_line(_json_report(report, symbols, rates))
                    else:
                        live.update(_table(report, account.address, symbols, rates), refresh=True)

                await library.seed_library(
                    conn,
                    account,
                    folder,
                    port=port,
                    journal_path=journal_path,
                    stop=stop,
                    show=show,
                    map_port=map_port,
                    checking=checking,
                )

        sent = [0, 0]  # bytes uploaded this run, products seeded: for the line Ctrl-C leaves
        with contextlib.suppress(KeyboardInterrupt):
            run_frozen(run())
    if as_json:
        by_torrent.json_line({"event": "stopped", "uploaded": sent[0], "products": sent[1]})
    else:
        console.print(
            f"stopped seeding: {sent[0] / 2**20:.1f} MiB sent to other buyers this run from {sent[1]} "
            f"product(s); its receipts are kept in your journal and handed in to the store, and your "
            f"earnings stay: seedmarket rewards --key {key}",
            highlight=False,
            soft_wrap=True,
        )


class _TokenNames:
    """Token symbols and decimals, looked up once."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self._known: dict[str, tuple[str, int]] = {}

    def __call__(self, token: str) -> tuple[str, int]:
        if token not in self._known:
            self._known[token] = self._conn.chain.token_info(token)  # type: ignore[attr-defined]
        return self._known[token]


class _Rates:
    """Upload rate per product between two reports of `seed`."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, int]] = {}

    def __call__(self, product_id: int, uploaded: int) -> float:
        now = time.monotonic()
        before = self._last.get(product_id)
        self._last[product_id] = (now, uploaded)
        if before is None or now <= before[0]:
            return 0.0
        return max(uploaded - before[1], 0) / (now - before[0])


def _table(report: library.SeedingReport, address: str, names: _TokenNames, rates: _Rates) -> Table:
    from rich.table import Table  # noqa: PLC0415 - see `seed`

    table = Table(title=f"seeding as {address} (Ctrl-C stops)")
    for column in ("product", "name", "have", "peers", "uploaded", "rate"):
        table.add_column(column, justify="left" if column in ("product", "name") else "right")
    for product_id, torrent in sorted(report.torrents.items()):
        total = torrent.meta.total_length
        table.add_row(
            str(product_id),
            torrent.meta.name,
            f"{100 * (total - torrent.left) // max(total, 1)} %",
            str(len(torrent.connections)),
            f"{torrent.uploaded / 2**20:.1f} MiB",
            f"{rates(product_id, torrent.uploaded) / 2**20:.2f} MiB/s",
        )
    if not report.torrents:
        table.caption = "nothing to seed yet: buy something (seedmarket buy ...)"
    earned = []
    for token, entry in report.rewards.items():
        symbol, decimals = names(token)
        earned.append(
            f"{rounded(int(entry['earned']), decimals)} {symbol} earned, "
            f"{rounded(int(entry['claimable']), decimals)} claimable"
        )
    if earned:
        table.caption = "; ".join(earned)
    table.caption = f"{table.caption}\n{report.reachability}" if table.caption else report.reachability
    return table


def _json_report(report: library.SeedingReport, names: _TokenNames, rates: _Rates) -> dict[str, object]:
    """One `seed --json` line: per product what is here and sent, and the earnings (exact units)."""
    products = []
    for product_id, torrent in sorted(report.torrents.items()):
        products.append(
            {
                "product": product_id,
                "name": torrent.meta.name,
                "have": torrent.meta.total_length - torrent.left,
                "total": torrent.meta.total_length,
                "peers": len(torrent.connections),
                "uploaded": torrent.uploaded,
                "rate": round(rates(product_id, torrent.uploaded)),
            }
        )
    rewards = {
        token: {"symbol": names(token)[0], **{k: str(v) for k, v in entry.items()}}
        for token, entry in report.rewards.items()
    }
    return {"event": "seeding", "products": products, "rewards": rewards, "reachability": report.reachability}
