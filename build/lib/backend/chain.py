"""Chain access: the Marketplace's ABI from the compiled manifest, raw JSON-RPC, decoded logs.

The indexer reads logs through raw JSON-RPC (batched, no web3 formatters: it is the hot path);
contract views and the oracle's transactions go through web3.py. Every RPC failure becomes a
`ChainUnavailable` (retry later) or a `ChainError`/`ContractRevert` (the answer was bad).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import eth_abi
import requests
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, Web3Exception
from web3.types import RPCEndpoint

from backend.errors import ChainError, ChainUnavailable, ConfigError, ContractRevert
from backend.settings import Settings
from tracker.hashing import keccak256

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTRACT_NAME = "Marketplace"
# The Marketplace's ABI as the package ships it (dev/abi.py copies it from the build), for the
# audit run from an installed wheel: anyone can verify the operator without a checkout.
SHIPPED_ABI = Path(__file__).resolve().parent / "abi" / f"{CONTRACT_NAME}.json"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@lru_cache(maxsize=8)
def _manifest(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: compile the contracts first (`ape compile`)") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a compiled manifest: {exc}") from None
    return data


def load_contract_type(manifest: Path, name: str = CONTRACT_NAME) -> dict[str, Any]:
    """The compiled contract type (`abi`, `deploymentBytecode`, ...) from ape's manifest."""
    try:
        contract_type: dict[str, Any] = _manifest(manifest)["contractTypes"][name]
    except KeyError:
        raise ConfigError(f"{manifest} has no contract {name}: run `ape compile`") from None
    return contract_type


def load_abi(manifest: Path, name: str = CONTRACT_NAME) -> list[dict[str, Any]]:
    """The contract's ABI."""
    abi: list[dict[str, Any]] = load_contract_type(manifest, name)["abi"]
    return abi


def shipped_abi() -> list[dict[str, Any]]:
    """The Marketplace's ABI that ships with the package."""
    try:
        abi: list[dict[str, Any]] = json.loads(SHIPPED_ABI.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the package's ABI {SHIPPED_ABI} is missing or broken: {exc}") from None
    return abi


def _canonical_type(entry: dict[str, Any]) -> str:
    kind: str = entry["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in entry["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(i) for i in entry['inputs'])})"


def _plain(value: Any) -> Any:
    """Decoded ABI values as JSON-friendly Python: bytes -> 0x-hex, tuples -> lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One Marketplace event; addresses lowercase hex, bytes as 0x-hex."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    block_timestamp: int | None


class AbiCodec:
    """Decodes the contract's events and custom errors from raw RPC data."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._events: dict[bytes, tuple[str, list[tuple[str, str, bool]]]] = {}
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous"):
                fields = [(i["name"], _canonical_type(i), bool(i["indexed"])) for i in entry["inputs"]]
                self._events[keccak256(_signature(entry).encode())] = (entry["name"], fields)
            elif entry.get("type") == "error":
                types = [_canonical_type(i) for i in entry["inputs"]]
                names = [i["name"] for i in entry["inputs"]]
                self._errors[keccak256(_signature(entry).encode())[:4]] = (entry["name"], names, types)

    def topic(self, name: str) -> str:
        """The topic0 of event `name`, 0x-hex."""
        for topic, (event, _) in self._events.items():
            if event == name:
                return "0x" + topic.hex()
        raise KeyError(name)

    def decode_log(self, raw: dict[str, Any]) -> DecodedLog | None:
        """A raw `eth_getLogs` entry decoded, or None for an event this ABI does not know."""
        topics = [bytes.fromhex(t[2:]) for t in raw["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        name, fields = self._events[topics[0]]
        indexed = [(n, t) for n, t, is_indexed in fields if is_indexed]
        plain = [(n, t) for n, t, is_indexed in fields if not is_indexed]
        if len(topics) != len(indexed) + 1:
            raise ChainError(f"log of {name} has {len(topics) - 1} indexed topics, expected {len(indexed)}")
        args: dict[str, Any] = {}
        for (field, kind), topic in zip(indexed, topics[1:], strict=True):
            args[field] = _plain(eth_abi.decode([kind], topic)[0])
        values = eth_abi.decode([t for _, t in plain], bytes.fromhex(raw["data"][2:]))
        for (field, _), value in zip(plain, values, strict=True):
            args[field] = _plain(value)
        timestamp = raw.get("blockTimestamp")
        return DecodedLog(
            name=name,
            args=args,
            block_number=int(raw["blockNumber"], 16),
            block_hash=raw["blockHash"],
            log_index=int(raw["logIndex"], 16),
            tx_hash=raw["transactionHash"],
            block_timestamp=int(timestamp, 16) if timestamp else None,
        )

    def decode_error(self, data: bytes) -> tuple[str, tuple[Any, ...]] | None:
        """A custom error's name and arguments from revert data, if this ABI defines it."""
        entry = self._errors.get(data[:4])
        if entry is None:
            return None
        name, _, types = entry
        try:
            return name, tuple(_plain(v) for v in eth_abi.decode(types, data[4:]))
        except Exception:  # malformed revert data is just an unknown error
            return None


def _hex_data(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None


class Chain:
    """One chain and its Marketplace."""

    def __init__(
        self, rpc_url: str, chain_id: int, address: str, manifest: Path | None, *, timeout: float = 10.0
    ) -> None:
        """`manifest` None: the ABI shipped with the package instead of a compiled manifest."""
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.address = to_checksum_address(address)
        self.abi = shipped_abi() if manifest is None else load_abi(manifest)
        self.codec = AbiCodec(self.abi)
        # No web3 retries: the indexer and oracle back off on their own and must notice outages.
        self.provider = HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self.w3 = Web3(self.provider)
        self.contract: Contract = self.w3.eth.contract(address=self.address, abi=self.abi)

    @classmethod
    def from_settings(cls, settings: Settings) -> Chain:
        """The chain and Marketplace the settings name."""
        address, _ = settings.marketplace
        return cls(
            settings.rpc_url, settings.chain_id, address, settings.manifest_path, timeout=settings.rpc_timeout
        )

    # ----- raw JSON-RPC -----

    def rpc(self, method: str, params: list[Any]) -> Any:
        """One raw JSON-RPC call."""
        try:
            response = self.provider.make_request(RPCEndpoint(method), params)
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailable(f"RPC {self.rpc_url} is unreachable: {type(exc).__name__}") from None
        except ValueError as exc:  # web3 raises ValueError for a JSON-RPC error object
            raise ChainError(f"RPC {method} failed: {exc}") from None
        if "error" in response:
            raise ChainError(f"RPC {method} failed: {response['error']}")
        return response.get("result")

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several raw calls in one HTTP request, results in order."""
        if not calls:
            return []
        try:
            responses = self.provider.make_batch_request([(RPCEndpoint(m), p) for m, p in calls])
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailable(f"RPC {self.rpc_url} is unreachable: {type(exc).__name__}") from None
        if not isinstance(responses, list):
            raise ChainError(f"RPC batch failed: {responses.get('error')}")
        by_id = sorted(responses, key=lambda r: int(r.get("id") or 0))
        results = []
        for response in by_id:
            if "error" in response:
                raise ChainError(f"RPC batch call failed: {response['error']}")
            results.append(response.get("result"))
        return results

    def check(self) -> None:
        """Refuse to work with a node on another chain or without the contract."""
        remote = int(self.rpc("eth_chainId", []), 16)
        if remote != self.chain_id:
            raise ChainError(f"the RPC node is on chain {remote}, the settings say {self.chain_id}")
        code = self.rpc("eth_getCode", [self.address, "latest"])
        if code in (None, "0x", ""):
            raise ChainError(f"no contract at {self.address} on chain {remote}: deploy it or fix the address")

    def head(self) -> int:
        """The newest block number."""
        return int(self.rpc("eth_blockNumber", []), 16)

    def headers(self, numbers: Sequence[int]) -> dict[int, tuple[str, int] | None]:
        """(hash, timestamp) of each block number, None for a block the chain does not have."""
        results = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return {
            number: None if block is None else (block["hash"], int(block["timestamp"], 16))
            for number, block in zip(numbers, results, strict=True)
        }

    def logs(self, from_block: int, to_block: int) -> list[DecodedLog]:
        """Every Marketplace event in a block range, in chain order."""
        raw = self.rpc(
            "eth_getLogs", [{"address": self.address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}]
        )
        decoded = []
        for entry in raw or []:
            if entry.get("removed"):
                continue
            event = self.codec.decode_log(entry)
            if event is not None:
                decoded.append(event)
        decoded.sort(key=lambda e: (e.block_number, e.log_index))
        return decoded

    # ----- contract views and transactions -----

    def call(self, function: Callable[[], T]) -> T:
        """Run a web3 contract call, translating failures into our errors."""
        try:
            return function()
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise ChainUnavailable(f"RPC {self.rpc_url} is unreachable: {type(exc).__name__}") from None
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            raise self.revert_error(exc) from None
        except Web3Exception as exc:
            raise ChainError(f"chain call failed: {exc}") from None

    def revert_error(self, exc: Exception) -> ContractRevert:
        """A ContractRevert naming the custom error behind a web3 revert exception."""
        data = _hex_data(getattr(exc, "data", None))
        decoded = self.codec.decode_error(data) if data else None
        if decoded is not None:
            return ContractRevert(decoded[0], decoded[1])
        return ContractRevert("revert", (), f"the contract refused: {exc}")

    def view(self, name: str, *args: Any) -> Any:
        """Call a view function by name."""
        return self.call(lambda: getattr(self.contract.functions, name)(*args).call())
