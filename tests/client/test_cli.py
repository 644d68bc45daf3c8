"""The seedmarket command line turns every user error into one clear line and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev.devcli import Cli
from dev.devnet import free_port
from tracker.metainfo import create_torrent


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A user whose store and chain are nowhere: every network step must fail cleanly. One for
    the module: its wallet costs a process and a key derivation, and no test here changes it."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    user = Cli(tmp_path_factory.mktemp("cli") / "home", nowhere, nowhere)
    user.ok("wallet", "create", "alice")
    return user


def _one_line_error(cli: Cli, *args: str) -> str:
    result = cli.run(*args)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_an_unreachable_store_is_said_plainly(cli: Cli) -> None:
    for command in (("buy", "1"), ("download", "1"), ("rewards",), ("claim",), ("sales",)):
        line = _one_line_error(cli, *cli.on_store(*command, "--key", "alice"))
        assert "cannot reach the store" in line and "is it running?" in line


def test_a_bad_address_is_refused_before_anything_is_sent(cli: Cli) -> None:
    for command in (("claim", "--key", "alice"), ("rewards",)):
        assert "'0x123' is not an address" in _one_line_error(
            cli, *cli.on_store(*command, "--account", "0x123")
        )


def test_an_unknown_wallet_says_how_to_make_one(cli: Cli) -> None:
    line = _one_line_error(cli, *cli.on_store("buy", "1", "--key", "bob"))
    assert "seedmarket wallet create" in line


def test_a_torrent_download_names_everything_it_still_needs_in_one_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "song.bin").write_bytes(b"x" * 40_000)
    torrent = tmp_path / "album.torrent"
    torrent.write_bytes(create_torrent(tmp_path / "album", "http://127.0.0.1:1/announce"))
    line = _one_line_error(cli, "download", str(torrent), "--key", "alice")
    assert "(album)" in line and "--purchase ... --chain-id ... --contract ..." in line
    line = _one_line_error(cli, "download", str(torrent), "--key", "alice", "--purchase", "1")
    assert "--purchase" not in line and "--chain-id ... --contract ..." in line


def test_a_torrent_file_is_read_before_anything_is_asked(cli: Cli, tmp_path: Path) -> None:
    line = _one_line_error(cli, "download", str(tmp_path / "missing.torrent"), "--key", "alice")
    assert "cannot read" in line and "--purchase" not in line
    broken = tmp_path / "broken.torrent"
    broken.write_bytes(b"d4:infode")
    assert "--purchase" not in _one_line_error(cli, "download", str(broken), "--key", "alice")


def test_download_and_seed_accept_json(cli: Cli) -> None:
    for command in (("download", "1"), ("seed",)):
        result = cli.run(*cli.on_store(*command, "--key", "alice", "--json"))
        assert result.returncode == 1 and result.stderr == "", result
        assert "cannot reach the store" in json.loads(result.stdout)["error"]


def test_a_product_id_must_be_positive(cli: Cli) -> None:
    result = cli.run(*cli.on_store("buy", "0", "--key", "alice"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_json_error_is_a_json_object_with_the_same_message(cli: Cli) -> None:
    text = _one_line_error(cli, *cli.on_store("rewards", "--key", "alice"))
    result = cli.run(*cli.on_store("rewards", "--key", "alice", "--json"))
    assert result.returncode == 1 and result.stderr == ""
    assert json.loads(result.stdout) == {"error": text.removeprefix("error: ")}


def test_an_unreachable_chain_node_is_named_in_one_line(cli: Cli) -> None:
    line = _one_line_error(cli, "wallet", "balance", "alice", "--rpc", cli.rpc)
    assert line == f"error: cannot reach the chain node at {cli.rpc}: is it running? (--rpc URL)"


def test_an_rpc_that_is_not_a_url_is_named_in_one_line(cli: Cli) -> None:
    for bad in ("nonsense", "ftp://127.0.0.1:8545", "http://"):
        line = _one_line_error(cli, "wallet", "balance", "alice", "--rpc", bad)
        assert line == f"error: --rpc {bad!r} is not a chain node's URL (like http://127.0.0.1:8545)"
