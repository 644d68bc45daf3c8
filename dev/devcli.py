"""A user of the `seedmarket` command line with a home of its own, for the dev stack's demo and the
end-to-end tests: every call is a real `seedmarket` process, as a person at a terminal would run it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eth_utils import to_checksum_address

from client.library import ledger_path

PASSWORD = "dev-password"  # noqa: S105 - dev users' keystores (their keys are public anyway)
# `python -m seedmarket` rather than the venv's console script: the same entry point, and it runs the
# checkout's code even when the installed script was generated for an older layout.
SEEDMARKET = (sys.executable, "-m", "seedmarket")
COMMAND_SECONDS = 180.0


@dataclass
class Cli:
    """One user of the `seedmarket` command, with a home of its own (wallets, receipts, library)."""

    home: Path
    store: str
    rpc: str
    spawned: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """Nothing of the test's own environment that names a store, a chain or a home."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
        env.update(SEEDMARKET_HOME=str(self.home), SEEDMARKET_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1")
        env["COLUMNS"] = "200"  # rich would wrap one-line errors at 80 columns
        env["SEEDMARKET_MAP_PORT"] = "0"  # a local stack has no router to ask; no packets leave the host
        return env

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = COMMAND_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """Run `seedmarket ARGS` to its end; whatever its exit status."""
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.run(  # noqa: S603 - our own command, no shell
            [*SEEDMARKET, *args],
            input=stdin,
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None, timeout: float = COMMAND_SECONDS) -> str:
        """Run `seedmarket ARGS`, which must succeed; its standard output."""
        result = self.run(*args, stdin=stdin, timeout=timeout)
        assert result.returncode == 0, (
            f"seedmarket {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run `seedmarket ARGS --json`; its one JSON line."""
        return json.loads(self.ok(*args, "--json").strip().splitlines()[-1])

    def on_store(self, *args: str) -> list[str]:
        """`ARGS --store URL --rpc URL`: nothing taken from the environment."""
        return [*args, "--store", self.store, "--rpc", self.rpc]

    def import_wallet(self, name: str, private_key: str) -> str:
        """`seedmarket wallet import NAME` with the key typed on stdin; the wallet's address."""
        self.home.mkdir(parents=True, exist_ok=True)
        output = self.ok("wallet", "import", name, "--json", stdin=private_key + "\n")
        return str(json.loads(output.strip().splitlines()[-1])["address"])

    def spawn(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running `seedmarket ARGS`, logging to `log`; stopped by `stop_all`."""
        self.home.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            [*SEEDMARKET, *args],
            env=self.env(),
            cwd=self.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.spawned.append((process, out))
        return process

    def stop_all(self) -> list[int]:
        """Stop what `spawn` started (SIGINT, as Ctrl-C, then SIGKILL); their exit statuses."""
        codes = []
        for process, out in self.spawned:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                codes.append(process.wait(timeout=20))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
            out.close()
        self.spawned.clear()
        return codes

    def ledger(self, info_hash: bytes, purchase_id: int) -> dict[str, int]:
        """What this user's download signed receipts for: seeder address -> bytes, from the
        ledger the client keeps beside its wallets."""
        document = json.loads(ledger_path(info_hash, purchase_id, self.home).read_text())
        return {
            to_checksum_address("0x" + wallet): int(receipted)
            for wallet, (_verified, receipted) in document["tallies"].items()
        }
