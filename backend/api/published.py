"""Epoch publications rendered once and served as static documents with an ETag.

A publication is a function of the epoch's fixed cut (root, cursor block, receipt cut), which
never changes once the epoch is stored; only a failed epoch that never reached the chain is ever
replaced, under the same number but with a new `created_at`. So the ETag is derived from those
fields without rendering anything: a client that has the document gets 304 at the price of one
row read, on any instance. The rendered bytes are kept per process, most recently used first,
within a byte budget (a publication carries every receipt behind the epoch).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable

from backend.models import Epoch
from backend.publication import PUBLICATION_FORMAT

CACHE_BYTES = 256 * 1024 * 1024


def etag_of(epoch: Epoch, chain_id: int, contract: str) -> str:
    """A strong ETag for the epoch's publication, from the fields that fix its content."""
    fixed = (
        f"{PUBLICATION_FORMAT}:{chain_id}:{contract.lower()}:{epoch.number}:{epoch.root}:{epoch.created_at}:"
        f"{epoch.block_number}:{epoch.receipt_cut}"
    )
    return '"' + hashlib.sha256(fixed.encode()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or is `*`); weak forms compare equal."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class RenderedPublications:
    """Rendered publication bodies by ETag, within a byte budget."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.renders = 0  # how many times a body was built (not served from memory)

    def get(self, etag: str, render: Callable[[], object]) -> bytes:
        """The body for `etag`, rendering it with `render()` (a JSON-able document) when missing."""
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
                return body
        body = json.dumps(render(), separators=(",", ":")).encode()
        with self._lock:
            self.renders += 1
            if etag not in self._bodies and len(body) <= self.budget:
                self._bodies[etag] = body
                self._size += len(body)
                while self._size > self.budget:
                    _, dropped = self._bodies.popitem(last=False)
                    self._size -= len(dropped)
        return body
