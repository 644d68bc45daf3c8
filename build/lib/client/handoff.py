"""A seller hands a new product to the store's seed over BitTorrent, then may go offline.

The seller seeds with its personal torrent and serves every peer the tracker lets in (the store's
seed speaks no receipts to a seller: nobody bought anything yet), until `handed_over()` says
another complete copy exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from client.errors import ClientError
from tracker.metainfo import Metainfo
from tracker.peer.choker import PlainPeers
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig

POLL_SECONDS = 1.0


async def hand_over(
    meta: Metainfo,
    folder: Path,
    handed_over: Callable[[], bool],
    *,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Seed `meta` from `folder` until `handed_over()` is true; the bytes uploaded meanwhile."""
    if not meta.announce:
        raise ClientError("the personal torrent names no tracker")
    # No payout wallet: nobody owes the seller receipts for the hand-over.
    config = TorrentConfig(enforce_credit=False, plain_peers=PlainPeers.SERVE)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    async with Session() as session:
        torrent = await session.add_torrent(meta, folder, config, writable=False)
        session.announce(torrent, meta.announce)
        while not await loop.run_in_executor(None, handed_over):
            if torrent.error is not None:
                raise torrent.error
            if time.monotonic() > deadline:
                raise ClientError(
                    f"the store's seed did not take the product within {timeout:.0f} s "
                    "(is `seedmarket serve` running with its seed?); run the same command again to resume"
                )
            if progress is not None:
                progress(torrent.uploaded)
            await asyncio.sleep(POLL_SECONDS)
        return torrent.uploaded
