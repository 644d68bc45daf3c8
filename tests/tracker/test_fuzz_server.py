"""Fuzzing the running tracker over real sockets: over 100,000 malformed announces and scrapes,
and a few thousand requests that are not even HTTP. Every answer must be a bencoded failure,
nothing may crash, and the tracker must still serve a good announce afterwards."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from urllib.parse import quote_from_bytes

import pytest

from tests.conftest import LONG
from tests.tracker.http_client import RawClient, announce_target
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import start_tracker
from tracker.server.announce import MAX_SCRAPE_HASHES

pytestmark = pytest.mark.anyio

PASSKEY, STRANGER, UNPAID = "f" * 32, "e" * 32, "d" * 32
WALLET, UNPAID_WALLET = b"\x01" * 20, b"\x02" * 20
INFO_HASH = b"\x33" * 20
MALFORMED_REQUESTS = 300_000 if LONG else 100_000
PIPELINE = 250  # requests written at once on one connection
HTTP_GARBAGE = 3_000
FORBIDDEN_IN_TARGET = b" \r\n"


def encoded(rng: random.Random, length: int) -> str:
    return quote_from_bytes(rng.randbytes(length))


def wrong_length(rng: random.Random) -> int:
    return rng.choice([0, 1, 19, 21, 40, rng.randrange(22, 90)])


def bad_number(rng: random.Random) -> str:
    return rng.choice(["", "-1", "+5", "1.5", "1e3", "0x10", "%207", "٣", "9" * 25, "abc", "%31", "1_0"])


FIELD_NAMES = ["info_hash", "peer_id", "port", "uploaded", "downloaded", "left"]


def base_fields(rng: random.Random) -> dict[str, str]:
    return {
        "info_hash": quote_from_bytes(INFO_HASH),
        "peer_id": encoded(rng, 20),
        "port": str(rng.randrange(1, 65536)),
        "uploaded": str(rng.randrange(10**6)),
        "downloaded": str(rng.randrange(10**6)),
        "left": str(rng.randrange(10**6)),
    }


# Each mutation makes a valid announce invalid; several may be combined.
def _info_hash_length(rng: random.Random, fields: dict[str, str]) -> None:
    fields["info_hash"] = encoded(rng, wrong_length(rng))


def _peer_id_length(rng: random.Random, fields: dict[str, str]) -> None:
    fields["peer_id"] = encoded(rng, wrong_length(rng))


def _bad_escape(rng: random.Random, fields: dict[str, str]) -> None:
    name = rng.choice(["info_hash", "peer_id"])
    fields[name] = fields.get(name, "")[: rng.randrange(0, 50)] + rng.choice(["%", "%g0", "%0", "%%", "%zz"])


def _bad_port(rng: random.Random, fields: dict[str, str]) -> None:
    fields["port"] = rng.choice(["0", "65536", "99999", str(rng.randrange(65536, 10**12)), bad_number(rng)])


def _bad_counter(rng: random.Random, fields: dict[str, str]) -> None:
    fields[rng.choice(["uploaded", "downloaded", "left"])] = bad_number(rng)


def _bad_event(rng: random.Random, fields: dict[str, str]) -> None:
    fields["event"] = rng.choice(
        ["start", "STOPPED", "complete", "x", "started%20", quote_from_bytes(rng.randbytes(5))]
    )


def _bad_numwant(rng: random.Random, fields: dict[str, str]) -> None:
    fields["numwant"] = bad_number(rng)


def _bad_compact(rng: random.Random, fields: dict[str, str]) -> None:
    fields["compact"] = rng.choice(["2", "-1", "yes", "", "01"])


def _missing(rng: random.Random, fields: dict[str, str]) -> None:
    del fields[rng.choice([name for name in FIELD_NAMES if name in fields] or ["info_hash"])]


MUTATIONS: list[Callable[[random.Random, dict[str, str]], None]] = [
    _info_hash_length,
    _peer_id_length,
    _bad_escape,
    _bad_port,
    _bad_counter,
    _bad_event,
    _bad_numwant,
    _bad_compact,
    _missing,
]


def either_form(rng: random.Random, passkey: str, kind: str) -> str:
    """The handed-out `/<passkey>/<kind>` path, or the old `/<kind>/<passkey>` one."""
    return f"/{passkey}/{kind}" if rng.random() < 0.5 else f"/{kind}/{passkey}"


def malformed_announce(rng: random.Random) -> str:
    fields = base_fields(rng)
    for mutation in rng.sample(MUTATIONS, rng.choice([1, 1, 2, 3])):
        mutation(rng, fields)
    pairs = [f"{name}={value}" for name, value in fields.items()]
    if rng.random() < 0.1:
        pairs.append(rng.choice(pairs))  # a repeated parameter
    rng.shuffle(pairs)
    if rng.random() < 0.2:
        pairs.append(f"{rng.choice(['key', 'ip', 'supportcrypto', 'trackerid'])}={encoded(rng, 6)}")
    passkey = PASSKEY
    if rng.random() < 0.15:
        passkey = rng.choice([STRANGER, UNPAID, "F" * 32, "f" * 31, "g" * 32, "", encoded(rng, 16)])
    return f"{either_form(rng, passkey, 'announce')}?{'&'.join(pairs)}"


def refused_announce(rng: random.Random) -> str:
    """A well-formed announce that the policy refuses."""
    passkey = rng.choice([STRANGER, UNPAID])
    return announce_target(passkey, INFO_HASH, rng.randbytes(20), port=rng.randrange(1, 65536))


def random_query(rng: random.Random) -> str:
    raw = rng.randbytes(rng.randrange(0, 300)).translate(None, FORBIDDEN_IN_TARGET + b"=?#")
    return raw.decode("latin-1")  # no '=' anywhere: info_hash can never be present


def malformed_scrape(rng: random.Random) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        query = ""
    elif choice == 1:
        query = f"info_hash={encoded(rng, wrong_length(rng))}"
    elif choice == 2:
        query = "&".join(f"info_hash={encoded(rng, 20)}" for _ in range(MAX_SCRAPE_HASHES + 1))
    elif choice == 3:
        query = f"info_hash={quote_from_bytes(INFO_HASH)}&info_hash=%zz"
    else:
        query = random_query(rng)
    passkey = PASSKEY if rng.random() < 0.9 else rng.choice(["F" * 32, "x", ""])
    return f"{either_form(rng, passkey, 'scrape')}?{query}"


def malformed_target(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.70:
        return malformed_announce(rng)
    if roll < 0.80:
        return f"{either_form(rng, PASSKEY, 'announce')}?{random_query(rng)}"
    if roll < 0.90:
        return malformed_scrape(rng)
    return refused_announce(rng)


def policy() -> MemoryPolicy:
    rules = MemoryPolicy()
    rules.add_passkey(PASSKEY, WALLET)
    rules.add_passkey(UNPAID, UNPAID_WALLET)
    rules.grant(WALLET, INFO_HASH)
    return rules


async def test_over_100000_malformed_announces_and_scrapes_all_get_bencoded_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="tracker")  # a warning per refusal would drown the log
    server = await start_tracker(
        "127.0.0.1", 0, policy(), MemorySink(), ReceiptVerifier(Domain(1, b"\x05" * 20))
    )
    rng = random.Random(20240601)
    answered = 0
    try:
        client = await RawClient.connect(server.port)
        while answered < MALFORMED_REQUESTS:
            targets = [malformed_target(rng).encode() for _ in range(PIPELINE)]
            await client.send(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target for target in targets))
            for target in targets:
                answer = await client.response()
                assert answer.status == 200, target
                reason = answer.failure()
                assert reason, target
                assert set(answer.bdecoded()) == {b"failure reason"}
                answered += 1
        good = await client.get(announce_target(PASSKEY, INFO_HASH, b"G" * 20))
        assert good.failure() is None
        await client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert answered >= MALFORMED_REQUESTS
    assert server.internal_errors == 0
    assert server.refusals >= MALFORMED_REQUESTS
    assert server.stats(INFO_HASH) == (0, 1, 0), "no malformed announce entered the swarm"


def garbage_request(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 400)).replace(b"\r\n\r\n", b"") + b"\r\n\r\n"
    if kind == 1:
        method = rng.choice([b"GET", b"POST", b"PUT", b"get", b"", b"G\x00T"])
        version = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1 x", b""])
        return (
            method
            + b" /announce/"
            + rng.randbytes(10).translate(None, b"\r\n")
            + b" "
            + version
            + b"\r\n\r\n"
        )
    if kind == 2:
        header = rng.choice(
            [b"Content-Length: -3", b"Content-Length: x", b"Transfer-Encoding: chunked", b"bad"]
        )
        return b"POST /receipts HTTP/1.1\r\n" + header + b"\r\n\r\n"
    if kind == 3:
        return b"GET /" + b"a" * rng.randrange(8_200, 9_000) + b" HTTP/1.1\r\n\r\n"
    if kind == 4:
        return b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * rng.randrange(65, 200) + b"\r\n"
    return b"GET /%s HTTP/1.1\r\n\r\n" % rng.choice(
        [b"", b"announce", b"scrape", b"favicon.ico", b"receipts/"]
    )


async def test_requests_that_are_not_http_get_a_bencoded_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="tracker")
    server = await start_tracker(
        "127.0.0.1", 0, policy(), MemorySink(), ReceiptVerifier(Domain(1, b"\x05" * 20))
    )
    rng = random.Random(7)
    try:
        for _ in range(HTTP_GARBAGE):
            client = await RawClient.connect(server.port)
            await client.send(garbage_request(rng))
            answer = await client.response()
            assert answer.status < 500
            assert answer.failure()
            await client.close()
        assert (
            await (await RawClient.connect(server.port)).get(announce_target(PASSKEY, INFO_HASH, b"G" * 20))
        ).failure() is None
    finally:
        server.close()
        await server.wait_closed()
    assert server.internal_errors == 0
