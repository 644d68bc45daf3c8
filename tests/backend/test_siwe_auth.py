"""Sign-In with Ethereum: every way a message can fail to bind to this store is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.db import Database
from backend.errors import AuthError
from backend.settings import load_settings
from backend.siwe_auth import SiweAuth
from tests.backend.siwe_helpers import address_of, sign_text, siwe_message


@pytest.fixture
def auth(sqlite_url: str, tmp_path: Path) -> SiweAuth:
    db = Database(sqlite_url)
    db.migrate()
    settings = load_settings(data_dir=tmp_path, database_url=sqlite_url, session_lifetime=3600)
    return SiweAuth(db, settings)


def _signed(auth: SiweAuth, key_index: int = 2, **fields: object) -> tuple[str, str]:
    nonce, _ = auth.issue_nonce()
    text = siwe_message(address_of(key_index), str(fields.pop("nonce", nonce)), **fields)  # type: ignore[arg-type]
    return text, sign_text(text, key_index)


def test_a_signed_message_opens_a_session_for_its_address(auth: SiweAuth) -> None:
    text, signature = _signed(auth)
    session = auth.sign_in(text, signature)
    assert session.address == address_of(2).lower()
    resolved = auth.resolve(session.token)
    assert resolved is not None and resolved.address == session.address
    auth.sign_out(session.token)
    assert auth.resolve(session.token) is None


def test_a_nonce_works_once(auth: SiweAuth) -> None:
    text, signature = _signed(auth)
    auth.sign_in(text, signature)
    with pytest.raises(AuthError, match="nonce"):
        auth.sign_in(text, signature)


def test_a_nonce_the_server_never_issued_is_refused(auth: SiweAuth) -> None:
    text, signature = _signed(auth, nonce="deadbeefdeadbeef")
    with pytest.raises(AuthError, match="nonce"):
        auth.sign_in(text, signature)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"domain": "evil.example"}, "domain"),
        ({"uri": "http://evil.example"}, "URI"),
        ({"chain_id": 1}, "chain"),
        ({"issued": datetime.now(UTC) - timedelta(hours=2), "expires_in": timedelta(hours=1)}, "expired"),
        ({"issued": datetime.now(UTC) + timedelta(hours=1)}, "future"),
    ],
)
def test_a_message_for_another_place_or_time_is_refused_without_burning_the_nonce(
    auth: SiweAuth, fields: dict[str, object], reason: str
) -> None:
    nonce, _ = auth.issue_nonce()
    bad = siwe_message(address_of(2), nonce, **fields)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match=reason):
        auth.sign_in(bad, sign_text(bad, 2))
    good = siwe_message(address_of(2), nonce)
    assert auth.sign_in(good, sign_text(good, 2)).address == address_of(2).lower()


def test_a_signature_by_another_key_is_refused(auth: SiweAuth) -> None:
    text, _ = _signed(auth, key_index=2)
    with pytest.raises(AuthError, match="signature"):
        auth.sign_in(text, sign_text(text, 3))


@pytest.mark.parametrize("signature", ["", "0x", "0x" + "00" * 65, "0x" + "zz" * 65, "0x" + "11" * 64])
def test_garbage_signatures_are_refused(auth: SiweAuth, signature: str) -> None:
    text, _ = _signed(auth)
    with pytest.raises(AuthError):
        auth.sign_in(text, signature)


@pytest.mark.parametrize("text", ["", "hello", "x" * 5000, "127.0.0.1:8000 wants you to sign in"])
def test_garbage_messages_are_refused(auth: SiweAuth, text: str) -> None:
    with pytest.raises(AuthError):
        auth.sign_in(text, "0x" + "11" * 65)


def test_sessions_expire(auth: SiweAuth) -> None:
    text, signature = _signed(auth)
    session = auth.sign_in(text, signature)
    later = SiweAuth(auth.db, load_settings(session_lifetime=3600), clock=lambda: session.expires_at + 1)
    assert later.resolve(session.token) is None


def test_a_session_ends_when_its_message_expires(auth: SiweAuth) -> None:
    text, signature = _signed(auth, expires_in=timedelta(minutes=5))
    session = auth.sign_in(text, signature)
    assert session.expires_at <= datetime.now(UTC).timestamp() + 5 * 60 + 1
