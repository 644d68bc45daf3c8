"""The tracker behind a real nginx with TLS on loopback, the way a store is served: peers must get
each client's address, not the proxy's 127.0.0.1, and a forged `X-Forwarded-For` must not move
anyone. Clients use their own loopback addresses (127.0.0.2, ...) so that the proxy's address
and theirs differ."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote_from_bytes

import bencodepy
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.tracker.http_client import announce_target, compact_peers
from tracker.policy import MemoryPolicy, MemorySink
from tracker.receipts import Domain, ReceiptVerifier
from tracker.server import TrackerServer, start_tracker

pytestmark = pytest.mark.anyio

ALICE, BOB = "a" * 32, "b" * 32
ALICE_WALLET, BOB_WALLET = b"\xaa" * 20, b"\xbb" * 20
MOVIE = b"\x11" * 20
ALICE_HOST, BOB_HOST, MALLORY_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.4"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STARTUP_TIMEOUT = 30.0

NGINX_CONF = """
master_process off;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    upstream tracker {{ server 127.0.0.1:{tracker_port}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {home}/cert.pem;
        ssl_certificate_key {home}/key.pem;
        location / {{
            proxy_pass http://tracker;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""


def self_signed(home: Path) -> Path:
    """A certificate for 127.0.0.1 and its key in `home`; the certificate's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seedmarket test tracker")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (home / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (home / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return home / "cert.pem"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_listening(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    """Until nginx accepts connections (or fails: then its error log is the message)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("nginx did not start listening")


class Proxied:
    def __init__(self, tracker: TrackerServer, url: str, context: ssl.SSLContext) -> None:
        self.tracker = tracker
        self.url = url
        self.context = context

    async def announce(
        self, host: str, passkey: str, peer_id: bytes, port: int, headers: dict[str, str] | None = None
    ) -> dict[bytes, object]:
        """An announce over TLS through nginx, from the loopback address `host`."""
        transport = httpx.AsyncHTTPTransport(local_address=host, verify=self.context)
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await client.get(
                self.url + announce_target(passkey, MOVIE, peer_id, port=port), headers=headers
            )
        assert answer.status_code == 200
        decoded: dict[bytes, object] = bencodepy.decode(answer.content)
        return decoded


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Proxied]:
    policy = MemoryPolicy()
    for passkey, wallet in ((ALICE, ALICE_WALLET), (BOB, BOB_WALLET)):
        policy.add_passkey(passkey, wallet)
        policy.grant(wallet, MOVIE)
    tracker = await start_tracker(
        "127.0.0.1",
        0,
        policy,
        MemorySink(),
        ReceiptVerifier(Domain(31337, b"\x42" * 20)),
        trusted_proxies=["127.0.0.1/32"],
    )
    home = tmp_path / "nginx"
    home.mkdir()
    certificate = self_signed(home)
    port = free_port()
    (home / "nginx.conf").write_text(NGINX_CONF.format(home=home, tracker_port=tracker.port, port=port))
    process = await asyncio.create_subprocess_exec(
        NGINX,
        "-p",
        str(home),
        "-c",
        str(home / "nginx.conf"),
        "-e",
        str(home / "error.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_listening(port, process, home / "error.log")
        yield Proxied(tracker, f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=certificate))
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        tracker.close()
        await tracker.wait_closed()


async def test_peers_behind_the_proxy_get_each_others_addresses(proxied: Proxied) -> None:
    await proxied.announce(ALICE_HOST, ALICE, b"A" * 20, 1111)
    answer = await proxied.announce(BOB_HOST, BOB, b"B" * 20, 2222)
    assert compact_peers(answer[b"peers"]) == [(socket.inet_aton(ALICE_HOST), 1111)]  # type: ignore[arg-type]
    again = await proxied.announce(ALICE_HOST, ALICE, b"A" * 20, 1111)
    assert compact_peers(again[b"peers"]) == [(socket.inet_aton(BOB_HOST), 2222)]  # type: ignore[arg-type]


async def test_a_forged_x_forwarded_for_through_the_proxy_is_ignored(proxied: Proxied) -> None:
    """nginx appends the address the client came from; the tracker reads from the right."""
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
    await proxied.announce(ALICE_HOST, ALICE, b"A" * 20, 1111, forged)
    answer = await proxied.announce(BOB_HOST, BOB, b"B" * 20, 2222)
    assert compact_peers(answer[b"peers"]) == [(socket.inet_aton(ALICE_HOST), 1111)]  # type: ignore[arg-type]


async def test_forwarding_headers_sent_straight_to_the_tracker_are_ignored(proxied: Proxied) -> None:
    """Mallory skips the proxy and claims to be forwarded for someone else: not believed."""
    target = announce_target(ALICE, MOVIE, b"M" * 20, port=3333).encode()
    headers = b"X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", proxied.tracker.port, local_addr=(MALLORY_HOST, 0)
    )
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + b"\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    direct = bencodepy.decode(answer.partition(b"\r\n\r\n")[2])
    assert b"failure reason" not in direct
    # Nothing in the answer names the client's own address.
    assert socket.inet_aton(MALLORY_HOST) not in answer and b"6.6.6.6" not in answer
    seen = await proxied.announce(BOB_HOST, BOB, b"B" * 20, 2222)
    assert compact_peers(seen[b"peers"]) == [(socket.inet_aton(MALLORY_HOST), 3333)]  # type: ignore[arg-type]


async def test_the_scrape_url_works_through_the_proxy(proxied: Proxied) -> None:
    await proxied.announce(ALICE_HOST, ALICE, b"A" * 20, 1111)
    transport = httpx.AsyncHTTPTransport(verify=proxied.context)
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.get(f"{proxied.url}/{BOB}/scrape?info_hash={quote_from_bytes(MOVIE)}")
    assert bencodepy.decode(answer.content) == {
        b"files": {MOVIE: {b"complete": 0, b"downloaded": 0, b"incomplete": 1}}
    }
