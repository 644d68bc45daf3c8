"""Hands the journal's receipts to the tracker (`POST /receipts`) until each is acknowledged.

Receipts go in bencoded batches of at most SUBMIT_BATCH; the tracker answers each in request
order. An accepted, clipped or rejected receipt is settled in the journal and not sent again; a
failed request (network, HTTP error, unreadable answer) is retried with exponential backoff, so
nothing is lost while the tracker is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
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
SETTLED_STATUSES = ("accepted", "clipped", "rejected")
RETRYABLE_REASONS = frozenset({"unknown-purchase"})  # the store may index the purchase later
RETRY_LATER_SECONDS = 300.0


class SubmitError(PeerError):
    """The tracker did not acknowledge a batch; it will be sent again."""


def receipts_url(tracker: str) -> str:
    """The receipts endpoint of a tracker given by its base URL (or any URL on it)."""
    parsed = httpx.URL(tracker)
    return str(parsed.copy_with(path="/receipts", query=None, fragment=None))


@dataclass(frozen=True, slots=True)
class Answer:
    """The tracker's word on one receipt."""

    signed: SignedReceipt
    status: str
    reason: str = ""

    @property
    def retry_later(self) -> bool:
        """A rejection that may turn into acceptance (the store has not indexed the purchase yet)."""
        return self.status == "rejected" and self.reason in RETRYABLE_REASONS


def parse_answers(batch: list[SignedReceipt], answer: Any) -> list[Answer]:
    """The tracker's answers to a batch, in order; raises SubmitError when it is not one."""
    if not isinstance(answer, dict):
        raise SubmitError("the tracker's answer is not a dictionary")
    failure = answer.get(b"failure reason")
    if failure is not None:
        raise SubmitError(f"the tracker refused the batch: {failure!r}")
    results = answer.get(b"results")
    if not isinstance(results, list) or len(results) != len(batch):
        raise SubmitError("the tracker's answer does not have one result per receipt")
    answers = []
    for signed, result in zip(batch, results, strict=True):
        status = result.get(b"status") if isinstance(result, dict) else None
        if not isinstance(status, bytes) or status.decode("ascii", "replace") not in SETTLED_STATUSES:
            raise SubmitError(f"the tracker gave an unknown status {status!r}")
        reason = result.get(b"reason", b"")
        text = reason.decode("utf-8", "replace")[:100] if isinstance(reason, bytes) else ""
        answers.append(Answer(signed, status.decode(), text))
    return answers


AnswerHook = Callable[[Answer], None]


class Submitter:
    """Posts pending receipts from a journal to one tracker."""

    def __init__(
        self,
        journal: AsyncJournal,
        url: str,
        client: httpx.AsyncClient,
        on_rejected: AnswerHook | None = None,
        on_accepted: AnswerHook | None = None,
    ) -> None:
        self.journal = journal
        self.url = receipts_url(url)
        self._client = client
        self.on_rejected = on_rejected
        self.on_accepted = on_accepted
        self.urgent = asyncio.Event()  # submit now, without gathering first
        self.submitted = 0  # receipts the tracker answered for
        self._deferred: dict[tuple[int, bytes], float] = {}  # retry-later receipts: not before

    async def _batch(self) -> list[SignedReceipt]:
        now = time.monotonic()
        self._deferred = {key: when for key, when in self._deferred.items() if when > now}
        pending: list[SignedReceipt] = await self.journal.run(
            self.journal.journal.pending, SUBMIT_BATCH + len(self._deferred)
        )
        ready = [s for s in pending if (s.receipt.purchase_id, s.receipt.seeder) not in self._deferred]
        return ready[:SUBMIT_BATCH]

    async def submit_pending(self) -> int:
        """Post everything pending now; returns how many receipts were settled. Raises SubmitError."""
        settled = 0
        while batch := await self._batch():
            body = bencodepy.encode({"receipts": [to_message(signed) for signed in batch]})
            try:
                response = await self._client.post(self.url, content=body)
            except httpx.HTTPError as exc:
                raise SubmitError(f"cannot reach the tracker at {self.url}: {exc}") from exc
            try:
                document = bencodepy.decode(response.content)
            except (bencodepy.BencodeDecodeError, ValueError, TypeError):
                raise SubmitError(
                    f"the tracker answered HTTP {response.status_code} with no bencoding"
                ) from None
            settled += await self._record(parse_answers(batch, document))
        return settled

    async def _record(self, answers: list[Answer]) -> int:
        settlements = []
        for answer in answers:
            receipt = answer.signed.receipt
            if answer.retry_later:
                self._deferred[(receipt.purchase_id, receipt.seeder)] = time.monotonic() + RETRY_LATER_SECONDS
                continue
            if answer.status == "rejected":
                log.warning(
                    "tracker rejected the receipt for purchase %d: %s", receipt.purchase_id, answer.reason
                )
                if self.on_rejected is not None:
                    self.on_rejected(answer)
            elif self.on_accepted is not None:
                self.on_accepted(answer)
            settlements.append(
                Settlement(receipt.purchase_id, receipt.seeder, receipt.byte_count, answer.status)
            )
        if settlements:
            await self.journal.run(self.journal.journal.settle, settlements)
        self.submitted += len(settlements)
        return len(settlements)

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
            with contextlib.suppress(TimeoutError):  # gather a batch, unless a buyer awaits its verdict
                await asyncio.wait_for(self.urgent.wait(), SUBMIT_DELAY)
            self.urgent.clear()
