"""`seedmarket download FILE.torrent` and `seedmarket seed FILE.torrent PATH`: the peer engine on its
own, with a wallet and a progress bar. The commands themselves (options and all) are in
`client.commands.library`, which calls these with what the user gave. Keys come from encrypted
keystores, never from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from client import reachability
from client.commands.wallet import unlock
from client.errors import ClientError
from client.library import journal_path, ledger_path
from client.output import console
from tracker.heap import run_frozen
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


def load_torrent(path: Path) -> Metainfo:
    """A .torrent file, read and parsed (a missing or broken file in one line)."""
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
    account = unlock(key, password_file)
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


class _Watch:
    """What a download has done so far, kept where the Ctrl-C handler finds it."""

    def __init__(self, meta: Metainfo) -> None:
        self.meta = meta
        self.left: int | None = None  # unknown until the data on disk is checked


def _checking(
    meta: Metainfo, out: Path, as_json: bool
) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress report for the hash check of data already on disk (a resumed download): the
    check takes seconds for a big product, and silence then looks like a hang. The report runs on
    the disk thread; the second function ends it."""
    if not (out / meta.name).exists():
        return lambda done, total: None, lambda: None
    if as_json:
        last = [0.0]

        def report(done: int, total: int) -> None:
            if done == total or time.monotonic() - last[0] >= REFRESH_SECONDS:
                last[0] = time.monotonic()
                json_line({"event": "checking", "pieces": done, "of": total})

        return report, lambda: None
    bar = Progress(
        TextColumn(f"resuming {meta.name}: checking what is on disk"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("check", total=meta.piece_count)
    bar.start()
    return lambda done, total: bar.update(task, completed=done), bar.stop


def json_line(data: dict[str, object]) -> None:
    """One JSON line of a long command's progress or result, at once (a script reads it live)."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def run_download(
    meta: Metainfo,
    out: Path,
    config: TorrentConfig,
    peers: list[tuple[str, int]],
    port: int,
    *,
    as_json: bool = False,
) -> Torrent:
    """Download `meta` into `out` until complete, showing progress (a bar with rate, ETA and peers,
    or with `as_json` one JSON line per refresh); raises the torrent's error. Ctrl-C keeps what
    was verified and says how to resume."""
    watch = _Watch(meta)

    async def run() -> Torrent:
        async with Session(port=port) as session:
            report, done_checking = _checking(meta, out, as_json)
            try:
                torrent = await session.add_torrent(meta, out, config, progress=report)
            finally:
                done_checking()
            watch.left = torrent.left
            if torrent.left < meta.total_length and not as_json:
                verified = 100 * (meta.total_length - torrent.left) // max(meta.total_length, 1)
                console.print(f"resuming: {verified} % already here and verified", highlight=False)
            await _join(session, torrent, meta, peers)
            with _DownloadBar(meta, as_json) as bar:
                while not torrent.completed.is_set():
                    watch.left = torrent.left
                    bar.show(torrent)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(torrent.completed.wait(), REFRESH_SECONDS)
                watch.left = torrent.left
                bar.show(torrent)
            await asyncio.sleep(REFRESH_SECONDS)  # the final receipts leave before we close
            return torrent

    try:
        torrent = run_frozen(run())
    except KeyboardInterrupt:
        _interrupted(watch, out, as_json)
        raise typer.Exit(130) from None
    if torrent.error is not None:
        raise torrent.error
    return torrent


def _interrupted(watch: _Watch, out: Path, as_json: bool) -> None:
    """The line Ctrl-C leaves: what was kept, and how to go on."""
    total = watch.meta.total_length
    kept = 0 if watch.left is None else total - watch.left
    where = (out / watch.meta.name).resolve()
    if as_json:
        json_line({"event": "stopped", "kept": kept, "total": total, "path": str(where)})
        return
    console.print(
        f"\nstopped: {kept / 2**20:.1f} of {total / 2**20:.1f} MiB ({100 * kept // max(total, 1)} %) "
        f"verified and kept in {where}; run the same command again to resume",
        highlight=False,
        soft_wrap=True,
    )


class _UploadRate:
    """Bytes per second sent since the previous call."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def __call__(self, uploaded: int) -> float:
        now = time.monotonic()
        last, self._last = self._last, (now, uploaded)
        if last is None or now <= last[0]:
            return 0.0
        return max(uploaded - last[1], 0) / (now - last[0])


class _DownloadBar:
    """The download's progress: a bar with bytes, rate, time left and peers, or JSON lines."""

    def __init__(self, meta: Metainfo, as_json: bool) -> None:
        self.meta = meta
        self.as_json = as_json
        self.started = time.monotonic()
        self.first: int | None = None
        self.bar = Progress(
            TextColumn(meta.name),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[peers]} peers"),
            console=console,
        )
        self.task = self.bar.add_task("download", total=meta.total_length, peers=0)

    def __enter__(self) -> _DownloadBar:
        if not self.as_json:
            self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        if not self.as_json:
            self.bar.stop()

    def show(self, torrent: Torrent) -> None:
        done = self.meta.total_length - torrent.left
        peers = len(torrent.connections)
        if not self.as_json:
            self.bar.update(self.task, completed=done, peers=peers)
            return
        if self.first is None:
            self.first = done
        elapsed = time.monotonic() - self.started
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = round(torrent.left / rate) if rate > 0 else None
        json_line(
            {
                "event": "progress",
                "done": done,
                "total": self.meta.total_length,
                "rate": round(rate),
                "eta_seconds": eta,
                "peers": peers,
            }
        )


def download_torrent(
    meta: Metainfo,
    *,
    key: str,
    purchase: int,
    chain_id: int,
    contract: str,
    out: Path,
    port: int,
    peer: list[str],
    password_file: Path | None,
    as_json: bool = False,
) -> None:
    """Download purchase `purchase` of a .torrent's content, paying every seeder with signed receipts."""
    domain = _domain(chain_id, contract)
    if purchase <= 0:
        raise ClientError("--purchase must be a positive purchase id")
    private_key, _ = _unlock(key, password_file)
    peers = [peer_address(text) for text in peer]
    config = TorrentConfig(
        signer=ReceiptSigner(domain, purchase, private_key),
        receipt_ledger=ledger_path(meta.info_hash, purchase),
    )

    run_download(meta, out, config, peers, port, as_json=as_json)
    where = (out / meta.name).resolve()
    if as_json:
        json_line({"event": "done", "name": meta.name, "path": str(where), "total": meta.total_length})
    else:
        console.print(f"downloaded {meta.name} into {out.resolve()}", highlight=False, soft_wrap=True)


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
    as_json: bool = False,
) -> None:
    """Seed one .torrent's content at `path`, collecting receipts and handing them to the tracker
    (or, `serve_everyone`, serving peers without receipts alike: the store's seed)."""
    meta = load_torrent(torrent_file)
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
            with contextlib.nullcontext() if as_json else console.status("checking the content on disk..."):
                torrent = await session.add_torrent(meta, folder, config, writable=False)
            announcers = await _join(session, torrent, meta, peers)
            submitter = session.submit_receipts(receipts_url(receipts_to))
            if not as_json:
                console.print(f"seeding {meta.name} on port {session.port}; receipts go to {submitter.url}")
            rate = _UploadRate()
            with contextlib.nullcontext(None) if as_json else console.status("") as status:
                while torrent.error is None:
                    reach = reachability.describe(session.port, session.port_mapper, announcers)
                    per_second = rate(torrent.uploaded)
                    if status is None:
                        json_line(
                            {
                                "event": "seeding",
                                "name": meta.name,
                                "port": session.port,
                                "peers": len(torrent.connections),
                                "uploaded": torrent.uploaded,
                                "rate": round(per_second),
                                "receipts": submitter.submitted,
                                "reachability": reach,
                            }
                        )
                    else:
                        status.update(
                            f"{len(torrent.connections)} peers, {torrent.uploaded / 2**20:.1f} MiB sent "
                            f"({per_second / 2**20:.2f} MiB/s), {submitter.submitted} receipts handed in; "
                            + reach
                        )
                    await asyncio.sleep(REFRESH_SECONDS if status is not None else 2.0)
            if torrent.error is not None:
                raise torrent.error

    with contextlib.suppress(KeyboardInterrupt):
        run_frozen(run())
