"""A minimal JSON-RPC client for anvil, for tests that send thousands of transactions."""

from __future__ import annotations

import http.client
import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class Reverted(Exception):
    """A call or transaction that the node reports as reverted, with the revert data."""

    def __init__(self, message: str, data: str) -> None:
        super().__init__(message)
        self.data = data


@dataclass
class Receipt:
    fee: int  # what the sender paid for gas, in wei


class Node:
    """A minimal JSON-RPC client on one keep-alive connection to anvil. The state machine sends
    thousands of transactions; ape (12 ms each, 50 ms for a failure, whose trace it fetches and
    prints) and web3's middleware (a chain id, a gas price and an estimate per call) cost more
    than the whole contract execution. Anvil's test accounts are unlocked, so it signs."""

    def __init__(self, uri: str) -> None:
        url = urlsplit(uri)
        self.connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        self.path = url.path or "/"
        self.ids = itertools.count()

    def request(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params})
        self.connection.request("POST", self.path, body, {"Content-Type": "application/json"})
        answer = json.loads(self.connection.getresponse().read())
        if "error" in answer:
            error = answer["error"]
            raise Reverted(error.get("message", ""), str(error.get("data") or ""))
        return answer["result"]

    def transact(self, tx: dict[str, str]) -> Receipt:
        """Send a transaction (anvil mines it at once) and return its receipt."""
        sent = self.request("eth_sendTransaction", tx)
        for _ in range(10_000):
            receipt = self.request("eth_getTransactionReceipt", sent)
            if receipt is not None:
                break
        else:
            raise AssertionError(f"transaction {sent} was not mined")
        assert receipt["status"] == "0x1"
        return Receipt(int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16))

    def close(self) -> None:
        self.connection.close()
