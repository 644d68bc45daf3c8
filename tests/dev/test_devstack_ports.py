"""`make run` (python -m dev.devstack run) checks its ports before it starts anything, and names the
one that is taken in one line: no "running" followed by "store stopped" and a traceback in a log."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dev.devnet import free_port
from dev.devstack import REPO


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port someone else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize(
    ("taken", "part"),
    [
        ("--rpc-port", "the local chain"),
        ("--api-port", "the store's API"),
        ("--tracker-port", "the store's tracker"),
    ],
)
def test_a_taken_port_is_named_in_one_line_before_anything_starts(
    occupied: int, taken: str, part: str, tmp_path: Path
) -> None:
    ports = {flag: str(free_port()) for flag in ("--rpc-port", "--api-port", "--tracker-port")}
    ports[taken] = str(occupied)
    data = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "dev.devstack", "run", "--data-dir", str(data), *sum(ports.items(), ())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: port {occupied} for {part}") and "is taken" in result.stderr
    assert "Traceback" not in result.stderr and "running" not in result.stdout
    assert not (data / "logs").exists()  # nothing was started


def test_a_fresh_run_forgets_the_previous_chain_and_store(occupied: int, tmp_path: Path) -> None:
    data = tmp_path / "run"
    data.mkdir()
    (data / "sample-product.json").write_text('{"product": 1}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dev.devstack",
            "run",
            "--fresh",
            "--data-dir",
            str(data),
            "--api-port",
            str(occupied),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "is taken" in result.stderr
    assert not (data / "sample-product.json").exists()
