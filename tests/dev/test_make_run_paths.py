"""The paths `make run` prints, typed as they stand: the seller's `ape run list_product` line (with
the seller's own folder for `./my-album`) lists, registers and hands over a product without a
single question; the buyer's lines buy and download it; and the hint after `download --out DIR`
seeds DIR instead of downloading the product again."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dev.devnet import free_port
from dev.devstack import LOCAL_NODE, REPO, DevStack, Ports, seller_command
from tests.conftest import LONG

STARTUP_SECONDS = 180
# A minute of buying and downloading each: with `make test-long`. The normal suite keeps the
# seller's line here and the README's commands checked against the CLI (tests/client/test_readme.py).
SLOW = pytest.mark.skipif(not LONG, reason="buyer paths against a whole stack: SEEDMARKET_LONG=1")


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


def _buyer_script(lines: list[str]) -> str:
    """The buyer's lines of the welcome as a shell script: up to `seed` (which runs until Ctrl-C),
    the key pasted where the line says "# paste KEY"."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Try it from another terminal"))
    script = []
    for line in lines[start + 1 :]:
        command, _, comment = line.strip().partition("  #")
        if not command or " seed " in command:
            break
        if comment.strip().startswith("paste "):
            command = f"echo {comment.split()[-1]} | {command}"
        script.append(command.strip())
    return "set -e\n" + "\n".join(script)


@SLOW
def test_the_printed_buyer_lines_buy_and_download_and_the_hint_seeds_where_it_downloaded(
    welcome: tuple[list[str], str], tmp_path: Path
) -> None:
    lines, _ = welcome
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
    env.update(SEEDMARKET_HOME=str(tmp_path / "home"), SEEDMARKET_MAP_PORT="0", COLUMNS="200")
    result = subprocess.run(
        ["/bin/bash", "-c", _buyer_script(lines)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bought product 1" in result.stdout and "downloaded my-album" in result.stdout
    exports = dict(
        pair.split("=", 1)
        for line in lines
        if line.strip().startswith("export ")
        for pair in line.split()[1:]
    )
    env.update(exports)
    seedmarket = shlex.split(next(line for line in lines if " buy 1 " in line))[0]

    out = tmp_path / "elsewhere"
    downloaded = subprocess.run(
        [seedmarket, "download", "1", "--key", "buyer", "--out", str(out), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    done = json.loads(downloaded.stdout.strip().splitlines()[-1])
    assert done["event"] == "done" and done["path"] == str(out.resolve() / "my-album")
    assert done["seed"] == f"seedmarket seed --key buyer --out {out.resolve()}"

    # The hint, with --json: its first report already holds the whole product, read from DIR (the
    # library's copy of the printed lines is gone: a hint without --out would download it again).
    shutil.rmtree(tmp_path / "home" / "library" / "my-album")
    hint = [seedmarket, *shlex.split(done["seed"])[1:], "--json"]
    seeding = subprocess.Popen(hint, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert seeding.stdout is not None
        events = (json.loads(line) for line in seeding.stdout)
        report = next(e for e in events if e["event"] != "checking")  # the check of DIR comes first
    finally:
        seeding.send_signal(signal.SIGINT)
        rest, _ = seeding.communicate(timeout=30)
    assert report["event"] == "seeding"
    assert json.loads(rest.strip().splitlines()[-1])["event"] == "stopped"  # what Ctrl-C leaves
    assert [(p["product"], p["have"]) for p in report["products"]] == [(1, done["total"])]
    assert not (tmp_path / "home" / "library" / "my-album").exists()


# What the README's buyer block shows that a test cannot wait for: `seed` runs until Ctrl-C, and
# `claim` and `verify-epoch` need an epoch's root posted and past its delay.
LATER = ("seed", "claim", "verify-epoch")


def _readme_buyer_block() -> list[str]:
    """The shell lines of the README's "Buyers and seeders" block, comments dropped."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("**Buyers and seeders**") :].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


@SLOW
def test_the_readme_buyer_block_runs_as_written_against_make_run(
    welcome: tuple[list[str], str], tmp_path: Path
) -> None:
    lines, _ = welcome
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
    env.update(HOME=str(tmp_path), SEEDMARKET_PASSWORD="dev", SEEDMARKET_MAP_PORT="0", COLUMNS="200")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])  # as after `activate`
    for line in lines:  # `make run` on ports of its own prints where its store and chain are
        if line.strip().startswith("export SEEDMARKET_STORE_URL"):
            env.update(pair.split("=", 1) for pair in line.split()[1:])
    ran = []
    address = ""
    for command in _readme_buyer_block():
        if shlex.split(command)[1] in LATER:
            continue
        result = subprocess.run(
            ["/bin/bash", "-c", command.replace("0xADDRESS", address)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
        if command.startswith("seedmarket wallet create"):
            address = result.stdout.split()[1]
        ran.append(shlex.split(command)[1])
    assert ran == ["wallet", "wallet", "dev", "buy", "download", "download", "rewards"], ran
    assert (tmp_path / ".seedmarket" / "library" / "my-album" / "song.bin").exists()
    assert (tmp_path / "Music" / "my-album" / "song.bin").exists()


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
