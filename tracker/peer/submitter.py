"""Hands the journal's receipts to the tracker (`POST /receipts`) until each is acknowledged.

Receipts go in bencoded batches of at most SUBMIT_BATCH; the tracker answers each in request
order. An accepted, clipped or rejected receipt is settled in the journal and not sent again; a
failed request (network, HTTP error, unreadable answer) is retried with exponential backoff, so
nothing is lost while the tracker is away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import bencodepy
import httpx

from tracker.peer.errors import PeerError
from tracker.peer.journal import AsyncJournal, Settlement
from tracker.receipts import SignedReceipt, to_message

log = logging.getLogger(__name__)

SUBMIT_BATCH = 1000  # the tracker's batch cap
SUBMIT_DELAY = 2.0  # seconds to gather receipts before posting
RESUBMIT_INTERVAL = 60.0  # look for pending receipts this often even without news
BACKOFF_START = 1.0
BACKOFF_MAX = 300.0
REQUEST_TIMEOUT = 30.0
SETTLED_STATUSES = ("accepted", "clipped", "rejected")


class SubmitError(PeerError):
    """The tracker did not acknowledge a batch; it will be sent again."""


def receipts_url(tracker: str) -> str:
    """The receipts endpoint of a tracker given by its base URL (or any URL on it)."""
    parsed = httpx.URL(tracker)
    return str(parsed.copy_with(path="/receipts", query=None, fragment=None))


def _settlements(batch: list[SignedReceipt], answer: Any) -> list[Settlement]:
    if not isinstance(answer, dict):
        raise SubmitError("the tracker's answer is not a dictionary")
    failure = answer.get(b"failure reason")
    if failure is not None:
        raise SubmitError(f"the tracker refused the batch: {failure!r}")
    results = answer.get(b"results")
    if not isinstance(results, list) or len(results) != len(batch):
        raise SubmitError("the tracker's answer does not have one result per receipt")
    settlements = []
    for signed, result in zip(batch, results, strict=True):
        status = result.get(b"status") if isinstance(result, dict) else None
        if not isinstance(status, bytes) or status.decode("ascii", "replace") not in SETTLED_STATUSES:
            raise SubmitError(f"the tracker gave an unknown status {status!r}")
        if status == b"rejected":
            log.warning(
                "tracker rejected the receipt for purchase %d (%r)",
                signed.receipt.purchase_id,
                result.get(b"reason"),
            )
        receipt = signed.receipt
        settlements.append(
            Settlement(receipt.purchase_id, receipt.seeder, receipt.byte_count, status.decode())
        )
    return settlements


class Submitter:
    """Posts pending receipts from a journal to one tracker."""

    def __init__(self, journal: AsyncJournal, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.journal = journal
        self.url = receipts_url(url)
        self._client = client
        self.submitted = 0  # receipts the tracker answered for

    async def submit_pending(self) -> int:
        """Post everything pending now; returns how many receipts were settled. Raises SubmitError."""
        settled = 0
        client = self._client or httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        try:
            while True:
                batch: list[SignedReceipt] = await self.journal.run(
                    self.journal.journal.pending, SUBMIT_BATCH
                )
                if not batch:
                    return settled
                body = bencodepy.encode({"receipts": [to_message(signed) for signed in batch]})
                try:
                    response = await client.post(self.url, content=body)
                except httpx.HTTPError as exc:
                    raise SubmitError(f"cannot reach the tracker at {self.url}: {exc}") from exc
                try:
                    answer = bencodepy.decode(response.content)
                except (bencodepy.BencodeDecodeError, ValueError, TypeError):
                    raise SubmitError(
                        f"the tracker answered HTTP {response.status_code} with no bencoding"
                    ) from None
                settlements = _settlements(batch, answer)
                await self.journal.run(self.journal.journal.settle, settlements)
                settled += len(settlements)
                self.submitted += len(settlements)
        finally:
            if self._client is None:
                await client.aclose()

    async def run(self) -> None:
        """Submit forever: soon after new receipts arrive, periodically, and with backoff on failure."""
        backoff = BACKOFF_START
        while True:
            try:
                await self.submit_pending()
                backoff = BACKOFF_START
            except SubmitError as exc:
                log.warning("%s; retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            self.journal.changed.clear()
            try:
                await asyncio.wait_for(self.journal.changed.wait(), RESUBMIT_INTERVAL)
            except TimeoutError:
                continue
            await asyncio.sleep(SUBMIT_DELAY)
