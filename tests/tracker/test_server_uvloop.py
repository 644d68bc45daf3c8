"""The tracker on uvloop, the loop uvicorn runs the store on: the same answers as on asyncio."""

from __future__ import annotations

import asyncio

import bencodepy
import pytest
import uvloop

from tests.tracker.http_client import RawClient, announce_target, compact_peers
from tests.tracker.test_receipts import BUYER, DOMAIN, signed_by_buyer
from tests.tracker.test_server import ALICE, BOB, LOCALHOST, MALLORY, MOVIE, make_policy
from tracker.policy import MemorySink
from tracker.receipts import ReceiptVerifier, to_message
from tracker.server import start_tracker

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Run this module's tests on uvloop."""
    return ("asyncio", {"use_uvloop": True})


async def test_announces_refusals_pipelining_and_receipts_work_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    sink = MemorySink()
    sink.add_purchase(7, BUYER, 10_000)
    server = await start_tracker("127.0.0.1", 0, make_policy(), sink, ReceiptVerifier(DOMAIN))
    try:
        client = await RawClient.connect(server.port)
        targets = [
            announce_target(ALICE, MOVIE, b"A" * 20, port=1111),
            announce_target(MALLORY, MOVIE, b"M" * 20),
            announce_target(BOB, MOVIE, b"B" * 20, port=2222),
        ]
        await client.send(b"".join(b"GET %s HTTP/1.1\r\n\r\n" % target.encode() for target in targets))
        first, refused, second = [(await client.response()).bdecoded() for _ in targets]
        assert b"peers" in first
        assert b"has not bought" in refused[b"failure reason"]
        assert compact_peers(second[b"peers"]) == [(LOCALHOST, 1111)]
        body = bytes(bencodepy.encode({"receipts": [to_message(signed_by_buyer(500))]}))
        answer = (await client.post("/receipts", body)).bdecoded()
        assert answer == {b"results": [{b"status": b"accepted", b"bytes": 500}]}
        await client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert server.internal_errors == 0
