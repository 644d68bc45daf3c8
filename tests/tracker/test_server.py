"""The tracker over real sockets: announce, scrape, refusals, HTTP framing, caching and limits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import pytest

from tests.tracker.http_client import RawClient, announce_target, compact_peers
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import TrackerServer, start_tracker
from tracker.server.http import MAX_HEAD_BYTES
from tracker.server.proxies import packed_ip

pytestmark = pytest.mark.anyio

ALICE, BOB, MALLORY = "a" * 32, "b" * 32, "c" * 32  # passkeys
ALICE_WALLET, BOB_WALLET, MALLORY_WALLET = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
MOVIE, BOOK = b"\x11" * 20, b"\x22" * 20  # infohashes
DOMAIN = Domain(chain_id=31337, verifying_contract=b"\x42" * 20)
LOCALHOST = socket.inet_aton("127.0.0.1")


@dataclass
class Setup:
    server: TrackerServer
    policy: MemoryPolicy
    sink: MemorySink

    @property
    def port(self) -> int:
        return self.server.port


def make_policy() -> MemoryPolicy:
    """Alice and Bob bought the movie, Alice the book too; Mallory bought nothing."""
    policy = MemoryPolicy()
    policy.add_passkey(ALICE, ALICE_WALLET)
    policy.add_passkey(BOB, BOB_WALLET)
    policy.add_passkey(MALLORY, MALLORY_WALLET)
    policy.grant(ALICE_WALLET, MOVIE)
    policy.grant(BOB_WALLET, MOVIE)
    policy.grant(ALICE_WALLET, BOOK)
    return policy


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    policy, sink = make_policy(), MemorySink()
    server = await start_tracker(
        "127.0.0.1", 0, policy, sink, ReceiptVerifier(DOMAIN), interval=60, min_interval=30, grace=10
    )
    yield Setup(server, policy, sink)
    server.close()
    await server.wait_closed()


async def announce(
    tracker_port: int, passkey: str, info_hash: bytes, peer_id: bytes, **kwargs: object
) -> dict:
    """One announce on a fresh connection; the decoded answer."""
    client = await RawClient.connect(tracker_port)
    try:
        answer = await client.get(announce_target(passkey, info_hash, peer_id, **kwargs))  # type: ignore[arg-type]
    finally:
        await client.close()
    assert answer.status == 200
    return answer.bdecoded()


class TestAnnounce:
    async def test_buyers_find_each_other_and_never_themselves(self, setup: Setup) -> None:
        first = await announce(setup.port, ALICE, MOVIE, b"A" * 20, port=1111, left=0, event="started")
        assert first == {
            b"complete": 1,
            b"incomplete": 0,
            b"interval": 60,
            b"min interval": 30,
            b"peers": b"",
            b"peers6": b"",
        }
        second = await announce(setup.port, BOB, MOVIE, b"B" * 20, port=2222, left=50, event="started")
        assert (second[b"complete"], second[b"incomplete"]) == (1, 1)
        assert compact_peers(second[b"peers"]) == [(LOCALHOST, 1111)]
        again = await announce(setup.port, ALICE, MOVIE, b"A" * 20, port=1111, left=0)
        assert compact_peers(again[b"peers"]) == [(LOCALHOST, 2222)]
        assert setup.server.stats(MOVIE) == (1, 1, 0)

    async def test_seeds_get_no_seeds(self, setup: Setup) -> None:
        await announce(setup.port, ALICE, MOVIE, b"A" * 20, port=1111, left=0)
        answer = await announce(setup.port, BOB, MOVIE, b"B" * 20, port=2222, left=0)
        assert answer[b"peers"] == b""
        assert answer[b"complete"] == 2

    async def test_one_account_cannot_stop_another_accounts_peer_by_its_peer_id(self, setup: Setup) -> None:
        await announce(setup.port, ALICE, MOVIE, b"X" * 20, port=1111, left=0)
        await announce(setup.port, BOB, MOVIE, b"X" * 20, port=2222, left=5, event="stopped")
        assert setup.server.stats(MOVIE) == (1, 0, 0)

    async def test_stopped_removes_the_peer_and_completed_counts_a_download(self, setup: Setup) -> None:
        await announce(setup.port, BOB, MOVIE, b"B" * 20, left=10, event="started")
        await announce(setup.port, BOB, MOVIE, b"B" * 20, left=0, event="completed")
        assert setup.server.stats(MOVIE) == (1, 0, 1)
        stopped = await announce(setup.port, BOB, MOVIE, b"B" * 20, left=0, event="stopped")
        assert stopped[b"peers"] == b""
        assert setup.server.stats(MOVIE) == (0, 0, 1)

    async def test_the_address_comes_from_the_connection_not_from_ip(self, setup: Setup) -> None:
        client = await RawClient.connect(setup.port)
        await client.get(announce_target(ALICE, MOVIE, b"A" * 20, port=1111) + "&ip=6.6.6.6&ipv4=6.6.6.6")
        answer = await announce(setup.port, BOB, MOVIE, b"B" * 20)
        assert compact_peers(answer[b"peers"]) == [(LOCALHOST, 1111)]
        await client.close()

    async def test_the_old_announce_path_is_still_answered(self, setup: Setup) -> None:
        await announce(setup.port, ALICE, MOVIE, b"A" * 20, port=1111, left=0)
        client = await RawClient.connect(setup.port)
        old = announce_target(BOB, MOVIE, b"B" * 20, port=2222).replace(
            f"/{BOB}/announce", f"/announce/{BOB}"
        )
        assert old.startswith(f"/announce/{BOB}?")
        answer = (await client.get(old)).bdecoded()
        assert compact_peers(answer[b"peers"]) == [(LOCALHOST, 1111)]
        assert setup.server.stats(MOVIE) == (1, 1, 0)
        await client.close()

    async def test_ipv6_peers_come_in_peers6(self, setup: Setup) -> None:
        v6 = await start_tracker("::1", 0, setup.policy, setup.sink, ReceiptVerifier(DOMAIN))
        try:
            alice = await RawClient.connect(v6.port, "::1")
            await alice.get(announce_target(ALICE, MOVIE, b"A" * 20, port=1111))
            bob = await RawClient.connect(v6.port, "::1")
            answer = (await bob.get(announce_target(BOB, MOVIE, b"B" * 20, port=2222))).bdecoded()
            assert answer[b"peers"] == b""
            assert compact_peers(answer[b"peers6"], 18) == [(socket.inet_pton(socket.AF_INET6, "::1"), 1111)]
            await alice.close()
            await bob.close()
        finally:
            v6.close()
            await v6.wait_closed()

    def test_ipv4_mapped_ipv6_addresses_count_as_ipv4(self) -> None:
        assert packed_ip("::ffff:10.1.2.3") == bytes([10, 1, 2, 3])
        assert packed_ip("10.1.2.3") == bytes([10, 1, 2, 3])
        assert packed_ip("fe80::1%eth0") == socket.inet_pton(socket.AF_INET6, "fe80::1")


class TestRefusals:
    @pytest.mark.parametrize(
        ("passkey", "info_hash", "reason"),
        [
            ("d" * 32, MOVIE, "unknown passkey"),
            (MALLORY, MOVIE, "has not bought"),
            (BOB, BOOK, "has not bought"),
            ("D" * 32, MOVIE, "malformed passkey"),
            ("short", MOVIE, "malformed passkey"),
        ],
    )
    async def test_refused_announces_get_a_reason_and_no_peers(
        self, setup: Setup, passkey: str, info_hash: bytes, reason: str
    ) -> None:
        await announce(setup.port, ALICE, MOVIE, b"A" * 20)
        answer = await announce(setup.port, passkey, info_hash, b"M" * 20)
        assert reason in answer[b"failure reason"].decode()
        assert set(answer) == {b"failure reason"}
        assert setup.server.stats(info_hash)[:2] == ((0, 1) if info_hash == MOVIE else (0, 0))

    async def test_refusals_keep_the_connection_and_cached_refusals_skip_the_policy(
        self, setup: Setup
    ) -> None:
        client = await RawClient.connect(setup.port)
        for _ in range(3):
            answer = await client.get(announce_target(MALLORY, MOVIE, b"M" * 20))
            assert "has not bought" in (answer.failure() or "")
        assert setup.policy.lookups == 2  # one passkey lookup, one permission lookup
        assert (await client.get(announce_target(ALICE, MOVIE, b"A" * 20))).failure() is None
        await client.close()

    async def test_a_failing_policy_answers_503_with_a_reason_and_is_not_cached(self, setup: Setup) -> None:
        calls = 0
        original = setup.policy.wallet_for_passkey

        async def flaky(passkey: str) -> bytes | None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("database down")
            return await original(passkey)

        setup.policy.wallet_for_passkey = flaky  # type: ignore[method-assign]
        client = await RawClient.connect(setup.port)
        answer = await client.get(announce_target(ALICE, MOVIE, b"A" * 20))
        assert answer.status == 503
        assert "temporarily unavailable" in (answer.failure() or "")
        assert (await client.get(announce_target(ALICE, MOVIE, b"A" * 20))).failure() is None
        await client.close()
        assert setup.server.internal_errors == 0


class TestScrape:
    async def test_scrape_lists_only_swarms_the_wallet_may_join(self, setup: Setup) -> None:
        await announce(setup.port, ALICE, MOVIE, b"A" * 20, left=0)
        await announce(setup.port, ALICE, BOOK, b"A" * 20, left=3)
        client = await RawClient.connect(setup.port)
        query = f"info_hash={quote_from_bytes(MOVIE)}&info_hash={quote_from_bytes(BOOK)}"
        answer = (await client.get(f"/{BOB}/scrape?{query}")).bdecoded()
        assert answer == {b"files": {MOVIE: {b"complete": 1, b"downloaded": 0, b"incomplete": 0}}}
        answer = (await client.get(f"/{ALICE}/scrape?{query}")).bdecoded()
        assert answer[b"files"][BOOK] == {b"complete": 0, b"downloaded": 0, b"incomplete": 1}
        assert (await client.get(f"/scrape/{ALICE}?{query}")).bdecoded() == answer  # the old form
        refused = await client.get(f"/{'e' * 32}/scrape?{query}")
        assert "unknown passkey" in (refused.failure() or "")
        await client.close()


class TestHttp:
    async def test_pipelined_requests_are_answered_in_order_across_cache_misses(self, setup: Setup) -> None:
        client = await RawClient.connect(setup.port)
        targets = [
            announce_target(ALICE, MOVIE, b"A" * 20, port=1),  # cache miss: answered by a task
            announce_target(ALICE, MOVIE, b"A" * 20, port=2),
            announce_target(MALLORY, MOVIE, b"M" * 20),  # miss again, refused
            f"/scrape/{ALICE}?info_hash={quote_from_bytes(BOOK)}",
            announce_target(BOB, MOVIE, b"B" * 20, port=3, numwant=5),
        ]
        await client.send(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % t.encode() for t in targets))
        answers = [(await client.response()).bdecoded() for _ in targets]
        assert b"peers" in answers[0] and b"peers" in answers[1]
        assert b"failure reason" in answers[2]
        assert b"files" in answers[3]
        assert compact_peers(answers[4][b"peers"]) == [(LOCALHOST, 2)]
        await client.close()

    async def test_http_1_0_closes_unless_asked_to_keep_alive(self, setup: Setup) -> None:
        client = await RawClient.connect(setup.port)
        await client.send(b"GET %s HTTP/1.0\r\n\r\n" % announce_target(ALICE, MOVIE, b"A" * 20).encode())
        answer = await client.response()
        assert answer.headers["connection"] == "close"
        assert await client.is_closed()
        client = await RawClient.connect(setup.port)
        await client.send(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % b"/nowhere")
        assert (await client.response()).headers["connection"] == "keep-alive"
        await client.close()

    @pytest.mark.parametrize(
        ("raw", "status"),
        [
            (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
            (b"POST /announce/" + b"a" * 32 + b" HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
            (b"POST /" + b"a" * 32 + b"/scrape HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
            (b"GET /" + b"a" * 32 + b"/announcement HTTP/1.1\r\n\r\n", 404),
            (b"GET /receipts HTTP/1.1\r\n\r\n", 405),
            (b"BREW /pot HTTP/1.1\r\n\r\n", 405),
            (b"GET / HTTP/3\r\n\r\n", 400),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
            (b"GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET /" + b"x" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n", 431),
        ],
    )
    async def test_bad_requests_get_a_bencoded_failure(self, setup: Setup, raw: bytes, status: int) -> None:
        client = await RawClient.connect(setup.port)
        await client.send(raw)
        answer = await client.response()
        assert answer.status == status
        assert answer.failure()
        await client.close()
        assert setup.server.internal_errors == 0

    async def test_expect_continue_gets_a_100_before_the_body(self, setup: Setup) -> None:
        client = await RawClient.connect(setup.port)
        await client.send(b"POST /receipts HTTP/1.1\r\nContent-Length: 16\r\nExpect: 100-continue\r\n\r\n")
        assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"d8:receiptsleee"[:16].ljust(16, b"e"))
        answer = await client.response()
        assert answer.status in (200, 400)
        await client.close()


class TestLimits:
    async def test_idle_and_slow_connections_are_closed(self) -> None:
        server = await start_tracker(
            "127.0.0.1",
            0,
            make_policy(),
            MemorySink(),
            ReceiptVerifier(DOMAIN),
            head_timeout=1,
            keepalive_timeout=1,
        )
        try:
            idle = await RawClient.connect(server.port)
            slow = await RawClient.connect(server.port)
            await slow.send(b"GET /announce/")  # and never the rest
            assert await idle.is_closed(timeout=5)
            assert await slow.is_closed(timeout=5)
        finally:
            server.close()
            await server.wait_closed()

    async def test_connections_beyond_the_limit_are_refused(self) -> None:
        server = await start_tracker(
            "127.0.0.1", 0, make_policy(), MemorySink(), ReceiptVerifier(DOMAIN), max_connections=2
        )
        try:
            kept = [await RawClient.connect(server.port) for _ in range(2)]
            await asyncio.sleep(0.05)
            extra = await RawClient.connect(server.port)
            assert await extra.is_closed(timeout=5)
            assert (await kept[0].get(announce_target(ALICE, MOVIE, b"A" * 20))).failure() is None
            for client in kept:
                await client.close()
        finally:
            server.close()
            await server.wait_closed()

    async def test_a_full_tracker_refuses_new_peers_with_a_reason(self) -> None:
        server = await start_tracker(
            "127.0.0.1", 0, make_policy(), MemorySink(), ReceiptVerifier(DOMAIN), max_peers=1
        )
        try:
            assert b"peers" in await announce(server.port, ALICE, MOVIE, b"A" * 20)
            refused = await announce(server.port, BOB, MOVIE, b"B" * 20)
            assert "tracker is full" in refused[b"failure reason"].decode()
        finally:
            server.close()
            await server.wait_closed()

    async def test_peers_that_stop_announcing_expire_after_interval_and_grace(self) -> None:
        server = await start_tracker(
            "127.0.0.1",
            0,
            make_policy(),
            MemorySink(),
            ReceiptVerifier(DOMAIN),
            interval=1,
            min_interval=1,
            grace=1,
        )
        try:
            await announce(server.port, ALICE, MOVIE, b"A" * 20, left=0)
            await announce(server.port, BOB, MOVIE, b"B" * 20)
            assert server.stats(MOVIE) == (1, 1, 0)
            deadline = asyncio.get_running_loop().time() + 10
            while server.stats(MOVIE)[:2] != (0, 0):
                assert asyncio.get_running_loop().time() < deadline, "peers never expired"
                await asyncio.sleep(0.2)
            answer = await announce(server.port, BOB, MOVIE, b"B" * 20)
            assert answer[b"peers"] == b"", "an expired seed is not handed out"
        finally:
            server.close()
            await server.wait_closed()

    @pytest.mark.parametrize(
        "setting", [{"interval": 0}, {"grace": -1}, {"max_peers": 0}, {"keepalive_timeout": -5}]
    )
    async def test_nonsense_settings_are_refused_at_start(self, setting: dict[str, int]) -> None:
        with pytest.raises(ValueError, match="tracker"):
            await start_tracker(
                "127.0.0.1", 0, make_policy(), MemorySink(), ReceiptVerifier(DOMAIN), **setting
            )

    async def test_policy_answers_are_cached_until_their_ttl(self) -> None:
        policy = make_policy()
        server = await start_tracker(
            "127.0.0.1", 0, policy, MemorySink(), ReceiptVerifier(DOMAIN), policy_ttl=1
        )
        try:
            for _ in range(5):
                await announce(server.port, ALICE, MOVIE, b"A" * 20)
            assert policy.lookups == 2
            policy.revoke(ALICE_WALLET, MOVIE)
            assert b"peers" in await announce(server.port, ALICE, MOVIE, b"A" * 20)
            await asyncio.sleep(2.2)
            refused = await announce(server.port, ALICE, MOVIE, b"A" * 20)
            assert "has not bought" in refused[b"failure reason"].decode()
        finally:
            server.close()
            await server.wait_closed()
