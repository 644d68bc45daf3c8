"""Message Stream Encryption (tracker/peer/mse.py): libtorrent forced to encrypt downloads from
our seed, with RC4 when that is all it allows and in plaintext after the handshake when it allows
both; a hand-written initiator shows what is refused."""

from __future__ import annotations

import asyncio
import hashlib
import os

import libtorrent as lt
import pytest

from tests.libtorrent_peer import lt_session
from tests.peer.conftest import lt_add, lt_wait, make_content, run
from tests.peer.rawpeer import RawPeer
from tracker.peer import mse, wire
from tracker.peer.session import Session


@pytest.mark.parametrize(
    ("level", "expected"),
    [(lt.enc_level.pe_rc4, "mse-rc4"), (lt.enc_level.pe_both, "mse-plaintext")],
)
def test_a_libtorrent_leecher_forced_to_encrypt_downloads_from_our_seed(tmp_path, level, expected):
    content = make_content(tmp_path, sizes=(1_000_000,), piece_length=32768)
    ses = lt_session()
    ses.apply_settings(
        {
            "out_enc_policy": lt.enc_policy.pe_forced,
            "in_enc_policy": lt.enc_policy.pe_forced,
            "allowed_enc_level": level,
            "prefer_rc4": level == lt.enc_level.pe_rc4,
        }
    )
    seen: set[str] = set()

    async def scenario():
        async with Session(host="127.0.0.1") as seed:
            await seed.add_torrent(content.meta, content.folder, writable=False)
            closed = seed.connection_closed

            def note(conn) -> None:  # how each connection was carried, as it ends
                if conn.handshake is not None:
                    seen.add(conn.encryption)
                closed(conn)

            seed.connection_closed = note  # type: ignore[method-assign]
            handle = lt_add(ses, content, tmp_path / "lt")
            handle.connect_peer(("127.0.0.1", seed.port))
            await lt_wait(handle, lambda status: status.is_seeding)
            while not seen:  # both are seeds now: one side hangs up
                await asyncio.sleep(0.05)

    run(scenario())
    assert content.digest_in(tmp_path / "lt") == content.digest_in(content.folder)
    assert seen == {expected}


class Initiator:
    """The connecting side of MSE, written from the specification, to drive our responder."""

    def __init__(self) -> None:
        self.private = int.from_bytes(os.urandom(20), "big")
        self.public = pow(mse.GENERATOR, self.private, mse.PRIME).to_bytes(mse.KEY_BYTES, "big")

    def third_message(self, yb: bytes, skey: bytes, provide: int, ia: bytes) -> tuple[bytes, object, object]:
        secret = pow(int.from_bytes(yb, "big"), self.private, mse.PRIME).to_bytes(mse.KEY_BYTES, "big")
        sha = lambda *parts: hashlib.sha1(b"".join(parts)).digest()  # noqa: E731
        encrypt = mse.rc4(sha(b"keyA", secret, skey))
        decrypt = mse.rc4(sha(b"keyB", secret, skey))
        obfuscated = bytes(a ^ b for a, b in zip(sha(b"req2", skey), sha(b"req3", secret), strict=True))
        pad_c = os.urandom(17)
        body = mse.VC + provide.to_bytes(4, "big") + len(pad_c).to_bytes(2, "big") + pad_c
        body += len(ia).to_bytes(2, "big") + ia
        return sha(b"req1", secret) + obfuscated + encrypt.update(body), encrypt, decrypt


async def _open(port: int, info_hash: bytes, skey: bytes, provide: int):
    peer = await RawPeer.connect(port)
    initiator = Initiator()
    peer.send(initiator.public + os.urandom(100))  # Ya, PadA
    yb = await peer.reader.readexactly(mse.KEY_BYTES)
    handshake = wire.Handshake(info_hash, b"-XX0000-encrypted000", wire.our_reserved()).encode()
    message, encrypt, decrypt = initiator.third_message(yb, skey, provide, handshake)
    peer.send(message)
    return peer, encrypt, decrypt


def test_an_encrypted_handshake_for_a_torrent_we_do_not_have_is_dropped(tmp_path):
    content = make_content(tmp_path)

    async def scenario():
        async with Session(host="127.0.0.1") as seed:
            await seed.add_torrent(content.meta, content.folder, writable=False)
            other = os.urandom(20)
            peer, _, _ = await _open(seed.port, other, other, mse.CRYPTO_RC4)
            assert await peer.closed_by_peer()

            # the right SKEY, but a handshake inside naming another torrent
            peer, _, _ = await _open(seed.port, other, content.meta.info_hash, mse.CRYPTO_RC4)
            assert await peer.closed_by_peer()

            # a peer offering neither method we speak
            peer, _, _ = await _open(seed.port, content.meta.info_hash, content.meta.info_hash, 0x08)
            assert await peer.closed_by_peer()

    run(scenario())


def test_random_bytes_instead_of_a_handshake_are_dropped(tmp_path):
    content = make_content(tmp_path)

    async def scenario():
        async with Session(host="127.0.0.1") as seed:
            await seed.add_torrent(content.meta, content.folder, writable=False)
            peer = await RawPeer.connect(seed.port)
            peer.send(b"\x20" + os.urandom(2000))  # no req1 hash within the pad
            assert await peer.closed_by_peer()

    run(scenario())


def test_our_seed_pokes_an_incoming_peer_that_sent_nothing_after_its_handshake(tmp_path):
    content = make_content(tmp_path)

    async def scenario():
        async with Session(host="127.0.0.1") as seed:
            await seed.add_torrent(content.meta, content.folder, writable=False)
            peer = await RawPeer.connect(seed.port)
            await peer.handshake(content.meta.info_hash)
            header = await asyncio.wait_for(peer.reader.readexactly(4), 5)
            kinds = []
            while True:  # the greeting, then a keep-alive although we sent nothing
                length = int.from_bytes(header, "big")
                if length == 0:
                    break
                kinds.append((await peer.reader.readexactly(length))[0])
                header = await asyncio.wait_for(peer.reader.readexactly(4), 5)
            assert wire.BITFIELD in kinds
            peer.close()

    run(scenario())
