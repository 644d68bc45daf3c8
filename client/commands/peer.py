"""`seedmarket download FILE.torrent` and `seedmarket seed FILE.torrent PATH`: the peer engine on its
own, with a wallet and a progress bar. The commands themselves (options and all) are in
`client.commands.library`, which calls these with what the user gave. Keys come from encrypted
keystores, never from the command line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import uvloop
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from client import reachability, wallet
from client.commands.wallet import password
from client.errors import ClientError
from client.library import journal_path, ledger_path
from client.output import console
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
    """`--peer HOST:PORT` as (host, port); IPv6 hosts may come in brackets."""
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


def download_torrent(
    torrent_file: Path,
    *,
    key: str,
    purchase: int,
    chain_id: int,
    contract: str,
    out: Path,
    port: int,
    peer: list[str],
    password_file: Path | None,
) -> None:
    """Download purchase `purchase` from a .torrent, paying every seeder with signed receipts."""
    meta = _load_torrent(torrent_file)
    domain = _domain(chain_id, contract)
    if purchase <= 0:
        raise ClientError("--purchase must be a positive purchase id")
    private_key, _ = _unlock(key, password_file)
    peers = [peer_address(text) for text in peer]
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


def seed_torrent(
    torrent_file: Path,
    path: Path,
    *,
    key: str,
    chain_id: int,
    contract: str,
    journal: Path | None,
    tracker: str | None,
    serve_everyone: bool,
    port: int,
    peer: list[str],
    password_file: Path | None,
    map_port: bool,
) -> None:
    """Seed one .torrent's content at `path`, collecting receipts and handing them to the tracker
    (or, `serve_everyone`, serving peers without receipts alike: the store's seed)."""
    meta = _load_torrent(torrent_file)
    folder = _content_folder(meta, path)
    domain = _domain(chain_id, contract)
    _, address = _unlock(key, password_file)
    peers = [peer_address(text) for text in peer]
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
