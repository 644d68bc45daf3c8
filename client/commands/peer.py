"""`seedmarket download` and `seedmarket seed`: the peer engine with a wallet, a progress bar and
one clear line on any error. Keys come from encrypted keystores, never from the command line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from client import reachability, wallet
from client.commands.wallet import PasswordFile, password
from client.errors import ClientError
from client.library import journal_path, ledger_path
from tracker.metainfo import Metainfo, parse_metainfo
from tracker.peer.announcer import Announcer
from tracker.peer.choker import PlainPeers
from tracker.peer.credit import ReceiptSigner
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.submitter import receipts_url
from tracker.peer.torrent import Torrent, TorrentConfig
from tracker.receipts import Domain, ReceiptError, ReceiptVerifier, parse_address

REFRESH_SECONDS = 0.5
console = Console()

KeyOption = Annotated[str, typer.Option("--key", help="Wallet name, `ape:<alias>` or keystore file.")]
ChainOption = Annotated[
    int, typer.Option("--chain-id", envvar="SEEDMARKET_CHAIN_ID", help="Receipts' chain id.")
]
ContractOption = Annotated[
    str, typer.Option("--contract", envvar="SEEDMARKET_CONTRACT", help="Marketplace address (0x...).")
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


def _load_torrent(path: Path) -> Metainfo:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_metainfo(data)


def _domain(chain_id: int, contract: str) -> Domain:
    try:
        return Domain(chain_id=chain_id, verifying_contract=parse_address(contract))
    except ReceiptError as exc:
        raise ClientError(f"bad --chain-id/--contract: {exc}") from None


def _unlock(key: str, password_file: Path | None) -> tuple[bytes, bytes]:
    account = wallet.unlock(key, password(password_file))
    return bytes(account.key), bytes.fromhex(account.address[2:])


def peer_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"--peer {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def _join(
    session: Session, torrent: Torrent, meta: Metainfo, peers: list[tuple[str, int]]
) -> list[Announcer]:
    announcers = [session.announce(torrent, meta.announce)] if meta.announce else []
    for host, port in peers:
        session.spawn(session.connect(torrent, host, port))
    return announcers


def run_download(
    meta: Metainfo, out: Path, config: TorrentConfig, peers: list[tuple[str, int]], port: int
) -> Torrent:
    """Download `meta` into `out` with a progress bar until complete; raises the torrent's error."""

    async def run() -> Torrent:
        async with Session(port=port) as session:
            torrent = await session.add_torrent(meta, out, config)
            await _join(session, torrent, meta, peers)
            with Progress(
                TextColumn(meta.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
            ) as bar:
                task = bar.add_task("download", total=meta.total_length)
                while not torrent.completed.is_set():
                    bar.update(task, completed=meta.total_length - torrent.left)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(torrent.completed.wait(), REFRESH_SECONDS)
                bar.update(task, completed=meta.total_length - torrent.left)
            await asyncio.sleep(REFRESH_SECONDS)  # the final receipts leave before we close
            return torrent

    torrent = uvloop.run(run())
    if torrent.error is not None:
        raise torrent.error
    return torrent


def download(
    torrent_file: Annotated[Path, typer.Argument(help="The .torrent of your purchase.")],
    key: KeyOption,
    purchase: Annotated[int, typer.Option("--purchase", help="Your purchase id (from `seedmarket buy`).")],
    chain_id: ChainOption,
    contract: ContractOption,
    out: Annotated[Path, typer.Option("--out", help="Folder to download into.")] = Path(),
    port: PortOption = 0,
    peer: PeerOption = None,
    password_file: PasswordFile = None,
) -> None:
    """Download a purchase, paying every seeder with signed receipts for the bytes it sent."""
    meta = _load_torrent(torrent_file)
    domain = _domain(chain_id, contract)
    if purchase <= 0:
        raise ClientError("--purchase must be a positive purchase id")
    private_key, _ = _unlock(key, password_file)
    peers = [peer_address(text) for text in peer or []]
    config = TorrentConfig(
        signer=ReceiptSigner(domain, purchase, private_key),
        receipt_ledger=ledger_path(meta.info_hash, purchase),
    )

    run_download(meta, out, config, peers, port)
    console.print(f"downloaded {meta.name} into {out.resolve()}")


def _content_folder(meta: Metainfo, path: Path) -> Path:
    """The folder holding the torrent's top entry, given the content itself or its parent."""
    if path.name == meta.name and path.exists():
        return path.parent
    if (path / meta.name).exists():
        return path
    raise ClientError(f"{path} is neither {meta.name!r} nor a folder containing it")


def seed(
    torrent_file: Annotated[Path, typer.Argument(help="The .torrent to seed.")],
    path: Annotated[Path, typer.Argument(help="The content (or the folder that holds it).")],
    key: KeyOption,
    chain_id: ChainOption,
    contract: ContractOption,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="Receipt journal file (default: in $SEEDMARKET_HOME).")
    ] = None,
    tracker: Annotated[
        str | None, typer.Option("--tracker", help="Tracker URL for receipts (default: the announce URL's).")
    ] = None,
    serve_everyone: Annotated[
        bool, typer.Option("--serve-everyone", help="Serve peers without receipts alike (the store's seed).")
    ] = False,
    port: PortOption = 0,
    peer: PeerOption = None,
    password_file: PasswordFile = None,
    map_port: MapPortOption = True,
) -> None:
    """Seed content, collecting receipts from buyers and handing them to the tracker."""
    meta = _load_torrent(torrent_file)
    folder = _content_folder(meta, path)
    domain = _domain(chain_id, contract)
    _, address = _unlock(key, password_file)
    peers = [peer_address(text) for text in peer or []]
    receipts_to = tracker or meta.announce
    if not receipts_to:
        raise ClientError("the torrent names no tracker: pass --tracker URL")
    journal_file = journal or journal_path(address)
    config = TorrentConfig(
        wallet=address,
        verifier=ReceiptVerifier(domain),
        enforce_credit=not serve_everyone,
        confirm_buyers=not serve_everyone,
        plain_peers=PlainPeers.SERVE if serve_everyone else PlainPeers.AFTER_PAYING,
    )

    async def run() -> None:
        async with Session(port=port, journal=ReceiptJournal(journal_file), map_port=map_port) as session:
            with console.status("checking the content on disk..."):
                torrent = await session.add_torrent(meta, folder, config, writable=False)
            announcers = await _join(session, torrent, meta, peers)
            submitter = session.submit_receipts(receipts_url(receipts_to))
            console.print(f"seeding {meta.name} on port {session.port}; receipts go to {submitter.url}")
            with console.status("") as status:
                while torrent.error is None:
                    status.update(
                        f"{len(torrent.connections)} peers, {torrent.uploaded / 2**20:.1f} MiB sent, "
                        f"{submitter.submitted} receipts handed in; "
                        + reachability.describe(session.port, session.port_mapper, announcers)
                    )
                    await asyncio.sleep(REFRESH_SECONDS)
            if torrent.error is not None:
                raise torrent.error

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())
