"""A local development chain: start anvil, deploy the Marketplace from the compiled manifest.

Used by the tests and benchmarks, and handy for a throwaway store; real deployments use
`ape run deploy`. anvil's development accounts are unlocked, so transactions are sent with
`eth_sendTransaction` from them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3

from backend.chain import load_contract_type
from backend.errors import ChainUnavailable, ConfigError

_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Anvil:
    """An anvil process on a free port; `stop()` (or the context manager) ends it."""

    def __init__(
        self,
        port: int | None = None,
        *,
        chain_id: int = 31337,
        state: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        binary = shutil.which("anvil")
        if binary is None:
            raise ConfigError("anvil is not on PATH (npm @foundry-rs/anvil; `make install`)")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [binary, "--port", str(self.port), "--chain-id", str(chain_id), "--silent", *extra]
        if state is not None:
            args += ["--state", str(state)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        self.w3 = Web3(
            HTTPProvider(self.url, request_kwargs={"timeout": 30}, exception_retry_configuration=None)
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChainUnavailable(f"anvil exited with status {self.process.returncode}")
            try:
                self.w3.eth.chain_id  # noqa: B018 - a round trip proves it answers
                return
            except Exception:  # not listening yet
                time.sleep(0.05)
        self.stop()
        raise ChainUnavailable("anvil did not start in time")

    @property
    def accounts(self) -> list[str]:
        """The unlocked development accounts, checksummed."""
        return [to_checksum_address(a) for a in self.w3.eth.accounts]

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """A raw call (evm_snapshot, evm_revert, evm_mine, evm_increaseTime, ...)."""
        response = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def stop(self) -> None:
        """End the anvil process (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Deployed:
    """A Marketplace deployed on a devnet."""

    address: str
    block: int
    owner: str
    oracle: str
    guardian: str
    treasury: str


def deploy_contract(w3: Web3, manifest: Path, name: str, sender: str, *args: Any) -> tuple[str, int]:
    """Deploy a compiled contract from an unlocked account; its address and block."""
    contract_type = load_contract_type(manifest, name)
    factory = w3.eth.contract(
        abi=contract_type["abi"], bytecode=contract_type["deploymentBytecode"]["bytecode"]
    )
    tx = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise ChainUnavailable(f"deploying {name} failed")
    return to_checksum_address(receipt["contractAddress"]), receipt["blockNumber"]


def deploy_marketplace(
    w3: Web3,
    manifest: Path,
    *,
    owner: str,
    oracle: str | None = None,
    guardian: str | None = None,
    treasury: str | None = None,
    operator_fee_bps: int = 2000,
    root_delay: int = 0,
    max_root_delay: int = 86_400,
) -> Deployed:
    """Deploy a Marketplace with the given roles (each defaulting to the owner), owned directly by
    `owner` (no timelock: tests change parameters at once) and with a root delay floor of 0."""
    oracle, guardian, treasury = oracle or owner, guardian or owner, treasury or owner
    address, block = deploy_contract(
        w3,
        manifest,
        "Marketplace",
        owner,
        owner,
        oracle,
        guardian,
        treasury,
        operator_fee_bps,
        root_delay,
        0,
        max(root_delay, max_root_delay),
    )
    return Deployed(address, block, owner, oracle, guardian, treasury)
