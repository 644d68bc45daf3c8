"""Running the store's commands as real processes, configured through the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from backend.settings import Settings
from tests.conftest import REPO

_FIELDS = (
    "database_url",
    "rpc_url",
    "chain_id",
    "contract_address",
    "deployment_block",
    "manifest",
    "confirmations",
    "poll_interval",
    "settle_after",
    "epoch_length",
    "data_dir",
    "api_host",
    "api_port",
    "tracker_host",
    "tracker_port",
    "public_url",
    "tracker_url",
)


def store_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
    for name in _FIELDS:
        value = extra.pop(name, getattr(settings, name))
        if value is not None:
            env[f"SEEDMARKET_{name.upper()}"] = str(value)
    env["SEEDMARKET_STORE_ACCOUNTS"] = ",".join(settings.store_accounts)
    for name, value in extra.items():
        env[name] = str(value)
    env["PYTHONPATH"] = str(REPO)
    return env


def cli(*args: str) -> list[str]:
    """The argv of a `seedmarket` command."""
    return [sys.executable, "-m", "seedmarket", *args]


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command to its end."""
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


# A store process imports FastAPI, web3, SQLAlchemy and siwe's grammars before it listens: seconds
# on an idle machine, a minute and more on two cores under two test workers and other loads.
STARTUP_SECONDS = 180.0


def wait_http(url: str, timeout: float = STARTUP_SECONDS) -> None:
    """Wait until `url` answers at all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")
