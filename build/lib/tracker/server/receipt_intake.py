"""`POST /receipts`: decode a batch, verify each receipt, hand the valid ones to the sink, and
answer per receipt in request order. Bodies are bencoded, or JSON when the request says
`Content-Type: application/json`; the answer uses the same encoding."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import bencodepy

from tracker.errors import TrackerError
from tracker.policy import ReceiptOutcome, ReceiptSink
from tracker.receipts import ReceiptError, ReceiptVerifier, VerifiedReceipt, from_message

MAX_RECEIPTS_PER_BATCH = 1000
MAX_JSON_DEPTH = 8  # a batch nests 4 deep; {"receipts": [{"key": {...}}]}
VERIFY_SLICE = 32  # receipts verified between yields, so announces keep flowing during a batch
JSON_TYPE = b"application/json"

# A string, or an unterminated one up to the end: every match attempt succeeds, so sub() is linear.
_JSON_STRING = re.compile(rb'(?s)"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))

log = logging.getLogger(__name__)


class BatchError(TrackerError):
    """A body that is not a batch of receipts at all (answered with HTTP 400)."""


class SinkFailure(TrackerError):
    """The receipt sink failed or answered nonsense; nothing of the batch is acknowledged."""


def is_json(content_type: bytes) -> bool:
    """Whether a (lower-cased) Content-Type names JSON, parameters allowed."""
    return content_type.split(b";", 1)[0].strip() == JSON_TYPE


def _json_nesting_ok(body: bytes) -> bool:
    """Whether brackets outside strings nest at most MAX_JSON_DEPTH deep and balance.

    WARNING: this check must precede `json.loads` on untrusted bodies. py_ecc (imported with the
    Ethereum libraries) raises the recursion limit to 100,000, and then json's C decoder
    overflows the C stack on a body of nested brackets and kills the whole process.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return not brackets


def decode_batch(body: bytes, as_json: bool) -> list[Any]:
    """The list of receipt messages in a body; raises BatchError."""
    if as_json:
        if not _json_nesting_ok(body):
            raise BatchError(f"body is not JSON nested at most {MAX_JSON_DEPTH} deep")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise BatchError("body is not JSON") from None
        receipts = document.get("receipts") if isinstance(document, dict) else None
    else:
        try:
            document = bencodepy.decode(body)
        except bencodepy.BencodeDecodeError:
            raise BatchError("body is not bencoded (send Content-Type: application/json for JSON)") from None
        receipts = document.get(b"receipts") if isinstance(document, dict) else None
    if not isinstance(receipts, list):
        raise BatchError("body must be a dictionary with a 'receipts' list")
    if len(receipts) > MAX_RECEIPTS_PER_BATCH:
        raise BatchError(f"at most {MAX_RECEIPTS_PER_BATCH} receipts per batch")
    return receipts


def encode_answer(document: dict[str, Any], as_json: bool) -> bytes:
    """The answer document in the request's encoding."""
    if as_json:
        return json.dumps(document, separators=(",", ":")).encode()
    return bytes(bencodepy.encode(document))


def _result(outcome: ReceiptOutcome) -> dict[str, Any]:
    if outcome.status == "rejected":
        return {"status": "rejected", "reason": outcome.reason or "rejected"}
    return {"status": outcome.status, "bytes": outcome.byte_count}


async def process_batch(
    messages: list[Any], verifier: ReceiptVerifier, sink: ReceiptSink, now: float | None = None
) -> list[dict[str, Any]]:
    """One result per message, in order; verified receipts go to the sink in one call."""
    results: list[dict[str, Any] | None] = [None] * len(messages)
    verified: list[VerifiedReceipt] = []
    positions: list[int] = []
    when = time.time() if now is None else now
    for index, message in enumerate(messages):
        if index and index % VERIFY_SLICE == 0:
            await asyncio.sleep(0)
        try:
            verified.append(verifier.verify(from_message(message), when))
            positions.append(index)
        except ReceiptError as error:
            results[index] = {"status": "rejected", "reason": error.reason}
    if verified:
        try:
            outcomes = await sink.store(verified)
        except Exception as error:
            log.exception("receipt sink failed on a batch of %d", len(verified))
            raise SinkFailure("receipt store unavailable; keep the receipts and retry later") from error
        if not isinstance(outcomes, list) or len(outcomes) != len(verified):
            log.error("receipt sink answered %r for %d receipts", type(outcomes), len(verified))
            raise SinkFailure("receipt store answered inconsistently; retry later")
        for index, outcome in zip(positions, outcomes, strict=True):
            results[index] = _result(outcome)
    return [result for result in results if result is not None]
