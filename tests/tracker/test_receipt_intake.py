"""POST /receipts: per-receipt answers in order, nothing unverified reaches the sink, nothing
acknowledged that the sink did not store, and no body crashes anything."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import bencodepy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LONG
from tests.tracker.http_client import RawClient
from tests.tracker.test_receipts import (
    BUYER,
    DOMAIN,
    NOW,
    SEEDER,
    malleate,
    signed_by_buyer,
    signed_by_session,
)
from tracker.policy import MemoryPolicy, MemorySink, ReceiptOutcome
from tracker.receipts import ReceiptVerifier, SignedReceipt, VerifiedReceipt, to_json, to_message
from tracker.server import TrackerServer, start_tracker
from tracker.server.receipt_intake import MAX_RECEIPTS_PER_BATCH, BatchError, decode_batch, process_batch

CONTENT_LENGTH = 10_000  # bytes of purchase 7's torrent


class RecordingSink(MemorySink):
    """The in-memory sink, remembering every receipt it was handed; can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[VerifiedReceipt] = []
        self.fail = False
        self.add_purchase(7, BUYER, CONTENT_LENGTH)

    async def store(self, receipts: Sequence[VerifiedReceipt]) -> list[ReceiptOutcome]:
        if self.fail:
            raise OSError("disk full")
        self.handed.extend(receipts)
        return await super().store(receipts)


@pytest.fixture
async def served() -> AsyncIterator[tuple[TrackerServer, RecordingSink]]:
    sink = RecordingSink()
    server = await start_tracker("127.0.0.1", 0, MemoryPolicy(), sink, ReceiptVerifier(DOMAIN))
    yield server, sink
    server.close()
    await server.wait_closed()


async def post(port: int, body: bytes, content_type: str | None = None) -> tuple[int, Any]:
    client = await RawClient.connect(port)
    answer = await client.post("/receipts", body, content_type)
    await client.close()
    if answer.headers["content-type"] == "application/json":
        return answer.status, json.loads(answer.body)
    return answer.status, answer.bdecoded()


def bencoded_batch(receipts: list[SignedReceipt]) -> bytes:
    return bytes(bencodepy.encode({"receipts": [to_message(signed) for signed in receipts]}))


class TestBatches:
    @pytest.mark.anyio
    async def test_a_bencoded_batch_is_answered_per_receipt_in_order(
        self, served: tuple[TrackerServer, RecordingSink]
    ) -> None:
        server, sink = served
        unknown = signed_by_buyer(purchase_id=99)
        batch = [
            signed_by_buyer(4000),
            signed_by_session(6000, expires=2**40),
            signed_by_session(1000, expires=NOW - 10),  # expired key
            signed_by_buyer(9000, seeder=b"\x77" * 20),  # more than is left of the content
            unknown,
            SignedReceipt(signed_by_buyer(100).receipt, malleate(signed_by_buyer(100).signature)),
        ]
        status, answer = await post(server.port, bencoded_batch(batch))
        assert status == 200
        assert answer == {
            b"results": [
                {b"status": b"accepted", b"bytes": 4000},
                {b"status": b"accepted", b"bytes": 6000},
                {b"status": b"rejected", b"reason": b"expired-key"},
                {b"status": b"clipped", b"bytes": 4000},
                {b"status": b"rejected", b"reason": b"unknown-purchase"},
                {b"status": b"rejected", b"reason": b"bad-signature"},
            ]
        }
        assert [verified.receipt.byte_count for verified in sink.handed] == [4000, 6000, 9000, 1000]
        assert sink.credited == {(7, SEEDER): 6000, (7, b"\x77" * 20): 4000}

    @pytest.mark.anyio
    async def test_a_json_batch_is_answered_in_json(
        self, served: tuple[TrackerServer, RecordingSink]
    ) -> None:
        server, _ = served
        body = json.dumps({"receipts": [to_json(signed_by_session(2500, expires=2**40)), {"purchase": 7}]})
        status, answer = await post(server.port, body.encode(), "application/json; charset=utf-8")
        assert status == 200
        assert answer == {
            "results": [{"status": "accepted", "bytes": 2500}, {"status": "rejected", "reason": "malformed"}]
        }

    @pytest.mark.anyio
    async def test_a_failing_sink_acknowledges_nothing(
        self, served: tuple[TrackerServer, RecordingSink]
    ) -> None:
        server, sink = served
        sink.fail = True
        status, answer = await post(server.port, bencoded_batch([signed_by_buyer(10)]))
        assert status == 503
        assert b"retry later" in answer[b"failure reason"]
        assert sink.credited == {}
        sink.fail = False
        status, answer = await post(server.port, bencoded_batch([signed_by_buyer(10)]))
        assert answer[b"results"] == [{b"status": b"accepted", b"bytes": 10}]

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("body", "content_type"),
        [
            (b"", None),
            (b"not bencode", None),
            (b"le", None),
            (b"d8:receipts4:nonee", None),
            (b"d8:receiptsli1e", None),
            (b'{"receipts": [', "application/json"),
            (b"[1, 2]", "application/json"),
            (b'{"receipts": {}}', "application/json"),
            (b"[" * 100_000, "application/json"),
            (b"d8:receiptsl" + b"de" * (MAX_RECEIPTS_PER_BATCH + 1) + b"ee", None),
        ],
    )
    async def test_bodies_that_are_no_batch_get_400_with_a_failure_reason(
        self, served: tuple[TrackerServer, RecordingSink], body: bytes, content_type: str | None
    ) -> None:
        server, sink = served
        status, answer = await post(server.port, body, content_type)
        assert status == 400
        assert set(answer) in ({b"failure reason"}, {"failure reason"})
        assert sink.handed == []
        assert server.internal_errors == 0

    @pytest.mark.anyio
    async def test_items_that_are_no_receipt_are_rejected_one_by_one(
        self, served: tuple[TrackerServer, RecordingSink]
    ) -> None:
        server, sink = served
        body = bytes(bencodepy.encode({"receipts": [1, b"x", [], {}, {"purchase": 7, "bytes": 5}]}))
        status, answer = await post(server.port, body)
        assert status == 200
        assert answer[b"results"] == [{b"status": b"rejected", b"reason": b"malformed"}] * 5
        assert sink.handed == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
receipt_like = st.fixed_dictionaries(
    {},
    optional={
        "t": st.text(max_size=8),
        "purchase": st.integers(-5, 2**257) | json_values,
        "seeder": st.binary(max_size=22) | st.text(max_size=44) | json_values,
        "bytes": st.integers(-5, 2**65) | json_values,
        "sig": st.binary(min_size=63, max_size=66) | st.text(max_size=134) | json_values,
        "key": st.fixed_dictionaries(
            {},
            optional={
                "key": st.binary(max_size=21),
                "expires": st.integers(-1, 2**65),
                "sig": st.binary(max_size=66),
            },
        )
        | json_values,
    },
)


class TestJsonDepth:
    def test_brackets_inside_strings_do_not_count_as_nesting(self) -> None:
        body = json.dumps({"receipts": [{"t": '[[[[[[[[[[{{{{{{{{{{\\"]]]'}]}).encode()
        assert decode_batch(body, as_json=True) == [{"t": '[[[[[[[[[[{{{{{{{{{{\\"]]]'}]

    def test_deeply_nested_json_is_refused_before_the_decoder_sees_it(self) -> None:
        # With py_ecc imported the recursion limit is 100,000 and json's C decoder would crash
        # the process on this; the depth check refuses it first.
        for body in (b"[" * 200_000, b'{"receipts": ' + b"[" * 9 + b"]" * 9 + b"}"):
            with pytest.raises(BatchError, match="nested"):
                decode_batch(body, as_json=True)


class TestFuzzedBatches:
    @settings(max_examples=3000 if LONG else 600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(receipt_like | json_values, max_size=6))
    def test_random_receipt_items_are_rejected_or_verified_never_crash(self, items: list[Any]) -> None:
        sink = RecordingSink()
        results = asyncio.run(process_batch(items, ReceiptVerifier(DOMAIN), sink, NOW))
        assert len(results) == len(items)
        for result in results:
            assert result["status"] in ("accepted", "clipped", "rejected")

    @settings(max_examples=3000 if LONG else 1000, deadline=None)
    @given(st.binary(max_size=300), st.booleans())
    def test_random_bodies_decode_or_raise_batch_errors(self, body: bytes, as_json: bool) -> None:
        try:
            receipts = decode_batch(body, as_json)
        except BatchError:
            return
        assert isinstance(receipts, list)

    @pytest.mark.anyio
    async def test_random_bodies_over_sockets_get_answers_in_their_encoding(
        self, served: tuple[TrackerServer, RecordingSink]
    ) -> None:
        server, _ = served
        rng = random.Random(3)
        client = await RawClient.connect(server.port)
        for number in range(300):
            if number % 2:
                body, kind = json.dumps({"receipts": [random_json(rng, 3)]}).encode(), "application/json"
            else:
                body, kind = rng.randbytes(rng.randrange(200)), None
            answer = await client.post("/receipts", body, kind)
            assert answer.status in (200, 400)
            document = json.loads(answer.body) if kind else answer.bdecoded()
            assert set(document) <= {"results", "failure reason", b"results", b"failure reason"}
        await client.close()
        assert server.internal_errors == 0


def random_json(rng: random.Random, depth: int) -> Any:
    """A random JSON value, biased towards receipt-shaped dictionaries."""
    choice = rng.randrange(7 if depth else 4)
    if choice == 0:
        return rng.choice([None, True, False, 0, -1, 2**64, 2**256, 1.5, ""])
    if choice == 1:
        return rng.randrange(-(2**70), 2**70)
    if choice == 2:
        return "0x" + rng.randbytes(rng.choice([19, 20, 65, 66])).hex()
    if choice == 3:
        return rng.randbytes(rng.randrange(30)).decode("latin-1")
    if choice == 4:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    names = ["t", "purchase", "seeder", "bytes", "sig", "key", "expires", "x"]
    return {rng.choice(names): random_json(rng, depth - 1) for _ in range(rng.randrange(6))}
