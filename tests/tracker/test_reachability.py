"""The tracker's connect-back to seeders: a seeder our peer engine serves is reachable, a port
nobody listens on or that speaks something else is not, checks are rate-limited per address,
and the tracker never connects to any address but the announcer's own."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from tests.peer.conftest import DOMAIN, make_content, new_wallet
from tests.tracker.http_client import RawClient, announce_target
from tracker.peer.journal import ReceiptJournal
from tracker.peer.session import Session
from tracker.peer.torrent import TorrentConfig
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import ReceiptVerifier
from tracker.server import TrackerServer, start_tracker
from tracker.server.reachability import Reachability

pytestmark = pytest.mark.anyio

SEEDER, OTHER = "5" * 32, "0" * 32
SEEDER_WALLET, OTHER_WALLET = b"\x55" * 20, b"\x00" * 20
MOVIE = b"\x11" * 20
CONNECTABLE = b"sm_connectable"
WARNING = b"warning message"


class Listener:
    """A TCP listener that counts connections and answers each with `reply(first bytes)`."""

    def __init__(self, reply: Callable[[bytes], bytes] = lambda _: b"") -> None:
        self.reply = reply
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self.server = await asyncio.start_server(self._serve, host, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            first = await asyncio.wait_for(reader.read(68), 5)
            writer.write(self.reply(first))
            await writer.drain()
            await reader.read()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


def closed_port(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    """A port bound (so nobody else takes it) but not listening: connecting is refused."""
    holder = socket.socket()
    holder.bind((host, 0))
    return holder, holder.getsockname()[1]


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    policy = MemoryPolicy()
    policy.add_passkey(SEEDER, SEEDER_WALLET)
    policy.add_passkey(OTHER, OTHER_WALLET)
    policy.grant(SEEDER_WALLET, MOVIE)
    policy.grant(OTHER_WALLET, MOVIE)
    server = await start_tracker(
        "127.0.0.1",
        0,
        policy,
        MemorySink(),
        ReceiptVerifier(DOMAIN),
        connect_check=True,
        connect_timeout=5,
        connect_budget=2,
        trusted_proxies=["127.0.0.1/32"],
    )
    yield server
    server.close()
    await server.wait_closed()


async def announce(
    server: TrackerServer,
    port: int,
    *,
    passkey: str = SEEDER,
    info_hash: bytes = MOVIE,
    left: int = 0,
    source: str = "127.0.0.1",
    extra: str = "",
    headers: bytes = b"",
) -> dict[bytes, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))
    client = RawClient(reader, writer)
    try:
        target = announce_target(passkey, info_hash, b"S" * 20, port=port, left=left) + extra
        answer = await client.get(target, headers)
    finally:
        await client.close()
    assert answer.status == 200 and answer.failure() is None
    decoded: dict[bytes, object] = answer.bdecoded()
    return decoded


async def test_a_seeder_our_engine_serves_is_reachable(tracker: TrackerServer, tmp_path: Path) -> None:
    content = make_content(tmp_path)
    policy_wallet = new_wallet()
    async with Session(host="127.0.0.1", journal=ReceiptJournal(tmp_path / "seed.journal")) as seed:
        config = TorrentConfig(wallet=policy_wallet.address, verifier=ReceiptVerifier(DOMAIN))
        await seed.add_torrent(content.meta, content.folder, config, writable=False)
        info_hash = content.meta.info_hash
        tracker.access.policy.grant(SEEDER_WALLET, info_hash)  # type: ignore[attr-defined]
        answer = await announce(tracker, seed.port, info_hash=info_hash)
    assert answer[CONNECTABLE] == 1
    assert WARNING not in answer
    assert tracker.reachable_seeds(info_hash) == 1
    client = await RawClient.connect(tracker.port)
    scraped = (await client.get(f"/{SEEDER}/scrape?info_hash={quote_from_bytes(info_hash)}")).bdecoded()
    await client.close()
    assert scraped[b"files"][info_hash][b"sm_reachable"] == 1


async def test_a_seeder_nobody_can_connect_to_is_told_what_to_do(tracker: TrackerServer) -> None:
    holder, port = closed_port()
    with holder:
        answer = await announce(tracker, port)
    assert answer[CONNECTABLE] == 0
    warning = answer[WARNING]
    assert isinstance(warning, bytes)
    assert f"TCP and UDP port {port}".encode() in warning and b"UPnP or NAT-PMP" in warning
    assert b"127.0.0.1" not in warning  # nothing the client does not need
    assert (tracker.stats(MOVIE)[0], tracker.reachable_seeds(MOVIE)) == (1, 0)


@pytest.mark.parametrize(
    "reply",
    [
        lambda _: b"",  # an open port that says nothing
        lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n" + b" " * 60,  # some other service
        lambda first: first[:28] + b"\x22" * 20 + b"P" * 20,  # BitTorrent, but another torrent
    ],
    ids=["silent", "http", "other-torrent"],
)
async def test_an_open_port_that_is_not_this_torrents_peer_does_not_count(
    tracker: TrackerServer, reply: Callable[[bytes], bytes]
) -> None:
    listener = Listener(reply)
    port = await listener.start()
    try:
        answer = await announce(tracker, port)
    finally:
        listener.close()
    assert listener.connections == 1
    assert answer[CONNECTABLE] == 0


async def test_a_handshake_for_the_torrent_counts_and_the_verdict_is_reused(tracker: TrackerServer) -> None:
    listener = Listener(lambda first: first[:48] + b"P" * 20)  # answers as a peer with MOVIE
    port = await listener.start()
    try:
        assert (await announce(tracker, port))[CONNECTABLE] == 1
        assert (await announce(tracker, port))[CONNECTABLE] == 1
    finally:
        listener.close()
    assert listener.connections == 1  # the second announce was answered from the verdict


async def test_checks_are_rate_limited_per_address(tracker: TrackerServer) -> None:
    """The budget is 2 checks per address: a third port is not checked and gets no verdict."""
    listeners = [Listener(lambda first: first[:48] + b"P" * 20) for _ in range(3)]
    ports = [await listener.start() for listener in listeners]
    try:
        answers = [await announce(tracker, port) for port in ports]
    finally:
        for listener in listeners:
            listener.close()
    assert [answer.get(CONNECTABLE) for answer in answers] == [1, 1, None]
    assert [listener.connections for listener in listeners] == [1, 1, 0]
    assert tracker.reachability is not None and tracker.reachability.checks == 2


async def test_leechers_are_not_checked(tracker: TrackerServer) -> None:
    listener = Listener()
    port = await listener.start()
    try:
        answer = await announce(tracker, port, left=10)
    finally:
        listener.close()
    assert CONNECTABLE not in answer and listener.connections == 0


async def test_the_check_goes_only_to_the_announcers_own_address(tracker: TrackerServer) -> None:
    """A seeder at 127.0.0.2 names 127.0.0.5 every way it can (ip=, a forged X-Forwarded-For on
    a connection that is no trusted proxy's); the listener there is never contacted."""
    victim = Listener(lambda first: first[:48] + b"P" * 20)
    port = await victim.start("127.0.0.5")
    try:
        answer = await announce(
            tracker,
            port,
            source="127.0.0.2",
            extra="&ip=127.0.0.5&ipv4=127.0.0.5",
            headers=b"X-Forwarded-For: 127.0.0.5\r\nX-Real-IP: 127.0.0.5\r\n",
        )
    finally:
        victim.close()
    assert victim.connections == 0
    assert answer[CONNECTABLE] == 0  # 127.0.0.2 has nothing on that port


async def test_a_trusted_proxy_names_the_address_that_is_checked(tracker: TrackerServer) -> None:
    """Behind a trusted proxy the client it names is checked (and only that client)."""
    seeder = Listener(lambda first: first[:48] + b"P" * 20)
    port = await seeder.start("127.0.0.6")
    try:
        answer = await announce(tracker, port, headers=b"X-Forwarded-For: 127.0.0.6\r\n")
    finally:
        seeder.close()
    assert (answer[CONNECTABLE], seeder.connections) == (1, 1)


async def test_the_bare_tracker_does_not_check(tmp_path: Path) -> None:
    policy = MemoryPolicy()
    policy.add_passkey(SEEDER, SEEDER_WALLET)
    policy.grant(SEEDER_WALLET, MOVIE)
    server = await start_tracker("127.0.0.1", 0, policy, MemorySink(), ReceiptVerifier(DOMAIN))
    listener = Listener(lambda first: first[:48] + b"P" * 20)
    port = await listener.start()
    try:
        answer = await announce(server, port)
        assert CONNECTABLE not in answer and listener.connections == 0
        assert server.reachable_seeds(MOVIE) is None
    finally:
        listener.close()
        server.close()
        await server.wait_closed()


async def test_one_check_serves_announces_that_arrive_together(tracker: TrackerServer) -> None:
    listener = Listener(lambda first: first[:48] + b"P" * 20)
    port = await listener.start()
    try:
        answers = await asyncio.gather(*(announce(tracker, port) for _ in range(5)))
    finally:
        listener.close()
    assert [answer[CONNECTABLE] for answer in answers] == [1] * 5
    assert listener.connections == 1


def test_old_verdicts_and_spent_budgets_are_forgotten() -> None:
    reachability = Reachability(timeout=1, window=10, budget=1)
    addr = socket.inet_aton("127.0.0.1") + (6881).to_bytes(2, "big")
    reachability.verdicts[addr] = (True, 5)
    reachability.spent[addr[:-2]] = (5, 1)
    assert reachability.fresh(addr, 14) is True and not reachability.may_check(addr, 14)
    assert reachability.fresh(addr, 15) is None and reachability.may_check(addr, 15)
    reachability.prune(100, keep=50)
    assert reachability.last(addr) is None and not reachability.spent


@pytest.mark.parametrize(("timeout", "window", "budget"), [(0, 10, 1), (1, 0, 1), (1, 10, 0)])
def test_bad_settings_are_refused(timeout: float, window: int, budget: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Reachability(timeout, window, budget)
