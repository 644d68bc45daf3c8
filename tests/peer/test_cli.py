"""`seedmarket seed` and `seedmarket download` as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from client.wallet import create_wallet
from tests.peer.conftest import DOMAIN, REPO_ROOT, make_content

CONTRACT = "0x" + DOMAIN.verifying_contract.hex()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from seedmarket.cli import main; main()", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_seed_and_download_commands_move_a_torrent_between_two_wallets(tmp_path):
    content = make_content(tmp_path, sizes=(400_000,))
    torrent_file = tmp_path / "data.torrent"
    torrent_file.write_bytes(content.raw)
    env = dict(os.environ, SEEDMARKET_HOME=str(tmp_path / "home"), SEEDMARKET_PASSWORD="pw")
    os.environ["SEEDMARKET_HOME"] = env["SEEDMARKET_HOME"]
    try:
        create_wallet("seller", "pw")
        create_wallet("buyer", "pw")
    finally:
        del os.environ["SEEDMARKET_HOME"]
    port = _free_port()
    common = ["--chain-id", str(DOMAIN.chain_id), "--contract", CONTRACT]
    seeder = _cli(
        "seed",
        str(torrent_file),
        str(content.folder / "data.bin"),
        "--key",
        "seller",
        "--port",
        str(port),
        "--journal",
        str(tmp_path / "seller.journal"),
        "--tracker",
        "http://127.0.0.1:9",
        *common,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        downloader = _cli(
            "download",
            str(torrent_file),
            "--key",
            "buyer",
            "--purchase",
            "12",
            "--out",
            str(tmp_path / "got"),
            "--peer",
            f"127.0.0.1:{port}",
            *common,
            env=env,
        )
        _, err = downloader.communicate(timeout=60)
        assert downloader.returncode == 0, err
    finally:
        seeder.kill()
        seeder.communicate()
    assert content.digest_in(tmp_path / "got") == content.digest_in(content.folder)


def test_a_missing_torrent_is_one_clear_error_line(tmp_path):
    # a wide terminal: rich wraps long lines at the width it detects
    env = dict(os.environ, SEEDMARKET_HOME=str(tmp_path / "home"), SEEDMARKET_PASSWORD="pw", COLUMNS="400")
    process = _cli(
        "download",
        str(tmp_path / "nope.torrent"),
        "--key",
        "buyer",
        "--purchase",
        "1",
        "--chain-id",
        "1",
        "--contract",
        CONTRACT,
        env=env,
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert err.strip().count("\n") == 0
    assert "cannot read" in err and "nope.torrent" in err
