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
