"""The deployments file: where each chain's Marketplace lives and from which block to read it.

`ape run deploy` writes it; the backend, the client and the scripts read it. One JSON object
keyed by chain id, so one file serves a local chain and a testnet side by side.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils import is_checksum_address


class DeploymentError(LookupError):
    """No usable deployment for a chain."""


@dataclass(frozen=True)
class Deployment:
    """One deployed Marketplace."""

    chain_id: int
    address: str
    block: int
    transaction: str

    def __post_init__(self) -> None:
        if not is_checksum_address(self.address):
            raise DeploymentError(f"deployment address {self.address!r} is not a checksummed address")
        if self.block < 0 or self.chain_id <= 0:
            raise DeploymentError("deployment block and chain id must be positive")


def read_deployment(path: Path, chain_id: int) -> Deployment:
    """The Marketplace deployed on `chain_id`, as recorded in `path`."""
    try:
        data = json.loads(path.read_text())
        entry = data[str(chain_id)]["Marketplace"]
        return Deployment(
            chain_id=chain_id,
            address=entry["address"],
            block=int(entry["block"]),
            transaction=entry["transaction"],
        )
    except FileNotFoundError:
        raise DeploymentError(f"{path} does not exist: deploy first (`ape run deploy`)") from None
    except KeyError:
        raise DeploymentError(f"{path} has no Marketplace for chain {chain_id}: deploy there first") from None
    except (ValueError, TypeError) as exc:
        raise DeploymentError(f"{path} is not a valid deployments file: {exc}") from None


def write_deployment(path: Path, deployment: Deployment) -> None:
    """Record `deployment`, keeping other chains' entries; atomic, so a crash leaves the old file."""
    data: dict[str, dict[str, dict[str, object]]] = {}
    if path.exists():
        data = json.loads(path.read_text())
    entry = asdict(deployment)
    del entry["chain_id"]
    data.setdefault(str(deployment.chain_id), {})["Marketplace"] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
