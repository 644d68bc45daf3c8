"""The short version of `bench/soak.py`: two store instances on PostgreSQL behind nginx, the tracker
and anvil, under load, while the leader, the other instance and the tracker are killed with
SIGKILL, the chain node stands still and every database connection is ended. Nothing acknowledged
may be lost and nothing may be posted twice; errors while a part is down are expected."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_a_short_soak_with_faults_loses_nothing() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "bench/soak.py",
            "--duration",
            "30",
            "--chain-stop",
            "4",
            "--settle",
            "120",
            "--overlap",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(lines[-1])
    books = figures["books"]
    assert figures["lost"] == 0, (books, result.stdout[-3000:])
    assert result.returncode == 0
    # The load reached every interface, and the store did its work through the faults.
    assert set(figures["interfaces"]) == {
        "chain purchases",
        "receipt batches",
        "store pages and API",
        "tracker announces",
    }
    assert all(seen["requests"] > 0 for seen in figures["interfaces"].values())
    assert len(figures["faults"]) >= 6
    assert books["purchases_on_chain"] > 0 and books["receipts_acknowledged"] > 0
    assert books["roots_posted"] == books["roots_verified"] > 0
