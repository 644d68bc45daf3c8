"""Helpers for the peer engine's tests: small torrents on disk, an event loop, keys, libtorrent."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest
import uvloop
from coincurve import PrivateKey

from tracker.metainfo import Metainfo, create_torrent, parse_metainfo
from tracker.peer.credit import ReceiptSigner
from tracker.receipts import Domain, address_of

REPO_ROOT = Path(__file__).resolve().parents[2]
ANNOUNCE = "http://127.0.0.1:9/announce/test"
DOMAIN = Domain(chain_id=31337, verifying_contract=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
TIMEOUT = 60.0


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = TIMEOUT, *, uv: bool = True) -> Any:
    """Run a coroutine on uvloop (or asyncio's own loop), failing the test after `timeout`."""
    if uv:
        return uvloop.run(asyncio.wait_for(coroutine, timeout))
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@dataclass
class Content:
    """A torrent and its data: `folder` holds the content named `meta.name`."""

    folder: Path
    meta: Metainfo
    raw: bytes

    def digest_in(self, folder: Path) -> str:
        """SHA-256 over every file of the torrent under `folder`, in torrent order."""
        h = hashlib.sha256()
        for entry in self.meta.files:
            h.update(folder.joinpath(*entry.path).read_bytes())
        return h.hexdigest()


def make_content(
    root: Path, name: str = "data.bin", sizes: tuple[int, ...] = (300_000,), piece_length: int = 32768
) -> Content:
    """Random content (one file, or a folder when several sizes are given) and its torrent."""
    folder = root / "seed"
    folder.mkdir(parents=True, exist_ok=True)
    if len(sizes) == 1:
        target = folder / name
        target.write_bytes(os.urandom(sizes[0]))
    else:
        target = folder / name
        for number, size in enumerate(sizes):
            path = target / f"part{number // 2}" / f"file{number}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
    raw = create_torrent(target, ANNOUNCE, piece_length=piece_length)
    return Content(folder=folder, meta=parse_metainfo(raw), raw=raw)


@dataclass
class Wallet:
    """A key pair."""

    key: bytes
    address: bytes


def new_wallet() -> Wallet:
    """A fresh random key."""
    key = os.urandom(32)
    return Wallet(key=key, address=address_of(PrivateKey(key).public_key))


def signer_for(buyer: Wallet, purchase_id: int) -> ReceiptSigner:
    """A receipt signer using the buyer's own key."""
    return ReceiptSigner(DOMAIN, purchase_id, buyer.key)


@pytest.fixture
def content(tmp_path: Path) -> Content:
    """A 300 kB single-file torrent with 32 KiB pieces."""
    return make_content(tmp_path)


def lt_add(session, content: Content, folder: Path):
    """Add a torrent to a libtorrent session, saving under `folder`."""
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(content.raw))
    params.save_path = str(folder)
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(params)


async def lt_wait(handle, predicate, timeout: float = TIMEOUT) -> None:
    """Poll a libtorrent handle until `predicate(status)` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate(handle.status()):
        if loop.time() > deadline:
            raise TimeoutError(
                f"libtorrent state {handle.status().state}, progress {handle.status().progress}"
            )
        await asyncio.sleep(0.05)
