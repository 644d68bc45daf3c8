"""Driving the API as a client would: sign in, list, register, download."""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi.testclient import TestClient

from tests.backend.siwe_helpers import address_of, sign_text, siwe_message
from tracker.metainfo import create_torrent, parse_metainfo


def sign_in(client: TestClient, key_index: int) -> dict[str, str]:
    """Sign in as development account `key_index`; the Authorization header to use."""
    nonce = client.post("/auth/nonce").json()
    text = siwe_message(address_of(key_index), nonce["nonce"], domain=nonce["domain"], uri=nonce["uri"])
    answer = client.post("/auth/session", json={"message": text, "signature": sign_text(text, key_index)})
    assert answer.status_code == 200, answer.text
    client.cookies.clear()  # the tests authenticate with the bearer token, explicitly
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def make_torrent(
    folder: Path, size: int, *, private: bool = True, name: str = "album.bin"
) -> tuple[bytes, bytes]:
    """A real .torrent of a file of `size` bytes; (torrent, infohash)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(bytes(range(256)) * (size // 256) + b"\x07" * (size % 256))
    torrent = create_torrent(path, "http://127.0.0.1:1/announce", private=private)
    return torrent, parse_metainfo(torrent).info_hash


def listing_body(torrent: bytes, title: str = "An album") -> dict[str, str]:
    """The JSON of PUT /products/{id}/listing."""
    return {"title": title, "description": "Ten songs.", "torrent": base64.b64encode(torrent).decode()}
