"""A seeder in its own process, for the crash test: it serves and journals until it is killed.

usage: python -m tests.peer.seeder_process TORRENT FOLDER JOURNAL WALLET_HEX PORT_FILE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop

from tests.peer.conftest import DOMAIN
from tracker.metainfo import parse_metainfo
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.receipts import ReceiptVerifier


async def main(torrent: str, folder: str, journal: str, wallet: str, port_file: str) -> None:
    meta = parse_metainfo(Path(torrent).read_bytes())
    session = Session(host="127.0.0.1", journal=ReceiptJournal(journal))
    await session.start()
    config = TorrentConfig(wallet=bytes.fromhex(wallet), verifier=ReceiptVerifier(DOMAIN))
    await session.add_torrent(meta, folder, config, writable=False)
    Path(port_file).write_text(str(session.port))
    await asyncio.Event().wait()  # until SIGKILL: no clean shutdown, no submission


if __name__ == "__main__":
    uvloop.run(main(*sys.argv[1:6]))
