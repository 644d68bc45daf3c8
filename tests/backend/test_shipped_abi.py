"""The audit from an installed wheel: the Marketplace's ABI ships as package data, equal to the build's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from backend.chain import CONTRACT_NAME, SHIPPED_ABI, load_abi, shipped_abi
from dev.devnet import Anvil
from tests.conftest import REPO

PACKAGE_SOURCES = ("pyproject.toml", "README.md", "tracker", "backend", "client", "seedmarket")


def test_the_shipped_abi_is_the_compiled_one(manifest: Path) -> None:
    assert shipped_abi() == load_abi(manifest, CONTRACT_NAME), (
        f"{SHIPPED_ABI} is out of date: run `python -m dev.abi` and commit it"
    )


def _wheel(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the package's sources (an in-tree build would litter the checkout)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGE_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("seedmarket-*.whl")
    return wheel


def test_verify_epoch_runs_from_an_installed_wheel_without_a_checkout(tmp_path: Path, anvil: Anvil) -> None:
    wheel = _wheel(tmp_path)
    assert "backend/abi/Marketplace.json" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # A publication for a contract that is not deployed: the audit gets as far as the chain, with
    # the ABI loaded from the installed package, and stops at the missing contract.
    saved = tmp_path / "elsewhere" / "epoch1.json"
    saved.parent.mkdir()
    saved.write_text(
        json.dumps(
            {
                "format": "seedmarket-epoch-v1",
                "epoch": 1,
                "chainId": 31337,
                "contract": "0x" + "42" * 20,
                "root": "0x" + "00" * 32,
                "cutoff": 0,
                "block": 0,
                "settleAfter": 0,
                "storeAccount": "0x" + "11" * 20,
                "totals": {},
                "frozen": [],
                "tree": {"format": "standard-v1", "leafEncoding": [], "tree": [], "values": []},
                "receipts": [],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMARKET_")}
    env["PYTHONPATH"] = str(site)  # the installed copy only: no checkout on the path
    script = (
        "import backend.chain, sys;"
        "assert backend.chain.__file__.startswith(sys.argv[1]), backend.chain.__file__;"
        "from seedmarket.cli import main; sys.argv[1:] = sys.argv[2:]; main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(site),
            "verify-epoch",
            "1",
            "--file",
            str(saved),
            "--rpc",
            anvil.url,
        ],
        cwd=saved.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f"no contract at {'0x' + '42' * 20}".lower() in result.stderr.lower(), result.stderr
