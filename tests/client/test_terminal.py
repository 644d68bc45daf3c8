"""The wallet commands as a person runs them in a terminal (a pseudo-terminal, `pexpect`): typed at
hidden prompts, or piped from another command while a terminal is still attached."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pexpect
import pytest
from eth_account import Account

from dev.devcli import PASSWORD, SEEDMARKET, Cli
from tracker.metainfo import create_torrent

KEY = "0x" + "4c" * 32  # a throwaway key: its address is all the test checks
ADDRESS = Account.from_key(KEY).address
SECONDS = 60


def _terminal(home: Path, command: str, *, password_env: bool) -> pexpect.spawn:
    """`command` run by a shell in a fresh pseudo-terminal (so `/dev/tty` is there to be read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
    env.update(SEEDMARKET_HOME=str(home), COLUMNS="200")
    if password_env:
        env["SEEDMARKET_PASSWORD"] = PASSWORD
    return pexpect.spawn(
        "/bin/bash", ["-c", command], env=env, cwd=str(home), timeout=SECONDS, encoding="utf-8"
    )


def _seedmarket(*args: str) -> str:
    return " ".join([*SEEDMARKET, *args])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def test_a_key_piped_in_a_terminal_is_read_from_standard_input(home: Path) -> None:
    child = _terminal(
        home, f"echo {KEY} | {_seedmarket('wallet', 'import', 't1', '--json')}", password_env=True
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert json.loads(child.before.strip().splitlines()[-1])["address"] == ADDRESS


def test_a_key_and_password_piped_in_a_terminal_need_no_typing(home: Path) -> None:
    child = _terminal(
        home,
        f"printf '%s\\n%s\\n' {KEY} {PASSWORD} | {_seedmarket('wallet', 'import', 't1')}",
        password_env=False,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert ADDRESS in child.before
    listed = Cli(home, "", "").json("wallet", "list")
    assert [w["address"] for w in listed] == [ADDRESS]


def test_a_key_typed_at_the_prompt_stays_hidden(home: Path) -> None:
    child = _terminal(home, _seedmarket("wallet", "import", "t1"), password_env=False)
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("Private key")
    child.sendline(KEY)
    child.expect("Wallet password")
    child.sendline(PASSWORD)
    child.expect("Repeat for confirmation")
    child.sendline(PASSWORD)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert ADDRESS in transcript.getvalue()
    assert KEY[2:] not in transcript.getvalue() and PASSWORD not in transcript.getvalue()  # never echoed


def test_empty_piped_input_is_refused_in_one_line(home: Path) -> None:
    child = _terminal(home, f"{_seedmarket('wallet', 'import', 't1')} < /dev/null", password_env=True)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "no private key (hex) on standard input" in child.before
    assert "Traceback" not in child.before


# ----- a long download: what it shows, what Ctrl-C leaves -----

PIECE = 2**18
HALF = 8 * PIECE
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def half_downloaded(home: Path) -> Path:
    """A .torrent of a 4 MiB album whose first half is already in `out/`, and no peer anywhere (its
    tracker is a closed port): the download checks what is there, then waits for peers."""
    data = bytes(range(256)) * (2 * HALF // 256)
    source = home / "src" / "album"
    source.mkdir(parents=True)
    (source / "a.bin").write_bytes(data)
    torrent = home / "album.torrent"
    torrent.write_bytes(create_torrent(source, "http://127.0.0.1:1/announce", piece_length=PIECE))
    (home / "out" / "album").mkdir(parents=True)
    (home / "out" / "album" / "a.bin").write_bytes(data[:HALF] + bytes(HALF))
    Cli(home, "", "").ok("wallet", "create", "alice")
    return torrent


def _download(torrent: Path, *extra: str) -> str:
    return _seedmarket(
        "download", str(torrent), "--key", "alice", "--purchase", "1", "--chain-id", "31337",
        "--contract", CONTRACT, "--out", "out", *extra,
    )  # fmt: skip


def test_a_resumed_download_shows_its_check_eta_and_peers_and_ctrl_c_says_what_was_kept(
    home: Path, half_downloaded: Path
) -> None:
    child = _terminal(home, _download(half_downloaded), password_env=True)
    child.expect("resuming: 50 % already here and verified")
    child.expect("ETA")
    child.expect("0 peers")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    stopped = " ".join(child.before.split())  # the line as one, however the terminal wrapped it
    kept = f"stopped: 2.0 of 4.0 MiB (50 %) verified and kept in {home / 'out' / 'album'}"
    assert kept in stopped and "run the same command again to resume" in stopped
    assert "Traceback" not in child.before


def test_a_json_download_reports_check_progress_and_stop_as_lines(home: Path, half_downloaded: Path) -> None:
    child = _terminal(home, _download(half_downloaded, "--json") + " 2>/dev/null", password_env=True)
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect('"event": "progress"')
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    lines = transcript.getvalue().replace("^C", "").splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    checks = [e for e in events if e["event"] == "checking"]
    assert checks and checks[-1] == {"event": "checking", "pieces": 16, "of": 16}
    progress = next(e for e in events if e["event"] == "progress")
    assert progress["done"] == HALF and progress["total"] == 2 * HALF and progress["peers"] == 0
    assert events[-1] == {
        "event": "stopped",
        "kept": HALF,
        "total": 2 * HALF,
        "path": str(home / "out" / "album"),
    }


def test_seeding_a_torrent_with_json_reports_lines(home: Path, half_downloaded: Path) -> None:
    command = _seedmarket(
        "seed", str(half_downloaded), str(home / "src" / "album"), "--key", "alice", "--chain-id", "31337",
        "--contract", CONTRACT, "--no-map-port", "--json",
    )  # fmt: skip
    child = _terminal(home, command + " 2>/dev/null", password_env=True)
    child.expect(r"\{.*\}\r?\n")
    line = json.loads(child.after.strip())
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert line["event"] == "seeding" and line["name"] == "album" and line["uploaded"] == 0
    assert {"peers", "rate", "receipts", "reachability"} <= set(line)
