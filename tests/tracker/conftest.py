"""Fixtures shared by the tracker's tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest


def write_random(path: Path, size: int, seed: int) -> Path:
    """Write `size` pseudo-random bytes (reproducible from `seed`) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


@pytest.fixture
def content_folder(tmp_path: Path) -> Path:
    """A folder of several files of awkward sizes, one of them empty, in nested folders."""
    root = tmp_path / "album"
    write_random(root / "01 intro.flac", 70_001, 1)
    write_random(root / "cover.jpg", 16_384, 2)
    write_random(root / "extras" / "notes.txt", 5, 3)
    write_random(root / "extras" / "deep" / "video.mkv", 123_457, 4)
    (root / "extras" / "empty.txt").write_bytes(b"")
    return root


@pytest.fixture
def anyio_backend() -> str:
    """The tracker runs on asyncio (uvloop in production)."""
    return "asyncio"
