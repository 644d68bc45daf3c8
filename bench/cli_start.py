"""How long `seedmarket` takes to start, against command-line tools people start without thinking
(`transmission-remote --help`, `aria2c --help`, `git --version`). Issue 14's targets: `--help`
within 0.3 s, each command's start within 0.6 s.

Each command runs `--repeat` times; the median wall time and the median CPU time (user + system,
steadier on a shared machine) are printed. No network: the commands measured only start, parse
and answer.

    python bench/cli_start.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDMARKET = [sys.executable, "-m", "seedmarket"]
HELP_TARGET, COMMAND_TARGET = 0.3, 0.6  # seconds (issue 14)

OURS = {
    "seedmarket --help": [*SEEDMARKET, "--help"],
    "seedmarket version": [*SEEDMARKET, "version"],
    "seedmarket wallet list --json": [*SEEDMARKET, "wallet", "list", "--json"],
    "seedmarket buy --help": [*SEEDMARKET, "buy", "--help"],
    "seedmarket download --help": [*SEEDMARKET, "download", "--help"],
}
PEERS = {
    "transmission-remote --help": ["transmission-remote", "--help"],
    "aria2c --help": ["aria2c", "--help"],
    "git --version": ["git", "--version"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of `repeat` runs of `argv`, which must succeed."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = _children_cpu()
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    """Measure ours and the peers; print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
        env.update(SEEDMARKET_HOME=home, PYTHONPATH=str(REPO), HOME=home)
        results: dict[str, tuple[float, float]] = {}
        for name, argv in {**OURS, **PEERS}.items():
            if shutil.which(argv[0]) is None:
                print(f"{name:<34}  skipped ({argv[0]} is not installed)")
                continue
            results[name] = measure(argv, args.repeat, env)
            wall, cpu = results[name]
            print(f"{name:<34}{wall * 1000:>10.0f} ms wall{cpu * 1000:>10.0f} ms CPU")
    help_wall = results["seedmarket --help"][0]
    commands = max(
        wall for name, (wall, _) in results.items() if name in OURS and name != "seedmarket --help"
    )
    peer = results["transmission-remote --help"][0] if "transmission-remote --help" in results else None
    print(
        f"--help {help_wall:.2f} s (target {HELP_TARGET} s), slowest command start {commands:.2f} s "
        f"(target {COMMAND_TARGET} s)"
    )
    summary = {
        "name": "cli_start",
        "ours": round(help_wall, 3),
        "peer": round(peer, 3) if peer is not None else None,
        "ratio": round(help_wall / peer, 1) if peer else None,
        "unit": "s",
        "help_cpu": round(results["seedmarket --help"][1], 3),
        "slowest_command": round(commands, 3),
        "help_target": HELP_TARGET,
        "command_target": COMMAND_TARGET,
        "runs": args.repeat,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
