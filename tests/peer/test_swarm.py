"""Our seed and our leechers, on loopback."""

from __future__ import annotations

from pathlib import Path

from tests.peer.conftest import make_content, run
from tracker.peer.session import Session


async def _download(content, leech_folder: Path) -> None:
    async with Session(host="127.0.0.1") as seed, Session(host="127.0.0.1") as leech:
        await seed.add_torrent(content.meta, content.folder, writable=False)
        torrent = await leech.add_torrent(content.meta, leech_folder)
        assert await leech.connect(torrent, "127.0.0.1", seed.port)
        await torrent.completed.wait()
        assert torrent.error is None


def test_leecher_downloads_a_single_file_from_our_seed(content, tmp_path):
    run(_download(content, tmp_path / "leech"))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)


def test_leecher_downloads_a_folder_whose_pieces_span_files(tmp_path):
    content = make_content(
        tmp_path, name="album", sizes=(1, 40_000, 0, 70_001, 5, 100_000), piece_length=16384
    )
    run(_download(content, tmp_path / "leech"))
    assert content.digest_in(tmp_path / "leech") == content.digest_in(content.folder)
