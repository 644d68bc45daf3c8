"""The seller's path as `make run` prints it: the `ape run list_product` line of its welcome, typed
as it stands (with the seller's own folder for `./my-album`), lists, registers and hands over a
product to the running store without a single question."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dev.devnet import free_port
from dev.devstack import LOCAL_NODE, REPO, DevStack, Ports, seller_command

STARTUP_SECONDS = 180


@pytest.fixture(scope="module")
def welcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], str]]:
    """`make run` (without the sample) in the background; the lines it printed and its store URL."""
    data = tmp_path_factory.mktemp("seller-path")
    api = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dev.devstack",
            "run",
            "--no-sample",
            "--data-dir",
            str(data / "run"),
            "--rpc-port",
            str(free_port()),
            "--api-port",
            str(api),
            "--tracker-port",
            str(free_port()),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "Ctrl-C stops everything" in line:
                break
        assert any("Ctrl-C stops everything" in line for line in lines), "\n".join(lines)
        yield lines, f"http://127.0.0.1:{api}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_the_printed_seller_command_lists_a_product_without_asking(
    welcome: tuple[list[str], str], tmp_path: Path
) -> None:
    lines, store = welcome
    printed = [line for line in lines if "list_product" in line]
    assert len(printed) == 1, lines
    album = tmp_path / "my-album"
    album.mkdir()
    (album / "song.bin").write_bytes(bytes(range(256)) * 4096)
    command = [str(album) if word == "./my-album" else word for word in shlex.split(printed[0])]
    assert str(album) in command
    result = subprocess.run(
        command,
        cwd=REPO,
        stdin=subprocess.DEVNULL,  # a question would fail here
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered product 1 with the store" in result.stdout
    assert "the store's seed has product 1" in result.stdout
    listing = httpx.get(f"{store}/products/1", timeout=10).json()
    assert listing["title"] == "My album", json.dumps(listing)


def test_on_the_default_ports_the_seller_names_the_chain_as_ape_config_does(tmp_path: Path) -> None:
    command = seller_command(DevStack(tmp_path, Ports()))
    network = command[command.index("--network") + 1]
    assert network == "ethereum:local:node" and "--store" not in command
    resolved = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ape import networks; p = networks.get_provider_from_choice('ethereum:local:node'); "
            "print(p.uri, p.settings.ethereum.local['chain_id'])",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert resolved.stdout.split() == [LOCAL_NODE, "31337"]
